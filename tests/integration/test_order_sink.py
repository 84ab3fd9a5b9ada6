"""The order sink on its own, against the real paper venue over HTTP and real Kafka: it never makes the flow wait,
keeps several requests in flight, keeps the order rules, and lets no snapshot pass unconfirmed records.

Each test builds the sink's partition as Bytewax would (``OrderSink.build_part``) and calls ``write_batch`` /
``snapshot`` / ``close`` itself, so that it can look between the calls; empty batches stand for the engine's
250 ms heartbeat.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.kafka.reader import read_topic
from connectors.venue.order_sink import PARTITION, OrderSink, _OrderSinkPartition
from paper.limits import FaultConfig, RequestRecord
from paper.server import VenueServer
from tests.helpers import with_topics
from tests.trading import KEY, T0, acks_at_venue, orders, start_venue, venue_settings
from wattflow.batches import DeadLetter
from wattflow.domain import NS_PER_SECOND, Side
from wattflow.enums import CancelReason, TimeInForce
from wattflow.errors import KafkaDeliveryError, Origin
from wattflow.events import Event
from wattflow.execution import EngineOutput
from wattflow.orders import Cancel, CancelAll, OrderPlan, Submit
from wattflow.positions import PositionRow
from wattflow.settings import Settings
from wattflow.stack.process import free_port

pytestmark = pytest.mark.stack


@pytest.fixture
def venue(tmp_path: Path) -> Iterator[VenueServer]:
    server = start_venue(tmp_path)
    yield server
    server.stop()


def submit(cid: str, price: float = 45.0) -> Submit:
    """A resting buy below the book (49/51): it stays open at the venue."""
    plan = OrderPlan(cid, KEY, "test", Side.BUY, price, 0.5, TimeInForce.GTC, 0.1, 50.0, 5.0, T0)
    return Submit(plan, T0 + NS_PER_SECOND, decided_wall_ns=time.time_ns())


def sink_settings(settings: Settings, unique: str, venue: VenueServer, **client: Any) -> Settings:
    s = venue_settings(with_topics(settings, unique), venue)
    return s.model_copy(update={"venue": s.venue.model_copy(update=client)})


def build(s: Settings, **options: Any) -> _OrderSinkPartition:
    """A sink partition that has reconciled with the venue (its first task at every start), so that a test's
    requests are its own."""
    part = OrderSink(s.venue, s.kafka, s.topics, **options).build_part("orders", PARTITION, None)
    assert isinstance(part, _OrderSinkPartition)
    deadline = time.monotonic() + 30
    while not part.dispatcher.reconciled:
        assert time.monotonic() < deadline, "the sink did not reconcile with the venue"
        part.write_batch([EngineOutput()])
        time.sleep(0.01)
    return part


def durable(part: _OrderSinkPartition, timeout_s: float = 30.0) -> None:
    """Wait until the broker confirmed every decision handed over (the decision log): only then do orders go out."""
    deadline = time.monotonic() + timeout_s
    while part.dispatcher.unconfirmed:
        assert time.monotonic() < deadline, "the broker did not confirm the decisions"
        time.sleep(0.005)


def settle(part: _OrderSinkPartition, timeout_s: float = 60.0) -> None:
    """Heartbeats until nothing is queued, in flight or left to reconcile; then a snapshot (checked flush)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        part.write_batch([EngineOutput()])
        if part.dispatcher.idle() and not part.desk.outstanding:
            break
        time.sleep(0.05)
    part.write_batch([EngineOutput()])
    part.snapshot()


def posts(log: list[RequestRecord], cid: str | None = None) -> list[RequestRecord]:
    """The order entries (``POST /orders``) in the venue's log, of ``cid`` only if given."""
    return [r for r in log if r.method == "POST" and r.path == "/orders" and (cid is None or r.client_order_id == cid)]


def final_submit_records(records: list[dict[str, Any]]) -> Counter[str]:
    """Per client order id, how many SUBMIT records ended it (one each, whatever its outcome)."""
    return Counter(r["client_order_id"] for r in records if r["action"] == "SUBMIT")


