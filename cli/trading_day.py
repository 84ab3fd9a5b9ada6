"""A live simulated trading day: venue -> feed adapter -> Kafka -> the trading flow -> venue; the store flow beside.

What ``wattflow demo`` runs (the main job):

1. the paper venue plays the simulated day (``cli.demo_day.demo_feed``) on a wall clock at ``speed`` times real
   time; its book is the market the engine trades in;
2. the feed adapter streams the venue's market data into the raw topic and its execution reports into the
   reports topic; a few malformed messages go in too (a broken feed, to show the dead letters);
3. the trading flow (raw market data to orders, the hot path) and the store flow (every raw-validated tick and
   every derived topic into QuestDB, beside it) run side by side as processes (``python -m bytewax.run``), as
   in production;
4. when the venue has played the whole day and the flows have caught up, everything stops and the day is
   summarised from QuestDB: ticks stored, dead letters, signals (with their hash), orders, fills, fill ratio,
   slippage, PnL, risk denials, events, and plots.

Each run gets topics of its own (``<topic>.d<run>``; those of earlier demo runs are deleted) and replaces the
demo day's earlier orders, reports, positions and events in QuestDB (their partitions are dropped), so a
second run reports itself, not the sum of both. Ticks, book, features and signals dedup on their keys: a
second run stores nothing twice and gives the same signals hash.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from connectors.feeds.files import FeedFrame
from wattflow.domain import ns_to_datetime
from wattflow.settings import Settings

if TYPE_CHECKING:
    from paper.server import VenueServer

#: Topics a demo run gets its own copy of.
RUN_TOPICS = ("raw", "ticks", "book", "dayahead", "features", "signals", "orders", "execution_reports", "events",
              "positions", "dlq", "control", "decisions")
#: The processes of the live topology, as `wattflow run` starts them.
FLOWS = ("store", "trading")
#: Tables the store flow fills from the derived topics: the day is summarised once they stop growing.
STORED_TABLES = ("signals", "orders", "execution_reports", "positions", "events")
#: Tables whose demo-day partitions a new run replaces.
TRADING_TABLES = ("orders", "execution_reports", "positions", "events")
_RUN_SUFFIX = re.compile(r"\.d\d{10,}$")


@dataclass
class DayProgress:
    """What the progress display shows."""

    market_ns: int
    first_ns: int
    last_ns: int
    published: int
    events: int
    orders: int
    stage: str

    @property
    def fraction(self) -> float:
        span = max(self.last_ns - self.first_ns, 1)
        return float(np.clip((self.market_ns - self.first_ns) / span, 0.0, 1.0))


@dataclass
class TradingDay:
    settings: Settings  # the run's settings (its own topics)
    speed: float
    #: Wall clock when this run began publishing: the ticks and book rows it stored carry a later ``recv_ts`` (the
    #: Kafka time of its own raw topic; a row a second run stores again is replaced, receive time and all).
    started_ns: int = 0
    seconds: float = 0.0
    published: int = 0
    reconnects: int = 0
    logs: dict[str, Path] = field(default_factory=dict)
    #: From the moment a trade happened at the venue to the arrival there of the order it caused (ms): count,
    #: p50, p99, max over the day's orders (see :func:`tick_to_order`).
    tick_to_order_ms: dict[str, float] = field(default_factory=dict)


def run_settings(settings: Settings, run_id: str, venue_port: int, api_key: str) -> Settings:
    topics = settings.topics.model_copy(update={
        name: f"{getattr(settings.topics, name)}.d{run_id}" for name in RUN_TOPICS})
    from pydantic import SecretStr

    venue = settings.venue.model_copy(update={"port": venue_port, "api_key": SecretStr(api_key)})
    return settings.model_copy(update={"topics": topics, "venue": venue})


def compressed_time(settings: Settings, speed: float, latency_s: float = 1.0) -> Settings:
    """Execution settings for a market played ``speed`` times faster than real time: a second of the
    pipeline's latency is ``speed`` seconds of market time, so flattening starts early enough for the orders
    to arrive before gate closure."""
    minutes = latency_s * speed / 60.0
    execution = settings.execution
    update = {"flatten_before_gate_min": max(execution.flatten_before_gate_min, 2 * minutes),
              "urgency_window_min": max(execution.urgency_window_min, 4 * minutes)}
    return settings.model_copy(update={"execution": execution.model_copy(update=update)})


def prepare_run(settings: Settings, frame: FeedFrame, run_id: str) -> None:
    """Topics of this run (earlier demo runs' deleted) and the demo day's trading rows of earlier runs dropped."""
    from connectors.kafka.admin import delete_topics, ensure_topics, list_topics
    from connectors.questdb.sql import QuestDBClient

    old = [name for name in list_topics(settings.kafka) if _RUN_SUFFIX.search(name)
           and not name.endswith(f".d{run_id}")]
    delete_topics(settings.kafka, old)
    ensure_topics(settings.kafka, settings.topics.all_topics())
    client = QuestDBClient(settings.questdb)
    first = ns_to_datetime(int(frame.ts_ns.min())).astimezone(UTC).date()
    last = ns_to_datetime(int(frame.ts_ns.max())).astimezone(UTC).date()
    for table in TRADING_TABLES:
        client.execute(f"ALTER TABLE {table} DROP PARTITION WHERE ts >= '{first}' AND ts <= '{last}T23:59:59'")
    client.wait_applied(list(TRADING_TABLES))


def _flow(name: str, settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    from cli.run import bytewax_command

    env = {**os.environ, **settings.to_env(), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = bytewax_command(name, tail=True, batch_size=5_000, workers=1, recovery=None, snapshot_interval_s=5)
    return subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            cwd=Path(__file__).resolve().parents[1])


def _end_offsets(settings: Settings, topics: list[str], timeout_s: float = 30.0) -> dict[str, int]:
    """Sum of the high watermarks of each topic. A topic created a moment ago may have no leader yet
    (NOT_LEADER_FOR_PARTITION): asked again until ``timeout_s``."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer({**settings.kafka.client_config(), "group.id": "wattflow-demo-offsets"})
    deadline = time.monotonic() + timeout_s
    try:
        ends = {}
        for topic in topics:
            while True:
                try:
                    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
                    ends[topic] = sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                                      for p in partitions)
                    break
                except KafkaException:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        return ends
    finally:
        consumer.close()


