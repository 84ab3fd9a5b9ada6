"""R8 for orders: a simulated feed through ingest, signals and execution; the same signals give the same orders.

Also checked on the same run: no order for a product at or after its gate closure, and no clip asks more than
the configured share of the depth the signal saw.
"""

from __future__ import annotations

import hashlib
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
from flows import execution as execution_flow
from flows import signals as signals_flow
from operators.sizing import client_order_id
from paper.server import serve
from paper.simulator import simulate_day
from tests.checks import Decision, decision_diff, mutations_go_red, under_another_id, venue_decisions
from tests.helpers import keyed_diff, produce, run_ingest, with_topics
from tests.trading import ADMIN, API, orders, venue_settings
from wattflow.domain import Product, gate_closure_ns
from wattflow.settings import Settings
from wattflow.stack.process import free_port

pytestmark = pytest.mark.stack


def decided(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Every SUBMIT on the orders topic, every term of the order (a list: a doubled record shows)."""
    return [(r["client_order_id"], r["product"], r["side"], r["price_eur_per_mwh"], r["quantity_mw"], r["tif"],
             r["ts_ns"]) for r in records if r["action"] == "SUBMIT"]


def orders_hash(rows: list[tuple[Any, ...]]) -> str:
    return hashlib.sha256(repr(sorted(rows)).encode()).hexdigest()


def test_the_same_signals_give_the_same_orders_and_none_after_gate_closure(settings: Settings, unique: str,
                                                                           tmp_path: Path) -> None:
    # One partition per topic: the execution engine then reads the signals in one order (see the README on
    # what several partitions change).
    s = with_topics(settings, unique, partitions=1)
    day = date(2018, 3, 25)
    frame = FeedFrame.concat([day_ahead_feed(day_ahead_day(None, "DE-AT-LU", day)),
                              simulate_day("DE-AT-LU", day, seed=5, scale=0.08, durations_min=(15, 60))])
    frame = frame.sort_by_time()
    produce(s, s.topics.raw, json_lines(frame), frame.key_strings().tolist())
    run_ingest(s)
    run_main(signals_flow.get_flow(s, tail=False, batch_size=5000))

    feed = write_feed(frame, tmp_path / "feed.parquet")
    products = frame.products()
    opened = max(Product.parse(p).trading_window().open_ns for p in products)
    messages = {(item.partition, item.offset): item.raw
                for item in read_topic(s.kafka, s.topics.signals, idle_timeout_s=3)}
    rows = [row for raw in messages.values() for row in signal_rows(orjson.loads(raw))]
    triggers = {client_order_id(r.product, r.model, r.ts_ns, r.trade_id): (r.model, r.ts_ns, r.trade_id)
                for r in rows}
    runs: list[tuple[list[tuple[Any, ...]], list[Decision]]] = []
    for run in ("first", "second"):
        venue = serve(feed, free_port(), API, admin_key=ADMIN, rate_limit_per_s=100_000, background=True)
        venue.set_clock(opened + 1)  # every product open, none closed: the venue takes every order
        try:
            topics = s.topics.model_copy(update={"orders": f"{s.topics.orders}.{run}",
                                                 "events": f"{s.topics.events}.{run}"})
            ensure_topics(s.kafka, {topics.orders: 1, topics.events: 1})
            r = venue_settings(s.model_copy(update={"topics": topics}), venue, max_orders_per_interval=100_000,
                               max_total_position_mw=100_000.0)
            run_main(execution_flow.get_flow(r, tail=False, batch_size=700 if run == "first" else 4000))
            records = orders(r)
            books = [decision for _, decision in venue_decisions(venue, triggers)]
            runs.append((decided(records), books))
            refused = {(x["status"], x["reason"]) for x in records
                       if x["action"] == "SUBMIT" and x["status"] != "ACKED"}
            assert len(books) == len(runs[-1][0]), refused
        finally:
            venue.stop()

    (first_records, first_books), (second_records, second_books) = runs
    # The same signals give the same orders: the venue's books of the two runs keyed by decision (product,
    # signal, side, price, quantity, each counted) and the orders recorded, every term, each counted.
    books_diff = decision_diff(first_books, second_books)
    records_diff = keyed_diff(first_records, second_records)
    red = mutations_go_red(lambda evidence: decision_diff(first_books, evidence), second_books, under_another_id)
    print(f"\nR8 (orders): the venue's books of two runs (batches of 700 and 4,000), {len(first_books)} and "
          f"{len(second_books)} orders, keyed by decision: {books_diff}; orders recorded: {records_diff}\n"
          f"R8 red by hand: {red}")
    assert books_diff.same, f"the venue's books: {books_diff}"
    assert records_diff.same, f"orders recorded: {records_diff}"
    submits = [x for x in records if x["action"] == "SUBMIT"]
    assert len(submits) > 20
    assert all(x["ts_ns"] < gate_closure_ns(x["product"]) for x in submits)
    market = {(row.product, row.ts_ns): row.market for row in rows}
    share = s.execution.depth_share
    for order in submits:
        seen = market[(order["product"], order["ts_ns"])]
        depth = seen.ask_depth_near_mid_mw if order["side"] > 0 else seen.bid_depth_near_mid_mw
        assert order["quantity_mw"] <= share * depth + 1e-9
    print(f"R8 (orders): {len(first_records)} orders from {len(products)} products, hash "
          f"{orders_hash(first_records)[:16]} == {orders_hash(second_records)[:16]}; none at or after gate closure; "
          f"depth share {share}")