def test_write_batch_returns_while_a_slow_venue_holds_the_orders(settings: Settings, unique: str,
                                                                  venue: VenueServer) -> None:
    """The venue takes 1.5 s per answer (``slow``): ``write_batch`` hands 8 orders over and returns before the venue
    answered any (4 in flight, 4 queued); later heartbeats drain them. Every order ends with exactly one SUBMIT
    record, ACKED, and the venue made exactly those orders, each once. Red if ``write_batch`` waited on the venue
    (an answered request would be in the venue's log when it returned, nothing in flight)."""
    s = sink_settings(settings, unique, venue, max_in_flight=4, timeout_s=5.0)
    part = build(s)
    venue.set_faults(FaultConfig(mode="slow", extra_latency_s=1.5))
    venue.reset_traffic()
    ids = [f"slow-{unique}-{i}" for i in range(8)]
    started = time.monotonic()
    part.write_batch([EngineOutput(commands=[submit(cid) for cid in ids])])
    returned_after = time.monotonic() - started
    answered = [r for r in venue.traffic().log if r.status]
    handed_over = part.dispatcher.in_flight + part.dispatcher.queued
    durable(part)
    in_flight, queued = part.dispatcher.in_flight, part.dispatcher.queued
    part.write_batch([EngineOutput()])  # a heartbeat while orders are in flight does not wait either
    assert answered == [] and handed_over == 8 and in_flight == 4 and queued == 4
    assert [r for r in venue.traffic().log if r.status] == []  # the venue had answered none when they were counted
    settle(part)
    part.close()
    records = orders(s)
    assert final_submit_records(records) == Counter(ids) == Counter(acks_at_venue(venue))
    assert {r["status"] for r in records} == {"ACKED"}
    log = venue.traffic().log
    assert len(posts(log)) == 8 and all(len(posts(log, cid)) == 1 for cid in ids)  # no retry: each sent once
    for r in records:  # the venue's 1.5 s is between the send and the answer
        assert r["decided_wall_ns"] <= r["sent_wall_ns"] < r["answered_wall_ns"] - 1_400_000_000
    print(f"\nslow venue: write_batch returned after {returned_after * 1000:.1f} ms with 4 orders in flight and 4 "
          f"queued; 8 of 8 ACKED once, each answered after >= 1.5 s")


def test_several_requests_are_in_flight_at_once_and_never_more_than_the_bound(settings: Settings, unique: str,
                                                                              venue: VenueServer) -> None:
    """With 0.5 s of venue latency and ``max_in_flight=4``, 16 orders: the venue itself sees 4 trading requests at
    once (its own count, and the overlap of the answered requests in its log), never 5; the dispatcher's
    high-water mark is 4; and they come over at most 5 keep-alive connections (4 + a spare). Red if the sink sent
    one order at a time (the venue would see 1) or ignored the bound (more than 4)."""
    s = sink_settings(settings, unique, venue, max_in_flight=4)
    part = build(s)
    venue.latency_s = 0.5
    venue.reset_traffic()
    ids = [f"par-{unique}-{i}" for i in range(16)]
    part.write_batch([EngineOutput(commands=[submit(cid) for cid in ids])])
    settle(part)
    part.close()
    traffic = venue.traffic()
    sent = posts(traffic.log)
    overlap = max(sum(1 for o in sent if o.started_s <= r.started_s < o.ended_s) for r in sent)
    assert len(sent) == 16 and all(r.status == 201 for r in sent)
    assert traffic.max_in_flight == overlap == part.dispatcher.high_water == 4
    assert traffic.connections <= 5
    assert final_submit_records(orders(s)) == Counter(ids) == Counter(acks_at_venue(venue))
    span = max(r.ended_s for r in sent) - min(r.started_s for r in sent)
    print(f"\nconcurrency: 16 orders at 0.5 s latency each in {span:.2f} s; venue saw at most {traffic.max_in_flight} "
          f"at once over {traffic.connections} connections")


def test_kill_switch_goes_after_what_is_in_flight_and_before_what_follows(settings: Settings, unique: str,
                                                                          venue: VenueServer) -> None:
    """Venue latency 0.3 s, 2 requests in flight at most. Six orders: two in flight, four queued; then the kill switch
    (an account-wide cancel-all): the four queued never go out (``NOT_SENT``, each with a local execution report),
    the ``DELETE /orders`` reaches the venue only after both in-flight orders were answered and cancels exactly those
    two; an order decided after the kill switch reaches the venue only after the cancel-all was answered. A cancel
    of an order in the same batch as its submit reaches the venue after the submit's answer and finds it. Red if the
    cancel-all raced the orders before it (it would cancel fewer than 2, or leave one open), if queued orders went
    out after the kill switch, or if an order decided after it went first."""
    s = sink_settings(settings, unique, venue, max_in_flight=2)
    part = build(s)
    venue.latency_s = 0.3
    venue.reset_traffic()
    before = [f"kill-{unique}-{i}" for i in range(6)]
    part.write_batch([EngineOutput(commands=[submit(cid) for cid in before])])
    durable(part)
    assert part.dispatcher.in_flight == 2 and part.dispatcher.queued == 4
    part.write_batch([EngineOutput(commands=[CancelAll(None, CancelReason.HALTED, T0 + 2 * NS_PER_SECOND)])])
    assert part.dispatcher.queued == 1  # only the cancel-all waits: the four orders are out of the queue
    after = f"kill-{unique}-after"
    part.write_batch([EngineOutput(commands=[submit(after, price=44.0)])])
    settle(part)
    pair = f"kill-{unique}-pair"  # submit and cancel in one batch
    part.write_batch([EngineOutput(commands=[submit(pair, price=43.0),
                                             Cancel(pair, KEY, CancelReason.STALE, T0 + 3 * NS_PER_SECOND)])])
    settle(part)
    part.close()

    log = venue.traffic().log
    sent = posts(log)
    first_two = [r for r in sent if r.started_s < sent[2].started_s] if len(sent) > 2 else sent
    (cancel_all,) = [r for r in log if r.method == "DELETE" and r.path == "/orders"]
    (cancel_one,) = [r for r in log if r.method == "DELETE" and r.path.startswith("/orders/")]
    assert len(sent) == 4 and len(first_two) == 2  # 2 before the kill switch, `after`, `pair`
    assert cancel_all.started_s > max(r.ended_s for r in first_two)
    assert sent[2].started_s > cancel_all.ended_s  # `after` went after the cancel-all
    assert cancel_one.started_s > sent[3].ended_s  # the cancel after its own submit

    records = orders(s)
    status = {(r["client_order_id"], r["action"]): r["status"] for r in records}
    in_flight = [cid for cid in before if status[(cid, "SUBMIT")] == "ACKED"]
    held = [cid for cid in before if status[(cid, "SUBMIT")] == "NOT_SENT"]
    assert len(in_flight) == 2 and len(held) == 4
    assert status[("*", "CANCEL_ALL")] == "CANCELLED_2"
    assert status[(after, "SUBMIT")] == "ACKED" and status[(pair, "CANCEL")] == "CANCELLED"
    assert final_submit_records(records) == Counter([*before, after, pair])
    assert sorted(acks_at_venue(venue)) == sorted([*in_flight, after, pair])
    with venue.lock:
        assert [o.client_order_id for o in venue.exchange.open_orders()] == [after]
    local = [e.event for e in read_topic(s.kafka, s.topics.execution_reports, idle_timeout_s=3)]
    assert sorted(r["client_order_id"] for r in local) == sorted(held)
    assert all(r["source"] == "order_sink" and r["reason"] == "NOT_SENT" for r in local)


