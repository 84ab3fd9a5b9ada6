"""The paper venue's streams and the feed adapter, against real servers: the venue over HTTP, Kafka, QuestDB.

Shows: the adapter puts exactly the feed's raw messages on the raw topic (byte for byte what `wattflow replay`
sends) and the ingest flow stores them; a venue stopped mid-stream and restarted leaves no gap and no
duplicate; every execution report reaches Kafka exactly once, across a dropped stream; heartbeats keep an
idle stream alive; `wattflow stack` starts, reports and stops the venue process.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import stat
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from connectors.feeds.files import FeedFrame, json_lines, write_feed
from connectors.kafka.admin import ensure_topics
from connectors.venue.adapter import MARKET, REPORTS, AdapterOptions, VenueAdapter, split_market_line
from connectors.venue.client import OrderRequest, VenueClient
from connectors.wire.events import decode_event
from paper.handmade import BookEvent, TradeEvent, handmade_feed
from paper.server import VenueServer
from paper.simulator import simulate_day
from tests.conftest import isolated_settings
from tests.helpers import count, run_ingest, with_topics
from wattflow.domain import NS_PER_SECOND, Side, datetime_to_ns
from wattflow.settings import Settings
from wattflow.stack import Stack
from wattflow.stack.process import free_port
from wattflow.stack.servers import VenueServerProcess, stored_venue_keys

pytestmark = pytest.mark.stack

KEY = "DE-LU:2018-10-28T12:00Z:PT60M"
T0 = datetime_to_ns(datetime(2018, 10, 28, 10, 0, tzinfo=UTC))
API, ADMIN = "trader-key", "admin-key"
FAST = AdapterOptions(idle_timeout_s=3.0, backoff_initial_s=0.05, backoff_max_s=0.5)


# --- helpers -------------------------------------------------------------------------------------------


def tagged_feed(unique: str) -> FeedFrame:
    """A small simulated day (about 5,000 events) whose source names this test, so QuestDB rows are its own."""
    frame = simulate_day(scale=0.01)
    return dataclasses.replace(frame, sources=tuple(f"v-{unique}" for _ in frame.sources))


def venue_server(feed: FeedFrame, port: int | None = None) -> VenueServer:
    return VenueServer(feed, port=port or free_port(), api_keys=[API], admin_key=ADMIN, rate_limit_per_s=10_000)


def stream_settings(settings: Settings, unique: str, venue: VenueServer) -> Settings:
    """This test's own topics (the execution-reports topic too) and the venue's address and key."""
    s = with_topics(settings, unique)
    topics = s.topics.model_copy(update={"execution_reports": f"{settings.topics.execution_reports}.{unique}"})
    ensure_topics(s.kafka, {topics.execution_reports: 2})
    venue_settings = s.venue.model_copy(update={"host": "127.0.0.1", "port": venue.port})
    return s.model_copy(update={"topics": topics, "venue": venue_settings})


def consume(settings: Settings, topic: str, expected: int, *, timeout_s: float = 60.0,
            idle_s: float = 1.5) -> list[tuple[str, bytes, int]]:
    """Every (key, value, partition) of ``topic``, in partition order; reads ``idle_s`` past the ``expected``-th
    message, so that an extra message (a duplicate) would be seen too."""
    consumer = Consumer({**settings.kafka.client_config(), "group.id": f"t-{time.monotonic_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    metadata = consumer.list_topics(topic, timeout=10)
    consumer.assign([TopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions])
    records: list[tuple[str, bytes, int]] = []
    deadline = time.monotonic() + timeout_s
    idle_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error():
                if len(records) >= expected and time.monotonic() - idle_since >= idle_s:
                    break
                continue
            idle_since = time.monotonic()
            records.append(((message.key() or b"").decode(), message.value() or b"", int(message.partition() or 0)))
    finally:
        consumer.close()
    return records


def wait_until(condition: Callable[[], bool], timeout_s: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def assert_exactly_the_feed(records: list[tuple[str, bytes, int]], frame: FeedFrame) -> None:
    """Each raw message once, byte for byte, under replay's key, and each key's messages in feed order."""
    expected = list(zip(frame.key_strings().tolist(), json_lines(frame), strict=True))
    assert len(records) == len(expected)
    assert sorted((key, value) for key, value, _ in records) == sorted(expected)
    wanted: dict[str, list[bytes]] = defaultdict(list)
    for key, value in expected:
        wanted[key].append(value)
    got: dict[str, list[bytes]] = defaultdict(list)
    for key, value, _ in records:
        got[key].append(value)
    assert got == wanted
    assert all(len({p for k, _, p in records if k == key}) == 1 for key in wanted)  # a key stays on one partition


def read_lines(venue: VenueServer, path: str, lines: int, key: str = API) -> tuple[int, list[dict[str, Any]]]:
    connection = http.client.HTTPConnection("127.0.0.1", venue.port, timeout=10)
    try:
        connection.request("GET", path, headers={"X-API-Key": key})
        response = connection.getresponse()
        if response.status != 200:
            return response.status, [orjson.loads(response.read())]
        return 200, [orjson.loads(response.readline()) for _ in range(lines)]
    finally:
        connection.close()


@pytest.fixture
def small_venue() -> Iterator[VenueServer]:
    feed = handmade_feed([BookEvent(T0, KEY, Side.BUY, 0, 49.5, 2.0), BookEvent(T0, KEY, Side.SELL, 0, 50.0, 1.5),
                          BookEvent(T0, KEY, Side.SELL, 1, 50.5, 2.0),
                          TradeEvent(T0 + 600 * NS_PER_SECOND, KEY, Side.SELL, 45.0, 3.0)])
    server = venue_server(feed).start()
    server.set_clock(T0)
    yield server
    server.stop()


# --- the market stream ------------------------------------------------------------------------------


def test_market_stream_lines_resume_and_faults(small_venue: VenueServer) -> None:
    status, lines = read_lines(small_venue, "/stream/market?since=0", 5)
    assert status == 200
    assert lines[0] == {"heartbeat": T0, "stream": "market", "seq": 0, "feed_events": 4, "feed_exhausted": False}
    assert [line["seq"] for line in lines[1:4]] == [1, 2, 3]
    assert [orjson.dumps(line["msg"]) for line in lines[1:4]] == json_lines(small_venue.feed)[:3]
    assert lines[4]["heartbeat"] == T0 and lines[4]["seq"] == 3  # nothing more until the clock moves

    small_venue.set_clock(T0 + 601 * NS_PER_SECOND)
    status, resumed = read_lines(small_venue, "/stream/market?since=3", 3)
    assert [line.get("seq") for line in resumed] == [3, 4, 4] and resumed[2]["feed_exhausted"] is True
    assert resumed[1]["key"] == KEY and resumed[1]["msg"]["type"] == "trade"

    assert read_lines(small_venue, "/stream/market", 1, key="wrong")[0] == 401
    assert read_lines(small_venue, "/stream/market?since=x", 1)[0] == 400
    small_venue.set_faults(dataclasses.replace(small_venue.faults, mode="down"))
    assert read_lines(small_venue, "/stream/market", 1)[0] == 503


def test_split_market_line_gives_the_raw_bytes(small_venue: VenueServer) -> None:
    line = small_venue.market_lines(0, 1)[0].rstrip(b"\n")
    assert split_market_line(line) == (1, KEY, json_lines(small_venue.feed)[0])


def test_adapter_publishes_exactly_the_feeds_raw_messages_and_ingest_stores_them(
        settings: Settings, unique: str) -> None:
    frame = tagged_feed(unique)
    with venue_server(frame) as venue:
        venue.set_clock(int(frame.ts_ns[-1]))
        s = stream_settings(settings, unique, venue)
        adapter = VenueAdapter(s, reports=False, until_exhausted=True, api_key=API, options=FAST).start()
        assert adapter.join(120), "the adapter did not finish the feed"
    stats = adapter.stats[MARKET]
    print(f"\nadapter: {stats.published} raw messages published, {stats.reconnects} reconnects")
    assert stats.published == len(frame) and stats.position == len(frame) and stats.reconnects == 0
    assert_exactly_the_feed(consume(s, s.topics.raw, len(frame)), frame)

    run_ingest(s)
    trades = frame.counts_by_type()["trade"]
    assert count(s, f"SELECT count() FROM ticks WHERE source = 'v-{unique}'") == trades


def test_venue_restarted_mid_stream_leaves_no_gap_and_no_duplicate(settings: Settings, unique: str) -> None:
    frame = tagged_feed(unique)
    middle = int(frame.ts_ns[len(frame) // 2])
    first = venue_server(frame).start()
    port = first.port
    s = stream_settings(settings, unique, first)
    first.set_clock(middle)
    passed_before_stop = first.market_events_passed()
    adapter = VenueAdapter(s, reports=False, until_exhausted=True, api_key=API, options=FAST).start()
    try:
        wait_until(lambda: adapter.stats[MARKET].position > 0, what="the first confirmed messages")
        first.stop()  # mid-stream: whatever was read but not confirmed is asked for again
        wait_until(lambda: adapter.stats[MARKET].last_error is not None, what="the adapter to see the stop")
        second = venue_server(frame, port=port).start()
        second.set_clock(middle)  # where the first one was, then on to the end of the feed
        second.set_clock(int(frame.ts_ns[-1]))
        try:
            assert adapter.join(120), "the adapter did not finish after the restart"
        finally:
            second.stop()
    finally:
        adapter.stop()
        first.stop()
    stats = adapter.stats[MARKET]
    print(f"\nrestart: {passed_before_stop} events passed before the stop, {stats.published} published in all, "
          f"{stats.reconnects} reconnect(s), last error: {stats.last_error}")
    assert stats.reconnects == 1 and stats.published == len(frame)
    assert_exactly_the_feed(consume(s, s.topics.raw, len(frame)), frame)
    events = [orjson.loads(value) for _, value, _ in consume(s, s.topics.events, 2)]
    assert [e["kind"] for e in events] == ["venue_stream_disconnected", "venue_stream_reconnected"]
    # In the events topic's format, so that the store flow stores them (connectors.wire.events).
    assert all(decode_event(orjson.dumps(e))[1] == f"venue_adapter.{MARKET}" for e in events)
    assert all(e["detail"]["stream"] == MARKET for e in events)
    assert events[0]["detail"]["resume_from"] == events[1]["detail"]["resume_from"] > 0


# --- the reports stream -----------------------------------------------------------------------------


def test_every_execution_report_reaches_kafka_exactly_once_across_a_dropped_stream(
        settings: Settings, unique: str, small_venue: VenueServer) -> None:
    s = stream_settings(settings, unique, small_venue)
    client = VenueClient(small_venue.url, API)
    adapter = VenueAdapter(s, market=False, api_key=API, options=FAST).start()
    try:
        client.submit(OrderRequest("r1", KEY, "BUY", 50.0, 1.0, "IOC"))    # ack + fill
        client.submit(OrderRequest("r2", KEY, "BUY", 40.0, 0.5))           # ack, rests
        client.submit(OrderRequest("r3", KEY, "BUY", 40.001, 0.5))         # reject
        client.cancel("r2")                                                # cancel
        last = small_venue.exchange.reports[-1].exec_id
        wait_until(lambda: adapter.stats[REPORTS].position == last, what="the first reports in Kafka")

        small_venue.set_faults(dataclasses.replace(small_venue.faults, mode="drop"))
        wait_until(lambda: adapter.stats[REPORTS].last_error is not None, what="the dropped stream")
        small_venue.set_faults(dataclasses.replace(small_venue.faults, mode="none"))
        wait_until(lambda: adapter.stats[REPORTS].reconnects == 1, what="the reconnect")

        client.submit(OrderRequest("r4", KEY, "SELL", 60.0, 0.5))          # ack, rests
        small_venue.set_clock(T0 + 601 * NS_PER_SECOND)                    # gate still open: r4 still rests
        client.cancel_all(KEY)
        last = small_venue.exchange.reports[-1].exec_id
        wait_until(lambda: adapter.stats[REPORTS].position == last, what="the later reports in Kafka")
    finally:
        adapter.stop()
        assert adapter.join(30)
    with urllib.request.urlopen(urllib.request.Request(f"{small_venue.url}/reports",
                                                       headers={"X-API-Key": API}), timeout=5) as answer:
        venue_reports = orjson.loads(answer.read())
    records = consume(s, s.topics.execution_reports, len(venue_reports))
    published = [orjson.loads(value) for _, value, _ in records]
    print(f"\nreports: {len(venue_reports)} at the venue, {len(records)} on Kafka, "
          f"{adapter.stats[REPORTS].reconnects} reconnect(s)")
    assert len(venue_reports) >= 7 and {r["client_order_id"] for r in venue_reports} == {"r1", "r2", "r3", "r4"}
    assert sorted(r["exec_id"] for r in published) == [r["exec_id"] for r in venue_reports]  # each exactly once
    assert sorted(published, key=lambda r: r["exec_id"]) == [{**r, "source": "venue"} for r in venue_reports]
    assert all(key == orjson.loads(value)["client_order_id"] for key, value, _ in records)


# --- heartbeats -------------------------------------------------------------------------------------


def test_heartbeats_keep_an_idle_stream_alive(settings: Settings, unique: str, small_venue: VenueServer) -> None:
    status, beats = read_lines(small_venue, "/stream/reports?since=0", 3)
    assert status == 200 and all(set(b) == {"heartbeat", "stream", "exec_id", "feed_exhausted"} for b in beats)

    s = stream_settings(settings, unique, small_venue)
    idle_timeout_s = 2.5
    options = dataclasses.replace(FAST, idle_timeout_s=idle_timeout_s)
    with VenueAdapter(s, api_key=API, options=options) as adapter:
        # Seven heartbeats a second apart: far longer than the idle timeout, with nothing else on either stream
        # once the three book updates at the clock's time are through.
        wait_until(lambda: min(st.heartbeats for st in adapter.stats.values()) >= 7, what="heartbeats")
        stats = adapter.stats
    assert all(st.connects == 1 and st.reconnects == 0 and st.last_error is None for st in stats.values())
    assert stats[MARKET].published == 3 and stats[REPORTS].published == 0
    assert consume(s, s.topics.events, 0, timeout_s=3.0) == []  # no disconnect was recorded


# --- the stack --------------------------------------------------------------------------------------


def test_stack_up_starts_the_venue_and_down_stops_it(tmp_path: Path, unique: str) -> None:
    frame = tagged_feed(unique)
    feed = write_feed(frame, tmp_path / "feed.parquet")
    s = isolated_settings(tmp_path / "state", venue={"feed": str(feed), "port": free_port(), "speed": 0.0,
                                                     "api_key": None, "admin_key": None})
    stack = Stack(s)

    def states() -> dict[str, str]:
        return {status.name: status.state for status in stack.status()}

    try:
        assert states() == {"kafka": "stopped", "questdb": "stopped", "venue": "stopped"}
        first = stack.up()
        assert first["venue"].startswith("started"), first
        assert states() == {"kafka": "running", "questdb": "running", "venue": "running"}
        assert stack.up()["venue"].startswith("already running")
        assert "venue" in stack.addresses()

        # No keys in the settings: the stack made them, keeps them private, and never shows them to `ps`.
        keys = stored_venue_keys(s)
        assert keys is not None
        keys_file = s.state_dir / "venue" / "keys.json"
        assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
        assert json.loads(keys_file.read_text())["api_key"] == keys[0]
        assert not any(key in " ".join(VenueServerProcess(s).command()) for key in keys)

        # The adapter finds the stored key by itself and forwards the whole feed from the venue process.
        ensure_topics(s.kafka, {s.topics.raw: 2, s.topics.events: 1})
        admin = urllib.request.Request(f"{s.venue.url}/admin/clock", method="POST",
                                       data=orjson.dumps({"ts_ns": int(frame.ts_ns[-1])}),
                                       headers={"X-API-Key": keys[1]})
        with urllib.request.urlopen(admin, timeout=5) as answer:
            assert orjson.loads(answer.read())["feed_exhausted"] is True
        adapter = VenueAdapter(s, reports=False, until_exhausted=True, options=FAST).start()
        assert adapter.join(120)
        assert_exactly_the_feed(consume(s, s.topics.raw, len(frame)), frame)
    finally:
        stopped = stack.down()
    assert stopped["venue"] == "stopped"
    assert states() == {"kafka": "stopped", "questdb": "stopped", "venue": "stopped"}
    assert not stack.venue().process.pid_file.exists()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{s.venue.url}/health", timeout=2)
