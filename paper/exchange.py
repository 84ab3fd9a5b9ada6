"""The paper exchange: plays a recorded feed's L2 book and trades, and fills our orders against them.

Pure logic, no I/O and no clock of its own: the caller moves the market clock with :meth:`PaperExchange.advance_to`
(or by passing ``now_ns`` to :meth:`PaperExchange.submit`). Not thread-safe; the HTTP server holds a lock.

Matching model (kept simple on purpose, and the same every run):

* **The played book.** Per product and side, level ``i`` of the feed is set by each book update to
  (price, quantity); quantity 0 removes the level. Our own orders are *not* shown in that book (the feed
  does not know them) and never match each other.
* **Aggressive (marketable) orders** take displayed levels of the opposite side that cross their limit, best
  price first, each at that level's price, never more than the quantity shown. What we take is removed from
  our copy of the book until the feed next sets that level, so two orders cannot take the same depth.
  IOC cancels the remainder; FOK fills in full or not at all (nothing taken); a GTC remainder rests.
* **Resting (passive) orders** fill only from the feed's market trades, at their own limit price:

  - a trade *through* the price (below a resting buy, above a resting sell) fills it, up to the trade's
    quantity;
  - a trade *at* the price whose aggressor is on the other side (a seller hitting bids for our buy) first
    works off the quantity that was displayed at that price on our side when our order arrived (the queue
    ahead of us); only what exceeds that queue fills us. Cancellations in the queue ahead are not modelled
    (the queue shrinks only by trades), which makes the fill estimate conservative.
  - one trade never fills our orders, in total per side, more than its own quantity; our resting orders
    take it in price-time priority.
  - a resting order whose limit crosses the book after later book updates still fills only from trades.
* **Iceberg orders** (``display_quantity_mw``: GTC only, on the 0.1 MW step, above 0 and below the order's
  quantity). On arrival an iceberg is an ordinary order: what crosses takes the displayed book for its full
  quantity (the hidden part is not protected). What rests shows only the visible clip (``display_quantity_mw``,
  or the leaves if less): one market trade fills it at most the clip that is showing (the rest of the trade
  may fill our other resting orders, in price-time priority as above). When a clip is used up and hidden
  quantity remains, a new clip is shown at the *back* of the queue: its queue ahead is what the feed displays
  at that price at that moment, and its time priority is behind our other resting orders at that price. The
  refill happens once the trade is allocated, so the trade that used up a clip never fills the next one.
  Like EPEX/Nord Pool (SIDC), icebergs carry no execution restriction: IOC or FOK with a display quantity is
  rejected (``DISPLAY_QUANTITY_NOT_GTC``); a display quantity that is not a number, not above 0 or not below
  the quantity is ``INVALID_DISPLAY_QUANTITY``, one off the 0.1 MW step ``INVALID_DISPLAY_QUANTITY_STEP``.
  ``display_quantity_mw`` absent or null is a plain order.
* **Gate closure.** Orders are rejected before the product opens (``NOT_OPEN``) and from the product's local
  gate closure on (``GATE_CLOSED``); resting orders are cancelled (reason ``GATE_CLOSED``) when the clock
  reaches the gate closure.
* **Idempotency.** A ``client_order_id`` names one order forever: submitting the same payload again returns
  the order's current report (``replayed=True``) and creates nothing; a different payload under a known id
  is rejected with ``DUPLICATE_CLIENT_ORDER_ID`` (and the original order is untouched). Rejected orders are
  remembered under their id too, so a retried rejected order gets the same reject. The display quantity is
  part of the payload: the same iceberg again is a replay, another display quantity (or none) a duplicate.

Prices and quantities are held as integers (0.01 EUR/MWh ticks, 0.1 MW steps), so no float drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from connectors.feeds.files import BOOK, TRADE, FeedFrame
from paper.messages import (
    BookSnapshot,
    ExecType,
    ExecutionReport,
    Fill,
    Liquidity,
    OrderReport,
    OrderStatus,
    Reason,
    UnknownOrderError,
)
from wattflow.domain import (
    INTRADAY_PRICE_MAX_EUR_PER_MWH,
    INTRADAY_PRICE_MIN_EUR_PER_MWH,
    MAX_QUANTITY_MW,
    Product,
    Side,
)

TICKS_PER_EUR = 100
STEPS_PER_MW = 10
TIFS: tuple[str, ...] = ("GTC", "IOC", "FOK")
MAX_CLIENT_ORDER_ID_LENGTH = 64
_MAX_STEPS = round(MAX_QUANTITY_MW * STEPS_PER_MW)
_EPSILON = 1e-6


@dataclass(slots=True)
class _Order:
    client_order_id: str
    order_id: int
    product: str
    side: int
    price_ticks: int
    quantity_steps: int
    tif: str
    payload: tuple[Any, ...]
    close_ns: int = 0
    filled_steps: int = 0
    notional: int = 0  # sum of fill price ticks * steps
    status: OrderStatus = OrderStatus.NEW
    reason: Reason | None = None
    queue_ahead_steps: int = 0
    display_steps: int = 0  # an iceberg's clip; 0 for a plain order
    clip_steps: int = 0  # what is left of the clip showing now (icebergs only)

    @property
    def leaves_steps(self) -> int:
        return 0 if self.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED) else \
            self.quantity_steps - self.filled_steps

    def report(self, *, replayed: bool = False, executions: tuple[ExecutionReport, ...] = ()) -> OrderReport:
        return OrderReport(
            client_order_id=self.client_order_id, order_id=self.order_id, product=self.product, side=self.side,
            price_eur_per_mwh=self.price_ticks / TICKS_PER_EUR, quantity_mw=self.quantity_steps / STEPS_PER_MW,
            tif=self.tif, status=self.status, filled_quantity_mw=self.filled_steps / STEPS_PER_MW,
            leaves_quantity_mw=self.leaves_steps / STEPS_PER_MW,
            avg_price_eur_per_mwh=round(self.notional / self.filled_steps / TICKS_PER_EUR, 6)
            if self.filled_steps else None,
            reason=self.reason, replayed=replayed, executions=executions,
            display_quantity_mw=self.display_steps / STEPS_PER_MW if self.display_steps else None,
        )

    @property
    def visible_steps(self) -> int:
        """What one market trade can fill now: the clip showing (icebergs), else the leaves."""
        return min(self.clip_steps, self.leaves_steps) if self.display_steps else self.leaves_steps


@dataclass(slots=True)
class _Book:
    """Per side (+1 bids, -1 asks), level index -> (price ticks, quantity steps)."""

    levels: dict[int, dict[int, tuple[int, int]]] = field(default_factory=lambda: {1: {}, -1: {}})

    def apply(self, side: int, level: int, price_ticks: int, quantity_steps: int) -> None:
        if quantity_steps <= 0:
            self.levels[side].pop(level, None)
        else:
            self.levels[side][level] = (price_ticks, quantity_steps)

    def ordered(self, side: int) -> list[tuple[int, int, int]]:
        """(level, price ticks, quantity steps) of one side, best price first (ties by level)."""
        rows = [(level, price, qty) for level, (price, qty) in self.levels[side].items()]
        rows.sort(key=lambda row: (-side * row[1], row[0]))
        return rows

    def crossing(self, side: int, limit_ticks: int) -> list[tuple[int, int, int]]:
        """Levels of the opposite side that an order of ``side`` at ``limit_ticks`` can take."""
        return [row for row in self.ordered(-side) if side * (limit_ticks - row[1]) >= 0]

    def take(self, side: int, level: int, steps: int) -> None:
        price, qty = self.levels[side][level]
        self.apply(side, level, price, qty - steps)

    def shown_at(self, side: int, price_ticks: int) -> int:
        return sum(qty for price, qty in self.levels[side].values() if price == price_ticks)


class PaperExchange:
    """A simulated exchange playing ``feed`` (trades and L2 book updates; day-ahead events are ignored)."""

    def __init__(self, feed: FeedFrame) -> None:
        mask = (feed.event_type == TRADE) | (feed.event_type == BOOK)
        frame = feed.take(np.flatnonzero(mask)).sort_by_time()
        self._n = len(frame)
        self._type = frame.event_type.tolist()
        self._ts = frame.ts_ns.tolist()
        self._key = frame.key_strings().tolist() if self._n else []
        self._side = frame.side.tolist()
        self._level = frame.level.tolist()
        self._price = np.rint(frame.price_eur_per_mwh * TICKS_PER_EUR).astype(np.int64).tolist()
        self._qty = np.rint(np.nan_to_num(frame.quantity_mw) * STEPS_PER_MW).astype(np.int64).tolist()
        self._cursor = 0
        self.first_ts_ns: int | None = self._ts[0] if self._n else None
        self.last_ts_ns: int | None = self._ts[-1] if self._n else None
        self._clock_ns = (self.first_ts_ns - 1) if self.first_ts_ns is not None else 0
        self._books: dict[str, _Book] = {}
        self._orders: dict[str, _Order] = {}
        self._resting: dict[str, list[_Order]] = {}  # product -> open orders, submission order
        self._fills: list[Fill] = []
        self.reports: list[ExecutionReport] = []
        self._next_order_id = 1
        self._next_exec_id = 1

    # --- market clock ----------------------------------------------------------------------------

    @property
    def clock_ns(self) -> int:
        return self._clock_ns

    @property
    def feed_exhausted(self) -> bool:
        return self._cursor >= self._n

    def advance_to(self, ts_ns: int) -> list[ExecutionReport]:
        """Play every feed event with ``ts_ns`` at or before ``ts_ns``; the clock never goes back.

        Returns the execution reports this produced (passive fills, gate-closure cancels).
        """
        start = len(self.reports)
        if ts_ns <= self._clock_ns:
            return []
        while self._cursor < self._n and self._ts[self._cursor] <= ts_ns:
            i = self._cursor
            self._cursor += 1
            key = self._key[i]
            if self._type[i] == BOOK:
                self._book(key).apply(self._side[i], self._level[i], self._price[i], self._qty[i])
            else:
                self._expire(self._ts[i], key)
                self._on_trade(self._ts[i], key, self._side[i], self._price[i], self._qty[i])
        self._clock_ns = ts_ns
        for key in list(self._resting):
            self._expire(ts_ns, key)
        return self.reports[start:]

    def book(self, product: str) -> BookSnapshot:
        book = self._books.get(product) or _Book()
        def side_rows(side: int) -> tuple[tuple[float, float], ...]:
            return tuple((p / TICKS_PER_EUR, q / STEPS_PER_MW) for _, p, q in book.ordered(side))
        return BookSnapshot(product, bids=side_rows(1), asks=side_rows(-1))

    # --- orders ----------------------------------------------------------------------------------

    def submit(  # noqa: PLR0917 (the documented order-entry call is positional)
        self, client_order_id: str, product: str, side: object, price_eur_per_mwh: float,
        quantity_mw: float, tif: str = "GTC", now_ns: int | None = None, *,
        display_quantity_mw: object = None,
    ) -> OrderReport:
        """Submit a limit order, an iceberg if ``display_quantity_mw`` is given (see the module docstring)."""
        if now_ns is not None:
            self.advance_to(now_ns)
        now = self._clock_ns
        tif_text = tif.upper() if isinstance(tif, str) else str(tif)
        try:
            side_value: int | str = int(Side.parse(side))
        except ValueError:
            side_value = repr(side)
        display: float | str | None = None
        if display_quantity_mw is not None:  # a non-number stays distinct from "no display" (and is rejected)
            display = _as_float(display_quantity_mw)
            if display is None:
                display = repr(display_quantity_mw)
        payload = (product, side_value, _as_float(price_eur_per_mwh), _as_float(quantity_mw), tif_text, display)
        if not isinstance(client_order_id, str) or not client_order_id \
                or len(client_order_id) > MAX_CLIENT_ORDER_ID_LENGTH:
            return self._reject_unstored(str(client_order_id), payload, Reason.INVALID_CLIENT_ORDER_ID, now)
        existing = self._orders.get(client_order_id)
        if existing is not None:
            if existing.payload == payload:
                return existing.report(replayed=True)
            return self._reject_unstored(client_order_id, payload, Reason.DUPLICATE_CLIENT_ORDER_ID, now)

        order = _Order(client_order_id=client_order_id, order_id=self._next_order_id, product=str(product),
                       side=side_value if isinstance(side_value, int) else 0,
                       price_ticks=_ticks(payload[2], TICKS_PER_EUR),
                       quantity_steps=_ticks(payload[3], STEPS_PER_MW), tif=tif_text, payload=payload,
                       display_steps=_ticks(display if isinstance(display, float) else None, STEPS_PER_MW))
        self._next_order_id += 1
        self._orders[client_order_id] = order
        start = len(self.reports)
        reason = self._validate(order, payload, now)
        if reason is not None:
            order.status, order.reason = OrderStatus.REJECTED, reason
            self._emit(order, ExecType.REJECT, now, reason=reason)
            return order.report(executions=tuple(self.reports[start:]))
        self._emit(order, ExecType.ACK, now)
        self._match_aggressive(order, now)
        if order.quantity_steps > order.filled_steps:
            if tif_text == "GTC":
                order.queue_ahead_steps = self._book(order.product).shown_at(order.side, order.price_ticks)
                order.clip_steps = order.display_steps
                self._resting.setdefault(order.product, []).append(order)
            else:
                self._cancel(order, now, Reason.IOC_REMAINDER if tif_text == "IOC" else Reason.FOK_NOT_FILLED)
        return order.report(executions=tuple(self.reports[start:]))

    def cancel(self, client_order_id: str, now_ns: int | None = None) -> OrderReport:
        """Cancel an open order; an order already done is returned as it is (``replayed=True``).

        Raises :class:`UnknownOrderError` for an id never submitted.
        """
        if now_ns is not None:
            self.advance_to(now_ns)
        order = self._orders.get(client_order_id)
        if order is None:
            raise UnknownOrderError(client_order_id)
        if order.status not in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED):
            return order.report(replayed=True)
        start = len(self.reports)
        self._cancel(order, self._clock_ns, Reason.CANCELLED_BY_CLIENT)
        return order.report(executions=tuple(self.reports[start:]))

    def cancel_all(self, product: str | None = None, now_ns: int | None = None) -> list[OrderReport]:
        """Cancel every open order (of one product, if given); returns the cancelled orders."""
        if now_ns is not None:
            self.advance_to(now_ns)
        keys = [product] if product is not None else list(self._resting)
        cancelled = []
        for key in keys:
            for order in list(self._resting.get(key, ())):
                cancelled.append(self.cancel(order.client_order_id))
        return cancelled

    def order(self, client_order_id: str) -> OrderReport:
        order = self._orders.get(client_order_id)
        if order is None:
            raise UnknownOrderError(client_order_id)
        return order.report()

    def open_orders(self) -> list[OrderReport]:
        return [order.report() for orders in self._resting.values() for order in orders]

    def fills(self) -> list[Fill]:
        return list(self._fills)

    # --- internals -------------------------------------------------------------------------------

    def _book(self, product: str) -> _Book:
        book = self._books.get(product)
        if book is None:
            book = self._books[product] = _Book()
        return book

    def _validate(self, order: _Order, payload: tuple[Any, ...], now: int) -> Reason | None:
        _, side_value, price, quantity, tif, display = payload
        try:
            window = Product.parse(order.product).trading_window()
        except (ValueError, TypeError, AttributeError):
            return Reason.UNKNOWN_PRODUCT
        order.close_ns = window.local_close_ns
        if not isinstance(side_value, int):
            return Reason.INVALID_SIDE
        if tif not in TIFS:
            return Reason.INVALID_TIF
        if price is None or not math.isfinite(price):
            return Reason.INVALID_PRICE
        if not INTRADAY_PRICE_MIN_EUR_PER_MWH <= price <= INTRADAY_PRICE_MAX_EUR_PER_MWH:
            return Reason.PRICE_OUT_OF_RANGE
        if abs(price * TICKS_PER_EUR - order.price_ticks) > _EPSILON * max(1.0, abs(price)):
            return Reason.INVALID_PRICE_TICK
        if quantity is None or not math.isfinite(quantity) or quantity <= 0 or order.quantity_steps > _MAX_STEPS:
            return Reason.INVALID_QUANTITY
        if abs(quantity * STEPS_PER_MW - order.quantity_steps) > _EPSILON * max(1.0, quantity) \
                or order.quantity_steps <= 0:
            return Reason.INVALID_QUANTITY_STEP
        if display is not None:
            if tif != "GTC":
                return Reason.DISPLAY_QUANTITY_NOT_GTC
            if not isinstance(display, float) or not math.isfinite(display) or display <= 0 or display >= quantity:
                return Reason.INVALID_DISPLAY_QUANTITY
            if abs(display * STEPS_PER_MW - order.display_steps) > _EPSILON * max(1.0, display) \
                    or order.display_steps <= 0:
                return Reason.INVALID_DISPLAY_QUANTITY_STEP
            if order.display_steps >= order.quantity_steps:
                return Reason.INVALID_DISPLAY_QUANTITY
        if now < window.open_ns:
            return Reason.NOT_OPEN
        if now >= window.local_close_ns:
            return Reason.GATE_CLOSED
        return None

    def _reject_unstored(self, client_order_id: str, payload: tuple[Any, ...], reason: Reason,
                         now: int) -> OrderReport:
        """A reject that creates no order (bad or duplicate id): the known order, if any, is untouched."""
        ghost = _Order(client_order_id=client_order_id, order_id=0, product=str(payload[0]),
                       side=payload[1] if isinstance(payload[1], int) else 0,
                       price_ticks=_ticks(payload[2], TICKS_PER_EUR),
                       quantity_steps=_ticks(payload[3], STEPS_PER_MW), tif=payload[4], payload=payload,
                       status=OrderStatus.REJECTED, reason=reason,
                       display_steps=_ticks(payload[5] if isinstance(payload[5], float) else None, STEPS_PER_MW))
        report = self._emit(ghost, ExecType.REJECT, now, reason=reason)
        return ghost.report(executions=(report,))

    def _emit(self, order: _Order, kind: ExecType, now: int, *, last_price_ticks: int | None = None,
              last_steps: int = 0, liquidity: Liquidity | None = None, reason: Reason | None = None
              ) -> ExecutionReport:
        report = ExecutionReport(
            exec_id=self._next_exec_id, kind=kind, ts_ns=now, client_order_id=order.client_order_id,
            order_id=order.order_id, product=order.product, side=order.side,
            price_eur_per_mwh=order.price_ticks / TICKS_PER_EUR, status=order.status,
            last_price_eur_per_mwh=None if last_price_ticks is None else last_price_ticks / TICKS_PER_EUR,
            last_quantity_mw=last_steps / STEPS_PER_MW, cum_quantity_mw=order.filled_steps / STEPS_PER_MW,
            leaves_quantity_mw=order.leaves_steps / STEPS_PER_MW, liquidity=liquidity, reason=reason,
        )
        self._next_exec_id += 1
        self.reports.append(report)
        return report

    def _fill(self, order: _Order, price_ticks: int, steps: int, now: int, liquidity: Liquidity) -> None:
        order.filled_steps += steps
        order.notional += price_ticks * steps
        order.status = OrderStatus.FILLED if order.filled_steps >= order.quantity_steps \
            else OrderStatus.PARTIALLY_FILLED
        report = self._emit(order, ExecType.FILL, now, last_price_ticks=price_ticks, last_steps=steps,
                            liquidity=liquidity)
        self._fills.append(Fill(exec_id=report.exec_id, ts_ns=now, client_order_id=order.client_order_id,
                                order_id=order.order_id, product=order.product, side=order.side,
                                price_eur_per_mwh=price_ticks / TICKS_PER_EUR, quantity_mw=steps / STEPS_PER_MW,
                                liquidity=liquidity))
        if order.status is OrderStatus.FILLED:
            self._unrest(order)

    def _cancel(self, order: _Order, now: int, reason: Reason) -> None:
        order.status, order.reason = OrderStatus.CANCELLED, reason
        self._unrest(order)
        self._emit(order, ExecType.CANCEL, now, reason=reason)

    def _unrest(self, order: _Order) -> None:
        resting = self._resting.get(order.product)
        if resting and order in resting:
            resting.remove(order)
            if not resting:
                del self._resting[order.product]

    def _match_aggressive(self, order: _Order, now: int) -> None:
        book = self._book(order.product)
        levels = book.crossing(order.side, order.price_ticks)
        if order.tif == "FOK" and sum(qty for _, _, qty in levels) < order.quantity_steps:
            return
        for level, price, qty in levels:
            steps = min(qty, order.quantity_steps - order.filled_steps)
            if steps <= 0:
                break
            book.take(-order.side, level, steps)
            self._fill(order, price, steps, now, Liquidity.TAKER)

    def _on_trade(self, ts_ns: int, product: str, aggressor: int, price_ticks: int, steps: int) -> None:
        resting = self._resting.get(product)
        if not resting:
            return
        for side in (1, -1):
            # Price-time priority: best limit first, then submission order (list order; sort is stable).
            ours = sorted((o for o in resting if o.side == side), key=lambda o: -side * o.price_ticks)
            remaining = steps
            used_clips: list[_Order] = []
            for order in ours:
                if remaining <= 0:
                    break
                if side * (order.price_ticks - price_ticks) > 0:  # traded through our price
                    take = min(remaining, order.visible_steps)
                elif order.price_ticks == price_ticks and aggressor == -side:  # at our price, hitting our side
                    ahead = order.queue_ahead_steps
                    order.queue_ahead_steps = max(0, ahead - steps)
                    take = min(max(0, steps - ahead), remaining, order.visible_steps)
                else:
                    continue
                if take > 0:
                    remaining -= take
                    if order.display_steps:
                        order.clip_steps -= take
                    self._fill(order, order.price_ticks, take, ts_ns, Liquidity.MAKER)
                    if order.display_steps and order.clip_steps <= 0 and order.leaves_steps > 0:
                        used_clips.append(order)
            for order in used_clips:  # after the trade is allocated: a new clip at the back of the queue
                self._refill(order)

    def _refill(self, order: _Order) -> None:
        """Show an iceberg's next clip: behind what the feed shows at its price now, and behind our other
        resting orders at that price (it moves to the end of the submission-order list)."""
        order.clip_steps = min(order.display_steps, order.leaves_steps)
        order.queue_ahead_steps = self._book(order.product).shown_at(order.side, order.price_ticks)
        resting = self._resting[order.product]
        resting.remove(order)
        resting.append(order)

    def _expire(self, ts_ns: int, product: str) -> None:
        for order in list(self._resting.get(product, ())):
            if ts_ns >= order.close_ns:
                self._cancel(order, ts_ns, Reason.GATE_CLOSED)


def _as_float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _ticks(value: float | None, per_unit: int) -> int:
    if value is None or not math.isfinite(value) or abs(value) > 1e12:
        return 0
    return round(value * per_unit)
