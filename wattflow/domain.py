"""The domain vocabulary of wattflow: delivery areas, products, trading windows, ticks and book updates.

Both ``operators/`` and ``connectors/`` import this module; it imports neither. Times are UTC
nanoseconds since the epoch (``_ns``), prices EUR/MWh (``_eur_per_mwh``), quantities MW (``_mw``).

A product is identified by a stable string key ``AREA:YYYY-MM-DDTHH:MMZ:PTnM``, for example
``DE-LU:2018-10-28T01:00Z:PT15M`` (delivery start in UTC, duration in minutes).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

NS_PER_SECOND = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_SECOND
NS_PER_HOUR = 60 * NS_PER_MINUTE

#: Harmonised price limits (EUR/MWh). Power prices can be negative.
INTRADAY_PRICE_MIN_EUR_PER_MWH = -9999.0
INTRADAY_PRICE_MAX_EUR_PER_MWH = 9999.0
DAY_AHEAD_PRICE_MIN_EUR_PER_MWH = -500.0
DAY_AHEAD_PRICE_MAX_EUR_PER_MWH = 4000.0
PRICE_TICK_EUR_PER_MWH = 0.01
QUANTITY_STEP_MW = 0.1
#: The largest quantity one order or trade can carry on the continuous market (EPEX: 9999.9 MW).
MAX_QUANTITY_MW = 9999.9

#: Delivery durations a product can have, in minutes.
DURATIONS_MIN: tuple[int, ...] = (15, 30, 60)


class Side(enum.IntEnum):
    """Side of a book level, or the aggressor side of a trade (the side that crossed the spread)."""

    BUY = 1
    SELL = -1

    @classmethod
    def parse(cls, value: object) -> Side:
        if isinstance(value, str):
            upper = value.upper()
            if upper in ("BUY", "B", "BID"):
                return cls.BUY
            if upper in ("SELL", "S", "ASK", "OFFER"):
                return cls.SELL
        elif isinstance(value, int) and not isinstance(value, bool) and value in (1, -1):
            return cls(value)
        raise ValueError(f"unknown side {value!r}: expected BUY or SELL")


@dataclass(frozen=True, slots=True)
class AreaRules:
    """Trading rules of one delivery area (bidding zone).

    Gate closures are minutes before delivery start; openings are local times on the day before delivery.
    """

    area: str
    timezone: str
    open_hourly_local: str = "15:00"
    open_half_hourly_local: str = "15:30"
    open_quarter_hourly_local: str = "16:00"
    cross_border_closure_min: int = 60
    area_closure_min: int = 30
    local_closure_min: int = 5

    def opening_local(self, duration_min: int) -> str:
        return {60: self.open_hourly_local, 30: self.open_half_hourly_local}.get(
            duration_min, self.open_quarter_hourly_local
        )


#: The areas wattflow knows. German rules are the default; other areas differ in detail, which
#: per-area settings can override.
AREAS: dict[str, AreaRules] = {
    name: AreaRules(area=name, timezone=tz)
    for name, tz in (
        ("DE-LU", "Europe/Berlin"),
        ("DE-AT-LU", "Europe/Berlin"),
        ("AT", "Europe/Vienna"),
        ("FR", "Europe/Paris"),
        ("NL", "Europe/Amsterdam"),
        ("BE", "Europe/Brussels"),
        ("CH", "Europe/Zurich"),
        ("CZ", "Europe/Prague"),
        ("PL", "Europe/Warsaw"),
        ("HU", "Europe/Budapest"),
        ("SI", "Europe/Ljubljana"),
        ("DK1", "Europe/Copenhagen"),
        ("DK2", "Europe/Copenhagen"),
        ("SE4", "Europe/Stockholm"),
        ("NO2", "Europe/Oslo"),
        ("IT-NORD", "Europe/Rome"),
    )
}


def area_rules(area: str) -> AreaRules:
    try:
        return AREAS[area]
    except KeyError:
        raise ValueError(f"unknown delivery area {area!r}: known areas are {', '.join(sorted(AREAS))}") from None


def ns_to_datetime(ts_ns: int) -> datetime:
    seconds, rest_ns = divmod(ts_ns, NS_PER_SECOND)
    return datetime.fromtimestamp(seconds, tz=UTC) + timedelta(microseconds=rest_ns // 1000)


def datetime_to_ns(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: wattflow needs an aware time (UTC inside the system)")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_SECOND + delta.microseconds * 1000


@dataclass(frozen=True, slots=True)
class TradingWindow:
    """When a product can be traded, in UTC ns."""

    open_ns: int
    cross_border_close_ns: int
    area_close_ns: int
    local_close_ns: int

    def is_open(self, ts_ns: int) -> bool:
        """Open for any trading (the last gate, within one control area)."""
        return self.open_ns <= ts_ns < self.local_close_ns


@dataclass(frozen=True, slots=True)
class Product:
    """A delivery product: area, delivery start (UTC ns) and duration (minutes)."""

    area: str
    delivery_start_ns: int
    duration_min: int

    def __post_init__(self) -> None:
        if self.duration_min not in DURATIONS_MIN:
            raise ValueError(f"product duration {self.duration_min} min: expected one of {DURATIONS_MIN}")
        if self.delivery_start_ns % (15 * NS_PER_MINUTE):
            raise ValueError("product delivery start must fall on a quarter hour (UTC)")

    @property
    def delivery_end_ns(self) -> int:
        return self.delivery_start_ns + self.duration_min * NS_PER_MINUTE

    @property
    def key(self) -> str:
        start = ns_to_datetime(self.delivery_start_ns)
        return f"{self.area}:{start:%Y-%m-%dT%H:%M}Z:PT{self.duration_min}M"

    def __str__(self) -> str:
        return self.key

    @classmethod
    def parse(cls, key: str) -> Product:
        return _parse_product(key)

    def trading_window(self, rules: AreaRules | None = None) -> TradingWindow:
        return trading_window(self, rules)

    def gate_closure_ns(self, gate: Gate = "area") -> int:
        """UTC ns of this product's gate closure under its area's rules (``gate``: which of the three)."""
        window = trading_window(self)
        return {"cross_border": window.cross_border_close_ns, "area": window.area_close_ns,
                "local": window.local_close_ns}[gate]


#: Which gate closure a caller means: cross-border (60 min before delivery), area (30) or control area (5).
Gate = Literal["cross_border", "area", "local"]


@lru_cache(maxsize=65_536)
def _parse_product(key: str) -> Product:
    try:
        area, rest = key.split(":", 1)
        start_text, duration_text = rest.rsplit(":", 1)
        if not (start_text.endswith("Z") and duration_text.startswith("PT") and duration_text.endswith("M")):
            raise ValueError
        start = datetime.strptime(start_text[:-1], "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
        duration_min = int(duration_text[2:-1])
    except ValueError:
        raise ValueError(f"bad product key {key!r}: expected AREA:YYYY-MM-DDTHH:MMZ:PTnM") from None
    area_rules(area)
    return Product(area, datetime_to_ns(start), duration_min)


@lru_cache(maxsize=65_536)
def trading_window(product: Product, rules: AreaRules | None = None) -> TradingWindow:
    """The trading window of a product under its area's rules.

    Trading opens on the day before delivery at a local time that depends on the duration (German rules:
    15:00 hourly, 15:30 half-hourly, 16:00 quarter-hourly); "the day before" is the local calendar day of
    delivery start minus one, so daylight-saving days (23 or 25 hours) need no special case.
    """
    rules = rules or area_rules(product.area)
    zone = ZoneInfo(rules.timezone)
    start_local = ns_to_datetime(product.delivery_start_ns).astimezone(zone)
    hour, minute = (int(x) for x in rules.opening_local(product.duration_min).split(":"))
    day_before = start_local.date() - timedelta(days=1)
    opening = datetime(day_before.year, day_before.month, day_before.day, hour, minute, tzinfo=zone)
    start_ns = product.delivery_start_ns
    return TradingWindow(
        open_ns=datetime_to_ns(opening),
        cross_border_close_ns=start_ns - rules.cross_border_closure_min * NS_PER_MINUTE,
        area_close_ns=start_ns - rules.area_closure_min * NS_PER_MINUTE,
        local_close_ns=start_ns - rules.local_closure_min * NS_PER_MINUTE,
    )


def product_area(key: str) -> str:
    """The delivery area of a product key (``DE-LU:2018-10-28T01:00Z:PT15M`` -> ``DE-LU``), or ``""`` for an
    empty key. Cheap (no parse): the area is the key's prefix by construction of :attr:`Product.key`."""
    return key.partition(":")[0]


