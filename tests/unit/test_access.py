"""Market access as pure logic: the rhythm kernel and the coverages against NumPy references, the fill-probability
fit, order-path availability, and the engine's decisions on access (no servers)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from connectors.venue.desk import local_report
from operators.access import AccessSettings, AccessState, coverage, tolerance_ns
from operators.access_prediction import fill_labels, fit_logistic, logistic
from operators.execution import EngineSettings, ExecutionEngine
from operators.kernels.rhythm import RhythmState, stream_rhythm
from operators.order_path import OrderPath
from wattflow.domain import NS_PER_MINUTE, NS_PER_SECOND, gate_closure_ns
from wattflow.enums import OrderAction
from wattflow.orders import OrderRecord, Submit
from wattflow.signals import MarketSnapshot, SignalRow

PRODUCT = "DE-LU:2018-10-28T12:00Z:PT60M"
CLOSE = gate_closure_ns(PRODUCT)
T0 = CLOSE - 180 * NS_PER_MINUTE


def rhythm_reference(ts_ns: np.ndarray, weight: float, cap: float) -> np.ndarray:
    """The rhythm formula written out with Python floats, one event at a time."""
    out, rhythm, last = [], math.nan, None
    for ts in ts_ns.tolist():
        t = ts if last is None else max(ts, last)
        if last is not None:
            gap = float(t - last)
            if gap > 0 and math.isnan(rhythm):
                rhythm = gap
            elif gap > 0:
                rhythm = (1 - weight) * rhythm + weight * min(gap, cap * rhythm)
        last = t
        out.append(rhythm)
    return np.asarray(out)


def test_the_rhythm_kernel_equals_its_reference_whatever_the_batching() -> None:
    rng = np.random.default_rng(3)
    gaps = rng.exponential(2e9, 2_000).astype(np.int64)
    gaps[rng.random(2_000) < 0.2] = 0  # several levels at one instant
    gaps[700] = 1_200 * NS_PER_SECOND  # an outage
    ts = T0 + np.cumsum(gaps)
    expected = rhythm_reference(ts, 0.05, 6.0)
    state = RhythmState()
    pieces = [stream_rhythm(state, part, weight=0.05, cap_factor=6.0) for part in np.array_split(ts, [1, 5, 700, 1333])]
    got = np.concatenate(pieces)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    assert np.allclose(got[1:], expected[1:], rtol=1e-12, atol=0)
    # Winsorised: the 20-minute outage moves the rhythm by at most weight x (cap - 1) of itself.
    assert got[700] <= got[699] * (1 + 0.05 * 5) + 1e-6


def test_coverage_is_tolerance_over_silence_beyond_the_tolerance() -> None:
    silence = np.array([0.0, 60e9, 120e9, 240e9, 1200e9, 50e9])
    tolerance = np.array([120e9, 120e9, 120e9, 120e9, 120e9, np.nan])
    assert coverage(silence, tolerance).tolist() == [1.0, 1.0, 1.0, 0.5, 0.1, 1.0]
    assert tolerance_ns(np.array([10e9, 30e9, np.nan]), 6.0, 120e9)[:2].tolist() == [120e9, 180e9]


def test_a_book_silence_opens_a_gap_drops_coverage_and_ends_with_the_next_update() -> None:
    state = AccessState(PRODUCT, AccessSettings())
    book = T0 + np.arange(0, 600) * 10 * NS_PER_SECOND  # every 10 s for 100 minutes: tolerance 2 min (floor)
    tolerances, _, _ = state.on_book(book)
    state.finish()
    last = int(book[-1])
    trades = np.array([last + 60 * NS_PER_SECOND, last + 8 * NS_PER_MINUTE, last + 20 * NS_PER_MINUTE])
    book_cov, _ = state.on_trades(trades, np.full(3, last), np.full(3, tolerances[-1]))
    state.finish()
    assert book_cov.tolist() == [1.0, 0.25, 0.1]
    state.on_book(np.array([last + 21 * NS_PER_MINUTE]))
    state.finish()
    events = state.take_events()
    assert [(e.kind, e.ts_ns, e.detail["start_ns"]) for e in events] == [
        ("FEED_GAP", int(trades[1]), last), ("FEED_GAP_ENDED", last + 21 * NS_PER_MINUTE, last)]
    assert events[1].detail["seen_open"] is True and events[1].detail["silent_s"] == 21 * 60


def test_fill_labels_count_the_volume_we_saw_before_the_horizon_and_the_gate() -> None:
    minute = NS_PER_MINUTE
    ts = np.array([0, 1, 2, 20, 21]) * minute + T0
    quantity = np.array([0.5, 0.6, 0.5, 2.0, 2.0])
    access = np.array([1.0, 1.0, 0.2, 1.0, 1.0])
    labels = fill_labels(ts, quantity, access, int(T0 + 30 * minute), clip_mw=1.0, horizon_min=15.0)
    # After trade 0: 0.6 seen (0.5 at 2 min unseen) -> 0; after 1: 0 seen in 15 min -> 0; after 2: none within
    # 15 min -> 0; after 20 min: 2.0 at 21 -> 1; the last: nothing after -> 0.
    assert labels.tolist() == [0.0, 0.0, 0.0, 1.0, 0.0]


def test_the_logistic_fit_recovers_known_coefficients() -> None:
    rng = np.random.default_rng(5)
    x = np.vstack([np.ones(20_000), rng.normal(size=20_000), rng.normal(size=20_000)])
    truth = np.array([0.5, -1.0, 2.0])
    y = (rng.random(20_000) < logistic(x, truth)).astype(np.float64)
    assert np.allclose(fit_logistic(x, y), truth, atol=0.1)


def test_order_path_availability_falls_with_failures_and_recovers_with_market_time() -> None:
    path = OrderPath(half_life_ns=300 * NS_PER_SECOND, tolerated_failures=3.0)
    assert path.availability(T0) == 1.0
    for k in range(10):
        path.on_failure(T0 + k, "REJECTED:PRICE_OUTSIDE_LIMITS")
    assert math.isclose(path.availability(T0 + 10), math.exp(-10 / 3), rel_tol=1e-6)
    half_lives = math.log2(10 / (3 * math.log(2)))  # back to 0.5
    assert path.availability(T0 + 10 + round((half_lives - 0.05) * 300 * NS_PER_SECOND)) < 0.5
    assert path.availability(T0 + 10 + round((half_lives + 0.05) * 300 * NS_PER_SECOND)) > 0.5


def signal(ts_ns: int, target: float, *, feed_access: float = 1.0, fill_probability: float = 0.9,
           trade_id: int = 1) -> SignalRow:
    minutes = (CLOSE - ts_ns) / NS_PER_MINUTE
    return SignalRow(PRODUCT, "m", ts_ns, trade_id, target,
                     MarketSnapshot(minutes, 49.0, 51.0, 50.0, 40.0, 40.0, 200.0, feed_access, fill_probability))


def test_the_engine_adds_no_exposure_while_blind_and_says_so_with_the_numbers() -> None:
    engine = ExecutionEngine(EngineSettings(min_access=0.5))
    out = engine.on_signals([signal(T0, 8.0, feed_access=0.3)])
    assert [c for c in out.commands if isinstance(c, Submit)] == []
    (lost,) = [e for e in out.events if e.kind == "ACCESS_LOST"]
    assert lost.detail["access"] == 0.3 and lost.detail["feed_access"] == 0.3 and lost.detail["min_access"] == 0.5
    out = engine.on_signals([signal(T0 + 60 * NS_PER_SECOND, 8.0, feed_access=0.9, trade_id=2)])
    assert len([c for c in out.commands if isinstance(c, Submit)]) == 1
    (back,) = [e for e in out.events if e.kind == "ACCESS_RESTORED"]
    assert back.detail["blind_s"] == 60.0


def _reject(cid: str, k: int) -> dict[str, object]:
    return {"exec_id": 1, "kind": "reject", "ts_ns": T0 + k, "client_order_id": cid, "product": PRODUCT,
            "side": 1, "status": "REJECTED", "reason": "PRICE_OUTSIDE_LIMITS", "last_quantity_mw": 0.0}


def test_a_burst_of_rejects_and_a_venue_outage_close_the_order_path_until_it_recovers() -> None:
    engine = ExecutionEngine(EngineSettings(min_access=0.5, clip_interval_ns=0))
    engine.on_signals([signal(T0, 0.0)])
    out = engine.on_reports([_reject(f"r{k}", k) for k in range(5)])
    (degraded,) = [e for e in out.events if e.kind == "ORDER_PATH_DEGRADED"]
    assert degraded.detail["failures_by_reason"] == {"REJECTED:PRICE_OUTSIDE_LIMITS": 3}
    out = engine.on_signals([signal(T0 + NS_PER_SECOND, 8.0, trade_id=2)])
    assert not [c for c in out.commands if isinstance(c, Submit)]
    assert [e.kind for e in out.events] == ["ACCESS_LOST"]
    # The order sink's own word on an order the open breaker kept (a venue outage) counts too.
    blocked = OrderRecord(T0 + 2, PRODUCT, "b1", OrderAction.SUBMIT, "BLOCKED", "m", 1, 49.0, 1.0)
    report = local_report(blocked)
    assert report is not None and report["kind"] == "status" and report["exec_id"] == -1
    before = engine.order_path.failures
    engine.on_reports([report])
    assert engine.order_path.failures > before
    # Without another failure the path recovers with market time: 6 failures -> 0.5 after log2(6 / (3 ln 2)) = 1.5
    # half-lives (7.5 min); the product trades again.
    out = engine.on_signals([signal(T0 + 10 * NS_PER_MINUTE, 8.0, trade_id=3)])
    assert [e.kind for e in out.events if e.kind.startswith("ACCESS")] == ["ACCESS_RESTORED"]
    assert len([c for c in out.commands if isinstance(c, Submit)]) == 1


def test_a_position_that_cannot_be_worked_before_the_gate_is_flattened() -> None:
    engine = ExecutionEngine(EngineSettings(min_fill_probability=0.1, clip_interval_ns=0))
    (order,) = [c for c in engine.on_signals([signal(T0, 2.0)]).commands if isinstance(c, Submit)]
    plan = order.plan
    engine.on_reports([{"exec_id": 1, "kind": "fill", "ts_ns": T0 + 1, "client_order_id": plan.client_order_id,
                        "product": PRODUCT, "side": 1, "price_eur_per_mwh": 49.0, "status": "FILLED",
                        "last_price_eur_per_mwh": 49.0, "last_quantity_mw": plan.quantity_mw}])
    out = engine.on_signals([signal(T0 + 30 * NS_PER_SECOND, 2.0, fill_probability=0.05, trade_id=2)])
    (flag,) = [e for e in out.events if e.kind == "POSITION_UNWORKABLE"]
    assert flag.detail["fill_probability"] == 0.05 and flag.detail["position_mw"] == plan.quantity_mw
    (sell,) = [c for c in out.commands if isinstance(c, Submit)]
    assert int(sell.plan.side) < 0 and sell.reduce_only is False  # a reducing order, toward flat


def test_old_rows_without_access_count_as_full_access() -> None:
    engine = ExecutionEngine(EngineSettings(min_access=0.5))
    old = signal(T0, 8.0)
    old = dataclasses.replace(old, market=dataclasses.replace(old.market, feed_access=math.nan,
                                                               fill_probability=math.nan))
    out = engine.on_signals([old])
    assert len([c for c in out.commands if isinstance(c, Submit)]) == 1 and not out.events
