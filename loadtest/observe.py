"""The system while it runs: what each stage has done so far, consumer lag, CPU and RSS per process.

One thread samples, apart from the sender: every ``poll_s`` the rows the store made visible in QuestDB (for
this run's source tag) and the dead letters of this run's raw topic, the orders the trading flow published
(read from the orders topic as they come), and every second each process's CPU and RSS (``psutil``). Lag per
flow, over time: the **store flow** lags by the messages confirmed in the raw topic and not yet stored or
dead-lettered; the **trading flow** by the time since the intended send time of the trade behind the newest
order it published (it decides on trades, so its lag shows in time, not in messages).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import psutil

from loadtest.sender import OpenLoopSender

#: Tables the store writes a run's raw events to.
RAW_TABLES = ("ticks", "book", "dayahead")


@dataclass
class Sample:
    """What the system had done ``t_s`` into the phase; counts in events (a packed message counts its events)."""

    t_s: float
    sent: int
    confirmed: int
    stored: int
    dead: int
    orders: int
    store_lag_messages: int
    trading_lag_ms: float
    send_behind_ms: float
    p99_so_far_ms: float
    cpu_percent: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)


class Observer(threading.Thread):
    """Samples the system until :meth:`finish`; ``samples`` and ``orders`` hold what it saw."""

    def __init__(self, *, settings: Any, sender: OpenLoopSender, source: str, pids: dict[str, int],
                 trade_offsets: dict[tuple[str, int], int], venue_port: int | None, poll_s: float = 0.25,
                 on_sample: Any = None) -> None:
        super().__init__(daemon=True, name="loadtest-observer")
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        from connectors.kafka.admin import topic_partitions
        from connectors.questdb.sql import QuestDBClient

        self.settings, self.sender, self.source = settings, sender, source
        self.questdb = QuestDBClient(settings.questdb, timeout_s=10)
        self.trade_offsets = trade_offsets
        self.venue_port = venue_port
        self.poll_s = poll_s
        self.on_sample = on_sample
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items() if psutil.pid_exists(pid)}
        self.samples: list[Sample] = []
        self.stored_curve: list[tuple[int, int]] = []  # (wall ns, rows visible)
        self.orders: list[dict[str, Any]] = []
        self.latencies_ns: list[int] = []  # intended -> answered, as orders come (the live p99)
        self._stopping = threading.Event()
        self._consumer = Consumer({**settings.kafka.client_config(), "group.id": f"loadtest-{source}-orders",
                                   "enable.auto.commit": False, "fetch.wait.max.ms": 50})
        topic = settings.topics.orders
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)
                               for p in range(topic_partitions(settings.kafka, topic))])
        for process in self.processes.values():
            with contextlib.suppress(psutil.Error):
                process.cpu_percent(None)
        self.started_ns = time.time_ns()
        self.error: str = ""

    def stored_rows(self) -> int:
        total = 0
        for table in RAW_TABLES:
            total += int(self.questdb.scalar(f"SELECT count() FROM {table} WHERE source = '{self.source}'") or 0)
        return total

    def dead_letters(self) -> int:
        raw = self.settings.topics.raw
        return int(self.questdb.scalar(f"SELECT count() FROM dlq WHERE topic = '{raw}'") or 0)

    def read_orders(self) -> None:
        now = time.time_ns()
        start = self.sender.progress.start_ns
        for message in self._consumer.consume(10_000, 0.02):
            if message.error() is not None:
                continue
            record = orjson.loads(message.value() or b"{}")
            self.orders.append(record)
            if record.get("action") == "SUBMIT" and record.get("answered_wall_ns") and record.get("signal_ts_ns"):
                offset = self.trade_offsets.get((record.get("product", ""), int(record["signal_ts_ns"])))
                if offset is not None and start:
                    self.latencies_ns.append(int(record["answered_wall_ns"]) - start - offset)
        del now

    def trading_lag_ms(self) -> float:
        """Now minus the intended time of the trade behind the newest order of this phase published (NaN
        before the first: no figure rather than a lag of 0 that would make any later lag look like growth)."""
        start = self.sender.progress.start_ns
        for record in reversed(self.orders[-50:]):
            offset = self.trade_offsets.get((record.get("product", ""), int(record.get("signal_ts_ns") or 0)))
            if offset is not None and start:
                return max((time.time_ns() - start - offset) / 1e6, 0.0)
        return float("nan")

    def run(self) -> None:
        last_process_ns = 0
        cpu: dict[str, float] = {}
        rss: dict[str, float] = {}
        while not self._stopping.is_set():
            began = time.monotonic()
            try:
                self.read_orders()
                stored, dead = self.stored_rows(), self.dead_letters()
                now = time.time_ns()
                self.stored_curve.append((now, stored))
                if now - last_process_ns >= 1_000_000_000:
                    last_process_ns = now
                    cpu, rss = self._processes()
                    self._move_venue_clock()
                progress = self.sender.progress
                confirmed = self.sender.deliveries.confirmed_events
                recent = self.latencies_ns[-20_000:]
                sample = Sample(
                    t_s=round((now - self.started_ns) / 1e9, 3), sent=progress.sent_events, confirmed=confirmed,
                    stored=stored, dead=dead, orders=sum(1 for r in self.orders if r.get("action") == "SUBMIT"),
                    store_lag_messages=max(confirmed - stored - dead, 0), trading_lag_ms=self.trading_lag_ms(),
                    send_behind_ms=max(progress.behind_ms, 0.0),
                    p99_so_far_ms=float(np.percentile(recent, 99)) / 1e6 if recent else float("nan"),
                    cpu_percent=cpu, rss_mb=rss)
                self.samples.append(sample)
                if self.on_sample is not None:
                    self.on_sample(sample)
            except Exception as error:  # a sample lost is reported, never fatal to the run
                self.error = f"{type(error).__name__}: {error}"
            self._stopping.wait(max(self.poll_s - (time.monotonic() - began), 0.01))

    def _processes(self) -> tuple[dict[str, float], dict[str, float]]:
        cpu, rss = {}, {}
        for name, process in self.processes.items():
            with contextlib.suppress(psutil.Error), process.oneshot():
                cpu[name] = process.cpu_percent(None)
                rss[name] = process.memory_info().rss / 2**20
        return cpu, rss

    def _move_venue_clock(self) -> None:
        """The venue's market clock follows the newest event sent, so that its gate closures are the feed's."""
        from loadtest.processes import venue_call

        newest = self.sender.progress.newest_ts_ns
        if self.venue_port is not None and newest:
            with contextlib.suppress(OSError):
                venue_call(self.venue_port, "/admin/clock", {"ts_ns": newest}, timeout_s=2)

    def finish(self) -> None:
        self._stopping.set()
        self.join(30)
        with contextlib.suppress(Exception):
            for _ in range(5):
                self.read_orders()
        self._consumer.close()