def run_trading_day(settings: Settings, frame: FeedFrame, *, speed: float,
                    bad: list[bytes], progress: Callable[[DayProgress], None] | None = None,
                    quiet_s: float = 4.0, timeout_s: float = 3600.0) -> TradingDay:
    """Play ``frame`` at the venue and trade it live; returns when the flows have caught up and stopped."""
    from connectors.kafka.producer import CheckedProducer
    from connectors.venue.adapter import VenueAdapter
    from connectors.wire.control import control_message
    from paper.server import VenueServer
    from wattflow.stack.process import free_port

    run_id = str(time.time_ns() // 1000)[:13]
    api_key = secrets.token_urlsafe(16)
    venue = VenueServer(frame, port=free_port(), host=settings.venue.host, api_keys=[api_key],
                        admin_key=secrets.token_urlsafe(16), rate_limit_per_s=1_000)
    run = compressed_time(run_settings(settings, run_id, venue.port, api_key), speed)
    prepare_run(run, frame, run_id)
    day = TradingDay(run, speed, started_ns=time.time_ns())
    logs = settings.state_dir / "logs" / "demo"
    logs.mkdir(parents=True, exist_ok=True)
    flows: dict[str, subprocess.Popen[bytes]] = {}
    adapter = VenueAdapter(run, api_key=api_key)
    first_ns, last_ns = int(frame.ts_ns.min()), int(frame.ts_ns.max())
    started = time.monotonic()

    def show(stage: str, orders: int = 0) -> None:
        if progress is not None:
            stats = adapter.stats.get("market")
            progress(DayProgress(venue.exchange.clock_ns, first_ns, last_ns, stats.published if stats else 0,
                                 len(frame), orders, stage))

    venue.start()
    try:
        for name in FLOWS:
            day.logs[name] = logs / f"{name}.log"
            flows[name] = _flow(name, run, day.logs[name])
        producer = CheckedProducer(run.kafka)
        producer.produce_many(run.topics.raw, ["bad"] * len(bad), bad)
        producer.produce(run.topics.control, control_message("resume", by="demo", reason="ready check"),
                         key=b"control")
        producer.flush(30)
        # The market clock starts once the flows read their inputs: the store flow has dead-lettered the bad
        # messages and the trading flow has answered the control message (at this speed a second of start-up
        # would be half an hour of the market).
        show("starting the flows")
        ready_by = time.monotonic() + 120
        while time.monotonic() < ready_by:
            _check(flows, day)
            ends = _end_offsets(run, [run.topics.dlq, run.topics.events])
            if ends[run.topics.dlq] >= len(bad) and ends[run.topics.events] >= 1:
                break
            time.sleep(0.25)
        adapter.start()
        venue.set_speed(speed)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            venue.tick()
            market = adapter.stats["market"]
            if venue.exchange.feed_exhausted and market.position >= len(frame):
                break
            _check(flows, day)
            show("trading")
            time.sleep(0.25)
        # Caught up: nothing new on the flows' output topics for a while.
        watched = [run.topics.ticks, run.topics.signals, run.topics.orders, run.topics.execution_reports]
        last, since = _end_offsets(run, watched), time.monotonic()
        while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
            time.sleep(0.5)
            _check(flows, day)
            now = _end_offsets(run, watched)
            if now != last:
                last, since = now, time.monotonic()
            show("catching up", last[run.topics.orders])
        # The store flow writes the derived topics to QuestDB beside the hot path: wait until its tables stop
        # growing, so that the summary sees the whole day.
        stored, since = _stored_counts(run), time.monotonic()
        while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
            time.sleep(0.5)
            _check(flows, day)
            now = _stored_counts(run)
            if now != stored:
                stored, since = now, time.monotonic()
            show("storing", last[run.topics.orders])
        day.tick_to_order_ms = tick_to_order(venue, run)
    finally:
        adapter.stop()
        try:
            adapter.join(30)
        finally:
            for process in flows.values():
                process.terminate()
            for process in flows.values():
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
            venue.stop()
    streams = adapter.stats
    day.published = streams["market"].published
    day.reconnects = sum(s.reconnects for s in streams.values())
    day.seconds = time.monotonic() - started
    return day


def tick_to_order(venue: VenueServer, settings: Settings) -> dict[str, float]:
    """For every order the venue received (its own request log, first POST of each id): its arrival minus the
    wall time at which the trade that caused it happened at the venue (its market clock, played at a known
    speed, says when). The round trip: the venue's feed, the adapter, Kafka, the trading flow, the order sink,
    HTTP. The trade of each order is the ``signal_ts_ns`` of its record on the orders topic."""
    from connectors.kafka.reader import read_topic

    arrived: dict[str, int] = {}
    for row in venue.requests():
        if row["method"] == "POST" and row["path"] == "/orders":
            arrived.setdefault(row["client_order_id"], row["wall_ns"])
    latencies = []
    seen: set[str] = set()
    for item in read_topic(settings.kafka, settings.topics.orders, idle_timeout_s=1.0):
        record = item.event
        cid = record.get("client_order_id", "")
        if record.get("action") != "SUBMIT" or cid in seen or cid not in arrived or not record.get("signal_ts_ns"):
            continue
        seen.add(cid)
        happened = venue.wall_ns_of(int(record["signal_ts_ns"]))
        if happened is not None:
            latencies.append((arrived[cid] - happened) / 1e6)
    if not latencies:
        return {"count": 0}
    p50, p99 = np.percentile(latencies, [50, 99])
    return {"count": len(latencies), "p50": float(p50), "p99": float(p99), "max": float(max(latencies))}


def _stored_counts(settings: Settings) -> dict[str, int]:
    from connectors.questdb.sql import QuestDBClient

    client = QuestDBClient(settings.questdb)
    return {table: int(client.scalar(f"SELECT count() FROM {table}")) for table in STORED_TABLES}


def _check(flows: dict[str, subprocess.Popen[bytes]], day: TradingDay) -> None:
    for name, process in flows.items():
        if process.poll() is not None:
            tail = day.logs[name].read_text(errors="replace")[-2000:]
            from wattflow.errors import WattflowError

            raise WattflowError(f"the {name} flow stopped (exit {process.returncode}):\n{tail}",
                                hint=f"see {day.logs[name]}")