def gate_closure_ns(product_key: str, gate: Gate = "area") -> int:
    """UTC ns of a product's gate closure under its area's rules (:meth:`Product.gate_closure_ns`)."""
    return Product.parse(product_key).gate_closure_ns(gate)


def delivery_day_bounds_ns(area: str, day: date) -> tuple[int, int]:
    """UTC ns of the first and one past the last instant of a local delivery day (23, 24 or 25 hours)."""
    zone = ZoneInfo(area_rules(area).timezone)
    first = datetime(day.year, day.month, day.day, tzinfo=zone)
    following = day + timedelta(days=1)
    last = datetime(following.year, following.month, following.day, tzinfo=zone)
    return datetime_to_ns(first), datetime_to_ns(last)


def products_of_day(area: str, day: date, durations_min: tuple[int, ...] = (15, 60)) -> list[Product]:
    """Every product of one local delivery day, ordered by delivery start then duration."""
    first_ns, end_ns = delivery_day_bounds_ns(area, day)
    products = [
        Product(area, start_ns, duration)
        for duration in durations_min
        for start_ns in range(first_ns, end_ns, duration * NS_PER_MINUTE)
    ]
    products.sort(key=lambda p: (p.delivery_start_ns, p.duration_min))
    return products


@dataclass(frozen=True, slots=True)
class Tick:
    """One trade on the continuous market. ``side`` is the aggressor side."""

    ts_ns: int
    recv_ns: int
    product: str
    price_eur_per_mwh: float
    quantity_mw: float
    side: Side
    trade_id: int
    source: str
    seq: int

    @property
    def area(self) -> str:
        return product_area(self.product)


@dataclass(frozen=True, slots=True)
class BookUpdate:
    """One L2 level of one side of a product's book; ``quantity_mw == 0`` removes the level."""

    ts_ns: int
    recv_ns: int
    product: str
    side: Side
    level: int
    price_eur_per_mwh: float
    quantity_mw: float
    source: str
    seq: int


@dataclass(frozen=True, slots=True)
class DayAheadPrice:
    """One day-ahead auction result: the clearing price of one area for one delivery period."""

    area: str
    delivery_start_ns: int
    duration_min: int
    price_eur_per_mwh: float
    source: str
