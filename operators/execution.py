"""The execution engine: signals -> target position -> order intents -> pre-trade risk -> venue commands.

Pure logic, no I/O and no wall clock in its decisions (the clock is the signals' event time); one engine
trades one account, so its state is one small picklable :class:`EngineState` that a Bytewax stateful step
snapshots. It answers three kinds of input with an :class:`EngineOutput` (commands for the order sink,
events, position rows, the execution reports it applied):

**Signals** (one row per trade a model looked at, each carrying the product's market at that moment).
For each row, in order, so the decisions do not depend on how rows were batched:

1. the model's target for the product is updated; the product's **target** is the sum of its models'
   latest targets, clipped to the product position limit (in REDUCING: clipped between 0 and the current
   position, so every order reduces); in the last ``flatten_before_gate_min`` minutes before the product's
   gate closure it is 0, so the engine flattens rather than leave imbalance exposure;
2. the **working position** is the filled position plus the unfilled rest of the product's working order
   (at most one working order per product);
3. a working order is **cancelled and replaced** when it is older than ``order_ttl_ns``, on the wrong side
   for the target, or priced ``reprice_eur_per_mwh`` or more off the price sizing would choose now. Sizing
   treats a cancelled order as gone at once, so the replacement goes out in the same step, but pre-trade risk
   keeps counting its remainder as if it would fill until a report closes it (the venue's cancel, fill or
   reject, or the order sink's report for an order that never reached the venue): a fill that wins the race
   against the cancel can never take a position beyond its limits;
4. with no working order and ``clip_interval_ns`` passed since the product's last order, sizing
   (``operators.sizing``) plans a clip: a share of the depth near the touch and of recent volume, priced by
   urgency, never after the gate closure;
5. the clip is **planned within the limits** pre-trade risk enforces, from risk's own numbers: cut to the
   position headroom (``PreTradeRisk.headroom_mw``: product and total, every open order counted as if it
   filled, a cancelled one too until its report; reduce-only in REDUCING), and sent only while the rate
   budget lasts (``PreTradeRisk.orders_left``), whose last ``reducing_reserve_orders`` are kept for
   position-reducing orders. What does not fit waits, the target kept, for the product's next signal; a
   replace that can wait (``STALE``, ``REPRICE``) is not started when its replacement would not fit, so the
   order keeps working. Pre-trade risk then approves it (a Submit command, with a deterministic client order
   id) or denies it (a ``RISK_DENIED`` event with the reason code and the numbers; the product then waits
   ``clip_interval_ns`` before trying again): a safety net, since the plan already fits the position and rate
   limits, for what the plan does not size (collar, order volume and value) and for any divergence.

A row acts once: rows of one product and model come in event-time order, and one not newer than the last
seen (a repeat from the at-least-once upstream) is skipped. An order's client order id derives from the row
that caused it (product, model, event time, trade id), so each row causes at most one id and a replayed row
gives the same one.

At each step the engine also closes every product whose (area) **gate closure** the clock has reached: its
working order is cancelled, no order is planned for it again, and an open position is flagged as
**imbalance exposure** (event ``IMBALANCE_EXPOSURE`` and a position row). A product holding an order or a
position whose signals stop for ``stale_after_ns`` of market time while others move the clock on goes
**REDUCING for that product** (R9; event ``FEED_STALE`` with ``from``/``to``, ``silent_s`` and ``bound_s``): its
working order is cancelled and it gets only position-reducing, reduce-only orders, until it speaks again: a
signal within the bound of the clock (a late row, older than that, is old news and may only reduce) brings it
back to ACTIVE (``FEED_RESUMED``, with how long it was silent and REDUCING).

**Execution reports** (from the venue, through the adapter and the ``execution.reports`` topic; or from the
order sink for orders it could never send). Fills move positions and PnL and the risk state; cancels and
rejects release the order's remainder. A report is applied once: reports of one order carry increasing
``exec_id``s and a repeat (at-least-once delivery) is skipped.

**Control** (the kill switch, from the ``control`` topic): ``halt`` (HALTED: nothing new, every open order
cancelled), ``reduce`` (REDUCING: open orders cancelled, then only position-reducing orders), ``resume``
(ACTIVE). Each change is a ``TRADING_STATE_CHANGED`` event.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from operators.order_path import OrderPath
from operators.positions import Positions
from operators.risk import OrderIntent, PreTradeRisk, RiskLimits, RiskState
from operators.sizing import SizingSettings, plan_from_market
from wattflow.domain import NS_PER_SECOND, QUANTITY_STEP_MW, Side, gate_closure_ns
from wattflow.enums import CancelReason, TimeInForce, TradingState
from wattflow.events import Event
from wattflow.execution import EngineOutput
from wattflow.orders import Cancel, CancelAll, OrderPlan, Submit
from wattflow.settings import ExecutionSettings, execution_default
from wattflow.signals import SignalRow

#: Control commands and the trading state each sets.
CONTROL_STATES: dict[str, TradingState] = {
    "halt": TradingState.HALTED, "reduce": TradingState.REDUCING, "resume": TradingState.ACTIVE}
#: Report kinds that end an order's life at the venue (what is left of it will never fill).
_CLOSING_KINDS = frozenset({"cancel", "reject"})
_EPSILON_MW = 1e-9
#: Why a working order may be replaced that can wait: it keeps working until a replacement fits the limits.
_DEFERRABLE = frozenset({CancelReason.STALE, CancelReason.REPRICE})


@dataclass(frozen=True, slots=True)
class EngineSettings:
    sizing: SizingSettings = field(default_factory=SizingSettings)
    limits: RiskLimits = field(default_factory=RiskLimits)
    order_ttl_ns: int = round(execution_default("order_ttl_s") * NS_PER_SECOND)
    reprice_eur_per_mwh: float = execution_default("reprice_eur_per_mwh")
    clip_interval_ns: int = round(execution_default("clip_interval_s") * NS_PER_SECOND)
    flatten_before_gate_min: float = execution_default("flatten_before_gate_min")
    stale_after_ns: int = round(execution_default("stale_after_s") * NS_PER_SECOND)  # 0: no staleness watch
    reducing_reserve_orders: int = execution_default("reducing_reserve_orders")
    min_access: float = execution_default("min_access")
    min_fill_probability: float = execution_default("min_fill_probability")
    order_path_half_life_ns: int = round(execution_default("order_path_half_life_s") * NS_PER_SECOND)
    order_path_tolerated_failures: float = execution_default("order_path_tolerated_failures")

    @classmethod
    def from_settings(cls, settings: ExecutionSettings) -> EngineSettings:
        sizing = SizingSettings(depth_share=settings.depth_share, volume_share=settings.volume_share,
                                max_clip_mw=settings.max_clip_mw, urgency_window_min=settings.urgency_window_min,
                                ioc_urgency=settings.ioc_urgency, iceberg_display_mw=settings.iceberg_display_mw,
                                ioc_cross_eur_per_mwh=settings.ioc_cross_eur_per_mwh)
        limits = RiskLimits(collar_eur_per_mwh=settings.collar_eur_per_mwh,
                            max_order_volume_mw=settings.max_order_volume_mw,
                            max_order_value_eur=settings.max_order_value_eur,
                            max_product_position_mw=settings.max_product_position_mw,
                            max_total_position_mw=settings.max_total_position_mw,
                            max_orders_per_interval=settings.max_orders_per_interval,
                            order_interval_ns=round(settings.rate_interval_s * NS_PER_SECOND))
        return cls(sizing, limits, round(settings.order_ttl_s * NS_PER_SECOND), settings.reprice_eur_per_mwh,
                   round(settings.clip_interval_s * NS_PER_SECOND), settings.flatten_before_gate_min,
                   round(settings.stale_after_s * NS_PER_SECOND), settings.reducing_reserve_orders,
                   settings.min_access, settings.min_fill_probability,
                   round(settings.order_path_half_life_s * NS_PER_SECOND), settings.order_path_tolerated_failures)


# --- inputs ------------------------------------------------------------------------------------------


# --- outputs -----------------------------------------------------------------------------------------


# --- state -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class WorkingOrder:
    client_order_id: str
    product: str
    side: int
    price_eur_per_mwh: float
    quantity_mw: float
    leaves_mw: float
    tif: TimeInForce
    submitted_ns: int


@dataclass(slots=True)
class EngineState:
    """Everything the engine remembers (picklable; the Bytewax snapshot)."""

    risk: RiskState = field(default_factory=RiskState)
    positions: Positions = field(default_factory=Positions)
    working: dict[str, WorkingOrder] = field(default_factory=dict)  # product -> its working order
    targets_mw: dict[str, dict[str, float]] = field(default_factory=dict)  # product -> model -> target
    last_order_ns: dict[str, int] = field(default_factory=dict)  # product -> event time of its last attempt
    gate_closures_ns: dict[str, int] = field(default_factory=dict)  # open products -> their gate closure
    closed: set[str] = field(default_factory=set)
    last_seen_ns: dict[str, int] = field(default_factory=dict)  # product -> event time of its last signal
    #: Products REDUCING because their signals went silent past the bound -> (when that was seen, their last
    #: signal then), until they speak again.
    stale: dict[str, tuple[int, int]] = field(default_factory=dict)
    next_stale_check_ns: int = 0
    last_exec_id: dict[str, int] = field(default_factory=dict)  # client order id -> last applied exec_id
    last_signal: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # (product, model) -> (ts, id)
    clock_ns: int = 0
    #: Venue-wide order-path availability (None in a snapshot from before it was measured).
    order_path: OrderPath | None = None
    #: Products whose access is below ``min_access`` -> (since when, the access then); reduce-only until back.
    blind: dict[str, tuple[int, float]] | None = None
    #: Products being flattened because their fill probability is below ``min_fill_probability`` -> since when.
    unworkable: dict[str, int] | None = None


# --- the engine --------------------------------------------------------------------------------------


class ExecutionEngine:
    def __init__(self, settings: EngineSettings | None = None, state: EngineState | None = None) -> None:
        self.settings = settings or EngineSettings()
        self.state = state or EngineState()
        self.risk = PreTradeRisk(self.settings.limits, self.state.risk)
        if self.state.order_path is None:
            self.state.order_path = OrderPath(self.settings.order_path_half_life_ns,
                                              self.settings.order_path_tolerated_failures)
        if self.state.blind is None:
            self.state.blind = {}
        if self.state.unworkable is None:
            self.state.unworkable = {}

    @property
    def trading_state(self) -> TradingState:
        return self.risk.trading_state

    def snapshot(self) -> EngineState:
        return self.state

    # -- signals ----------------------------------------------------------------------------------

    def on_signals(self, rows: Sequence[SignalRow]) -> EngineOutput:
        out = EngineOutput()
        touched: dict[str, None] = {}
        for row in rows:
            out.extend(self._on_signal(row))
            touched[row.product] = None
            out.progress_ns[(row.product, row.model)] = self.state.last_signal[(row.product, row.model)][0]
        if touched:
            out.positions += self.state.positions.rows(self.state.clock_ns, self.trading_state.value, list(touched))
        return out

    def _on_signal(self, row: SignalRow) -> EngineOutput:
        state = self.state
        product = row.product
        seen = state.last_signal.get((product, row.model))
        if seen is not None and (row.ts_ns, row.trade_id) <= seen:
            return EngineOutput()  # a repeat (at-least-once upstream): each signal acts once
        state.last_signal[(product, row.model)] = (row.ts_ns, row.trade_id)
        out = self._advance(row.ts_ns)
        state.last_seen_ns[product] = max(state.last_seen_ns.get(product, 0), row.ts_ns)
        if product in state.stale and row.ts_ns > state.clock_ns - self.settings.stale_after_ns:
            # It speaks again (a row within the bound of the clock; a late one is old news and keeps it REDUCING).
            stale_ns, seen_ns = state.stale.pop(product)
            out.events.append(Event(row.ts_ns, "FEED_RESUMED", product, "INFO", {
                "from": TradingState.REDUCING.value, "to": TradingState.ACTIVE.value, "trade_id": row.trade_id,
                "silent_s": (row.ts_ns - seen_ns) / NS_PER_SECOND,
                "reducing_s": (row.ts_ns - stale_ns) / NS_PER_SECOND,
                "bound_s": self.settings.stale_after_ns / NS_PER_SECOND}))
        state.targets_mw.setdefault(product, {})[row.model] = row.target_position_mw
        if math.isfinite(row.market.mid_eur_per_mwh):
            state.positions.mark(product, row.market.mid_eur_per_mwh, row.ts_ns)
        if product in state.closed:
            return out
        if product not in state.gate_closures_ns:
            state.gate_closures_ns[product] = gate_closure_ns(product)
            if state.gate_closures_ns[product] <= state.clock_ns:
                out.extend(self._close_product(product))
                return out
        if self.trading_state is TradingState.HALTED:
            return out
        working = state.working.get(product)
        last = state.last_order_ns.get(product)
        if working is None and last is not None and row.ts_ns - last < self.settings.clip_interval_ns:
            return out
        position = state.positions.position_mw(product)
        blind = self._watch_access(row, position, out)
        reduce_only = self.trading_state is TradingState.REDUCING or product in state.stale or blind
        target = self._target_mw(product, position, row.market.minutes_to_gate_closure, reduce_only)
        if product in self._unworkable:
            target = 0.0  # cannot be worked before the gate while it still can: flatten
        wanted = plan_from_market(product, row.model, row.ts_ns, row.trade_id, target, market=row.market,
                                  position_mw=position, settings=self.settings.sizing)
        plan = self._within_limits(wanted, position, row.ts_ns, reduce_only)
        if working is not None:
            reason = self._stale(working, row, target, position, wanted)
            if reason is None:
                return out
            if plan is None and reason in _DEFERRABLE:
                return out  # no room to replace it now: it keeps working, the next signal looks again
            out.commands.append(self._cancel(working, reason, row.ts_ns))
        if plan is None:
            return out
        state.last_order_ns[product] = row.ts_ns
        intent = OrderIntent(plan.client_order_id, product, plan.side, plan.price_eur_per_mwh, plan.quantity_mw,
                             row.ts_ns, reduce_only=reduce_only)
        decision = self.risk.check(intent, row.market.mid_eur_per_mwh)
        if not decision.approved:
            out.events.append(Event(row.ts_ns, "RISK_DENIED", product, "WARNING", {
                "reason": str(decision.reason), "detail": decision.detail, "client_order_id": plan.client_order_id,
                "side": plan.side.name, "price_eur_per_mwh": plan.price_eur_per_mwh,
                "quantity_mw": plan.quantity_mw, "trading_state": self.trading_state.value}))
            return out
        state.working[product] = WorkingOrder(plan.client_order_id, product, int(plan.side), plan.price_eur_per_mwh,
                                              plan.quantity_mw, plan.quantity_mw, plan.tif, row.ts_ns)
        out.commands.append(Submit(plan, row.ts_ns, reduce_only, time.time_ns()))
        return out

    @property
    def _blind(self) -> dict[str, tuple[int, float]]:
        assert self.state.blind is not None
        return self.state.blind

    @property
    def _unworkable(self) -> dict[str, int]:
        assert self.state.unworkable is not None
        return self.state.unworkable

    @property
    def order_path(self) -> OrderPath:
        assert self.state.order_path is not None
        return self.state.order_path

    def access(self, row: SignalRow) -> tuple[float, float, float]:
        """(feed access, order-path availability, market access = their product) at a signal; a feed access not
        measured (NaN, an old row) counts as 1."""
        feed = row.market.feed_access
        feed = 1.0 if math.isnan(feed) else feed
        path = self.order_path.availability(row.ts_ns)
        return feed, path, feed * path

    def _watch_access(self, row: SignalRow, position_mw: float, out: EngineOutput) -> bool:
        """Is the product blind (market access below ``min_access``: no new exposure)? Records each change of that
        (``ACCESS_LOST`` / ``ACCESS_RESTORED``) and of whether its position can still be worked before the gate
        (``POSITION_UNWORKABLE`` / ``POSITION_WORKABLE``: below ``min_fill_probability`` it is flattened)."""
        product = row.product
        feed, path, access = self.access(row)
        numbers = {"access": access, "feed_access": feed, "order_path_availability": path,
                   "min_access": self.settings.min_access, "position_mw": position_mw,
                   "minutes_to_gate_closure": row.market.minutes_to_gate_closure, "trade_id": row.trade_id}
        blind = self._blind
        if access < self.settings.min_access and product not in blind:
            blind[product] = (row.ts_ns, access)
            out.events.append(Event(row.ts_ns, "ACCESS_LOST", product, "WARNING", {
                "from": TradingState.ACTIVE.value, "to": TradingState.REDUCING.value, **numbers}))
        elif access >= self.settings.min_access and product in blind:
            since_ns, _ = blind.pop(product)
            out.events.append(Event(row.ts_ns, "ACCESS_RESTORED", product, "INFO", {
                "from": TradingState.REDUCING.value, "to": TradingState.ACTIVE.value,
                "start_ns": since_ns, "blind_s": (row.ts_ns - since_ns) / NS_PER_SECOND, **numbers}))
        probability = row.market.fill_probability
        unworkable = self._unworkable
        low = (self.settings.min_fill_probability > 0 and math.isfinite(probability)
               and probability < self.settings.min_fill_probability)
        if low and abs(position_mw) > _EPSILON_MW and product not in unworkable:
            unworkable[product] = row.ts_ns
            out.events.append(Event(row.ts_ns, "POSITION_UNWORKABLE", product, "WARNING", {
                "fill_probability": probability, "min_fill_probability": self.settings.min_fill_probability,
                **numbers}))
        elif product in unworkable and (not low or abs(position_mw) <= _EPSILON_MW):
            since_ns = unworkable.pop(product)
            out.events.append(Event(row.ts_ns, "POSITION_WORKABLE", product, "INFO", {
                "fill_probability": probability, "start_ns": since_ns,
                "flattening_s": (row.ts_ns - since_ns) / NS_PER_SECOND, **numbers}))
        return product in blind

    def _within_limits(self, plan: OrderPlan | None, position_mw: float, ts_ns: int,
                       reduce_only: bool) -> OrderPlan | None:
        """``plan`` cut to what pre-trade risk would approve now, or None when nothing would pass: the clip
        within the position headroom (product and total, every open order counted as risk counts it, a
        cancelled one too until a report closes it), and an order only while the rate budget lasts, its last
        ``reducing_reserve_orders`` kept for position-reducing orders. A target held back stays the target:
        the product's next signal plans again."""
        if plan is None:
            return None
        reducing = (plan.side is Side.SELL and position_mw > _EPSILON_MW) or (
            plan.side is Side.BUY and position_mw < -_EPSILON_MW)
        reserve = 0 if reducing else self.settings.reducing_reserve_orders
        if self.risk.orders_left(ts_ns) <= reserve:
            return None
        headroom = self.risk.headroom_mw(plan.product, plan.side, reduce_only=reduce_only)
        if plan.quantity_mw <= headroom + _EPSILON_MW:
            return plan
        quantity = math.floor(headroom / QUANTITY_STEP_MW + 1e-9) * QUANTITY_STEP_MW
        if quantity < self.settings.sizing.min_clip_mw - _EPSILON_MW:
            return None
        display = plan.display_quantity_mw
        if display is not None and display >= quantity - _EPSILON_MW:
            display = None
        return dataclasses.replace(plan, quantity_mw=round(quantity, 1), display_quantity_mw=display)

    def _target_mw(self, product: str, position_mw: float, minutes_to_gate_closure: float,
                   reduce_only: bool) -> float:
        if minutes_to_gate_closure <= self.settings.flatten_before_gate_min:
            return 0.0
        limits = self.settings.limits
        # Headroom under the account's total: what the other products' worst-case exposure leaves.
        others = self.risk.total_exposure_mw() - self.risk.exposure_mw(product)
        limit = max(min(limits.max_product_position_mw, limits.max_total_position_mw - others), 0.0)
        target = min(max(sum(self.state.targets_mw.get(product, {}).values()), -limit), limit)
        if reduce_only:
            target = min(max(target, min(position_mw, 0.0)), max(position_mw, 0.0))
        return target

    def _stale(self, working: WorkingOrder, row: SignalRow, target_mw: float, position_mw: float,
               fresh: OrderPlan | None) -> CancelReason | None:
        """Why the working order should be replaced now (``fresh``: what sizing would place instead), or None."""
        if row.ts_ns - working.submitted_ns >= self.settings.order_ttl_ns:
            return CancelReason.STALE
        wanted = target_mw - position_mw
        if abs(wanted) < self.settings.sizing.min_clip_mw or (wanted > 0) != (working.side > 0):
            return CancelReason.WRONG_SIDE
        if fresh is not None and abs(fresh.price_eur_per_mwh - working.price_eur_per_mwh) >= (
                self.settings.reprice_eur_per_mwh - 1e-9) and self.settings.reprice_eur_per_mwh > 0:
            return CancelReason.REPRICE
        return None

    def _cancel(self, working: WorkingOrder, reason: CancelReason, ts_ns: int) -> Cancel:
        """Stop working an order now (cancel/replace): sizing no longer counts it, but pre-trade risk does until
        a report closes it (the cancel may lose the race against a fill), so no race can break a limit."""
        del self.state.working[working.product]
        return Cancel(working.client_order_id, working.product, reason, ts_ns)

    # -- the clock and gate closure ---------------------------------------------------------------

    def _advance(self, ts_ns: int) -> EngineOutput:
        out = EngineOutput()
        state = self.state
        if ts_ns <= state.clock_ns:
            return out
        state.clock_ns = ts_ns
        due = [product for product, close in state.gate_closures_ns.items() if close <= ts_ns]
        for product in sorted(due):
            out.extend(self._close_product(product))
        bound = self.settings.stale_after_ns
        if bound > 0 and ts_ns >= state.next_stale_check_ns:
            # Checked every 1/30 of the bound (not per row): a silence is reported within 1.04 x the bound.
            state.next_stale_check_ns = ts_ns + bound // 30
            for product in sorted(state.working.keys() | set(state.positions.traded_products())):
                seen = state.last_seen_ns.get(product)
                if (seen is not None and ts_ns - seen > bound and product not in state.stale
                        and product not in state.closed):
                    out.extend(self._go_stale(product, ts_ns, seen))
        return out

    def _go_stale(self, product: str, ts_ns: int, seen_ns: int) -> EngineOutput:
        """A product whose signals stopped while we hold an order or a position goes REDUCING (R9): its working
        order is cancelled and, until it speaks again (``FEED_RESUMED``), it gets only position-reducing orders."""
        out = EngineOutput()
        self.state.stale[product] = (ts_ns, seen_ns)
        working = self.state.working.get(product)
        if working is not None:
            out.commands.append(self._cancel(working, CancelReason.FEED_STALE, ts_ns))
        out.events.append(Event(ts_ns, "FEED_STALE", product, "WARNING", {
            "from": TradingState.ACTIVE.value, "to": TradingState.REDUCING.value,
            "silent_s": (ts_ns - seen_ns) / NS_PER_SECOND, "bound_s": self.settings.stale_after_ns / NS_PER_SECOND,
            "position_mw": self.state.positions.position_mw(product), "cancelled": working is not None}))
        return out

    def _close_product(self, product: str) -> EngineOutput:
        out = EngineOutput()
        state = self.state
        close_ns = state.gate_closures_ns.pop(product, state.clock_ns)
        state.closed.add(product)
        working = state.working.get(product)
        if working is not None:
            out.commands.append(self._cancel(working, CancelReason.GATE_CLOSURE, close_ns))
        row = state.positions.on_gate_closure(product, close_ns)
        if row is not None:
            out.positions.append(row)
            if abs(row.position_mw) > _EPSILON_MW:
                out.events.append(Event(close_ns, "IMBALANCE_EXPOSURE", product, "WARNING", {
                    "position_mw": row.position_mw, "mark_eur_per_mwh": row.mark_eur_per_mwh,
                    "pnl_eur": row.pnl_eur}))
        return out

    # -- execution reports ------------------------------------------------------------------------

    def on_reports(self, reports: Sequence[Mapping[str, Any]]) -> EngineOutput:
        out = EngineOutput()
        touched: dict[str, None] = {}
        for report in reports:
            applied = self._on_report(report, out)
            if applied:
                touched[str(report["product"])] = None
        if touched:
            out.positions += self.state.positions.rows(self.state.clock_ns, self.trading_state.value, list(touched))
        return out

    def _on_report(self, report: Mapping[str, Any], out: EngineOutput) -> bool:
        state = self.state
        cid, product = str(report["client_order_id"]), str(report["product"])
        if str(report["kind"]) == "status":
            # The order sink's word on an order it could not place yet (BLOCKED by the open breaker) or whose
            # outcome is unknown: the order path failed; the order itself is still the sink's to finish.
            self._order_path_failed(str(report.get("status")), report, out)
            return False
        exec_id = int(report.get("exec_id", 0))
        if exec_id and exec_id <= state.last_exec_id.get(cid, 0):
            return False  # a repeat (at-least-once delivery)
        if exec_id:
            state.last_exec_id[cid] = exec_id
        out.reports.append(dict(report))
        kind = str(report["kind"])
        working = state.working.get(product)
        mine = working is not None and working.client_order_id == cid
        if kind == "fill":
            quantity = float(report["last_quantity_mw"])
            side = Side(int(report["side"]))
            state.positions.on_fill(product, int(side), quantity, float(report["last_price_eur_per_mwh"]),
                                    int(report["ts_ns"]))
            self.risk.on_fill(product, side, quantity, cid)
            if mine and working is not None:
                working.leaves_mw = round(working.leaves_mw - quantity, 6)
                if working.leaves_mw <= _EPSILON_MW or report.get("status") == "FILLED":
                    del state.working[product]
            return True
        if kind in _CLOSING_KINDS:
            self.risk.on_order_closed(cid)
            if mine:
                del state.working[product]
            if kind == "reject":
                out.events.append(Event(int(report.get("ts_ns") or state.clock_ns), "ORDER_REJECTED", product,
                                        "WARNING", {"client_order_id": cid, "reason": report.get("reason"),
                                                    "source": report.get("source", "venue")}))
                self._order_path_failed(f"REJECTED:{report.get('reason')}", report, out)
            return True
        return False

    def _order_path_failed(self, reason: str, report: Mapping[str, Any], out: EngineOutput) -> None:
        """Count a failed order outcome at the engine's clock (market time); record when the order path falls
        below ``min_access`` (``ORDER_PATH_DEGRADED``, with the numbers)."""
        path = self.order_path
        now = self.state.clock_ns
        before = path.availability(now)
        after = path.on_failure(now, reason)
        if before >= self.settings.min_access > after:
            out.events.append(Event(now, "ORDER_PATH_DEGRADED", "", "WARNING", {
                "order_path_availability": after, "min_access": self.settings.min_access,
                "recent_failures": path.failures, "reason": reason,
                "client_order_id": report.get("client_order_id"), "failures_by_reason": dict(path.by_reason)}))

    # -- the kill switch --------------------------------------------------------------------------

    def on_control(self, command: Mapping[str, Any], ts_ns: int | None = None) -> EngineOutput:
        out = EngineOutput()
        name = str(command.get("command", "")).lower()
        when = int(ts_ns if ts_ns is not None else command.get("ts_ns") or self.state.clock_ns)
        if name not in CONTROL_STATES:
            out.events.append(Event(when, "CONTROL_REJECTED", "", "ERROR", {
                "command": command.get("command"), "error": f"expected one of {', '.join(CONTROL_STATES)}"}))
            return out
        new = CONTROL_STATES[name]
        old = self.risk.set_state(new)
        out.events.append(Event(when, "TRADING_STATE_CHANGED", "", "CRITICAL" if new is TradingState.HALTED else
                                "WARNING", {"from": old.value, "to": new.value, "by": command.get("by", ""),
                                            "reason": command.get("reason", ""),
                                            "command_id": command.get("id", ""),
                                            "command_wall_ns": command.get("wall_ns"),
                                            "applied_wall_ns": time.time_ns()}))
        if new is not TradingState.ACTIVE:
            for working in list(self.state.working.values()):
                self._cancel(working, CancelReason(new.value), when)
            out.commands.append(CancelAll(None, CancelReason(new.value), when))
        out.positions += self.state.positions.rows(self.state.clock_ns, new.value)
        return out
