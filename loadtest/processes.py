"""The processes of a load test: the paper venue, the system under test's (``loadtest.system``), and
(``--own-stack``) Kafka and QuestDB on free ports. Each runs as its own process, exactly as ``wattflow run``
starts it; a load test only ever stops what it started."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wattflow.errors import StackError, VenueError
from wattflow.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
#: Settings under which every decision follows from the raw messages alone (fills are not fed back and no
#: limit binds), so that the reference engine knows every order the flows must send.
FREE_ENGINE = {
    "WATTFLOW_EXECUTION_CLIP_INTERVAL_S": "0",
    "WATTFLOW_EXECUTION_MAX_ORDERS_PER_INTERVAL": "1000000000",
    "WATTFLOW_EXECUTION_MAX_PRODUCT_POSITION_MW": "1e12", "WATTFLOW_EXECUTION_MAX_TOTAL_POSITION_MW": "1e13",
    "WATTFLOW_EXECUTION_MAX_ORDER_VALUE_EUR": "1e15",
}
#: Kafka tuned for latency in the flows (the client defaults batch for throughput).
TUNED_KAFKA = {"WATTFLOW_KAFKA_PRODUCER_LINGER_MS": "0", "WATTFLOW_KAFKA_CONSUMER_FETCH_WAIT_MAX_MS": "1",
               "WATTFLOW_KAFKA_SOURCE_IDLE_MS": "0.2"}
API_KEY, ADMIN_KEY = "loadtest", "loadtest-admin"


@dataclass
class Child:
    """A process this load test started, with its log."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def check(self) -> None:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise StackError(f"{self.name} exited with {self.process.returncode}: {tail[0][:300]}",
                             hint=f"read its log, {self.log}")

    def stop(self) -> None:
        """SIGINT, then SIGKILL after 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_child(name: str, command: list[str], env: dict[str, str], logs: Path) -> Child:
    log = logs / f"{name}.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    return Child(name, process, log)


def environment_for(settings: Settings) -> dict[str, str]:
    """WATTFLOW_* variables that point a child process at ``settings`` (and at no settings file)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("WATTFLOW_")}
    env["WATTFLOW_SETTINGS_FILE"] = os.devnull
    env.update(settings.to_env())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def flow_env(settings: Settings, venue_port: int, *, tuned: bool,
             extra: dict[str, str] | None = None) -> dict[str, str]:
    env = environment_for(settings)
    env.update({"WATTFLOW_VENUE_PORT": str(venue_port), "WATTFLOW_VENUE_HOST": "127.0.0.1",
                "WATTFLOW_VENUE_API_KEY": API_KEY, "WATTFLOW_VENUE_TIMEOUT_S": "2", **FREE_ENGINE})
    if tuned:
        env.update(TUNED_KAFKA)
    env.update(extra or {})
    return env


def venue_call(port: int, path: str, body: dict[str, Any] | None = None, timeout_s: float = 30.0) -> Any:
    import orjson

    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST" if body is not None else "GET",
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"X-API-Key": ADMIN_KEY, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as answer:
        return orjson.loads(answer.read())


def start_venue(logs: Path, products: list[str], clock_ns: int, *, latency_ms: float) -> tuple[Child, int]:
    """The paper venue in its own process (no rate limit, a manual market clock set to ``clock_ns``), over a
    hand-made 49/51 book of 30 MW on each product."""
    from connectors.feeds.files import write_feed
    from paper.handmade import BookEvent, handmade_feed
    from wattflow.domain import Side
    from wattflow.stack.process import free_port

    events = []
    for key in products:
        events += [BookEvent(clock_ns, key, Side.BUY, 0, 49.0, 30.0),
                   BookEvent(clock_ns, key, Side.SELL, 0, 51.0, 30.0)]
    feed = write_feed(handmade_feed(events), logs / "venue-feed.jsonl")
    port = free_port()
    env = {**os.environ, "WATTFLOW_VENUE_API_KEY": API_KEY,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}
    child = start_child("venue", [sys.executable, "-m", "paper.server", "--feed", str(feed), "--port", str(port),
                                  "--admin-key", ADMIN_KEY, "--rate-limit", "0", "--speed", "0",
                                  "--latency-ms", str(latency_ms)], env, logs)
    deadline = time.monotonic() + 60
    while True:
        child.check()
        try:
            venue_call(port, "/admin/clock", {"ts_ns": clock_ns}, timeout_s=2)
            return child, port
        except OSError:
            if time.monotonic() > deadline:
                child.stop()
                raise VenueError("the paper venue did not start within 60 s", hint=f"read its log, {child.log}") \
                    from None
            time.sleep(0.2)


def venue_first_posts(port: int) -> tuple[dict[str, int], int]:
    """Client order id -> wall time its first POST /orders reached the venue (the venue's own log), and how
    many POSTs repeated an id already posted (retries: doubled at the venue)."""
    first: dict[str, int] = {}
    repeats = 0
    for row in venue_call(port, "/admin/requests"):
        if row["method"] == "POST" and row["path"] == "/orders":
            if row["client_order_id"] in first:
                repeats += 1
            else:
                first[row["client_order_id"]] = int(row["wall_ns"])
    return first, repeats


def init_topics_and_tables(settings: Settings) -> None:
    from connectors.kafka.admin import ensure_topics, topic_partitions
    from connectors.questdb.sql import QuestDBClient
    from connectors.questdb.tables import ensure_tables
    from wattflow.errors import KafkaError

    ensure_topics(settings.kafka, settings.topics.all_topics(), settings.topics.replication_factor)
    ensure_tables(QuestDBClient(settings.questdb))
    deadline = time.monotonic() + 30
    for topic in settings.topics.all_topics():  # a topic created a moment ago may not be in the metadata yet
        while True:
            try:
                topic_partitions(settings.kafka, topic)
                break
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


@contextlib.contextmanager
def own_stack() -> Iterator[Any]:
    """Real Kafka and QuestDB on free loopback ports in a temporary directory, always stopped (and the
    directory deleted) on the way out."""
    from wattflow.stack import Stack
    from wattflow.stack.process import free_port

    state_dir = Path(tempfile.mkdtemp(prefix="wattflow-loadtest-"))
    settings = Settings.load(
        os.devnull, state_dir=state_dir, kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"},
        questdb={"http_port": free_port(), "ilp_tcp_port": free_port(), "pg_port": free_port(),
                 "health_port": free_port()},
        stack={"kafka_controller_port": free_port(), "stop_grace_s": 15.0})
    stack = Stack(settings)
    try:
        stack.up()
        init_topics_and_tables(settings)
        yield stack
    finally:
        stack.down()
        shutil.rmtree(state_dir, ignore_errors=True)


def server_pids(settings: Settings) -> dict[str, int]:
    """Pids of the native stack's Kafka and QuestDB named by ``settings`` (none for a Docker stack)."""
    from wattflow.stack import Stack

    pids = {}
    with contextlib.suppress(Exception):
        for name, process in Stack(settings).processes().items():
            if name in ("kafka", "questdb") and (pid := process.pid()) is not None:
                pids[name] = pid
    return pids
