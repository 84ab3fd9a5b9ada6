"""Correctness of the tick-to-order benchmark's schedule, load and statistics (no timings)."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from benchmarks.bench_tick_to_order import (
    NS,
    T0,
    Generator,
    event_ts,
    kept_up,
    next_trade_times,
    product_keys,
    schedule,
    scheduled_from_event,
    summary_ms,
)
from connectors.wire.market import decode_batch
from operators.validate import ProductWindows, validate_batch
from wattflow.batches import RawBatch


def test_schedule_is_absolute_and_evenly_spaced() -> None:
    sched = schedule(1_000, 10_000, 5)
    assert sched.tolist() == [1_000, 101_000, 201_000, 301_000, 401_000]
    assert schedule(0, 3, 4).tolist() == [0, 333_333_333, 666_666_667, 1_000_000_000]


def test_event_time_maps_back_to_the_scheduled_time() -> None:
    origin = 1_800_000_000 * NS
    sched = schedule(origin + 5 * NS, 1_000, 10)
    ts = event_ts(sched, origin)
    assert ts[0] == T0 + 5 * NS
    assert (scheduled_from_event(ts, origin) == sched).all()


def test_load_alternates_trades_and_book_per_product_and_passes_validation() -> None:
    origin = 1_800_000_000 * NS
    generator = Generator(product_keys(2), origin)
    load = generator.phase(origin + NS, 1_000, 1.0)
    assert len(load) == 1_000
    assert load.is_trade.mean() == 0.5
    trades = load.trade_id[load.is_trade]
    assert (np.diff(trades) == 1).all() and (load.trade_id[~load.is_trade] == -1).all()
    events = [orjson.loads(v) for v in load.values]
    for event, sched in zip(events, load.scheduled_ns.tolist(), strict=True):
        assert scheduled_from_event(event["ts_ns"], origin) == sched
    # each product's book updates alternate bid and ask, so both sides of its book are known
    sides = [e["side"] for e in events if e["type"] == "book" and e["product"] == generator.products[0]]
    assert sides[:4] == ["BUY", "SELL", "BUY", "SELL"]
    values: list[bytes | None] = [*generator.dayahead()[0], *load.values]
    raw = RawBatch("raw", 0, values, np.arange(len(values)), np.zeros(len(values), dtype=np.int64))
    checked = validate_batch(decode_batch(raw), ProductWindows())
    assert not checked.dead and len(checked.ticks) == 500 and len(checked.book) == 500 and len(checked.dayahead) == 2
    # a second phase continues the ids and the per-product turns
    more = generator.phase(origin + 3 * NS, 1_000, 0.01)
    assert more.trade_id[more.is_trade][0] == trades[-1] + 1


def test_next_trade_of_the_same_product() -> None:
    sched = np.array([0, 10, 20, 30, 40, 50], dtype=np.int64)
    is_trade = np.array([True, True, False, False, True, True])
    product = np.array([0, 1, 0, 1, 0, 1])
    assert next_trade_times(sched, is_trade, product).tolist() == [40, 50, -1, -1, -1, -1]


def test_summary_in_milliseconds() -> None:
    values = np.arange(1, 1001) * 1_000_000  # 1..1000 ms
    s = summary_ms(values)
    assert s["count"] == 1000 and s["max"] == 1000.0
    assert s["p50"] == pytest.approx(500.5) and s["p99"] == pytest.approx(990.01)
    assert s["p99.9"] == pytest.approx(999.001)
    assert np.isnan(summary_ms([])["p99"])


def test_kept_up_looks_at_growth_and_completeness() -> None:
    sched = np.arange(100, dtype=np.int64)
    flat = np.full(100, 20_000_000, dtype=np.int64)  # 20 ms all along
    assert kept_up(flat, sched, seen_share=1.0)[0]
    growing = (np.arange(100) * 10_000_000).astype(np.int64)  # 0 .. 990 ms
    assert not kept_up(growing, sched, seen_share=1.0)[0]
    assert not kept_up(flat, sched, seen_share=0.5)[0]
    assert not kept_up(np.array([], dtype=np.int64), np.array([], dtype=np.int64), seen_share=0.0)[0]
