"""Pre-trade risk checks (MiFID II RTS 6, Article 15 style): pure logic, no I/O.

``PreTradeRisk.check(intent, reference_price_eur_per_mwh)`` answers every order intent with a
``RiskDecision``. A denial carries an UPPER_SNAKE reason code and the numbers behind it, for example
``PRICE_OUTSIDE_COLLAR: price=-160.00 collar=[-150.00, 50.00] reference=-50.00 band=100.00``.

Units: prices EUR/MWh (negative prices are normal), quantities and positions MW, values EUR, times UTC ns.
Positions are signed per product key (buy +, sell -). An approved order is *open* until it is filled
(``on_fill``) or closed (``on_order_closed``: cancelled, expired, rejected, IOC remainder); the position
checks assume every open order fills, so no sequence of approvals and fills can break a position limit.

The checks run in this order; the first that fails decides the denial:

1.  ``TRADING_HALTED``: the trading state is HALTED (kill switch); nothing new goes out.
2.  ``DUPLICATE_CLIENT_ORDER_ID``: an open order already has this client order id (its exposure is counted).
3.  ``UNKNOWN_PRODUCT``: the product key does not parse (``AREA:YYYY-MM-DDTHH:MMZ:PTnM``, known area).
4.  ``PRICE_OUTSIDE_MARKET_LIMITS``: not ``market_min <= price <= market_max`` (intraday -9999..+9999;
    a NaN or infinite price fails here).
5.  ``PRICE_NOT_ON_TICK``: ``price / 0.01`` is not a whole number (tolerance 1e-6 ticks).
6.  ``INVALID_QUANTITY``: the quantity is not finite or not > 0 MW.
7.  ``QUANTITY_NOT_ON_STEP``: ``quantity / 0.1`` is not a whole number (tolerance 1e-6 steps).
8.  ``NO_REFERENCE_PRICE``: the reference price is missing or not finite (fail closed: no collar, no order).
9.  ``PRICE_OUTSIDE_COLLAR``: not ``reference - band <= price <= reference + band``. A plain two-sided band
    on the signed price, so it works for a negative reference and for a band that crosses zero
    (reference -50, band 100: collar [-150, 50]; reference 20, band 30: collar [-10, 50]).
10. ``MAX_ORDER_VOLUME``: ``quantity_mw > max_order_volume_mw``.
11. ``MAX_ORDER_VALUE``: ``|price| x quantity_mw x delivery_hours > max_order_value_eur``, where delivery
    hours come from the product key's duration (PT15M = 0.25 h). ``|price|`` because a negative price is
    money that flows the other way, not less risk.
12. ``REDUCE_ONLY``: in REDUCING state, or for an intent flagged ``reduce_only``, the order must reduce the
    absolute position of its product and never flip it: a sell needs ``position > 0`` and
    ``quantity <= position - open_sell`` (a buy mirrors it), so resting reducing orders are counted too.
13. ``MAX_PRODUCT_POSITION``: worst-case exposure of the product if every open order and this one fill,
    ``max(|position + open_buy|, |position - open_sell|)``, above ``max_product_position_mw`` and larger
    than before the order (an order that lowers the exposure is never denied by this check).
14. ``MAX_TOTAL_POSITION``: the sum over products of that exposure, above ``max_total_position_mw`` and
    larger than before the order.
15. ``ORDER_RATE_EXCEEDED``: the orders approved in the sliding window ``(ts_ns - interval, ts_ns]`` already
    number ``max_orders_per_interval``. The throttle denies; it never queues. It runs last, so only an
    approved order takes from the rate budget.

The mutable state is a small plain ``RiskState`` (dicts, a deque, an enum), picklable as is, so a Bytewax
stateful step can snapshot it; ``PreTradeRisk`` itself pickles too.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, field

from wattflow.domain import (
    INTRADAY_PRICE_MAX_EUR_PER_MWH,
    INTRADAY_PRICE_MIN_EUR_PER_MWH,
    MAX_QUANTITY_MW,
    NS_PER_SECOND,
    PRICE_TICK_EUR_PER_MWH,
    QUANTITY_STEP_MW,
    Product,
    Side,
)
from wattflow.enums import TradingState
from wattflow.settings import execution_default

#: Tolerance of the tick and step grids, in ticks or steps (as in ``operators.validate``).
_GRID_TOLERANCE = 1e-6
#: Tolerance of price comparisons (EUR/MWh) and volume comparisons (MW, EUR): far below one tick or step.
_EPSILON = 1e-9
#: Positions are rounded to this many decimals of a MW so that sums of 0.1 MW steps do not drift.
_MW_DECIMALS = 6


class DenialReason(enum.StrEnum):
    """Reason codes of a denial (a ``str``, so ``decision.reason == "PRICE_OUTSIDE_COLLAR"`` holds)."""

    TRADING_HALTED = "TRADING_HALTED"
    DUPLICATE_CLIENT_ORDER_ID = "DUPLICATE_CLIENT_ORDER_ID"
    UNKNOWN_PRODUCT = "UNKNOWN_PRODUCT"
    PRICE_OUTSIDE_MARKET_LIMITS = "PRICE_OUTSIDE_MARKET_LIMITS"
    PRICE_NOT_ON_TICK = "PRICE_NOT_ON_TICK"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    QUANTITY_NOT_ON_STEP = "QUANTITY_NOT_ON_STEP"
    NO_REFERENCE_PRICE = "NO_REFERENCE_PRICE"
    PRICE_OUTSIDE_COLLAR = "PRICE_OUTSIDE_COLLAR"
    MAX_ORDER_VOLUME = "MAX_ORDER_VOLUME"
    MAX_ORDER_VALUE = "MAX_ORDER_VALUE"
    REDUCE_ONLY = "REDUCE_ONLY"
    MAX_PRODUCT_POSITION = "MAX_PRODUCT_POSITION"
    MAX_TOTAL_POSITION = "MAX_TOTAL_POSITION"
    ORDER_RATE_EXCEEDED = "ORDER_RATE_EXCEEDED"


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order the strategy wants to send: a limit order on one product."""

    client_order_id: str
    product: str
    side: Side
    price_eur_per_mwh: float
    quantity_mw: float
    ts_ns: int
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The limits the checks enforce. Defaults are ``ExecutionSettings``' (the one source): conservative starting
    values, not venue figures."""

    collar_eur_per_mwh: float = execution_default("collar_eur_per_mwh")
    market_min_eur_per_mwh: float = INTRADAY_PRICE_MIN_EUR_PER_MWH
    market_max_eur_per_mwh: float = INTRADAY_PRICE_MAX_EUR_PER_MWH
    max_order_volume_mw: float = execution_default("max_order_volume_mw")
    max_order_value_eur: float = execution_default("max_order_value_eur")
    max_product_position_mw: float = execution_default("max_product_position_mw")
    max_total_position_mw: float = execution_default("max_total_position_mw")
    max_orders_per_interval: int = execution_default("max_orders_per_interval")
    order_interval_ns: int = round(execution_default("rate_interval_s") * NS_PER_SECOND)

    def __post_init__(self) -> None:
        if not self.market_min_eur_per_mwh < self.market_max_eur_per_mwh:
            raise ValueError(f"market limits [{self.market_min_eur_per_mwh}, {self.market_max_eur_per_mwh}] "
                             "are empty")
        if not 0 < self.max_order_volume_mw <= MAX_QUANTITY_MW:
            raise ValueError(f"max_order_volume_mw={self.max_order_volume_mw}: expected 0 < x <= {MAX_QUANTITY_MW}")
        for name in ("collar_eur_per_mwh", "max_order_value_eur", "max_product_position_mw",
                     "max_total_position_mw", "max_orders_per_interval", "order_interval_ns"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value}: expected a finite value > 0")


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """The answer to one intent: approved, or denied with a reason code and the numbers behind it."""

    approved: bool
    reason: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        return "APPROVED" if self.approved else f"{self.reason}: {self.detail}"


APPROVED = RiskDecision(approved=True)


def _deny(reason: DenialReason, detail: str) -> RiskDecision:
    return RiskDecision(approved=False, reason=reason, detail=detail)


@dataclass(slots=True)
class OpenOrder:
    """What is left of an approved order until it is filled or closed."""

    product: str
    side: Side
    remaining_mw: float


@dataclass(slots=True)
class RiskState:
    """The mutable part of the risk engine: small, plain and picklable (a Bytewax snapshot)."""

    trading_state: TradingState = TradingState.ACTIVE
    positions_mw: dict[str, float] = field(default_factory=dict)
    open_orders: dict[str, OpenOrder] = field(default_factory=dict)
    open_buy_mw: dict[str, float] = field(default_factory=dict)
    open_sell_mw: dict[str, float] = field(default_factory=dict)
    #: Event times of the approved orders still inside the throttle's window, oldest first.
    recent_order_ns: deque[int] = field(default_factory=deque)


def _round_mw(value: float) -> float:
    return round(value, _MW_DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0


def _off_grid(value: float, step: float) -> bool:
    units = value / step
    return abs(units - round(units)) > _GRID_TOLERANCE


class PreTradeRisk:
    """Pre-trade risk for one book of positions: limits, trading state, positions, open orders, throttle."""

    __slots__ = ("_total_cache", "limits", "state")

    def __init__(self, limits: RiskLimits | None = None, state: RiskState | None = None) -> None:
        self.limits = limits or RiskLimits()
        self.state = state or RiskState()
        #: The account's total exposure, kept until a fill or an order changes it (the engine asks per signal).
        self._total_cache: float | None = None

    # -- state ---------------------------------------------------------------------------------------------

    @property
    def trading_state(self) -> TradingState:
        return self.state.trading_state

    def set_state(self, trading_state: TradingState) -> TradingState:
        """Switch the kill switch; returns the previous state."""
        previous = self.state.trading_state
        self.state.trading_state = TradingState(trading_state)
        return previous

    def position_mw(self, product: str) -> float:
        return self.state.positions_mw.get(product, 0.0)

    def open_order_ids(self) -> list[str]:
        """Client order ids of every open order (what a cancel-all has to cancel)."""
        return list(self.state.open_orders)

    def exposure_mw(self, product: str) -> float:
        """Worst-case absolute position of a product if every open order fills."""
        return self._exposure(product, 0.0, 0.0)

    def total_exposure_mw(self) -> float:
        """Sum over products of the worst-case absolute position."""
        return self._total_exposure()

    def snapshot(self) -> RiskState:
        """The state to persist; ``PreTradeRisk(limits, state=snapshot)`` resumes from it."""
        return self.state

    # -- headroom: what the checks would still approve (the engine plans within it) -----------------------

    def headroom_mw(self, product: str, side: Side, *, reduce_only: bool = False) -> float:
        """The largest quantity one more order on ``side`` can have and pass checks 12 to 14 (REDUCE_ONLY,
        MAX_PRODUCT_POSITION, MAX_TOTAL_POSITION), from the same state and limits, counting every open order
        as the checks do. The execution engine sizes its orders within it, so that these denials stay a
        safety net; the checks themselves do not use it.

        For a buy, the long end ``position + open_buy + q`` may reach ``bound = min(max(limit, before),
        before + total_slack)``, where ``before`` is the product's exposure and ``total_slack =
        max(total_limit, total_before) - total_before``: then ``after <= max(limit, before)`` and the total
        after ``<= max(total_limit, total_before)``, exactly what checks 13 and 14 approve. A sell mirrors it on
        the short end ``open_sell - position``. Reduce-only (or REDUCING) also caps it at what check 12 calls
        ``reducible``."""
        side = Side(side)
        state, limits = self.state, self.limits
        position = self.position_mw(product)
        before = self._exposure(product, 0.0, 0.0)
        total_before = self._total_exposure()
        total_slack = max(limits.max_total_position_mw, total_before) - total_before
        bound = min(max(limits.max_product_position_mw, before), before + total_slack)
        if side is Side.BUY:
            reach = position + state.open_buy_mw.get(product, 0.0)
        else:
            reach = state.open_sell_mw.get(product, 0.0) - position
        headroom = bound - reach
        if reduce_only or state.trading_state is TradingState.REDUCING:
            if side is Side.SELL:
                reducible = position - state.open_sell_mw.get(product, 0.0)
            else:
                reducible = -position - state.open_buy_mw.get(product, 0.0)
            headroom = min(headroom, reducible)
        return max(_round_mw(headroom), 0.0)

    def orders_left(self, ts_ns: int) -> int:
        """How many more orders check 15 (ORDER_RATE_EXCEEDED) would approve at ``ts_ns``: the same window and
        the same count (entries are dropped from the oldest end only, as the check drops them), without
        changing the state."""
        window_start_ns = ts_ns - self.limits.order_interval_ns
        expired = 0
        for seen_ns in self.state.recent_order_ns:
            if seen_ns > window_start_ns:
                break
            expired += 1
        return max(self.limits.max_orders_per_interval - (len(self.state.recent_order_ns) - expired), 0)

    # -- events --------------------------------------------------------------------------------------------

    def on_fill(self, product: str, side: Side, quantity_mw: float, client_order_id: str | None = None) -> None:
        """Move a fill into the position (buy +, sell -) and, given the order's id, out of its open remainder."""
        if not (math.isfinite(quantity_mw) and quantity_mw > 0):
            raise ValueError(f"fill quantity {quantity_mw!r} MW: expected a finite value > 0")
        side = Side(side)
        state = self.state
        state.positions_mw[product] = _round_mw(state.positions_mw.get(product, 0.0) + side * quantity_mw)
        self._total_cache = None
        if client_order_id is not None and client_order_id in state.open_orders:
            order = state.open_orders[client_order_id]
            filled = min(quantity_mw, order.remaining_mw)
            order.remaining_mw = _round_mw(order.remaining_mw - filled)
            self._add_open(order.product, order.side, -filled)
            if order.remaining_mw <= _EPSILON:
                del state.open_orders[client_order_id]

    def on_order_closed(self, client_order_id: str) -> float:
        """Release what is left of an order that will not fill any more; returns the released MW."""
        order = self.state.open_orders.pop(client_order_id, None)
        if order is None:
            return 0.0
        self._add_open(order.product, order.side, -order.remaining_mw)
        return order.remaining_mw

    # -- the checks ----------------------------------------------------------------------------------------

    def check(self, intent: OrderIntent, reference_price_eur_per_mwh: float | None) -> RiskDecision:
        """Run every check in the documented order; an approved order becomes open and uses rate budget."""
        decision = self._evaluate(intent, reference_price_eur_per_mwh)
        if decision.approved:
            state = self.state
            state.recent_order_ns.append(intent.ts_ns)
            state.open_orders[intent.client_order_id] = OpenOrder(intent.product, Side(intent.side),
                                                                  _round_mw(intent.quantity_mw))
            self._add_open(intent.product, Side(intent.side), intent.quantity_mw)
        return decision

    def _evaluate(self, intent: OrderIntent, reference: float | None) -> RiskDecision:
        limits, state = self.limits, self.state
        price, quantity = intent.price_eur_per_mwh, intent.quantity_mw
        side = Side(intent.side)

        if state.trading_state is TradingState.HALTED:
            return _deny(DenialReason.TRADING_HALTED, f"state={state.trading_state.value}")
        if intent.client_order_id in state.open_orders:
            return _deny(DenialReason.DUPLICATE_CLIENT_ORDER_ID, f"client_order_id={intent.client_order_id}")
        try:
            product = Product.parse(intent.product)
        except ValueError:
            return _deny(DenialReason.UNKNOWN_PRODUCT, f"product={intent.product!r}")

        if not limits.market_min_eur_per_mwh <= price <= limits.market_max_eur_per_mwh:
            return _deny(DenialReason.PRICE_OUTSIDE_MARKET_LIMITS,
                         f"price={price:.2f} limits=[{limits.market_min_eur_per_mwh:.2f}, "
                         f"{limits.market_max_eur_per_mwh:.2f}]")
        if _off_grid(price, PRICE_TICK_EUR_PER_MWH):
            return _deny(DenialReason.PRICE_NOT_ON_TICK, f"price={price!r} tick={PRICE_TICK_EUR_PER_MWH}")
        if not (math.isfinite(quantity) and quantity > 0):
            return _deny(DenialReason.INVALID_QUANTITY, f"quantity={quantity!r} (expected finite and > 0)")
        if _off_grid(quantity, QUANTITY_STEP_MW):
            return _deny(DenialReason.QUANTITY_NOT_ON_STEP, f"quantity={quantity!r} step={QUANTITY_STEP_MW}")

        if reference is None or not math.isfinite(reference):
            return _deny(DenialReason.NO_REFERENCE_PRICE, f"reference={reference!r}")
        band = limits.collar_eur_per_mwh
        low, high = reference - band, reference + band
        if not low - _EPSILON <= price <= high + _EPSILON:
            return _deny(DenialReason.PRICE_OUTSIDE_COLLAR,
                         f"price={price:.2f} collar=[{low:.2f}, {high:.2f}] reference={reference:.2f} band={band:.2f}")

        if quantity > limits.max_order_volume_mw + _EPSILON:
            return _deny(DenialReason.MAX_ORDER_VOLUME,
                         f"quantity={quantity:.1f} limit={limits.max_order_volume_mw:.1f}")
        hours = product.duration_min / 60
        value_eur = abs(price) * quantity * hours
        if value_eur > limits.max_order_value_eur + _EPSILON:
            return _deny(DenialReason.MAX_ORDER_VALUE,
                         f"value={value_eur:.2f} limit={limits.max_order_value_eur:.2f} "
                         f"(|price|={abs(price):.2f} x quantity={quantity:.1f} x hours={hours:.2f})")

        key = intent.product
        if state.trading_state is TradingState.REDUCING or intent.reduce_only:
            position = self.position_mw(key)
            # Resting orders on the reducing side fill first in the worst case: only what is left reduces.
            if side is Side.SELL:
                reducible = max(0.0, position - state.open_sell_mw.get(key, 0.0))
            else:
                reducible = max(0.0, -position - state.open_buy_mw.get(key, 0.0))
            if quantity > reducible + _EPSILON:
                return _deny(DenialReason.REDUCE_ONLY,
                             f"side={side.name} quantity={quantity:.1f} position={position:.1f} "
                             f"reducible={reducible:.1f} state={state.trading_state.value} "
                             f"reduce_only={intent.reduce_only}")

        buy_mw, sell_mw = (quantity, 0.0) if side is Side.BUY else (0.0, quantity)
        before = self._exposure(key, 0.0, 0.0)
        after = self._exposure(key, buy_mw, sell_mw)
        if after > limits.max_product_position_mw + _EPSILON and after > before + _EPSILON:
            return _deny(DenialReason.MAX_PRODUCT_POSITION,
                         f"exposure={after:.1f} limit={limits.max_product_position_mw:.1f} "
                         f"position={self.position_mw(key):.1f} open_buy={state.open_buy_mw.get(key, 0.0):.1f} "
                         f"open_sell={state.open_sell_mw.get(key, 0.0):.1f} side={side.name} quantity={quantity:.1f}")
        total_before = self._total_exposure()
        total_after = total_before - before + after
        if total_after > limits.max_total_position_mw + _EPSILON and total_after > total_before + _EPSILON:
            return _deny(DenialReason.MAX_TOTAL_POSITION,
                         f"exposure={total_after:.1f} limit={limits.max_total_position_mw:.1f} "
                         f"before={total_before:.1f} side={side.name} quantity={quantity:.1f}")

        recent = state.recent_order_ns
        window_start_ns = intent.ts_ns - limits.order_interval_ns
        while recent and recent[0] <= window_start_ns:
            recent.popleft()
        # An event time older than the newest kept one leaves later entries counted: conservative.
        if len(recent) >= limits.max_orders_per_interval:
            interval_s = limits.order_interval_ns / NS_PER_SECOND
            return _deny(DenialReason.ORDER_RATE_EXCEEDED,
                         f"orders={len(recent)} per {interval_s:.3f}s "
                         f"limit={limits.max_orders_per_interval} per {interval_s:.3f}s")
        return APPROVED

    # -- exposure ------------------------------------------------------------------------------------------

    def _add_open(self, product: str, side: Side, quantity_mw: float) -> None:
        self._total_cache = None
        book = self.state.open_buy_mw if side is Side.BUY else self.state.open_sell_mw
        value = _round_mw(book.get(product, 0.0) + quantity_mw)
        if value <= _EPSILON:
            book.pop(product, None)
        else:
            book[product] = value

    def _exposure(self, product: str, extra_buy_mw: float, extra_sell_mw: float) -> float:
        state = self.state
        position = state.positions_mw.get(product, 0.0)
        longest = position + state.open_buy_mw.get(product, 0.0) + extra_buy_mw
        shortest = position - state.open_sell_mw.get(product, 0.0) - extra_sell_mw
        return _round_mw(max(abs(longest), abs(shortest)))

    def _total_exposure(self) -> float:
        if self._total_cache is None:
            state = self.state
            keys = set(state.positions_mw) | set(state.open_buy_mw) | set(state.open_sell_mw)
            self._total_cache = _round_mw(sum(self._exposure(key, 0.0, 0.0) for key in keys))
        return self._total_cache