def test_snapshot_confirms_everything_on_its_topics(settings: Settings, unique: str, venue: VenueServer) -> None:
    """Orders, the engine's events, position rows and dead letters all reach their topics once ``snapshot()``
    returned (it flushed, and the broker confirmed). Red if a kind of output were not published."""
    s = sink_settings(settings, unique, venue)
    part = build(s)
    cid = f"topics-{unique}"
    row = PositionRow(T0, KEY, 1.5, 45.0, 50.0, 0.0, 7.5, 7.5, 1.5, 0.0, False, "ACTIVE")
    event = Event(T0, "RISK_DENIED", KEY, "WARNING", {"reason": "TEST"})
    letter = DeadLetter(T0, Origin(s.topics.signals, 0, 7), "BAD_SIGNALS_MESSAGE", "not json", b"{")
    part.write_batch([EngineOutput(commands=[submit(cid)], events=[event], positions=[row], dead=[letter])])
    settle(part)
    part.close()
    assert [(r["client_order_id"], r["status"]) for r in orders(s)] == [(cid, "ACKED")]
    positions = [e.event for e in read_topic(s.kafka, s.topics.positions, idle_timeout_s=3)]
    assert [(p["product"], p["position_mw"], p["pnl_eur"]) for p in positions] == [(KEY, 1.5, 7.5)]
    events = [e.event for e in read_topic(s.kafka, s.topics.events, idle_timeout_s=3)]
    assert sorted((e["kind"], e["source"]) for e in events) == [("RISK_DENIED", "execution"),
                                                                ("VENUE_RECONCILED", "execution")]
    (reconciled,) = [e for e in events if e["kind"] == "VENUE_RECONCILED"]
    assert reconciled["detail"]["since_exec_id"] == 0  # a first start: every report of the venue was asked for
    dead = [e.event for e in read_topic(s.kafka, s.topics.dlq, idle_timeout_s=3)]
    assert [(d["reason"], d["origin"]) for d in dead] == [("BAD_SIGNALS_MESSAGE", f"{s.topics.signals}[0]@7")]


def test_snapshot_raises_when_the_broker_does_not_confirm(settings: Settings, unique: str,
                                                          venue: VenueServer) -> None:
    """The sink's producer points at a port where no broker listens (messages time out after 1 s): the order goes
    to the venue, its record cannot be confirmed, and ``snapshot()`` raises KafkaDeliveryError, so no epoch
    commits past it; ``close()`` raises too. Red if ``snapshot()`` did not flush or did not check the outcome.
    (Without the decision log: with it, no order goes out at all while no broker confirms its decision.)"""
    s = sink_settings(settings, unique, venue)
    dead = s.kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
    part = OrderSink(s.venue, dead, s.topics, flush_timeout_s=5.0, producer_config={"message.timeout.ms": 1000},
                     decision_log=False).build_part("orders", PARTITION, None)
    assert isinstance(part, _OrderSinkPartition)
    cid = f"nobroker-{unique}"
    part.write_batch([EngineOutput(commands=[submit(cid)])])
    assert part.dispatcher.wait_idle(10)
    # The order's record and the sink's VENUE_RECONCILED event (its first task at start).
    with pytest.raises(KafkaDeliveryError, match="did not confirm 2 of 2"):
        part.snapshot()
    with pytest.raises(KafkaDeliveryError):
        part.close()
    assert acks_at_venue(venue) == [cid]  # the order itself went out; only its record is unconfirmed
