"""Validation of decoded batches against the market's rules, vectorised over the batch.

A row that breaks a rule leaves the batch as a dead letter whose reason is an UPPER_SNAKE code followed by
the numbers that broke it (``PRICE_OUT_OF_RANGE: price=-10000.00 limits=[-9999.00, 9999.00]``). Rules:
the product key parses and names a known area; price and quantity are finite, inside the harmonised limits
(intraday -9999..+9999, day-ahead -500..+4000 EUR/MWh; negative prices are normal), on the 0.01 EUR/MWh tick
and the 0.1 MW step, at most 9999.9 MW; trades have a positive quantity, book levels a non-negative one; the
product is open at the event time (from its opening the day before until the last gate closure).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import msgspec
import numpy as np
import pandas as pd
from bytewax import operators as op
from bytewax.dataflow import Stream, operator
from numpy.typing import NDArray

from wattflow.batches import BookBatch, DayAheadBatch, DeadLetter, IngestBatch, TickBatch
from wattflow.domain import (
    AREAS,
    DAY_AHEAD_PRICE_MAX_EUR_PER_MWH,
    DAY_AHEAD_PRICE_MIN_EUR_PER_MWH,
    DURATIONS_MIN,
    INTRADAY_PRICE_MAX_EUR_PER_MWH,
    INTRADAY_PRICE_MIN_EUR_PER_MWH,
    MAX_QUANTITY_MW,
    NS_PER_MINUTE,
    PRICE_TICK_EUR_PER_MWH,
    QUANTITY_STEP_MW,
    Product,
    ns_to_datetime,
)
from wattflow.errors import Origin

_GRID_TOLERANCE = 1e-6
MAX_BOOK_LEVEL = 100


@dataclass
class ProductWindows:
    """Trading windows by product key, computed once per product (a day has ~125 of them)."""

    _index: dict[str, int] = field(default_factory=dict)
    _open_ns: list[int] = field(default_factory=list)
    _close_ns: list[int] = field(default_factory=list)

    def lookup(self, products: NDArray[np.object_]) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
        """Opening and last gate closure per row, and whether the key named a real product."""
        # A batch holds few distinct products: hash-factorise in C, then look up only the distinct keys.
        codes, uniques = pd.factorize(products, use_na_sentinel=False)
        table = np.array([self._index.get(key, -1) if isinstance(key, str) else -2 for key in uniques.tolist()],
                         dtype=np.int64)
        for position in np.flatnonzero(table == -1).tolist():
            table[position] = self._add(uniques[position])
        row_codes = table[codes]
        known = row_codes >= 0
        safe = np.where(known, row_codes, 0)
        open_ns = np.array(self._open_ns or [0], dtype=np.int64)[safe]
        close_ns = np.array(self._close_ns or [0], dtype=np.int64)[safe]
        return open_ns, close_ns, known

    def _add(self, key: Any) -> int:
        if not isinstance(key, str):
            return -2
        try:
            product = Product.parse(key)
        except ValueError:
            return -2
        window = product.trading_window()
        self._index[key] = len(self._open_ns)
        self._open_ns.append(window.open_ns)
        self._close_ns.append(window.local_close_ns)
        return self._index[key]


def _off_grid(values: NDArray[np.float64], step: float) -> NDArray[np.bool_]:
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = values / step
        off = np.abs(scaled - np.round(scaled)) > _GRID_TOLERANCE * np.maximum(1.0, np.abs(scaled))
    return off | ~np.isfinite(scaled)


class _Rules:
    """Collects the first broken rule of each row, in the order the rules are applied."""

    def __init__(self, length: int) -> None:
        self.reason = np.full(length, -1, dtype=np.int16)
        self.names: list[str] = []

    def check(self, name: str, broken: NDArray[np.bool_]) -> None:
        fresh = broken & (self.reason < 0)
        if fresh.any():
            self.reason[fresh] = len(self.names)
        self.names.append(name)

    @property
    def valid(self) -> NDArray[np.bool_]:
        return self.reason < 0


def _price_rules(rules: _Rules, price: NDArray[np.float64], low: float, high: float) -> None:
    rules.check("NON_FINITE_PRICE", ~np.isfinite(price))
    rules.check("PRICE_OUT_OF_RANGE", (price < low) | (price > high))
    rules.check("PRICE_NOT_ON_TICK", _off_grid(price, PRICE_TICK_EUR_PER_MWH))


def _detail(reason: str, batch: Any, row: int, extra: dict[str, str]) -> str:
    fields_: dict[str, str] = dict(extra)
    if hasattr(batch, "price_eur_per_mwh"):
        fields_["price"] = f"{batch.price_eur_per_mwh[row]:.4f}"
    if hasattr(batch, "quantity_mw"):
        fields_["quantity_mw"] = f"{batch.quantity_mw[row]:.4f}"
    fields_["ts_ns"] = str(int(batch.ts_ns[row]))
    return f"{reason}: " + " ".join(f"{k}={v}" for k, v in fields_.items())


def _dead_letters(batch: Any, rules: _Rules, topic: str, partition: int, context: dict[str, Any]) -> list[DeadLetter]:
    letters = []
    for row in np.flatnonzero(~rules.valid).tolist():
        reason = rules.names[rules.reason[row]]
        extra = {k: v(row) for k, v in context.get(reason, {}).items()}
        index = int(batch.index[row])
        origin = Origin(topic, partition, int(batch.offset[row]), index=index if index >= 0 else None)
        wire = batch.wire[row]
        payload = wire if isinstance(wire, bytes) else msgspec.json.encode(wire)  # a struct from a packed message
        letters.append(DeadLetter(int(batch.recv_ns[row]), origin, reason, _detail(reason, batch, row, extra), payload))
    return letters


def _iso(ts_ns: Any) -> str:
    return ns_to_datetime(int(ts_ns)).strftime("%Y-%m-%dT%H:%MZ")


def _intraday_context(windows: tuple[NDArray[np.int64], NDArray[np.int64]], batch: Any) -> dict[str, Any]:
    open_ns, close_ns = windows
    return {
        "PRICE_OUT_OF_RANGE": {"limits": lambda _r: f"[{INTRADAY_PRICE_MIN_EUR_PER_MWH:.2f}, "
                               f"{INTRADAY_PRICE_MAX_EUR_PER_MWH:.2f}]"},
        "PRODUCT_CLOSED": {"window": lambda r: f"[{_iso(open_ns[r])}, {_iso(close_ns[r])})",
                           "event": lambda r: _iso(batch.ts_ns[r])},
        "UNKNOWN_PRODUCT": {"product": lambda r: repr(batch.product[r])},
    }


def validate_ticks(ticks: TickBatch, windows: ProductWindows, topic: str = "", partition: int = -1,
                   ) -> tuple[TickBatch, list[DeadLetter]]:
    if not len(ticks):
        return ticks, []
    open_ns, close_ns, known = windows.lookup(ticks.product)
    rules = _Rules(len(ticks))
    rules.check("UNKNOWN_PRODUCT", ~known)
    _price_rules(rules, ticks.price_eur_per_mwh, INTRADAY_PRICE_MIN_EUR_PER_MWH, INTRADAY_PRICE_MAX_EUR_PER_MWH)
    quantity = ticks.quantity_mw
    rules.check("NON_FINITE_QUANTITY", ~np.isfinite(quantity))
    rules.check("QUANTITY_NOT_POSITIVE", quantity <= 0)
    rules.check("QUANTITY_OUT_OF_RANGE", quantity > MAX_QUANTITY_MW)
    rules.check("QUANTITY_NOT_ON_STEP", _off_grid(quantity, QUANTITY_STEP_MW))
    rules.check("BAD_IDENTIFIER", (ticks.trade_id < 0) | (ticks.seq < 0))
    rules.check("PRODUCT_CLOSED", (ticks.ts_ns < open_ns) | (ticks.ts_ns >= close_ns))
    if rules.valid.all():
        return ticks, []
    dead = _dead_letters(ticks, rules, topic, partition, _intraday_context((open_ns, close_ns), ticks))
    return ticks.take(rules.valid), dead


def validate_book(book: BookBatch, windows: ProductWindows, topic: str = "", partition: int = -1,
                  ) -> tuple[BookBatch, list[DeadLetter]]:
    if not len(book):
        return book, []
    open_ns, close_ns, known = windows.lookup(book.product)
    rules = _Rules(len(book))
    rules.check("UNKNOWN_PRODUCT", ~known)
    _price_rules(rules, book.price_eur_per_mwh, INTRADAY_PRICE_MIN_EUR_PER_MWH, INTRADAY_PRICE_MAX_EUR_PER_MWH)
    quantity = book.quantity_mw
    rules.check("NON_FINITE_QUANTITY", ~np.isfinite(quantity))
    rules.check("QUANTITY_NEGATIVE", quantity < 0)
    rules.check("QUANTITY_OUT_OF_RANGE", quantity > MAX_QUANTITY_MW)
    rules.check("QUANTITY_NOT_ON_STEP", _off_grid(quantity, QUANTITY_STEP_MW))
    rules.check("BAD_LEVEL", (book.level < 0) | (book.level >= MAX_BOOK_LEVEL))
    rules.check("BAD_IDENTIFIER", book.seq < 0)
    rules.check("PRODUCT_CLOSED", (book.ts_ns < open_ns) | (book.ts_ns >= close_ns))
    if rules.valid.all():
        return book, []
    dead = _dead_letters(book, rules, topic, partition, _intraday_context((open_ns, close_ns), book))
    return book.take(rules.valid), dead


def validate_dayahead(prices: DayAheadBatch, topic: str = "", partition: int = -1,
                      ) -> tuple[DayAheadBatch, list[DeadLetter]]:
    if not len(prices):
        return prices, []
    rules = _Rules(len(prices))
    rules.check("UNKNOWN_AREA", np.array([area not in AREAS for area in prices.area.tolist()], dtype=bool))
    rules.check("BAD_DURATION", ~np.isin(prices.duration_min, DURATIONS_MIN))
    rules.check("BAD_DELIVERY_START", prices.delivery_start_ns % (15 * NS_PER_MINUTE) != 0)
    _price_rules(rules, prices.price_eur_per_mwh, DAY_AHEAD_PRICE_MIN_EUR_PER_MWH, DAY_AHEAD_PRICE_MAX_EUR_PER_MWH)
    rules.check("BAD_IDENTIFIER", prices.seq < 0)
    if rules.valid.all():
        return prices, []
    context = {"PRICE_OUT_OF_RANGE": {"limits": lambda _r: f"[{DAY_AHEAD_PRICE_MIN_EUR_PER_MWH:.2f}, "
                                      f"{DAY_AHEAD_PRICE_MAX_EUR_PER_MWH:.2f}]"}}
    return prices.take(rules.valid), _dead_letters(prices, rules, topic, partition, context)


def validate_batch(batch: IngestBatch, windows: ProductWindows) -> IngestBatch:
    """Apply every rule; the result holds only valid rows, and every rejected row as a dead letter."""
    ticks, dead_ticks = validate_ticks(batch.ticks, windows, batch.topic, batch.partition)
    book, dead_book = validate_book(batch.book, windows, batch.topic, batch.partition)
    prices, dead_prices = validate_dayahead(batch.dayahead, batch.topic, batch.partition)
    if not (dead_ticks or dead_book or dead_prices):
        return batch
    return replace(batch, ticks=ticks, book=book, dayahead=prices,
                   dead=[*batch.dead, *dead_ticks, *dead_book, *dead_prices])


@operator
def validate(step_id: str, up: Stream[IngestBatch]) -> Stream[IngestBatch]:
    """Validate decoded batches; rejected rows move to the batch's dead letters (nothing is dropped)."""
    windows = ProductWindows()
    return op.map("check", up, lambda batch: validate_batch(batch, windows))
