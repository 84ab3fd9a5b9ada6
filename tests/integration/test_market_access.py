"""Market access under an injected feed fault, through the trading flow against the real servers (Kafka, the paper
venue over HTTP): a busy product's book silenced for 20 minutes of market time.

Truths the flow did not write: the feed that was sent (where the silence starts and ends, the last book update
before it and the first after it), an uninterrupted run of the same day without the fault (the models' confidence
before access is applied), and the venue's own log of the orders it acked.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import date
from typing import Any

import numpy as np
import orjson
import pytest
from bytewax.testing import run_main

from connectors.feeds.files import BOOK, TRADE, FeedFrame, day_ahead_feed, json_lines, write_feed
from connectors.feeds.smard import day_ahead_day
from connectors.kafka.admin import ensure_topics
from connectors.kafka.reader import read_topic
from connectors.wire.events import decode_event
from connectors.wire.features import decode_features
from flows import trading as trading_flow
from paper.feed_faults import Silence, silence
from paper.server import serve
from paper.simulator import simulate_day
from tests.helpers import keyed_diff, produce, with_topics
from tests.trading import ADMIN, API, acks_at_venue, orders, venue_settings
from wattflow.domain import NS_PER_MINUTE, Product, gate_closure_ns
from wattflow.features import ACCESS_FEATURES
from wattflow.settings import Settings
from wattflow.stack.process import free_port

pytestmark = pytest.mark.stack

NAMES = ("orders", "events", "signals", "features", "positions", "execution_reports")
MIN_ACCESS = 0.5


def _day() -> FeedFrame:
    day = date(2018, 3, 25)
    frame = FeedFrame.concat([day_ahead_feed(day_ahead_day(None, "DE-AT-LU", day)),
                              simulate_day("DE-AT-LU", day, seed=5, scale=0.08, durations_min=(15, 60))])
    return frame.sort_by_time()


def _busiest(frame: FeedFrame) -> str:
    """The product with the most trades from 100 to 60 minutes before its gate closure (ties: the first)."""
    keys, trades = frame.key_strings(), frame.event_type == TRADE
    counts = {p: int(((keys == p) & trades & (frame.ts_ns >= gate_closure_ns(p) - 100 * NS_PER_MINUTE)
                      & (frame.ts_ns < gate_closure_ns(p) - 60 * NS_PER_MINUTE)).sum()) for p in frame.products()}
    return max(counts, key=lambda p: counts[p])


def _run(settings: Settings, frame: FeedFrame, tmp: Any, run: str) -> dict[str, Any]:
    """Run the trading flow once over ``frame`` on its own topics and venue; what it wrote, and the venue's acks."""
    s = with_topics(settings, run, partitions=1)
    produce(s, s.topics.raw, json_lines(frame), frame.key_strings().tolist())
    venue = serve(write_feed(frame, tmp / f"{run}.parquet"), free_port(), API, admin_key=ADMIN,
                  rate_limit_per_s=100_000, background=True)
    venue.set_clock(max(Product.parse(p).trading_window().open_ns for p in frame.products()) + 1)
    try:
        ensure_topics(s.kafka, {getattr(s.topics, name): 1 for name in NAMES})
        r = venue_settings(s, venue, max_orders_per_interval=100_000, max_total_position_mw=100_000.0,
                           min_access=MIN_ACCESS)
        run_main(trading_flow.get_flow(r, tail=False, batch_size=2_000))
        features: dict[tuple[str, int, int], dict[str, float]] = {}
        for item in {(i.partition, i.offset): i.raw for i in read_topic(r.kafka, r.topics.features,
                                                                         idle_timeout_s=3)}.values():
            batch = decode_features(item)
            for k, (ts, trade) in enumerate(zip(batch.ts_ns.tolist(), batch.trade_id.tolist(), strict=True)):
                features[(batch.product, ts, trade)] = {name: float(batch.column(name)[k])
                                                        for name in (*ACCESS_FEATURES, "trades_per_min")}
        signals: dict[tuple[str, str, int, int], tuple[float, float]] = {}
        for raw in {(i.partition, i.offset): i.raw for i in read_topic(r.kafka, r.topics.signals,
                                                                        idle_timeout_s=3)}.values():
            message = orjson.loads(raw)
            columns, market = message["columns"], message["market"]
            for k, (ts, trade) in enumerate(zip(columns["ts_ns"], columns["trade_id"], strict=True)):
                signals[(message["product"], message["model"], ts, trade)] = (columns["confidence"][k],
                                                                               market["feed_access"][k])
        events = [decode_event(i.raw)[0] for i in read_topic(r.kafka, r.topics.events, idle_timeout_s=3)]
        return {"features": features, "signals": signals, "events": events, "orders": orders(r),
                "acked": acks_at_venue(venue)}
    finally:
        venue.stop()


