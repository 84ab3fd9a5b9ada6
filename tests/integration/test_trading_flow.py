"""The trading flow (raw topic -> features -> models -> engine -> venue in one dataflow) against the real servers.

R8 for the hot path: the same raw topic gives the same signals (full records, every field, in a list: a
duplicate or a missing row shows) and the same orders whatever the batching; every order the venue acked is
one the flow recorded, and none after its product's gate closure.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import astuple
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from bytewax.testing import run_main

from connectors.feeds.files import FeedFrame, day_ahead_feed, json_lines, write_feed
from connectors.feeds.smard import day_ahead_day
from connectors.kafka.admin import ensure_topics
from connectors.kafka.reader import read_topic
from connectors.wire.signals import signal_rows
from flows import trading as trading_flow
from paper.server import serve
from paper.simulator import simulate_day
from tests.checks import mutations_go_red
from tests.helpers import keyed_diff, produce, with_topics
from tests.trading import ADMIN, API, acks_at_venue, orders, venue_settings
from wattflow.domain import Product, gate_closure_ns
from wattflow.settings import Settings
from wattflow.stack.process import free_port

pytestmark = pytest.mark.stack


def _day() -> FeedFrame:
    day = date(2018, 3, 25)
    frame = FeedFrame.concat([day_ahead_feed(day_ahead_day(None, "DE-AT-LU", day)),
                              simulate_day("DE-AT-LU", day, seed=5, scale=0.08, durations_min=(15, 60))])
    return frame.sort_by_time()


def signal_table(settings: Settings) -> list[tuple[Any, ...]]:
    """Every signal row on the topic, every field (NaN as a string so that equal rows compare equal), sorted."""
    rows = []
    # The reader yields a columnar message once per row: one per (partition, offset) is the message itself.
    messages = {(item.partition, item.offset): item.raw
                for item in read_topic(settings.kafka, settings.topics.signals, idle_timeout_s=3)}
    for raw in messages.values():
        for row in signal_rows(orjson.loads(raw)):
            market = tuple("nan" if math.isnan(v) else v for v in astuple(row.market))
            rows.append((row.product, row.model, row.ts_ns, row.trade_id, row.target_position_mw, market))
    return sorted(rows)


def decided(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((r["client_order_id"], r["product"], r["side"], r["price_eur_per_mwh"], r["quantity_mw"], r["tif"],
                   r["ts_ns"]) for r in records if r["action"] == "SUBMIT")


def test_the_trading_flow_gives_the_same_signals_and_orders_whatever_the_batching(settings: Settings, unique: str,
                                                                                   tmp_path: Path) -> None:
    """Signals: equal over one raw partition with batches of 700 and over three partitions with batches of 4,000
    (day-ahead prices keyed by area then sit on another partition than most products). Orders: equal over one
    partition whatever the batching; over several, the engine's clock (gate closures) sees products interleave
    as they arrive (README, "The trading flow"). Red if a row is lost or doubled (list, not set), or if a field
    differs; and if the venue acked an id the flow did not record, or one twice."""
    one = with_topics(settings, unique, partitions=1)
    three = with_topics(settings, f"{unique}p3", partitions=3)
    frame = _day()
    for s in (one, three):
        produce(s, s.topics.raw, json_lines(frame), frame.key_strings().tolist())
    feed = write_feed(frame, tmp_path / "feed.parquet")
    opened = max(Product.parse(p).trading_window().open_ns for p in frame.products())
    runs = []
    for run, s, batch_size in (("a", one, 700), ("b", three, 4000), ("c", one, 4000)):
        venue = serve(feed, free_port(), API, admin_key=ADMIN, rate_limit_per_s=100_000, background=True)
        venue.set_clock(opened + 1)  # every product open, none closed: the venue takes every order
        try:
            names = ("orders", "events", "signals", "features", "positions", "execution_reports", "decisions")
            topics = s.topics.model_copy(update={name: f"{getattr(s.topics, name)}.{run}" for name in names})
            ensure_topics(s.kafka, {getattr(topics, name): 1 for name in names})
            r = venue_settings(s.model_copy(update={"topics": topics}), venue, max_orders_per_interval=100_000,
                               max_total_position_mw=100_000.0)
            run_main(trading_flow.get_flow(r, tail=False, batch_size=batch_size))
            runs.append((signal_table(r), orders(r), acks_at_venue(venue)))
        finally:
            venue.stop()

    (signals_a, records_a, acked_a), (signals_b, _, acked_b), (signals_c, records_c, acked_c) = runs
    assert len(signals_a) > 1000
    # Keyed and counted (a lost or doubled row is named), every field: run a is the truth for b and c.
    signals_ab, signals_ac = keyed_diff(signals_a, signals_b), keyed_diff(signals_a, signals_c)
    orders_ac = keyed_diff(decided(records_a), decided(records_c))
    assert signals_ab.same, f"3 partitions, batches of 4,000: {signals_ab}"
    assert signals_ac.same, f"batches of 4,000: {signals_ac}"
    assert len(decided(records_a)) > 20
    assert orders_ac.same, f"orders, batches of 4,000: {orders_ac}"
    # Red on this run's own evidence: one signal of run b and one order of run c dropped, and doubled.
    red_signals = mutations_go_red(lambda rows: keyed_diff(signals_a, rows), signals_b, at=len(signals_b) // 2)
    red_orders = mutations_go_red(lambda rows: keyed_diff(decided(records_a), rows), decided(records_c))
    # The venue's own log is the truth: each id it acked is one SUBMIT the flow recorded as acked, none twice.
    for records, acked in ((records_a, acked_a), (records_c, acked_c)):
        recorded = Counter(r["client_order_id"] for r in records if r["action"] == "SUBMIT" and r["status"] == "ACKED")
        assert Counter(acked) == recorded
    assert len(acked_b) > 20
    assert all(order[6] < gate_closure_ns(order[1]) for order in decided(records_a))
    print(f"\nR8 (trading flow): {len(signals_a)} signals equal over 1 and 3 partitions, batches of 700 and 4000; "
          f"{len(decided(records_a))} orders equal over 1 partition ({orders_ac}); each acked id recorded once\n"
          f"R8 (trading flow) red by hand, signals: {red_signals}\nR8 (trading flow) red by hand, orders: {red_orders}")
