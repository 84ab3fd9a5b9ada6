"""Tick to order on the box: a raw message in Kafka -> an order at the venue, for each topology.

One real stack (Kafka, QuestDB), the paper venue as its own process (HTTP, no rate limit, a manual market
clock at which every product is open), and the flows as separate processes in tail mode
(``python -m bytewax.run "flows.<name>:get_flow(tail=True, ...)"``, settings through WATTFLOW_* variables).
A load generator in this process sends raw messages (trades and book updates, as ``wattflow replay`` does)
on an **absolute schedule**: message i is due at ``start + i / rate``; when the generator falls behind it
sends what is due at once, and latency is always counted from the *scheduled* time (no coordinated
omission). Each message's event time is its scheduled wall time shifted to a fixed market day
(``ts_ns = T0 + (scheduled - origin)``), so an order's ``signal_ts_ns`` (the event time of the trade whose
signal made the engine decide) gives back the scheduled send time of that trade exactly.

**Expected and measured orders.** Fills are not fed back and the limits never bind, so every decision is a
function of the raw messages alone: the same pure operators (decode, validate, features, models, the engine)
run offline over the messages sent give every client order id the flows must send (``expected_orders``).
The venue's own request log (``GET /admin/requests``) says when each one's first POST arrived. **Tick to
order** = that arrival minus the scheduled time of the trade that caused the order; an expected order that
never arrived is counted, as infinitely late, never dropped from the percentiles.

Variants, one stack, each with fresh topics and fresh flow processes:

* **the trading flow** (one dataflow from raw message to order; ``flows/trading.py``) with the ingest flow
  beside it as the store path, Kafka tuned for latency (``WATTFLOW_KAFKA_PRODUCER_LINGER_MS=0``,
  ``CONSUMER_FETCH_WAIT_MAX_MS=1``, ``SOURCE_IDLE_MS=0.2``) and with Kafka client defaults; first a rate ramp
  finds its **maximum sustained rate** (trades reach ``signals`` with bounded lag);
* **before**: the three flows chained by Kafka (ingest -> signals -> execution), Kafka tuned;
* **baseline**: a minimal hand-written loop (``poll()`` the raw topic, ``orjson.loads``, an order per trade
  at the engine's cadence, ``POST /orders`` and ``DELETE`` the previous order with the same HTTP client) in
  its own process, tuned Kafka: the floor of one Kafka hop plus HTTP on this box.

    python -m benchmarks.bench_tick_to_order [--quick] [--duration S] [--rates 1000 5000 10000]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from benchmarks.common import (
    RESULTS_DIR,
    CpuMeter,
    console,
    environment_for,
    machine_info,
    print_table,
    running_stack,
    server_pids,
    write_results,
)

ROOT = Path(__file__).resolve().parent.parent
NS = 1_000_000_000
#: The market day the load is stamped in: 2018-10-28T10:00Z; products delivered from 12:00Z (gate 11:30Z).
T0 = int(datetime(2018, 10, 28, 10, 0, tzinfo=UTC).timestamp()) * NS
API_KEY, ADMIN_KEY = "bench-t2o", "bench-t2o-admin"
TOPIC_NAMES = ("raw", "ticks", "book", "dayahead", "features", "signals", "orders", "execution_reports", "events",
               "dlq", "control")
TUNED_ENV = {"WATTFLOW_KAFKA_PRODUCER_LINGER_MS": "0", "WATTFLOW_KAFKA_CONSUMER_FETCH_WAIT_MAX_MS": "1",
             "WATTFLOW_KAFKA_SOURCE_IDLE_MS": "0.2"}


def product_keys(count: int) -> list[str]:
    """Hourly DE-LU products from 12:00Z on 2018-10-28 (all open at T0 and for the next 90 minutes)."""
    return [f"DE-LU:2018-10-28T{12 + k:02d}:00Z:PT60M" for k in range(count)]


# --- the schedule and the load (pure, tested in tests/unit/test_bench_tick_to_order.py) ---------------------


@dataclass
class Load:
    """The messages of one phase, in send order, with each one's scheduled wall time."""

    values: list[bytes]
    keys: list[bytes]
    scheduled_ns: NDArray[np.int64]
    is_trade: NDArray[np.bool_]
    product: NDArray[np.int64]  # index into the product list
    trade_id: NDArray[np.int64]  # -1 for book updates
    next_trade_scheduled_ns: NDArray[np.int64]  # for trades: when the product's next trade is due (-1: none)

    def __len__(self) -> int:
        return len(self.values)


def schedule(start_ns: int, rate_per_s: float, count: int) -> NDArray[np.int64]:
    """Absolute send times: message i is due at ``start_ns + i / rate`` (rounded to the nanosecond)."""
    return start_ns + np.round(np.arange(count, dtype=np.float64) * (NS / rate_per_s)).astype(np.int64)


def event_ts(scheduled_ns: NDArray[np.int64] | int, origin_ns: int) -> Any:
    """The event time a message scheduled at ``scheduled_ns`` carries (the market day shifted to wall time)."""
    return T0 + (scheduled_ns - origin_ns)


def scheduled_from_event(ts_ns: NDArray[np.int64] | int, origin_ns: int) -> Any:
    """Inverse of :func:`event_ts`: the scheduled wall time of the message with event time ``ts_ns``."""
    return ts_ns - T0 + origin_ns


