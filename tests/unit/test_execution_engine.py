"""The execution engine as pure logic: signals in, commands and events out (no servers)."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.wire.signals import signal_rows
from operators.execution import EngineSettings, ExecutionEngine
from operators.risk import RiskLimits
from operators.sizing import SizingSettings
from wattflow.domain import NS_PER_MINUTE, NS_PER_SECOND, gate_closure_ns
from wattflow.enums import TradingState
from wattflow.execution import EngineOutput
from wattflow.orders import Cancel, CancelAll, Submit
from wattflow.signals import MarketSnapshot, SignalRow

PRODUCT = "DE-LU:2018-10-28T12:00Z:PT60M"
OTHER = "DE-LU:2018-10-28T13:00Z:PT60M"
CLOSE = gate_closure_ns(PRODUCT)
T0 = CLOSE - 180 * NS_PER_MINUTE  # urgency 0 with the default 120-minute window


def market(bid: float = 49.0, ask: float = 51.0, depth: float = 40.0, volume: float = 200.0,
           minutes: float = 180.0) -> MarketSnapshot:
    return MarketSnapshot(minutes, bid, ask, (bid + ask) / 2, depth, depth, volume)


def row(ts_ns: int, target: float, *, product: str = PRODUCT, model: str = "m", trade_id: int = 1,
        **kwargs: float) -> SignalRow:
    close = gate_closure_ns(product)
    return SignalRow(product, model, ts_ns, trade_id, target, market(minutes=(close - ts_ns) / NS_PER_MINUTE,
                                                                       **kwargs))


def engine(**limits: Any) -> ExecutionEngine:
    return ExecutionEngine(EngineSettings(limits=RiskLimits(**limits)) if limits else EngineSettings())


def submits(out: EngineOutput) -> list[Submit]:
    return [c for c in out.commands if isinstance(c, Submit)]


def fill(submit: Submit, quantity: float, exec_id: int, status: str = "PARTIALLY_FILLED") -> dict[str, object]:
    plan = submit.plan
    return {"exec_id": exec_id, "kind": "fill", "ts_ns": plan.signal_ts_ns + 1, "client_order_id": plan.client_order_id,
            "product": plan.product, "side": int(plan.side), "price_eur_per_mwh": plan.price_eur_per_mwh,
            "status": status, "last_price_eur_per_mwh": plan.price_eur_per_mwh, "last_quantity_mw": quantity}


def test_a_signal_becomes_a_clip_priced_passively_with_a_stable_id() -> None:
    out = engine().on_signals([row(T0, 8.0)])
    (order,) = submits(out)
    assert order.plan.side > 0 and order.plan.tif == "GTC"
    assert order.plan.price_eur_per_mwh == 49.0  # urgency 0: joins the bid
    assert order.plan.quantity_mw == 5.0  # max clip 5 < 8 wanted < 25% of 40 MW depth = 10
    again = engine().on_signals([row(T0, 8.0)])
    assert submits(again)[0].client_order_id == order.client_order_id
    assert out.positions and out.positions[-1].product == "TOTAL"


def test_one_working_order_per_product_then_clips_over_time() -> None:
    e = engine()
    (first,) = submits(e.on_signals([row(T0, 8.0)]))
    assert submits(e.on_signals([row(T0 + NS_PER_SECOND, 8.0, trade_id=2)])) == []  # still working
    e.on_reports([fill(first, 5.0, 1, "FILLED")])
    assert e.state.positions.position_mw(PRODUCT) == 5.0
    assert submits(e.on_signals([row(T0 + 2 * NS_PER_SECOND, 8.0, trade_id=3)])) == []  # clip interval
    (second,) = submits(e.on_signals([row(T0 + 11 * NS_PER_SECOND, 8.0, trade_id=4)]))
    assert second.plan.quantity_mw == 3.0 and second.client_order_id != first.client_order_id


def test_a_repeated_report_is_applied_once() -> None:
    e = engine()
    (order,) = submits(e.on_signals([row(T0, 8.0)]))
    e.on_reports([fill(order, 2.0, 7)])
    out = e.on_reports([fill(order, 2.0, 7)])
    assert e.state.positions.position_mw(PRODUCT) == 2.0
    assert out.reports == []


def test_stale_and_repriced_orders_are_cancelled_and_replaced_in_one_step() -> None:
    e = engine()
    (first,) = submits(e.on_signals([row(T0, 3.0)]))
    moved = e.on_signals([row(T0 + NS_PER_SECOND, 3.0, trade_id=2, bid=48.0, ask=50.0)])
    (cancel,) = [c for c in moved.commands if isinstance(c, Cancel)]
    assert cancel.client_order_id == first.client_order_id and cancel.reason == "REPRICE"
    (replacement,) = submits(moved)
    assert replacement.plan.price_eur_per_mwh == 48.0
    aged = e.on_signals([row(T0 + 400 * NS_PER_SECOND, 3.0, trade_id=3, bid=48.0, ask=50.0)])
    assert [c.reason for c in aged.commands if isinstance(c, Cancel)] == ["STALE"]
    assert len(submits(aged)) == 1


def test_a_target_that_turns_cancels_the_working_order() -> None:
    e = engine()
    e.on_signals([row(T0, 3.0)])
    out = e.on_signals([row(T0 + NS_PER_SECOND, -3.0, trade_id=2)])
    assert [c.reason for c in out.commands if isinstance(c, Cancel)] == ["WRONG_SIDE"]
    assert submits(out)[0].plan.side < 0


def test_nothing_after_gate_closure_and_an_open_position_is_flagged() -> None:
    e = ExecutionEngine(EngineSettings(flatten_before_gate_min=0.0))
    (order,) = submits(e.on_signals([row(CLOSE - 10 * NS_PER_MINUTE, 3.0)]))
    assert order.plan.tif == "IOC"  # urgency near 1
    e.on_reports([fill(order, 1.0, 1)])
    out = e.on_signals([row(CLOSE + NS_PER_SECOND, 3.0, product=OTHER)])  # the clock passes PRODUCT's closure
    assert [(c.client_order_id, c.reason) for c in out.commands if isinstance(c, Cancel)] == [
        (order.client_order_id, "GATE_CLOSURE")]
    (exposure,) = [ev for ev in out.events if ev.kind == "IMBALANCE_EXPOSURE"]
    assert exposure.product == PRODUCT and exposure.detail["position_mw"] == 1.0
    late = e.on_signals([row(CLOSE + 2 * NS_PER_SECOND, 3.0, trade_id=9)])
    assert submits(late) == []


def test_a_product_first_seen_after_its_gate_closure_gets_no_order() -> None:
    out = engine().on_signals([row(CLOSE + NS_PER_SECOND, 3.0)])
    assert submits(out) == []


def test_a_risk_denial_is_an_event_with_its_reason_and_numbers() -> None:
    e = engine(max_order_volume_mw=1.0)
    out = e.on_signals([row(T0, 3.0)])
    assert submits(out) == []
    (denial,) = out.events
    assert denial.kind == "RISK_DENIED" and denial.detail["reason"] == "MAX_ORDER_VOLUME"
    assert "limit=1.0" in denial.detail["detail"] or "1.0" in denial.detail["detail"]


@pytest.mark.parametrize(("bid", "ask", "collar", "reason"), [
    (-120.0, -118.0, 500.0, None),            # negative prices trade
    (-120.0, -118.0, 0.5, "PRICE_OUTSIDE_COLLAR"),  # the passive bid is 1 below the negative mid
])
def test_negative_prices(bid: float, ask: float, collar: float, reason: str | None) -> None:
    out = engine(collar_eur_per_mwh=collar).on_signals([row(T0, 3.0, bid=bid, ask=ask)])
    if reason is None:
        assert submits(out)[0].plan.price_eur_per_mwh == -120.0
    else:
        assert [ev.detail["reason"] for ev in out.events] == [reason]


def test_kill_switch_halt_cancels_everything_and_stops_new_orders() -> None:
    e = engine()
    e.on_signals([row(T0, 3.0)])
    out = e.on_control({"command": "halt", "by": "test"})
    assert [type(c) for c in out.commands] == [CancelAll]
    assert [ev.detail["to"] for ev in out.events] == ["HALTED"]
    assert e.state.working == {}
    assert submits(e.on_signals([row(T0 + 60 * NS_PER_SECOND, 3.0, trade_id=5)])) == []
    e.on_control({"command": "resume"})
    assert e.trading_state is TradingState.ACTIVE
    assert len(submits(e.on_signals([row(T0 + 120 * NS_PER_SECOND, 3.0, trade_id=6)]))) == 1


def test_reducing_only_lets_the_position_shrink() -> None:
    e = engine()
    (order,) = submits(e.on_signals([row(T0, 3.0)]))
    e.on_reports([fill(order, 3.0, 1, "FILLED")])
    e.on_control({"command": "reduce"})
    grow = e.on_signals([row(T0 + 60 * NS_PER_SECOND, 8.0, trade_id=2)])
    assert submits(grow) == []  # the target is held at the position
    (shrink,) = submits(e.on_signals([row(T0 + 120 * NS_PER_SECOND, -4.0, trade_id=3)]))
    assert shrink.plan.side < 0 and shrink.plan.quantity_mw == 3.0 and shrink.reduce_only


def test_an_unknown_control_command_is_an_event_not_a_crash() -> None:
    out = engine().on_control({"command": "panic"})
    assert [ev.kind for ev in out.events] == ["CONTROL_REJECTED"]


def test_signal_rows_decode_a_signals_record() -> None:
    message = {"product": PRODUCT, "model": "m", "kind": "signals",
               "columns": {"ts_ns": [T0, T0 + 1], "trade_id": [1, 2], "target_position_mw": [1.0, 2.0]},
               "market": {"best_bid_eur_per_mwh": [49.0, None], "best_ask_eur_per_mwh": [51.0, 52.0]}}
    rows = signal_rows(message)
    assert [r.target_position_mw for r in rows] == [1.0, 2.0]
    assert rows[0].market.best_bid_eur_per_mwh == 49.0 and math.isnan(rows[1].market.best_bid_eur_per_mwh)
    assert math.isnan(rows[0].market.volume_mw)


def _orders_hash(outputs: list[EngineOutput]) -> str:
    text = "|".join(f"{c.client_order_id},{c.plan.side},{c.plan.price_eur_per_mwh},{c.plan.quantity_mw}"
                    if isinstance(c, Submit) else f"{type(c).__name__}:{getattr(c, 'client_order_id', '')}"
                    for out in outputs for c in out.commands)
    return hashlib.sha256(text.encode()).hexdigest()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 120), st.floats(-9.0, 9.0), st.floats(40.0, 60.0),
                          st.floats(0.1, 5.0), st.floats(0.0, 80.0)), min_size=1, max_size=40),
       st.integers(1, 8))
def test_orders_do_not_depend_on_batching_and_clips_respect_the_depth_share(
        steps: list[tuple[int, float, float, float, float]], chunk: int) -> None:
    rows, ts = [], T0
    for k, (gap_s, target, bid, spread, depth) in enumerate(steps):
        ts += gap_s * NS_PER_SECOND
        rows.append(row(ts, round(target, 1), trade_id=k, bid=round(bid, 2), ask=round(bid + spread, 2),
                        depth=depth))
    one = engine()
    whole = [one.on_signals(rows)]
    other = engine()
    pieces = [other.on_signals(rows[i:i + chunk]) for i in range(0, len(rows), chunk)]
    assert _orders_hash(whole) == _orders_hash(pieces)
    share = SizingSettings().depth_share
    by_ts = {r.ts_ns: r for r in rows}
    for out in whole:
        for order in submits(out):
            assert order.plan.quantity_mw <= share * by_ts[order.ts_ns].market.ask_depth_near_mid_mw + 1e-9


def test_each_signal_row_acts_once_and_causes_its_own_order_id() -> None:
    e = engine()
    first = e.on_signals([row(T0, 3.0, model="a")])
    # The second model, same trade: the sum turns the target, so the order is replaced under a new id.
    second = e.on_signals([row(T0, -6.0, model="b")])
    ids = [c.client_order_id for out in (first, second) for c in submits(out)]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert e.on_signals([row(T0, -6.0, model="b")]).commands == []  # a repeat of a row already seen


def test_the_last_minutes_before_gate_closure_flatten_the_position() -> None:
    e = engine()
    (order,) = submits(e.on_signals([row(CLOSE - 60 * NS_PER_MINUTE, 3.0)]))
    e.on_reports([fill(order, 3.0, 1, "FILLED")])
    (flatten,) = submits(e.on_signals([row(CLOSE - 5 * NS_PER_MINUTE, 3.0, trade_id=2)]))
    assert flatten.plan.side < 0 and flatten.plan.quantity_mw == 3.0 and flatten.plan.tif == "IOC"


def test_targets_stay_within_what_the_total_position_limit_leaves() -> None:
    e = engine(max_total_position_mw=6.0)
    (first,) = submits(e.on_signals([row(T0, 5.0)]))
    e.on_reports([fill(first, 5.0, 1, "FILLED")])
    out = e.on_signals([row(T0 + NS_PER_SECOND, 5.0, product=OTHER, trade_id=2)])
    (second,) = submits(out)
    assert second.plan.quantity_mw == 1.0  # 6 MW in total, 5 of them already held elsewhere
    assert not [ev for ev in out.events if ev.kind == "RISK_DENIED"]


def denials(out: EngineOutput) -> list[str]:
    return [str(ev.detail["reason"]) for ev in out.events if ev.kind == "RISK_DENIED"]


def cancel_report(order: Submit, exec_id: int, ts_ns: int) -> dict[str, object]:
    return {"exec_id": exec_id, "kind": "cancel", "ts_ns": ts_ns, "product": order.plan.product,
            "client_order_id": order.client_order_id, "side": int(order.plan.side), "status": "CANCELLED"}


def test_a_replacement_fits_what_the_cancelled_order_leaves_of_the_product_limit() -> None:
    e = engine(max_product_position_mw=6.0)
    (first,) = submits(e.on_signals([row(T0, 5.0)]))
    moved = e.on_signals([row(T0 + NS_PER_SECOND, 5.0, trade_id=2, bid=48.0, ask=50.0)])
    assert [c.reason for c in moved.commands if isinstance(c, Cancel)] == ["REPRICE"]
    # Both could still fill (the cancel may lose the race): the replacement is 6 - 5 = 1 MW, and risk agrees.
    (replacement,) = submits(moved)
    assert replacement.plan.quantity_mw == 1.0 and denials(moved) == []
    assert e.risk.exposure_mw(PRODUCT) == 6.0
    e.on_reports([cancel_report(first, 3, T0 + 2 * NS_PER_SECOND)])
    assert e.risk.exposure_mw(PRODUCT) == 1.0


def test_a_reprice_with_no_room_for_the_replacement_keeps_the_order_working() -> None:
    e = engine(max_product_position_mw=5.0)
    (first,) = submits(e.on_signals([row(T0, 5.0)]))
    moved = e.on_signals([row(T0 + NS_PER_SECOND, 5.0, trade_id=2, bid=48.0, ask=50.0)])
    assert moved.commands == [] and denials(moved) == []
    assert e.state.working[PRODUCT].client_order_id == first.client_order_id
    # A target that turns is urgent: the order is cancelled, and the sell waits for the cancel to be confirmed
    # (until then the buy may still fill, and a sell beside it would reach 5 MW short of it as well).
    turned = e.on_signals([row(T0 + 2 * NS_PER_SECOND, -5.0, trade_id=3)])
    assert [c.reason for c in turned.commands if isinstance(c, Cancel)] == ["WRONG_SIDE"]
    assert [s.plan.side for s in submits(turned)] == [-1] and submits(turned)[0].plan.quantity_mw == 5.0
    assert denials(turned) == []


@pytest.mark.parametrize(("product_limit", "total_limit", "held", "expected"), [
    (20.0, 100.0, 0.0, 5.0),   # nothing binds but the 5 MW clip
    (3.0, 100.0, 0.0, 3.0),    # the product limit
    (20.0, 7.5, 5.0, 2.5),     # what the total leaves beside 5 MW held elsewhere
    (20.0, 5.0, 5.0, None),    # nothing left in total: no order, and no denial either
])
def test_the_plan_stays_within_each_position_limit_and_risk_denies_nothing(
        product_limit: float, total_limit: float, held: float, expected: float | None) -> None:
    e = engine(max_product_position_mw=product_limit, max_total_position_mw=total_limit)
    if held:
        (other,) = submits(e.on_signals([row(T0, held, product=OTHER)]))
        e.on_reports([fill(other, held, 1, "FILLED")])
    out = e.on_signals([row(T0 + NS_PER_SECOND, 9.0, trade_id=2)])
    assert [s.plan.quantity_mw for s in submits(out)] == ([] if expected is None else [expected])
    assert denials(out) == []
    assert e.risk.total_exposure_mw() <= total_limit + 1e-9 or held > total_limit


def _products(n: int) -> list[str]:
    return [f"DE-LU:2018-10-28T{12 + k // 4:02d}:{15 * (k % 4):02d}Z:PT15M" for k in range(n)]


def test_the_rate_budget_is_paced_and_its_reserve_kept_for_reducing_orders() -> None:
    # A budget of 5 orders a second, 2 of them kept for reducing orders: 3 may add exposure.
    e = ExecutionEngine(EngineSettings(limits=RiskLimits(max_orders_per_interval=5), clip_interval_ns=0))
    products = _products(6)
    out = e.on_signals([row(T0, 3.0, product=p, trade_id=k) for k, p in enumerate(products)])
    assert [s.product for s in submits(out)] == products[:3] and denials(out) == []
    assert e.risk.orders_left(T0) == 2
    # A product holding a position reduces within the reserve, in the same second.
    e.on_reports([fill(submits(out)[0], 3.0, 1, "FILLED")])
    cut = e.on_signals([row(T0 + 1, 0.0, product=products[0], trade_id=10)])
    assert [(s.plan.side, s.plan.quantity_mw) for s in submits(cut)] == [(-1, 3.0)] and denials(cut) == []
    # The deferred products kept their targets and go out at their next signal once the budget frees.
    later = e.on_signals([row(T0 + NS_PER_SECOND + 1, 3.0, product=p, trade_id=20 + k)
                          for k, p in enumerate(products[3:])])
    assert [s.product for s in submits(later)] == products[3:] and denials(later) == []


def test_risk_remains_the_safety_net_for_what_the_plan_does_not_size() -> None:
    # The plan sizes within the position and rate limits; a limit on one order's volume or value it does not
    # plan for is still caught, and each denial is an event with its numbers.
    e = engine(max_order_value_eur=100.0)
    out = e.on_signals([row(T0, 3.0)])
    assert submits(out) == [] and denials(out) == ["MAX_ORDER_VALUE"]
    assert "limit=100.00" in out.events[0].detail["detail"]


def test_a_product_that_goes_silent_is_stale_within_the_bound_and_its_order_is_cancelled() -> None:
    e = ExecutionEngine(EngineSettings(stale_after_ns=600 * NS_PER_SECOND))
    (order,) = submits(e.on_signals([row(T0, 3.0)]))
    events = []
    cancels = []
    for k in range(1, 80):  # only the other product speaks, every 10 s
        out = e.on_signals([row(T0 + k * 10 * NS_PER_SECOND, 0.0, product=OTHER, trade_id=k)])
        events += [(ev.kind, ev.ts_ns) for ev in out.events if ev.product == PRODUCT]
        cancels += [c for c in out.commands if isinstance(c, Cancel)]
    (stale,) = [ts for kind, ts in events if kind == "FEED_STALE"]
    assert 600 * NS_PER_SECOND < stale - T0 <= 1.04 * 600 * NS_PER_SECOND + 10 * NS_PER_SECOND
    assert [(c.client_order_id, c.reason) for c in cancels] == [(order.client_order_id, "FEED_STALE")]
    back = e.on_signals([row(T0 + 800 * NS_PER_SECOND, 3.0, trade_id=99)])
    assert [ev.kind for ev in back.events] == ["FEED_RESUMED"]
    assert len(submits(back)) == 1


def test_r9_a_silent_product_goes_reducing_within_the_bound_still_reduces_and_comes_back_active() -> None:
    bound_s = 600
    e = ExecutionEngine(EngineSettings(stale_after_ns=bound_s * NS_PER_SECOND, clip_interval_ns=0))
    (order,) = submits(e.on_signals([row(T0, 5.0)]))
    e.on_reports([fill(order, 3.0, 1)])  # 3 MW held, 2 MW still working
    events, commands = [], []
    for k in range(1, 80):  # only the other product speaks, every 10 s
        out = e.on_signals([row(T0 + k * 10 * NS_PER_SECOND, 0.0, product=OTHER, trade_id=k)])
        events += [ev for ev in out.events if ev.product == PRODUCT]
        commands += [c for c in out.commands if c.product == PRODUCT]
    (stale,) = events
    assert stale.kind == "FEED_STALE" and (stale.detail["from"], stale.detail["to"]) == ("ACTIVE", "REDUCING")
    assert stale.detail["bound_s"] == bound_s and bound_s < stale.detail["silent_s"] <= 1.04 * bound_s + 10
    assert stale.detail["silent_s"] == (stale.ts_ns - T0) / NS_PER_SECOND and stale.detail["position_mw"] == 3.0
    assert [(type(c).__name__, c.client_order_id, getattr(c, "reason", None)) for c in commands] == [
        ("Cancel", order.client_order_id, "FEED_STALE")]
    # While it is silent, a late row of it (event time older than the bound: old news) adds nothing ...
    more = e.on_signals([row(T0 + 100 * NS_PER_SECOND, 8.0, trade_id=50)])
    assert more.commands == [] and more.events == []
    # ... and may reduce, flagged reduce-only, which risk approves.
    less = e.on_signals([row(T0 + 150 * NS_PER_SECOND, 1.0, trade_id=51)])
    (cut,) = submits(less)
    assert (cut.plan.side, cut.plan.quantity_mw, cut.reduce_only) == (-1, 2.0, True) and denials(less) == []
    # It speaks again: ACTIVE, with the numbers, and it may add exposure again.
    back = e.on_signals([row(T0 + 800 * NS_PER_SECOND, 8.0, trade_id=99)])
    (resumed,) = [ev for ev in back.events if ev.kind == "FEED_RESUMED"]
    assert (resumed.detail["from"], resumed.detail["to"]) == ("REDUCING", "ACTIVE")
    # silent since T0: the late rows were old news, not the feed speaking again
    assert resumed.detail["silent_s"] == 800.0 and resumed.detail["bound_s"] == bound_s
    assert resumed.detail["reducing_s"] == (resumed.ts_ns - stale.ts_ns) / NS_PER_SECOND
    assert [(s.plan.side, s.reduce_only) for s in submits(back)] == [(1, False)]
    assert e.state.stale == {}


def test_events_at_the_same_moment_are_distinct_rows_and_a_replay_is_the_same_row() -> None:
    from connectors.questdb.execution_rows import event_rows
    from wattflow.events import Event

    same_time = [Event(T0, "FEED_STALE", PRODUCT, "WARNING", {"silent_s": 630.0}),
                 Event(T0, "FEED_STALE", OTHER, "WARNING", {"silent_s": 630.0}),
                 Event(T0, "RISK_DENIED", PRODUCT, "WARNING", {"reason": "MAX_TOTAL_POSITION", "detail": "a"}),
                 Event(T0, "RISK_DENIED", PRODUCT, "WARNING", {"reason": "MAX_TOTAL_POSITION", "detail": "b"})]
    ids = event_rows(same_time, "execution").frame["event_id"].tolist()
    assert len(set(ids)) == 4
    assert event_rows(same_time, "execution").frame["event_id"].tolist() == ids
