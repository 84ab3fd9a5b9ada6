"""R4 in the flow: the venue times out, answers 5xx and drops connections while the execution flow trades.

The client's own tests (tests/integration/test_venue_client.py) show each rule on its own; this one runs the
whole execution flow as a process against real Kafka, QuestDB and the venue, and counts what happened to
every order the engine decided.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.run import bytewax_command
from connectors.kafka.producer import CheckedProducer
from connectors.kafka.reader import read_topic
from connectors.wire.signals import signal_records
from paper.limits import FaultConfig
from paper.server import VenueServer
from tests.helpers import flow_env, with_topics
from tests.trading import (
    T0,
    acks_at_venue,
    orders,
    reports_adapter,
    signals,
    start_venue,
    venue_settings,
)
from wattflow.settings import Settings

pytestmark = pytest.mark.stack

PRODUCTS = [f"DE-LU:2018-10-28T{hour:02d}:00Z:PT60M" for hour in range(12, 16)]
#: What a SUBMIT may end as: at the venue, or known never to have reached it.
NOT_AT_VENUE = {"CANCELLED_UNSENT", "NOT_SENT", "REJECTED", "NOT_FOUND"}


@pytest.fixture
def venue(tmp_path: Path) -> Iterator[VenueServer]:
    server = start_venue(tmp_path, PRODUCTS)
    yield server
    server.stop()


def send_round(settings: Settings, producer: CheckedProducer, k: int) -> None:
    """One signal per product; targets turn each round, so every round replaces every working order."""
    for i, product in enumerate(PRODUCTS):
        batch = signals([4.0 if k % 2 else -4.0], first_trade=50_000 + k * 10 + i, product=product,
                        start_ns=T0 + k * 20_000_000_000, gap_s=1)
        records = signal_records(batch, settings.topics.signals)
        producer.produce_many(records.topic, [str(key) for key in records.keys], records.values)
    producer.flush(30)


def fates(records: list[dict[str, Any]], at_venue: set[str]) -> dict[str, str]:
    """For every order the engine decided: AT_VENUE, NOT_AT_VENUE, or LOST (nobody knows)."""
    decided = {r["client_order_id"] for r in records if r["action"] == "SUBMIT"}
    settled_away = {r["client_order_id"] for r in records if r["status"] in NOT_AT_VENUE}
    return {cid: "AT_VENUE" if cid in at_venue else "NOT_AT_VENUE" if cid in settled_away else "LOST"
            for cid in decided}


def test_outages_leave_no_order_lost_or_doubled(settings: Settings, unique: str, venue: VenueServer,
                                                tmp_path: Path) -> None:
    s = venue_settings(with_topics(settings, unique), venue, clip_interval_s=0.0, order_ttl_s=3600.0,
                       max_orders_per_interval=100_000)
    env = flow_env(s)
    env.update({"WATTFLOW_VENUE_TIMEOUT_S": "0.4", "WATTFLOW_VENUE_MAX_ATTEMPTS": "2",
                "WATTFLOW_VENUE_BREAKER_FAILURES": "3", "WATTFLOW_VENUE_BREAKER_RESET_S": "0.5"})
    log = tmp_path / "flow.log"
    flow = subprocess.Popen(bytewax_command("execution", tail=True, batch_size=500, workers=1, recovery=None,
                                            snapshot_interval_s=5), env=env, stdout=subprocess.DEVNULL,
                            stderr=log.open("wb"))
    producer = CheckedProducer(s.kafka)
    adapter = contextlib.ExitStack()  # the reports stream, closed in finally
    adapter.enter_context(reports_adapter(s))
    phases = [("none", 1.0), ("timeout", 0.5), ("drop", 0.5), ("error_5xx", 1.0), ("down", 1.0), ("none", 1.0)]
    k = 0
    try:
        for mode, probability in phases:
            venue.set_faults(FaultConfig(mode=mode, probability=probability, timeout_s=1.0))
            for _ in range(4):
                send_round(s, producer, k)
                k += 1
                time.sleep(0.5)
                assert flow.poll() is None, log.read_text()[-3000:]
        # The venue is healthy again: wait until every decided order has a known fate.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            outcome = fates(orders(s, idle_timeout_s=1), set(acks_at_venue(venue)))
            if outcome and "LOST" not in outcome.values():
                break
            time.sleep(1)
    finally:
        adapter.close()
        flow.terminate()
        flow.wait(30)
    records = orders(s)
    acks = acks_at_venue(venue)
    outcome = fates(records, set(acks))
    statuses = [r["status"] for r in records if r["action"] in ("SUBMIT", "RESUBMIT")]
    events = [e.event for e in read_topic(s.kafka, s.topics.events, idle_timeout_s=2)]
    kinds = {e["kind"] for e in events}
    decided = {r["client_order_id"] for r in records if r["action"] == "SUBMIT"}
    print(f"\nR4 (flow): {len(decided)} orders decided over {k} rounds of faults; submit outcomes "
          f"{ {s: statuses.count(s) for s in sorted(set(statuses))} }; at the venue {len(set(acks))}, "
          f"duplicates {len(acks) - len(set(acks))}; lost {list(outcome.values()).count('LOST')}; "
          f"events {sorted(kinds)}")
    assert len(acks) == len(set(acks))  # the venue made one order per client order id
    assert set(acks) <= decided  # and none the engine did not decide
    assert "LOST" not in outcome.values()
    assert {"UNKNOWN", "BLOCKED"} & set(statuses), "the faults were felt"
    assert "BREAKER_OPEN" in kinds
