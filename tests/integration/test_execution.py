"""The execution flow against real Kafka, QuestDB and the paper venue over HTTP."""

from __future__ import annotations

import hashlib
import random
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from bytewax.testing import run_main

from cli.run import bytewax_command
from connectors.kafka.reader import read_topic
from connectors.wire.control import control_message
from connectors.wire.signals import signal_records
from flows import execution as execution_flow
from paper.server import VenueServer
from tests.helpers import fetch, flow_env, keyed_diff, produce, wal_applied, with_topics
from tests.trading import KEY, T0, acks_at_venue, orders, reports_adapter, signals, start_venue, venue_settings
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


def _venue_orders(server: VenueServer, product: str) -> list[tuple[int, float, str]]:
    """(side, quantity, status) of every order the venue created for ``product``, in its own order of arrival."""
    with server.lock:
        acked = [r.client_order_id for r in server.exchange.reports if r.kind == "ack" and r.product == product]
        return [(o.side, o.quantity_mw, str(o.status)) for o in map(server.exchange.order, acked)]


def _events(s: Settings, kind: str, product: str) -> list[dict[str, Any]]:
    return [e.event for e in read_topic(s.kafka, s.topics.events, idle_timeout_s=1)
            if e.event["kind"] == kind and e.event["product"] == product]


def _wait_for(what: str, found: Callable[[], Any], flow: subprocess.Popen[bytes], log: Path) -> Any:
    """Poll until ``found()`` is truthy (the flow runs live; nothing is timed, a deadline only ends a hang)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert flow.poll() is None, log.read_text()[-3000:]
        result = found()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"never saw {what}: {log.read_text()[-2000:]}")


def test_r9_a_silent_product_goes_reducing_within_the_bound_still_reduces_and_comes_back_active(
        settings: Settings, unique: str, tmp_path: Path) -> None:
    quiet, busy = KEY, "DE-LU:2018-10-28T13:00Z:PT60M"
    server = start_venue(tmp_path, [quiet, busy])
    bound_s = 600.0
    # Every order urgent (IOC across the 49/51 book), so that each fills at once and moves the position.
    s = venue_settings(with_topics(settings, unique), server, clip_interval_s=0.0, order_ttl_s=3600.0,
                       stale_after_s=bound_s, urgency_window_min=1e6)
    log = tmp_path / "flow.log"
    flow = subprocess.Popen(bytewax_command("execution", tail=True, batch_size=2000, workers=1, recovery=None,
                                            snapshot_interval_s=5), env=flow_env(s), stdout=subprocess.DEVNULL,
                            stderr=log.open("wb"))
    base = random.randrange(10**9)

    def send(targets: list[float], product: str, first_trade: int, start_ns: int, gap_s: float = 60) -> None:
        records = signal_records(signals(targets, first_trade=first_trade, product=product, start_ns=start_ns,
                                         gap_s=gap_s), s.topics.signals)
        produce(s, s.topics.signals, records.values, [str(k) for k in records.keys])

    try:
        with reports_adapter(s):
            send([4.0], quiet, base, T0, gap_s=30)  # a 4 MW long at T0 + 30 s
            _wait_for("the 4 MW fill", lambda: _venue_orders(server, quiet) == [(1, 4.0, "FILLED")], flow, log)
            _wait_for("the position", lambda: [p for p in read_topic(s.kafka, s.topics.positions, idle_timeout_s=1)
                                               if p.event["product"] == quiet and p.event["position_mw"] == 4.0],
                      flow, log)
            # Only the busy product speaks, every 60 s for 21 minutes (a flat target: no orders of its own).
            send([0.0] * 21, busy, base + 1, T0)
            (stale,) = _wait_for("FEED_STALE", lambda: _events(s, "FEED_STALE", quiet), flow, log)
            # While it is silent, late rows of it (event times older than the bound): one wants more, one less.
            send([8.0], quiet, base + 100, T0 + 100 * NS_PER_SECOND)
            send([1.0], quiet, base + 101, T0 + 200 * NS_PER_SECOND)
            _wait_for("the reducing sell", lambda: len(_venue_orders(server, quiet)) == 2, flow, log)
            while_silent = _venue_orders(server, quiet)
            # It speaks again.
            send([5.0], quiet, base + 200, T0 + 1300 * NS_PER_SECOND)
            (resumed,) = _wait_for("FEED_RESUMED", lambda: _events(s, "FEED_RESUMED", quiet), flow, log)
            after = _wait_for("the new buy", lambda: len(_venue_orders(server, quiet)) == 3
                              and _venue_orders(server, quiet), flow, log)
            denied = [e for e in read_topic(s.kafka, s.topics.events, idle_timeout_s=1)
                      if e.event["kind"] == "RISK_DENIED"]
    finally:
        flow.terminate()
        flow.wait(30)
        server.stop()
    detail, back = stale["detail"], resumed["detail"]
    print(f"\nR9: {quiet} silent; FEED_STALE ({detail['from']} -> {detail['to']}) after {detail['silent_s']:.0f} s "
          f"of market time (bound {detail['bound_s']:.0f} s), holding {detail['position_mw']:.1f} MW; while silent "
          f"the venue got {while_silent[1:]} (side, MW, status): the reducing sell only; FEED_RESUMED "
          f"({back['from']} -> {back['to']}) after {back['silent_s']:.0f} s silent, then {after[2:]}")
    assert (detail["from"], detail["to"], detail["bound_s"], detail["position_mw"]) == (
        "ACTIVE", "REDUCING", bound_s, 4.0)
    assert bound_s < detail["silent_s"] <= bound_s * 1.04 + 60  # checked every bound/30, a signal each 60 s
    # The venue's own log, in order: the first buy, then while silent only the 3 MW sell (8 MW wanted: nothing
    # added), then after FEED_RESUMED a buy from 1 MW to 5 MW.
    assert after == [(1, 4.0, "FILLED"), (-1, 3.0, "FILLED"), (1, 4.0, "FILLED")]
    assert (back["from"], back["to"], back["bound_s"]) == ("REDUCING", "ACTIVE", bound_s)
    assert denied == []