@dataclass
class Generator:
    """Makes the load: products in turn; each product alternates a trade and a level-0 book update (half
    trades), prices following a mean-reverting walk around 50 EUR/MWh so that the models take positions."""

    products: list[str]
    origin_ns: int
    seed: int = 11
    next_trade_id: int = 1
    seq: int = 0
    sent: int = 0  # messages made so far (decides each product's trade/book turn)
    _mid: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    _rng: np.random.Generator = field(default_factory=np.random.default_rng)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._mid = np.full(len(self.products), 50.0)

    def dayahead(self) -> tuple[list[bytes], list[bytes]]:
        """The day-ahead anchor of each product's hour (the signals flow releases nothing without it)."""
        values, keys = [], []
        for k in range(len(self.products)):
            start = T0 + (2 + k) * 3600 * NS
            values.append(orjson.dumps({"type": "dayahead", "ts_ns": T0 - 3600 * NS, "area": "DE-LU",
                                        "delivery_start_ns": start, "duration_min": 60, "price_eur_per_mwh": 50.0,
                                        "source": "bench", "seq": k}))
            keys.append(b"DE-LU")
        return values, keys

    def phase(self, start_ns: int, rate_per_s: float, duration_s: float) -> Load:
        n = max(int(rate_per_s * duration_s), 2 * len(self.products))
        sched = schedule(start_ns, rate_per_s, n)
        ts = event_ts(sched, self.origin_ns)
        p = len(self.products)
        turn = np.arange(self.sent, self.sent + n)
        product = turn % p
        is_trade = (turn // p) % 2 == 0
        self.sent += n
        rng = self._rng
        noise = rng.normal(0.0, 0.6, n).tolist()
        shock = rng.normal(0.0, 0.15, n).tolist()
        quantity = (rng.integers(1, 50, n) / 10).tolist()
        ts_list, product_list, trade_list, turn_list = ts.tolist(), product.tolist(), is_trade.tolist(), turn.tolist()
        mids = self._mid.tolist()
        values: list[bytes] = []
        keys: list[bytes] = []
        trade_id = np.full(n, -1, dtype=np.int64)
        encoded = [key.encode() for key in self.products]
        for i in range(n):
            k = product_list[i]
            mid = mids[k] = mids[k] + 0.05 * (50.0 - mids[k]) + shock[i]
            self.seq += 1
            if trade_list[i]:
                trade_id[i] = self.next_trade_id
                values.append(orjson.dumps({
                    "type": "trade", "ts_ns": ts_list[i], "product": self.products[k],
                    "price_eur_per_mwh": round(mid + noise[i], 2), "quantity_mw": quantity[i],
                    "side": "BUY" if noise[i] > 0 else "SELL", "trade_id": self.next_trade_id, "source": "bench",
                    "seq": self.seq}))
                self.next_trade_id += 1
            else:
                buy = (turn_list[i] // p // 2) % 2 == 0  # each product's book: bid, ask, bid...
                values.append(orjson.dumps({
                    "type": "book", "ts_ns": ts_list[i], "product": self.products[k],
                    "side": "BUY" if buy else "SELL", "level": 0,
                    "price_eur_per_mwh": round(mid - 0.3 if buy else mid + 0.3, 2),
                    "quantity_mw": round(quantity[i] * 5 + 5, 1), "source": "bench", "seq": self.seq}))
            keys.append(encoded[k])
        self._mid = np.asarray(mids)
        return Load(values, keys, sched, is_trade, product, trade_id, next_trade_times(sched, is_trade, product))


def next_trade_times(sched: NDArray[np.int64], is_trade: NDArray[np.bool_],
                     product: NDArray[np.int64]) -> NDArray[np.int64]:
    """For each trade, the scheduled time of the same product's next trade in the phase (-1: none)."""
    out = np.full(len(sched), -1, dtype=np.int64)
    for k in np.unique(product):
        rows = np.flatnonzero(is_trade & (product == k))
        out[rows[:-1]] = sched[rows[1:]]
    return out


# --- statistics ------------------------------------------------------------------------------------------------


def summary_ms(latencies_ns: Sequence[int] | NDArray[np.int64]) -> dict[str, float]:
    """count, p50, p90, p99, p99.9 and max in milliseconds (NaN when empty)."""
    values = np.asarray(latencies_ns, dtype=np.float64) / 1e6
    if not len(values):
        return {"count": 0, "p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "p99.9": float("nan"),
                "max": float("nan"), "mean": float("nan")}
    p50, p90, p99, p999 = np.percentile(values, [50, 90, 99, 99.9])
    return {"count": len(values), "p50": float(p50), "p90": float(p90), "p99": float(p99), "p99.9": float(p999),
            "max": float(values.max()), "mean": float(values.mean())}


def summary_with_missing(latencies_ns: Sequence[int], missing: int) -> dict[str, float]:
    """:func:`summary_ms` over the orders that arrived and ``missing`` that never did, counted as infinitely
    late: a percentile that falls among them is ``inf``."""
    values = np.concatenate([np.asarray(latencies_ns, dtype=np.float64) / 1e6, np.full(missing, np.inf)])
    if not len(values):
        return summary_ms([])
    p50, p90, p99, p999 = np.percentile(values, [50, 90, 99, 99.9], method="higher")
    finite = values[np.isfinite(values)]
    return {"count": len(values), "p50": float(p50), "p90": float(p90), "p99": float(p99), "p99.9": float(p999),
            "max": float(values.max()), "mean": float(finite.mean()) if len(finite) else float("nan")}


def kept_up(lag_ns: NDArray[np.int64], scheduled_ns: NDArray[np.int64], *, seen_share: float,
            limit_ms: float = 5000.0, growth_ms: float = 250.0,
            min_seen: float = 0.98) -> tuple[bool, dict[str, float]]:
    """Did the chain keep up? The median lag of the last fifth of the phase (by schedule) stays under
    ``limit_ms`` and within ``growth_ms`` of the first fifth's, and nearly every trade came through."""
    if not len(lag_ns):
        return False, {"first_ms": float("nan"), "last_ms": float("nan"), "seen": seen_share}
    order = np.argsort(scheduled_ns)
    lag = np.asarray(lag_ns, dtype=np.float64)[order] / 1e6
    fifth = max(len(lag) // 5, 1)
    first, last = float(np.median(lag[:fifth])), float(np.median(lag[-fifth:]))
    ok = last < limit_ms and last < first + growth_ms and seen_share >= min_seen
    return ok, {"first_ms": first, "last_ms": last, "seen": seen_share}


# --- Kafka helpers ----------------------------------------------------------------------------------------------


def create_topics(settings: Any, partitions: int = 4) -> None:
    """This variant's topics, stamped by the broker (LogAppendTime) so that stage times can be read back."""
    from confluent_kafka.admin import AdminClient, NewTopic

    t = settings.topics
    admin = AdminClient(settings.kafka.client_config())
    config = {"message.timestamp.type": "LogAppendTime"}
    wanted = [NewTopic(getattr(t, name), num_partitions=1 if name == "control" else partitions,
                       replication_factor=1, config=config) for name in TOPIC_NAMES]
    for _, future in admin.create_topics(wanted, operation_timeout=30).items():
        future.result()


class TopicTail:
    """Reads a topic from the beginning, incrementally: every call returns what arrived since the last one."""

    def __init__(self, settings: Any, topic: str) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        from connectors.kafka.admin import topic_partitions

        self.consumer = Consumer({**settings.kafka.client_config(), "group.id": f"bench-t2o-{topic}",
                                  "enable.auto.commit": False, "fetch.wait.max.ms": 10})
        self.partitions = [TopicPartition(topic, p, OFFSET_BEGINNING)
                           for p in range(topic_partitions(settings.kafka, topic))]
        self.consumer.assign(self.partitions)
        self.next_offset = {p.partition: 0 for p in self.partitions}

    def _end(self, partition: Any) -> int:
        """The partition's end offset; a topic created a moment ago may not be in the client's metadata yet."""
        from confluent_kafka import KafkaException

        for attempt in range(50):
            try:
                return int(self.consumer.get_watermark_offsets(partition, 10)[1])
            except KafkaException:
                if attempt == 49:
                    raise
                self.consumer.list_topics(partition.topic, timeout=10)
                time.sleep(0.2)
        raise AssertionError("unreachable")

    def read(self, idle_s: float = 0.3, timeout_s: float = 30.0) -> list[tuple[bytes, int]]:
        """(value, broker timestamp in ms) of every message up to the end the topic had when called, then
        until nothing more arrives for ``idle_s``."""
        from confluent_kafka import TopicPartition

        ends = {p.partition: self._end(TopicPartition(p.topic, p.partition)) for p in self.partitions}
        out: list[tuple[bytes, int]] = []
        quiet_since = started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            messages = self.consumer.consume(5000, 0.05)
            if messages:
                quiet_since = time.monotonic()
            for m in messages:
                if m.error() is None:
                    out.append((m.value() or b"", m.timestamp()[1]))
                    self.next_offset[int(m.partition() or 0)] = int(m.offset() or 0) + 1
            at_end = all(self.next_offset[p] >= end for p, end in ends.items())
            if at_end and time.monotonic() - quiet_since >= idle_s:
                break
        return out

    def close(self) -> None:
        self.consumer.close()


def trades_seen(messages: list[tuple[bytes, int]], into: dict[int, int]) -> None:
    """trade id -> first broker append time (ns, centred in its millisecond) from signals or features messages."""
    for value, ts_ms in messages:
        columns = orjson.loads(value).get("columns") or {}
        stamp = ts_ms * 1_000_000 + 500_000
        for trade in columns.get("trade_id", ()):
            if into.get(trade, stamp + 1) > stamp:
                into[trade] = stamp


def ticks_seen(messages: list[tuple[bytes, int]], into: dict[int, int]) -> None:
    """trade id -> append time (ns, centred) from packed md.ticks messages."""
    for value, ts_ms in messages:
        stamp = ts_ms * 1_000_000 + 500_000
        for event in orjson.loads(value).get("events", ()):
            trade = event.get("trade_id")
            if trade is not None and into.get(trade, stamp + 1) > stamp:
                into[trade] = stamp


# --- processes ----------------------------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def check(self) -> None:
        if self.process.poll() is not None:
            raise SystemExit(f"{self.name} exited with {self.process.returncode}:\n"
                             f"{self.log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> float:
        """Stop it (SIGINT, then SIGKILL after 10 s); returns its CPU seconds as last seen."""
        cpu = _cpu_of(self.process.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return cpu


def _cpu_of(pid: int) -> float:
    from benchmarks.common import process_cpu_s

    return process_cpu_s(pid)


def start_child(name: str, command: list[str], env: dict[str, str], logs: Path) -> Child:
    log = logs / f"{name}.log"
    handle = log.open("wb")
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    return Child(name, process, log)


def start_venue(logs: Path, products: list[str]) -> tuple[Child, int]:
    """The paper venue in its own process over a hand-made feed (a 49/51 book of 30 MW on each product),
    its manual market clock set to T0 + 1 s: every product is open, every sane order is accepted."""
    from connectors.feeds.files import write_feed
    from paper.handmade import BookEvent, TradeEvent, handmade_feed
    from wattflow.domain import Side
    from wattflow.stack.process import free_port

    events: list[BookEvent | TradeEvent] = []
    for key in products:
        events += [BookEvent(T0, key, Side.BUY, 0, 49.0, 30.0), BookEvent(T0, key, Side.SELL, 0, 51.0, 30.0)]
    events.append(TradeEvent(T0 + 3 * 3600 * NS, products[0], Side.SELL, 50.0, 0.1))
    feed = write_feed(handmade_feed(events), logs / "venue-feed.jsonl")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WATTFLOW_VENUE_API_KEY": API_KEY}
    child = start_child("venue", [sys.executable, "-m", "paper.server", "--feed", str(feed), "--port",
                                  str(port), "--admin-key", ADMIN_KEY, "--rate-limit", "0", "--speed", "0"], env, logs)
    deadline = time.monotonic() + 60
    while True:
        child.check()
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/admin/clock", method="POST",
                                             data=json.dumps({"ts_ns": T0 + NS}).encode(),
                                             headers={"X-API-Key": ADMIN_KEY, "Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=2) as answer:
                answer.read()
            return child, port
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("the venue did not start:\n" + child.log.read_text(errors="replace")[-2000:]) from None
            time.sleep(0.2)


def flow_env(settings: Any, venue_port: int, tuned: bool, order_ttl_s: float) -> dict[str, str]:
    env = {**environment_for(settings), "PYTHONPATH": str(ROOT)}
    env.update({
        "WATTFLOW_VENUE_PORT": str(venue_port), "WATTFLOW_VENUE_API_KEY": API_KEY, "WATTFLOW_VENUE_TIMEOUT_S": "2",
        # Loose limits: every product may trade again as soon as its resting order is older than the TTL, and no
        # limit is ever reached although fills are not fed back (no reports adapter): every decision is a
        # function of the raw messages alone, so the reference engine (expected_orders) knows them all.
        "WATTFLOW_EXECUTION_CLIP_INTERVAL_S": "0", "WATTFLOW_EXECUTION_ORDER_TTL_S": str(order_ttl_s),
        "WATTFLOW_EXECUTION_MAX_ORDERS_PER_INTERVAL": "1000000000",
        "WATTFLOW_EXECUTION_MAX_PRODUCT_POSITION_MW": "1e12", "WATTFLOW_EXECUTION_MAX_TOTAL_POSITION_MW": "1e13",
        "WATTFLOW_EXECUTION_MAX_ORDER_VALUE_EUR": "1e15",
    })
    if tuned:
        env.update(TUNED_ENV)
    return env


#: What runs for each topology: (flow, batch size) in their own processes.
TOPOLOGIES = {
    # The hot path in one dataflow; the store path (raw -> QuestDB) beside it.
    "trading": (("trading", 5_000), ("ingest", 20_000)),
    # Before: three flows chained by Kafka. Signals at 2,000 per poll: with a backlog, 20,000 make one product's
    # columnar features message larger than the broker's 1 MB limit (MSG_SIZE_TOO_LARGE).
    "chain": (("ingest", 20_000), ("signals", 2_000), ("execution", 5_000)),
}


def start_flows(env: dict[str, str], logs: Path, topology: str) -> list[Child]:
    """The topology's flows in tail mode. No reports adapter: fills are not fed back, so that every decision
    follows from the raw messages alone (see ``flow_env``) and the expected orders are known."""
    from cli.run import bytewax_command

    return [start_child(flow, bytewax_command(flow, tail=True, batch_size=batch, workers=1, recovery=None,
                                              snapshot_interval_s=2), env, logs)
            for flow, batch in TOPOLOGIES[topology]]


# --- what should reach the venue: the reference ------------------------------------------------------------


def expected_orders(values: list[bytes], env: dict[str, str], topology: str) -> dict[str, int]:
    """Client order id -> event time of the trade that caused it, for every order the flows must send for
    these raw messages (in send order), computed offline by the same pure operators (decode, validate,
    features, models, the engine) under the flows' settings. In log order (trading) or event time (chain);
    a product's decisions depend on its own messages only (limits never bind, see ``flow_env``), so the
    interleaving of products across partitions does not change them."""
    from connectors.wire.market import decode_batch
    from operators.execution import EngineSettings, ExecutionEngine
    from operators.features import FeatureSettings, ProductFeatures
    from operators.models import ModelSettings, load_models
    from operators.signals import by_product, market_step
    from operators.validate import ProductWindows, validate_batch
    from wattflow.batches import RawBatch
    from wattflow.orders import Submit
    from wattflow.settings import Settings

    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        settings = Settings.load()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    signal_settings = settings.signals
    models = load_models(signal_settings.model_names(), ModelSettings(max_position_mw=signal_settings.max_position_mw))
    raw = RawBatch("raw", 0, list(values), np.arange(len(values), dtype=np.int64), np.zeros(len(values), np.int64))
    batch = validate_batch(decode_batch(raw), ProductWindows())
    feature_settings = FeatureSettings(in_log_order=topology == "trading")
    states: dict[str, ProductFeatures] = {}
    features = []
    for key, events in by_product(batch, signal_settings.durations()):
        state = states.setdefault(key, ProductFeatures.new(key, feature_settings))
        produced = state.on_events(events)
        if produced is not None:
            features.append(produced)
    rows = market_step(features, models).rows
    engine = ExecutionEngine(EngineSettings.from_settings(settings.execution))
    out = engine.on_signals(rows)
    return {command.client_order_id: command.plan.signal_ts_ns for command in out.commands
            if isinstance(command, Submit)}


def expected_baseline(values: list[bytes], ttl_s: float, tag: str) -> dict[str, int]:
    """The baseline loop's cadence, offline: a product orders again at its first trade ``ttl_s`` after its
    last order (ids from the product and the trade's time, so the order partitions are read in does not
    matter)."""
    ttl_ns = int(ttl_s * NS)
    last: dict[str, int] = {}
    out: dict[str, int] = {}
    for value in values:
        event = orjson.loads(value)
        if event.get("type") != "trade":
            continue
        product, ts = event["product"], int(event["ts_ns"])
        if product in last and ts - last[product] < ttl_ns:
            continue
        last[product] = ts
        out[baseline_order_id(tag, product, ts)] = ts
    return out


def baseline_order_id(tag: str, product: str, ts_ns: int) -> str:
    """The baseline loop's client order id for the order a trade causes (deterministic, as wattflow's)."""
    return f"base-{tag}-" + hashlib.blake2b(f"{product}|{ts_ns}".encode(), digest_size=8).hexdigest()


def venue_request_count(port: int) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/admin/requests", headers={"X-API-Key": ADMIN_KEY})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return len(orjson.loads(answer.read()))


def drain_orders(port: int, *, quiet_s: float = 1.5, timeout_s: float = 180.0) -> float:
    """Wait until the venue has had no request for ``quiet_s`` (the order path worked off its backlog), so that
    one phase's backlog is not measured in the next; returns the seconds waited."""
    started = time.monotonic()
    last, since = venue_request_count(port), time.monotonic()
    while time.monotonic() - since < quiet_s and time.monotonic() - started < timeout_s:
        time.sleep(0.25)
        now = venue_request_count(port)
        if now != last:
            last, since = now, time.monotonic()
    return time.monotonic() - started


def venue_requests(port: int) -> dict[str, int]:
    """Client order id -> wall time its first POST /orders reached the venue (the venue's own log)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/admin/requests", headers={"X-API-Key": ADMIN_KEY})
    with urllib.request.urlopen(request, timeout=30) as answer:
        rows = orjson.loads(answer.read())
    first: dict[str, int] = {}
    for row in rows:
        if row["method"] == "POST" and row["path"] == "/orders" and row["client_order_id"] not in first:
            first[row["client_order_id"]] = int(row["wall_ns"])
    return first


# --- the baseline loop (runs in its own process) ----------------------------------------------------------


def baseline_loop(config: dict[str, Any]) -> None:
    """Consume raw messages, decide on trades with the engine's cadence (a product trades again when its last
    order is ``ttl`` of market time old: cancel it, send a new one), POST over the same HTTP client; publish
    a record per order (``signal_ts_ns``, ``decided_wall_ns``, ``answered_wall_ns``) on the orders topic."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    from connectors.venue.client import OrderRequest, VenueClient

    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    consumer = Consumer({"bootstrap.servers": config["bootstrap"], "group.id": "bench-t2o-baseline",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 1, "fetch.min.bytes": 1})
    consumer.assign([TopicPartition(config["raw"], p, OFFSET_BEGINNING) for p in range(config["partitions"])])
    producer = Producer({"bootstrap.servers": config["bootstrap"], "linger.ms": 5})
    client = VenueClient(f"http://127.0.0.1:{config['port']}", config["api_key"], timeout_s=2.0)
    ttl_ns = int(config["ttl_s"] * NS)
    last: dict[str, tuple[int, str]] = {}
    while not stopping:
        message = consumer.poll(0.1)
        if message is None or message.error() is not None:
            continue
        event = orjson.loads(message.value() or b"{}")
        if event.get("type") != "trade":
            continue
        product, ts = event["product"], int(event["ts_ns"])
        previous = last.get(product)
        if previous is not None and ts - previous[0] < ttl_ns:
            continue
        decided = time.time_ns()
        if previous is not None:
            client.cancel(previous[1])
        cid = baseline_order_id(config["tag"], product, ts)
        side = "BUY" if event["side"] == "SELL" else "SELL"
        price = round(event["price_eur_per_mwh"] - (0.5 if side == "BUY" else -0.5), 2)
        outcome = client.submit(OrderRequest(cid, product, side, price, 1.0, "GTC"))
        answered = time.time_ns()
        last[product] = (ts, cid)
        producer.produce(config["orders"], orjson.dumps({
            "client_order_id": cid, "action": "SUBMIT", "status": outcome.status.value, "signal_ts_ns": ts,
            "decided_wall_ns": decided, "answered_wall_ns": answered}))
        producer.poll(0)
    producer.flush(10)
    consumer.close()


# --- sending ------------------------------------------------------------------------------------------------


def send(producer: Any, topic: str, load: Load, label: str) -> dict[str, Any]:
    """Send ``load`` on its schedule; returns each message's actual send time and the delays."""
    sched = load.scheduled_ns
    sent_ns = np.zeros(len(load), dtype=np.int64)
    values, keys = load.values, load.keys
    i, n = 0, len(load)
    shown = time.monotonic()
    with console.status(f"{label}: sending {n:,} messages") as status:
        while i < n:
            now = time.time_ns()
            due = int(sched[i])
            if due > now:
                time.sleep((due - now) / 1e9)
                continue
            j = int(np.searchsorted(sched, now, side="right"))
            for k in range(i, j):
                producer.produce(topic, values[k], keys[k])
            sent_ns[i:j] = time.time_ns()
            producer.poll(0)
            i = j
            if time.monotonic() - shown > 0.5:
                shown = time.monotonic()
                behind = (time.time_ns() - due) / 1e6
                status.update(f"{label}: sent {i:,}/{n:,} (behind schedule {behind:.1f} ms)")
    producer.flush(60)
    delay = sent_ns - sched
    return {"sent_ns": sent_ns, "send_delay": summary_ms(delay)}


# --- one variant -----------------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    rate: float
    load: Load
    sent: dict[str, Any]
    ramp: bool = False


def run_variant(stack: Any, tag: str, *, tuned: bool, topology: str, rates: list[float | str],
                args: argparse.Namespace, logs: Path, max_rate: float | None) -> dict[str, Any]:
    """Start this variant's topics, venue, flows (or baseline loop); warm up; optionally ramp to find the
    maximum sustained rate; run each rate; read back orders, stage times and the venue's own request log."""
    from connectors.kafka.producer import CheckedProducer

    baseline = topology == "baseline"

    base = stack.settings
    topics = base.topics.model_copy(update={name: f"t2o.{tag}.{getattr(base.topics, name)}" for name in TOPIC_NAMES})
    kafka = base.kafka.model_copy(update={"producer_linger_ms": 0.0} if tuned else {})
    settings = base.model_copy(update={"topics": topics, "kafka": kafka})
    create_topics(settings)
    products = product_keys(args.products)
    venue, port = start_venue(logs, products)
    children: list[Child] = [venue]
    try:
        if baseline:
            config = {"bootstrap": base.kafka.bootstrap_servers, "raw": topics.raw, "orders": topics.orders,
                      "partitions": 4, "port": port, "api_key": API_KEY, "ttl_s": args.order_ttl_s, "tag": tag}
            children.append(start_child("baseline", [
                sys.executable, "-c", "import json,sys; from benchmarks.bench_tick_to_order import baseline_loop; "
                "baseline_loop(json.loads(sys.argv[1]))", json.dumps(config)],
                {**os.environ, "PYTHONPATH": str(ROOT)}, logs))
        else:
            env = flow_env(settings, port, tuned, args.order_ttl_s)
            children += start_flows(env, logs, topology)
        producer = CheckedProducer(settings.kafka, **{"client.id": "bench-t2o-load"})
        origin = time.time_ns()
        generator = Generator(products, origin)
        values, keys = generator.dayahead()
        producer.produce_many(topics.raw, keys, values)
        producer.flush()
        sent_values: list[bytes] = list(values)  # everything sent, in order: the reference's input
        signals_tail = TopicTail(settings, topics.orders if baseline else topics.signals)
        seen: dict[int, int] = {}
        orders_seen: list[tuple[bytes, int]] = []

        def catch_up(load: Load, timeout_s: float) -> bool:
            """Wait until the phase's trades (but each product's last, held for event-time order) came through."""
            if baseline:
                time.sleep(1.0)
                orders_seen.extend(signals_tail.read(0.2))
                return True
            wanted = load.trade_id[load.is_trade][:-len(products)]
            target = int(wanted[-1]) if len(wanted) else -1
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                for child in children:
                    child.check()
                trades_seen(signals_tail.read(0.2), seen)
                if target in seen:
                    return True
            return False

        # Warm-up: start the flows' kernels and connections; wait until trades come through.
        with console.status(f"{tag}: starting flows, warming up..."):
            warm = generator.phase(time.time_ns() + NS // 2, 500, args.warmup_s)
        send(producer, topics.raw, warm, f"{tag} warm-up")
        sent_values += warm.values
        if not catch_up(warm, 180):
            raise SystemExit(f"{tag}: warm-up trades never reached the signals topic; logs in {logs}")
        phases: list[Phase] = []
        ramp: list[dict[str, Any]] = []
        if max_rate is None and not baseline:
            for rate in args.ramp:
                load = generator.phase(time.time_ns() + NS // 2, rate, args.ramp_s)
                sent = send(producer, topics.raw, load, f"{tag} ramp {rate:,.0f}/s")
                sent_values += load.values
                caught = catch_up(load, args.ramp_s * 4 + 10)
                trades = load.is_trade.copy()
                trades[np.flatnonzero(trades)[-len(products):]] = False
                ids, sched = load.trade_id[trades], load.scheduled_ns[trades]
                present = np.array([t in seen for t in ids.tolist()])
                lag = np.array([seen[t] for t in ids[present].tolist()], dtype=np.int64) - sched[present]
                ok, detail = kept_up(lag, sched[present], seen_share=float(present.mean()) if len(present) else 0.0)
                # The sender shares the 2 cores too; its delay counts in every latency (measured from the
                # schedule), so only a sender far off its schedule disqualifies a step.
                ok = ok and caught and sent["send_delay"]["p99"] < 250
                ramp.append({"rate": rate, "kept_up": ok, "caught_up_in_time": caught,
                             "send_delay_ms": sent["send_delay"], **detail,
                             "lag_to_signals_ms": summary_ms(lag)})
                console.print(f"  ramp {rate:,.0f}/s: {'kept up' if ok else 'fell behind'} (median lag to signals "
                              f"first {detail['first_ms']:.1f} ms, last {detail['last_ms']:.1f} ms, "
                              f"{detail['seen']:.1%} seen; sender p99 {sent['send_delay']['p99']:.1f} ms behind)")
                phases.append(Phase(f"ramp {rate:,.0f}/s", rate, load, sent, ramp=True))
                if not ok:
                    if not caught:  # let the backlog drain before the next phase
                        catch_up(load, 120)
                    drain_orders(port)
                    break
                drain_orders(port)
                time.sleep(args.gap_s)
            good = [r["rate"] for r in ramp if r["kept_up"]]
            max_rate = float(max(good)) if good else float(args.ramp[0]) / 2
        meter = CpuMeter({**server_pids(stack), **{c.name: c.process.pid for c in children}}).start()
        for wanted in rates:
            rate = (max_rate or 0) / 2 if wanted == "half" else float(wanted)
            name = f"{rate:,.0f}/s" + (" (half of max)" if wanted == "half" else "")
            load = generator.phase(time.time_ns() + NS // 2, rate, args.duration)
            sent = send(producer, topics.raw, load, f"{tag} {name}")
            sent_values += load.values
            if not catch_up(load, args.duration * 3 + 20):
                console.print(f"[yellow]  {tag} {name}: the chain had not caught up when the wait ended[/]")
            phases.append(Phase(name, rate, load, sent))
            waited = drain_orders(port)
            if waited > 5:
                console.print(f"  {tag} {name}: the order path worked off its backlog in {waited:.0f} s")
            time.sleep(args.gap_s)
        cpu = meter.stop()
        time.sleep(1.0)
        for child in children:
            child.check()
        # Read everything back: orders (all variants), md.ticks append times (flows).
        if baseline:
            orders_seen.extend(signals_tail.read(1.0))
            orders = orders_seen
        else:
            trades_seen(signals_tail.read(0.5), seen)
            orders_tail = TopicTail(settings, topics.orders)
            orders = orders_tail.read(1.0)
            orders_tail.close()
        signals_tail.close()
        at_venue = venue_requests(port)
        ticks: dict[int, int] = {}
        if not baseline:
            ticks_tail = TopicTail(settings, topics.ticks)
            ticks_seen(ticks_tail.read(0.5), ticks)
            ticks_tail.close()
    finally:
        cpu_children = {c.name: c.stop() for c in children}
    with console.status(f"{tag}: the reference decisions for {len(sent_values):,} messages"):
        expected = (expected_baseline(sent_values, args.order_ttl_s, tag) if baseline
                    else expected_orders(sent_values, env, topology))
    analysed = [analyse(p, orders, seen, ticks, origin=origin, warmup_cut_s=args.warmup_cut_s, expected=expected,
                        at_venue=at_venue, one_hop=topology != "chain") for p in phases]
    unexpected = sorted(set(at_venue) - set(expected))
    return {"phases": analysed, "ramp": ramp, "max_rate": max_rate, "cpu": cpu, "cpu_children_s": cpu_children,
            "tuned": tuned, "baseline": baseline, "topology": topology, "expected_orders": len(expected),
            "orders_at_venue": len(at_venue), "unexpected_at_venue": len(unexpected),
            "unexpected_examples": unexpected[:5]}


def analyse(phase: Phase, orders: list[tuple[bytes, int]], signals_at: dict[int, int], ticks_at: dict[int, int],
            *, origin: int, warmup_cut_s: float, expected: dict[str, int], at_venue: dict[str, int],
            one_hop: bool) -> dict[str, Any]:
    """Tick to order of every order expected from the trades scheduled in this phase (after its first
    ``warmup_cut_s``): the time its POST reached the venue (the venue's log) minus the trade's scheduled time;
    an expected order that never reached the venue is counted as missing and as infinitely late in the
    percentiles (it is not dropped from them). Stages come from the orders topic."""
    load = phase.load
    lo, hi = int(load.scheduled_ns[0] + warmup_cut_s * NS), int(load.scheduled_ns[-1])
    wanted = {cid: int(scheduled_from_event(ts, origin)) for cid, ts in expected.items()}
    wanted = {cid: sched for cid, sched in wanted.items() if lo <= sched <= hi}
    arrived = [at_venue[cid] - sched for cid, sched in wanted.items() if cid in at_venue]
    missing = len(wanted) - len(arrived)
    to_venue = summary_with_missing(arrived, missing)
    trade_rows = np.flatnonzero(load.is_trade)
    by_sched = {int(load.scheduled_ns[r]): int(r) for r in trade_rows}
    latency: list[int] = []
    names = ("send", "to_ticks", "to_signals", "held", "to_decided", "to_venue", "to_answered")
    stages: dict[str, list[int]] = {k: [] for k in names}
    statuses: dict[str, int] = {}
    for value, _ in orders:
        record = orjson.loads(value)
        if record.get("action") != "SUBMIT" or not record.get("signal_ts_ns") or not record.get("answered_wall_ns"):
            continue
        sched = int(scheduled_from_event(int(record["signal_ts_ns"]), origin))
        if not lo <= sched <= hi:
            continue
        statuses[record["status"]] = statuses.get(record["status"], 0) + 1
        answered, decided = int(record["answered_wall_ns"]), int(record["decided_wall_ns"])
        latency.append(answered - sched)
        row = by_sched.get(sched)
        if row is None:
            continue
        sent = int(phase.sent["sent_ns"][row])
        stages["send"].append(sent - sched)
        stages["to_answered"].append(answered - decided)
        if record.get("client_order_id") in at_venue:
            stages["to_venue"].append(at_venue[record["client_order_id"]] - decided)
        trade = int(load.trade_id[row])
        if one_hop:  # the trading flow and the baseline decide straight from the raw message
            stages["to_decided"].append(decided - sent)
        elif trade in ticks_at and trade in signals_at:
            stages["to_ticks"].append(ticks_at[trade] - sent)
            stages["to_signals"].append(signals_at[trade] - ticks_at[trade])
            stages["to_decided"].append(decided - signals_at[trade])
            following = int(load.next_trade_scheduled_ns[row])
            if following > 0:
                stages["held"].append(following - sched)
    seconds = (hi - lo) / NS
    return {"phase": phase.name, "rate": phase.rate, "ramp": phase.ramp, "messages": len(load),
            "trades": int(load.is_trade.sum()), "expected": len(wanted), "at_venue": len(arrived),
            "missing": missing, "to_venue_ms": to_venue, "to_venue_ns": arrived, "orders": len(latency),
            "orders_per_s": len(latency) / max(seconds, 1e-9),
            "statuses": statuses, "latency_ms": summary_ms(latency), "send_delay_ms": phase.sent["send_delay"],
            "stages_ms": {k: summary_ms(v) for k, v in stages.items()}}


# --- driver --------------------------------------------------------------------------------------------------


def histogram(results: list[dict[str, Any]], path: Path) -> None:
    with contextlib.suppress(ImportError):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=False)
        for axis, rate in zip(axes, (1000.0, 10000.0), strict=True):
            for variant in results:
                for phase in variant["phases"]:
                    if phase["rate"] == rate and not phase["ramp"] and phase["to_venue_ns"]:
                        values = np.asarray(phase["to_venue_ns"]) / 1e6
                        bins = np.logspace(np.log10(max(values.min(), 0.05)), np.log10(values.max() + 1e-3), 60)
                        axis.hist(values, bins=bins, histtype="step", label=variant["variant"], linewidth=1.4)
            axis.set_xscale("log")
            axis.axvline(5.0, color="grey", linestyle="--", linewidth=0.8)
            axis.set_title(f"tick to order at {rate:,.0f} messages/s")
            axis.set_xlabel("from the trade's scheduled time to the order at the venue (ms, log)")
            axis.set_ylabel("orders")
            axis.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        console.print(f"wrote {path}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    machine = machine_info()
    rates: list[float | str] = ["half" if r == "half" else float(r) for r in args.rates]
    variants = [("trading flow, Kafka tuned", "trading", True, "trading"),
                ("trading flow, Kafka defaults", "tradingdef", False, "trading")]
    if args.chain:
        variants.append(("before: 3 flows chained, Kafka tuned", "chain", True, "chain"))
    if args.baseline:
        variants.append(("baseline: hand-written 1-hop loop", "baseline", True, "baseline"))
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="wattflow-t2o-") as scratch, running_stack() as stack:
        logs = Path(scratch)
        max_rate: float | None = args.max_rate
        for label, tag, tuned, topology in variants:
            console.rule(label)
            outcome = run_variant(stack, tag, tuned=tuned, topology=topology, rates=rates, args=args, logs=logs,
                                  max_rate=max_rate)
            if max_rate is None:
                max_rate = outcome["max_rate"]
            outcome["variant"] = label
            results.append(outcome)
            for phase in outcome["phases"]:
                if not phase["ramp"]:
                    s = phase["to_venue_ms"]
                    console.print(f"  {phase['phase']}: {phase['at_venue']:,} of {phase['expected']:,} expected "
                                  f"orders at the venue, p50 {s['p50']:.2f} ms, p99 {s['p99']:.2f} ms, p99.9 "
                                  f"{s['p99.9']:.2f} ms, max {s['max']:.2f} ms")
            if outcome["unexpected_at_venue"]:
                console.print(f"  [yellow]{outcome['unexpected_at_venue']} orders at the venue that the reference "
                              f"did not expect, e.g. {outcome['unexpected_examples']}[/]")
    rows = []
    for variant in results:
        for phase in variant["phases"]:
            if phase["ramp"]:
                continue
            s, d = phase["to_venue_ms"], phase["send_delay_ms"]
            rows.append([variant["variant"], phase["phase"], phase["expected"], phase["at_venue"], s["p50"], s["p99"],
                         s["p99.9"], s["max"], d["p99"]])
    print_table("tick to order (ms, from the trade's scheduled send time to the order reaching the venue)",
                ["variant", "rate (messages/s)", "orders expected", "at the venue", "p50", "p99", "p99.9", "max",
                 "sender p99 behind"], rows,
                caption=f"Half trades, half book updates over {args.products} products; {args.duration:.0f} s per "
                "rate (the first {:.0f} s not counted). Expected orders: the same operators run offline over the "
                "messages sent (fills not fed back, limits never bind); at the venue: the venue's own request log. "
                "An expected order that never reached the venue counts as infinitely late (inf). Maximum sustained "
                "rate of the trading flow found by the ramp: {:,.0f} messages/s. Not pinned: 2 cores shared by "
                "Kafka, QuestDB, the venue, the flows and the generator.".format(args.warmup_cut_s, max_rate or 0))
    stage_rows = []
    for variant in results:
        for phase in variant["phases"]:
            if phase["ramp"]:
                continue
            st = phase["stages_ms"]
            stage_rows.append([variant["variant"], phase["phase"], st["send"]["p50"], st["to_ticks"]["p50"],
                               st["to_signals"]["p50"], st["held"]["p50"], st["to_decided"]["p50"],
                               st["to_venue"]["p50"], st["to_decided"]["p99"], st["to_venue"]["p99"]])
    print_table("where the time goes: median of each stage per order (ms)",
                ["variant", "rate", "scheduled->sent", "sent->md.ticks", "md.ticks->signals", "of which held",
                 "->decided", "decided->at venue", "p99 ->decided", "p99 decided->at venue"],
                stage_rows, caption="'->decided': from sent (trading flow, baseline: one hop from the raw message) "
                "or from signals (the chain) to the engine's decision; md.ticks and signals times are the broker's "
                "LogAppendTime (1 ms resolution, +0.5 ms); 'held' = until the product's next trade was scheduled "
                "(the chain's signals flow releases a trade only after a later trade and book update of its "
                "product). 'at venue' is the venue's own log.")
    ramp_rows = [[f"{r['rate']:,.0f}", "yes" if r["kept_up"] else "no", r["first_ms"], r["last_ms"], f"{r['seen']:.1%}",
                  r["send_delay_ms"]["p99"]] for variant in results for r in variant["ramp"]]
    if ramp_rows:
        print_table("maximum sustained rate of the trading flow (Kafka tuned): ramp",
                    ["messages/s", "kept up", "median lag to signals, first fifth (ms)", "last fifth (ms)",
                     "trades seen", "sender p99 behind (ms)"], ramp_rows,
                    caption="kept up: the last fifth's median lag (scheduled -> appended to signals) under 5 s "
                    "and within 250 ms of the first fifth's, 98% of the trades through, the sender on schedule.")
    if args.plot:
        histogram(results, RESULTS_DIR / "bench_tick_to_order.png")
    for variant in results:
        for phase in variant["phases"]:
            phase.pop("to_venue_ns", None)
    notes = [
        "tick to order = the time the order's first POST reached the venue (the venue's own request log) minus the "
        "scheduled send time of the trade that caused it; the expected orders come from the same operators run "
        "offline over the messages sent; an expected order that never arrived counts as infinitely late",
        "load on an absolute schedule; a late sender does not hide its delay (latency counted from the schedule)",
        "the paper venue runs in its own process, no rate limit; flows in tail mode, 1 worker each, no recovery; "
        "no reports adapter (fills are not fed back, so every decision follows from the raw messages)",
        "tuned = " + ", ".join(f"{k}={v}" for k, v in TUNED_ENV.items()) + " (flows) and linger.ms=0 (generator)",
        "each variant has its own topics (LogAppendTime) and fresh flow processes; the stack is shared",
    ]
    write_results("bench_tick_to_order", {k: v for k, v in vars(args).items()}, results, machine=machine, notes=notes,
                  extra={"max_sustained_rate": max_rate})
    return {"results": results, "max_rate": max_rate}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_tick_to_order", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short phases and a short ramp (about 4 minutes)")
    p.add_argument("--duration", type=float, default=15.0, help="seconds of load per rate (default 15)")
    p.add_argument("--rates", nargs="+", default=["1000", "5000", "10000"],
                   help="messages/s to measure, in this order (the overload last, so its backlog does not spill "
                   "into the others); 'half' = half of the maximum sustained rate (default 1000 5000 10000)")
    p.add_argument("--ramp", nargs="+", type=float, default=[500, 1000, 1500, 2500, 5000, 10000],
                   help="rates tried to find the maximum sustained rate, in order, stopping at the first that "
                   "falls behind")
    p.add_argument("--ramp-s", type=float, default=6.0, help="seconds per ramp step (default 6)")
    p.add_argument("--max-rate", type=float, help="skip the ramp and take this as the maximum sustained rate")
    p.add_argument("--products", type=int, default=2, help="products the load spreads over (default 2)")
    p.add_argument("--order-ttl-s", type=float, default=0.02,
                   help="engine order TTL (market time = wall time here): how often a product may trade again")
    p.add_argument("--warmup-s", type=float, default=3.0, help="warm-up load at 500/s before measuring")
    p.add_argument("--warmup-cut-s", type=float, default=1.0, help="seconds at the start of each rate not counted")
    p.add_argument("--gap-s", type=float, default=1.0, help="pause between phases")
    p.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the hand-written loop")
    p.add_argument("--no-chain", dest="chain", action="store_false",
                   help="skip the three-flow chain (the topology before the trading flow)")
    p.add_argument("--no-plot", dest="plot", action="store_false", help="do not write the latency histogram PNG")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.quick:
        args.duration = min(args.duration, 8.0)
        args.ramp_s = min(args.ramp_s, 5.0)
        args.ramp = [r for r in args.ramp if r <= 30000] or args.ramp
        args.warmup_s = min(args.warmup_s, 2.0)
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
