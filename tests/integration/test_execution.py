"""The execution flow against real Kafka, QuestDB and the paper venue over HTTP."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from bytewax.testing import run_main

from connectors.kafka.reader import read_topic
from connectors.wire.control import control_message
from connectors.wire.signals import signal_records
from flows import execution as execution_flow
from paper.server import VenueServer
from tests.helpers import fetch, keyed_diff, produce, wal_applied, with_topics
from tests.trading import KEY, T0, acks_at_venue, orders, signals, start_venue, venue_settings
from wattflow.domain import NS_PER_SECOND
from wattflow.settings import Settings

pytestmark = pytest.mark.stack

@pytest.fixture
def venue(tmp_path: Path) -> Iterator[VenueServer]:
    server = start_venue(tmp_path)
    yield server
    server.stop()


def test_signals_become_orders_at_the_venue_once_even_when_the_flow_runs_again(
        settings: Settings, unique: str, venue: VenueServer) -> None:
    s = venue_settings(with_topics(settings, unique), venue, clip_interval_s=0.0, iceberg_display_mw=1.0)
    base = random.randrange(10**9)
    batch = signals([3.0, 3.0, 8.0, 8.0, -2.0], first_trade=base)
    records = signal_records(batch, s.topics.signals)
    produce(s, s.topics.signals, records.values, [str(k) for k in records.keys])
    produce(s, s.topics.control, [b"not json"], ["control"])  # bad input is a dead letter, not a crash

    run_main(execution_flow.get_flow(s, tail=False))
    first = orders(s)
    submitted = [o for o in first if o["action"] == "SUBMIT"]
    assert submitted and all(o["status"] == "ACKED" for o in submitted)
    acks = acks_at_venue(venue)
    assert sorted(acks) == sorted(o["client_order_id"] for o in submitted)  # each order once at the venue
    assert all(o["quantity_mw"] <= 0.25 * 30.0 for o in submitted)  # depth share of the 30 MW shown
    icebergs = [o for o in submitted if o["display_quantity_mw"] is not None]
    assert icebergs and all(o["display_quantity_mw"] == 1.0 for o in icebergs)
    with venue.lock:
        shown = {o.client_order_id: o.display_quantity_mw for o in venue.exchange.open_orders()}
    assert all(shown[o["client_order_id"]] == 1.0 for o in icebergs if o["client_order_id"] in shown)

    # The flow runs again over the same signals (as after a crash without recovery): same ids, replays only.
    run_main(execution_flow.get_flow(s, tail=False))
    everything = [o for o in orders(s) if o["action"] == "SUBMIT"]
    replayed = sorted(o["client_order_id"] for o in everything if o["status"] == "REPLAYED")
    assert len(everything) == 2 * len(submitted)
    assert replayed == sorted(o["client_order_id"] for o in submitted)
    assert len(acks_at_venue(venue)) == len(acks)

    dead = list(read_topic(s.kafka, s.topics.dlq, idle_timeout_s=3))
    assert [d.event["reason"] for d in dead] == ["BAD_CONTROL_MESSAGE"] * 2  # once per run
    assert dead[0].event["origin"].startswith(f"{s.topics.control}[0]@0")
    # One row per command and outcome: each order's ACKED row of the first run and REPLAYED row of the second.
    ids = ", ".join(f"'{o['client_order_id']}'" for o in submitted)
    stored = fetch(s, f"SELECT client_order_id, status FROM orders WHERE client_order_id IN ({ids}) "
                      "AND action = 'SUBMIT'")
    expected = [(o["client_order_id"], status) for o in submitted for status in ("ACKED", "REPLAYED")]
    assert keyed_diff(expected, stored).same, keyed_diff(expected, stored)


def orders_hash(rows: list[dict[str, Any]]) -> str:
    text = sorted((o["client_order_id"], o["side"], o["price_eur_per_mwh"], o["quantity_mw"], o["tif"])
                  for o in rows if o["action"] == "SUBMIT")
    return hashlib.sha256(repr(text).encode()).hexdigest()


def test_fills_move_positions_and_halt_cancels_at_the_venue(settings: Settings, unique: str,
                                                             venue: VenueServer) -> None:
    s = venue_settings(with_topics(settings, unique), venue, clip_interval_s=0.0, order_ttl_s=3600.0)
    base = random.randrange(10**9)
    # Later than the other test's signals, so this test's position rows are the product's latest.
    records = signal_records(signals([4.0, 4.0], first_trade=base, gap_s=600), s.topics.signals)
    produce(s, s.topics.signals, records.values, [str(k) for k in records.keys])
    run_main(execution_flow.get_flow(s, tail=False))
    (order,) = [o for o in orders(s) if o["action"] == "SUBMIT"]
    assert order["side"] == 1 and 49.0 <= order["price_eur_per_mwh"] < 51.0 and order["status"] == "ACKED"

    # A seller hits the bid through our price: the venue fills us; its reports go to the reports topic.
    venue.set_clock(T0 + 3600 * NS_PER_SECOND)
    reports = venue.exchange.reports
    fills = [r for r in reports if r.kind == "fill"]
    assert fills, "the trade through our bid filled the resting order"
    produce(s, s.topics.execution_reports, [orjson.dumps({**_asdict(r), "source": "venue"}) for r in reports],
            [r.client_order_id for r in reports])
    produce(s, s.topics.control, [control_message("halt", by="test")], ["control"])
    run_main(execution_flow.get_flow(s, tail=False))

    filled = sum(r.last_quantity_mw for r in fills)
    rows = wal_applied(s).query(f"SELECT position_mw FROM positions WHERE product = '{KEY}' "
                                "LATEST ON ts PARTITION BY product")
    assert rows and rows[0]["position_mw"] == pytest.approx(filled)
    events = [e.event for e in read_topic(s.kafka, s.topics.events, idle_timeout_s=3)]
    kinds = [e["kind"] for e in events]
    assert "TRADING_STATE_CHANGED" in kinds
    cancel_all = [o for o in orders(s) if o["action"] == "CANCEL_ALL"]
    assert cancel_all and cancel_all[-1]["status"].startswith("CANCELLED_")
    assert venue.exchange.open_orders() == []


def _asdict(report: Any) -> dict[str, Any]:
    return orjson.loads(orjson.dumps(report))


def test_r9_a_silent_product_goes_stale_within_the_bound_and_its_order_is_cancelled(
        settings: Settings, unique: str, tmp_path: Path) -> None:
    quiet, busy = KEY, "DE-LU:2018-10-28T13:00Z:PT60M"
    server = start_venue(tmp_path, [quiet, busy])
    try:
        s = venue_settings(with_topics(settings, unique), server, clip_interval_s=0.0, order_ttl_s=3600.0,
                           stale_after_s=600.0)
        base = random.randrange(10**9)
        first = signal_records(signals([3.0], first_trade=base, product=quiet), s.topics.signals)
        # The busy product keeps trading (flat target: no orders) every 60 s for 20 minutes.
        rest = signal_records(signals([0.0] * 20, first_trade=base + 1, product=busy, gap_s=60), s.topics.signals)
        produce(s, s.topics.signals, first.values, [str(k) for k in first.keys])
        produce(s, s.topics.signals, rest.values, [str(k) for k in rest.keys])
        run_main(execution_flow.get_flow(s, tail=False))
        (order,) = [o for o in orders(s) if o["action"] == "SUBMIT"]
        events = [e.event for e in read_topic(s.kafka, s.topics.events, idle_timeout_s=3)]
        (stale,) = [e for e in events if e["kind"] == "FEED_STALE"]
        cancels = [o for o in orders(s) if o["action"] == "CANCEL"]
        with server.lock:
            still_open = [o.client_order_id for o in server.exchange.open_orders()]
    finally:
        server.stop()
    print(f"\nR9: {quiet} silent; FEED_STALE after {stale['detail']['silent_s']:.0f} s of market time "
          f"(bound {stale['detail']['bound_s']:.0f} s); its resting order cancelled at the venue")
    assert stale["product"] == quiet and 600 < stale["detail"]["silent_s"] <= 600 * 1.04 + 60
    assert [(c["client_order_id"], c["reason"]) for c in cancels] == [(order["client_order_id"], "FEED_STALE")]
    assert order["client_order_id"] not in still_open
