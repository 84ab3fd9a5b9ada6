"""The tick-to-order benchmark as a use of the load test: its market is a valid ``loadtest`` load whose truth
the load test can compute, phase after phase over the same products; the hand-written loop's truth; the
history the truth of a later phase is computed over (no servers, no timings)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import orjson

from benchmarks.bench_tick_to_order import NS, T0, Generator, product_keys, schedule_ns
from connectors.wire.market import decode_batch
from loadtest.baseline import expected_orders as baseline_orders
from loadtest.baseline import order_id
from loadtest.load import Load
from loadtest.reference import ExpectedOrder, expected_store
from loadtest.run import LoadTest, Options
from loadtest.stages import trade_offsets
from loadtest.system import SYSTEMS
from operators.validate import ProductWindows, validate_batch
from wattflow.batches import RawBatch
from wattflow.settings import Settings


def test_schedule_is_evenly_spaced_from_the_phase_start() -> None:
    assert schedule_ns(10_000, 5).tolist() == [0, 100_000, 200_000, 300_000, 400_000]
    assert schedule_ns(3, 4).tolist() == [0, 333_333_333, 666_666_667, 1_000_000_000]


def test_market_is_a_load_the_load_test_can_key() -> None:
    generator = Generator(product_keys(2), source="t2otest")
    day_ahead, load = generator.dayahead(), generator.phase(1_000, 1.0)
    assert len(load) == 1_000 and (load.kind == 0).mean() == 0.5
    events = [orjson.loads(v) for v in load.values]
    # the load's columns say what the messages say: kind, product, event time, trade id, seq, source
    for event, kind, product, ts, trade, seq in zip(events, load.kind.tolist(), load.product.tolist(),
                                                    load.ts_ns.tolist(), load.trade_id.tolist(), load.seq.tolist(),
                                                    strict=True):
        assert (event["type"], event["product"], event["ts_ns"], event["seq"]) == (
            ("trade", "book")[kind], product, ts, seq)
        assert event.get("trade_id", -1) == trade and event["source"] == "t2otest"
    # market time runs with the schedule: each message's event time is T0 + its intended offset
    assert (load.ts_ns - T0 == load.offsets_ns).all()
    # each product's book updates alternate bid and ask, so both sides of its book are known
    sides = [e["side"] for e in events if e["type"] == "book" and e["product"] == generator.products[0]]
    assert sides[:4] == ["BUY", "SELL", "BUY", "SELL"]
    both = Load.concat([day_ahead, load])
    raw = RawBatch("raw", 0, list(both.values), np.arange(len(both)), np.zeros(len(both), dtype=np.int64))
    checked = validate_batch(decode_batch(raw), ProductWindows())
    assert not checked.dead and len(checked.ticks) == 500 and len(checked.book) == 500 and len(checked.dayahead) == 2
    store = expected_store(both)
    assert len(store.ticks_seq) == 500 and len(store.book_seq) == 500 and store.dayahead == 2 and not store.dead_rows
    # every trade is found again from an order's (product, signal_ts_ns)
    assert len(trade_offsets(load)) == 500


def test_later_phase_goes_on_in_event_time_with_new_ids() -> None:
    generator = Generator(product_keys(2))
    first = generator.phase(1_000, 1.0)
    second = generator.phase(1_000, 0.01)
    assert second.ts_ns[0] > first.ts_ns[-1]
    assert second.trade_id[second.kind == 0][0] == first.trade_id[first.kind == 0][-1] + 1
    assert second.seq[0] == first.seq[-1] + 1
    assert not set(trade_offsets(first)) & set(trade_offsets(second))


def test_hand_written_loop_orders_at_its_cadence() -> None:
    generator = Generator(product_keys(2))
    load = generator.phase(1_000, 0.2)  # 200 messages, 50 trades per product 4 ms apart
    orders = baseline_orders(load, ttl_s=0.02)
    for product in generator.products:
        times = sorted(o.signal_ts_ns for o in orders.values() if o.product == product)
        trades = load.ts_ns[(load.kind == 0) & (load.product == product)]
        assert times[0] == trades[0]
        assert all(later - earlier >= 0.02 * NS for earlier, later in itertools.pairwise(times))
        assert len(times) == len(trades) // 5  # a trade every 4 ms: every fifth one orders
    assert all(cid == order_id(o.product, o.signal_ts_ns) for cid, o in orders.items())


class _Recording:
    """A system whose truth is 'one order per trade', recording the loads it was asked about."""

    name, stores = "recording", False

    def __init__(self) -> None:
        self.asked: list[int] = []

    def start(self, env: dict[str, str], logs: Path) -> list[object]:
        raise AssertionError("not started in a unit test")

    def expected_orders(self, load: Load, env: dict[str, str]) -> dict[str, ExpectedOrder]:
        self.asked.append(len(load))
        rows = np.flatnonzero(load.kind == 0).tolist()
        return {f"{load.product[r]}|{load.ts_ns[r]}": ExpectedOrder(load.product[r], int(load.ts_ns[r])) for r in rows}


def test_truth_of_a_phase_is_computed_over_everything_sent_before_it(tmp_path: Path) -> None:
    system = _Recording()
    test = LoadTest(Settings.load(os.devnull), Options(reference_over_history=True), tmp_path,
                    products=product_keys(2), clock_ns=T0, source="t2otest", system=system)  # type: ignore[arg-type]
    generator = Generator(product_keys(2))
    first, second = generator.phase(1_000, 0.1), generator.phase(1_000, 0.2)
    assert len(test._expected_orders(first)) == 50
    got = test._expected_orders(second)
    assert system.asked == [100, 300]  # the second phase's truth saw the first phase too...
    assert set(got) == {f"{p}|{t}" for p, t in trade_offsets(second)}  # ...and keeps only its own trades' orders


def test_systems_name_their_processes() -> None:
    assert set(SYSTEMS) == {"trading", "chain", "baseline"}
    assert SYSTEMS["trading"].stores and SYSTEMS["chain"].stores and not SYSTEMS["baseline"].stores