def access_series(features: dict[tuple[str, int, int], dict[str, float]]) -> list[tuple[Any, ...]]:
    """Every trade's access columns, keyed (product, time, trade id), NaN as a string: for exact, keyed compares."""
    return sorted((*key, *(("nan" if np.isnan(v) else v) for v in (row[n] for n in ACCESS_FEATURES)))
                  for key, row in features.items())


def test_a_silenced_book_drops_access_confidence_and_exposure_and_the_same_fault_gives_the_same_series(
        settings: Settings, unique: str, tmp_path: Any) -> None:
    """The busiest product's book is silenced for 20 minutes of market time, from 100 minutes before its gate.

    Bounds (tolerance ``tau`` = max(6 x the book's rhythm, 2 min), read from the FEED_GAP event and itself bounded
    here by 10 min): every trade of the product from the last book update before the silence + 2 tau until the first
    update after it has feed access <= 0.5; every trade from that first update on for 15 minutes has book coverage 1.
    Mean-reversion confidence is the unfaulted run's confidence x feed access, trade by trade. No order is submitted
    for the product between its ACCESS_LOST and ACCESS_RESTORED (no fills are fed back, so any order would add
    exposure); every id the venue acked is one the flow recorded. Two runs of the faulted feed give the same access
    series, keyed and exact (and the same hash)."""
    clean = _day()
    product = _busiest(clean)
    start = gate_closure_ns(product) - 100 * NS_PER_MINUTE
    end = start + 20 * NS_PER_MINUTE
    faulted, dropped = silence(clean, [Silence(product, start, end, (BOOK,))])
    assert dropped > 20, "the fault silenced a book that was moving"
    keys = faulted.key_strings()
    book_times = faulted.ts_ns[(keys == product) & (faulted.event_type == BOOK)]
    last_before = int(book_times[book_times < start].max())
    first_after = int(book_times[book_times >= end].min())

    base = _run(settings, clean, tmp_path, f"{unique}c")
    first = _run(settings, faulted, tmp_path, f"{unique}a")
    second = _run(settings, faulted, tmp_path, f"{unique}b")

    # The same feed and fault give the same access series (keyed and exact), whatever the run.
    series_a, series_b = access_series(first["features"]), access_series(second["features"])
    same = keyed_diff(series_a, series_b)
    assert same.same, f"access series differ between two runs of one feed: {same}"
    digest = hashlib.sha256(repr(series_a).encode()).hexdigest()[:16]
    assert digest == hashlib.sha256(repr(series_b).encode()).hexdigest()[:16]

    # The gap is an event with its start (the last book update before the silence: the feed's truth) and its end.
    gaps = [e for e in first["events"] if e.product == product and e.kind == "FEED_GAP"]
    ended = [e for e in first["events"] if e.product == product and e.kind == "FEED_GAP_ENDED"
             and e.detail["stream"] == "book" and e.detail["start_ns"] == last_before]
    assert [e.detail["start_ns"] for e in gaps if e.detail["start_ns"] == last_before] == [last_before]
    assert [(e.detail["end_ns"], e.detail["seen_open"]) for e in ended] == [(first_after, True)]
    tolerance_ns = round(gaps[[e.detail["start_ns"] for e in gaps].index(last_before)].detail["tolerance_s"] * 1e9)
    assert tolerance_ns <= 10 * NS_PER_MINUTE

    mine = sorted(((ts, row) for (p, ts, _), row in first["features"].items() if p == product), key=lambda x: x[0])
    blind = [(ts, row["feed_access"]) for ts, row in mine if last_before + 2 * tolerance_ns <= ts < first_after]
    recovered = [(ts, row["book_coverage"]) for ts, row in mine
                 if first_after <= ts < first_after + 15 * NS_PER_MINUTE]
    assert blind and all(access <= 0.5 for _, access in blind), blind
    assert recovered and all(cov == 1.0 for _, cov in recovered), recovered
    hour_before = [row["book_coverage"] for ts, row in mine if start - 60 * NS_PER_MINUTE <= ts < start]
    first_low = min(ts for ts, row in mine if ts >= start and row["feed_access"] < MIN_ACCESS)
    first_back = min(ts for ts, row in mine if ts >= first_low and row["feed_access"] >= MIN_ACCESS)

    # Confidence falls with access: mean reversion's confidence before access reads trades only, which the fault
    # left alone, so faulted / faulted access = unfaulted / unfaulted access, trade by trade (cross-multiplied).
    pairs = [(*first["signals"][key], *base["signals"][key])
             for key in first["signals"] if key[0] == product and key[1] == "mean_reversion"]
    assert len(pairs) == len([k for k in base["signals"] if k[0] == product and k[1] == "mean_reversion"])
    assert all(np.isclose(conf * clean_access, clean_conf * access, rtol=1e-12, atol=1e-12)
               for conf, access, clean_conf, clean_access in pairs)
    dimmed = [(conf, clean_conf) for conf, access, clean_conf, clean_access in pairs
              if access < MIN_ACCESS and clean_access == 1.0]
    assert dimmed and all(conf < clean_conf or clean_conf == 0 for conf, clean_conf in dimmed)

    # No exposure added while blind: no SUBMIT between ACCESS_LOST and ACCESS_RESTORED; the venue's log agrees.
    lost = [e for e in first["events"] if e.product == product and e.kind == "ACCESS_LOST"]
    restored = [e for e in first["events"] if e.product == product and e.kind == "ACCESS_RESTORED"]
    # Each ACCESS_LOST with the ACCESS_RESTORED that follows it in the engine's order (the events' own order).
    changes = [e for e in first["events"] if e.product == product and e.kind in {"ACCESS_LOST", "ACCESS_RESTORED"}]
    assert [e.kind for e in changes] == ["ACCESS_LOST", "ACCESS_RESTORED"] * (len(changes) // 2) + (
        ["ACCESS_LOST"] if len(changes) % 2 else [])
    windows = [(changes[k].ts_ns, changes[k + 1].ts_ns if k + 1 < len(changes) else 2**63)
               for k in range(0, len(changes), 2)]
    assert any(a <= first_low < b or a == first_low for a, b in windows), (windows, first_low)
    submits = [r for r in first["orders"] if r["action"] == "SUBMIT" and r["product"] == product]
    while_blind = [r["client_order_id"] for r in submits if any(a <= r["ts_ns"] < b for a, b in windows)]
    assert while_blind == [], ([(e.kind, (e.ts_ns - start) / 60e9, e.detail.get("access")) for e in lost + restored],
                               [((r["ts_ns"] - start) / 60e9, r["side"], r["quantity_mw"], r["status"]) for r in submits
                                if r["client_order_id"] in while_blind])
    recorded = {r["client_order_id"] for r in first["orders"] if r["action"] == "SUBMIT"}
    assert set(first["acked"]) <= recorded and len(first["acked"]) == len(set(first["acked"]))
    base_in_window = [r for r in base["orders"] if r["action"] == "SUBMIT" and r["product"] == product
                      and first_low <= r["ts_ns"] < first_back]
    by_kind: dict[str, int] = defaultdict(int)
    for e in first["events"]:
        by_kind[e.kind] += 1
    print(f"\nmarket access, book of {product} silenced {dropped} updates, 20 min from gate-100 min: tolerance "
          f"{tolerance_ns / 60e9:.1f} min; access < {MIN_ACCESS} from +{(first_low - start) / 60e9:.1f} min "
          f"(first trade below) to the first trade at/above it +{(first_back - end) / 60e9:.1f} min after the end; "
          f"{len(blind)} trades blind <= {max(a for _, a in blind):.3f}; book coverage 1 again at the first update "
          f"(+{(first_after - end) / 60e9:.2f} min); hour before: min book coverage {min(hour_before):.3f}; "
          f"mean-reversion confidence at blind trades {np.mean([f for f, _ in dimmed]):.3f} vs "
          f"{np.mean([c for _, c in dimmed]):.3f} unfaulted; submits while blind 0 "
          f"(unfaulted run: {len(base_in_window)}); {len(submits)} submits of the product in all; access series "
          f"hash {digest} twice; events {dict(sorted(by_kind.items()))}")
