"""A whole load test: the system started, a warm-up, phases at their rates (a ramp, a fixed rate, a soak),
each drained and read back, judged and summarised.

Every run has its own topics (``lt<run>.<topic>``, stamped with the broker's append time) and its own source
tag on every event, so it never mixes with other data in a shared stack, and its own venue and system under
test (``loadtest.system``: by default the trading flow and the store flow, each its own process; Kafka tuned
for latency unless ``tuned=False``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loadtest import processes
from loadtest.load import Load
from loadtest.observe import Observer, Sample
from loadtest.pack import Wire, packed
from loadtest.reference import ExpectedOrder, ExpectedStore, expected_store
from loadtest.sender import OpenLoopSender
from loadtest.stages import Observed, analyse, trade_offsets
from loadtest.system import TRADING, System
from loadtest.verdict import SUSTAINABLE_RULE, rss_slopes_mb_per_min, sustained
from wattflow.settings import Settings

TOPIC_NAMES = ("raw", "ticks", "book", "dayahead", "features", "signals", "orders", "execution_reports", "events",
               "positions", "dlq", "control")


@dataclass
class Options:
    duration_s: float = 30.0
    warmup_s: float = 5.0
    interval_s: float = 1.0
    p99_bound_ms: float = 1000.0
    lag_bound_ms: float = 2000.0
    lag_growth_ms: float = 500.0
    rss_bound_mb_per_min: float = 2.0
    venue_latency_ms: float = 0.0
    tuned: bool = True
    drain_timeout_s: float = 120.0
    flow_env: dict[str, str] = field(default_factory=dict)
    #: The truth of a phase is computed over everything sent in this run so far, not the phase alone: needed
    #: when phases reuse the same products (their state carries over), as the benchmarks' generated market does.
    reference_over_history: bool = False
    #: Events per packed raw message (``loadtest.pack``); 1: one event per message.
    pack: int = 1
    #: Partitions of the run's raw topic. One (the flows run one worker each, so it costs them no parallelism):
    #: the engine then sees the events in the order sent, as the reference does. Over several, the order in
    #: which partitions' fetches interleave moves the engine's account-wide clock (gate closures, staleness),
    #: and with a feed's market time running hours per second that changes decisions the reference cannot know.
    raw_partitions: int = 1


@dataclass
class Phase:
    """One rate's load (``omit``: indices left out of what is sent, kept in the truth: the tool's self-check)."""

    name: str
    load: Load
    rate_per_s: float
    ramp: bool = False
    soak: bool = False
    omit: list[int] = field(default_factory=list)


class LoadTest:
    """The system under test for one run: topics, venue, flows; phases run one after the other."""

    def __init__(self, settings: Settings, options: Options, logs: Path, *, products: list[str], clock_ns: int,
                 source: str, on_sample: Callable[[Sample, Phase], None] | None = None,
                 system: System = TRADING) -> None:
        self.run_id = secrets.token_hex(3)
        topics = settings.topics.model_copy(update={**{n: f"lt{self.run_id}.{getattr(settings.topics, n)}"
                                                       for n in TOPIC_NAMES}, "raw_partitions": options.raw_partitions})
        self.settings = settings.model_copy(update={"topics": topics})
        self.options, self.logs, self.source = options, logs, source
        self.on_sample = on_sample
        self.products, self.clock_ns = products, clock_ns
        self.children: list[processes.Child] = []
        self.env: dict[str, str] = {}
        self.venue_port = 0
        self.pids: dict[str, int] = {}
        self.system = system
        self.history: list[Load] = []  # every load sent so far (with options.reference_over_history)

    def __enter__(self) -> LoadTest:
        processes.init_topics_and_tables(self.settings)
        venue, self.venue_port = processes.start_venue(self.logs, self.products, self.clock_ns,
                                                       latency_ms=self.options.venue_latency_ms)
        self.children.append(venue)
        self.env = processes.flow_env(self.settings, self.venue_port, tuned=self.options.tuned,
                                      extra=self.options.flow_env)
        self.children += self.system.start(self.env, self.logs)
        self.pids = {**processes.server_pids(self.settings), **{c.name: c.pid for c in self.children},
                     "load generator": os.getpid()}
        return self

    def __exit__(self, *_: object) -> None:
        for child in self.children:
            child.stop()
        from connectors.kafka.admin import admin_client

        # This run's topics go with it (best effort: a stack that went away has no topics to delete).
        with contextlib.suppress(Exception):
            admin_client(self.settings.kafka).delete_topics([getattr(self.settings.topics, n) for n in TOPIC_NAMES])

    def check(self) -> None:
        for child in self.children:
            child.check()

    def run_phase(self, phase: Phase) -> dict[str, Any]:
        """Send the phase's load on its schedule while observing, drain, read back and analyse."""
        load = phase.load
        sent_load = load.without(phase.omit) if phase.omit else load
        wire = packed(sent_load, self.options.pack)
        sender = OpenLoopSender(self.settings.kafka.client_config(), self.settings.topics.raw, wire.messages,
                                events_per_message=wire.events_per_message)
        offsets = trade_offsets(load)
        observer = Observer(settings=self.settings, sender=sender, source=self.source, pids=self.pids,
                            trade_offsets=offsets, venue_port=self.venue_port, poll_s=0.25,
                            on_sample=(lambda s: self.on_sample(s, phase)) if self.on_sample else None)
        stored_before = observer.stored_rows()
        dayahead_before = dayahead_rows(observer.questdb, self.source)
        start_ns = time.time_ns() + 500_000_000
        observer.start()
        sender.run(start_ns)
        drained = self._drain(observer, load)
        observer.finish()
        self.check()
        observed = self._read_back(load, sender, wire, observer, phase, stored_before=stored_before,
                                   dayahead_before=dayahead_before)
        with_truth = time.monotonic()
        store = expected_store(load) if self.system.stores else ExpectedStore(frozenset(), frozenset(), 0,
                                                                              frozenset(), {})
        orders = self._expected_orders(load)
        result = analyse(load, observed, store, orders, warmup_s=min(self.options.warmup_s,
                                                                     self.options.duration_s / 2),
                         interval_s=self.options.interval_s)
        samples = [asdict(s) for s in observer.samples]
        # Lag is judged while the load runs, not in the drain after it.
        sending = [sample for sample in samples if sample["sent"] < len(sent_load)]
        ok, detail = sustained(result, sending or samples, p99_ms=self.options.p99_bound_ms,
                               lag_ms=self.options.lag_bound_ms, growth_ms=self.options.lag_growth_ms,
                               rate_per_s=phase.rate_per_s)
        delays = sender.send_delay_ns()
        return {
            "phase": phase.name, "rate_per_s": phase.rate_per_s, "ramp": phase.ramp, "soak": phase.soak,
            "messages": len(load), "omitted_on_purpose": len(phase.omit),
            "pack": self.options.pack, "packed_messages": len(wire.messages),
            "achieved_rate_per_s": round(sender.progress.sent_events / max(load.offsets_ns[-1] / 1e9, 1e-9), 1)
            if len(load) > 1 else float("nan"),
            "sender_behind_ms": {"p99": float(np.percentile(delays, 99)) / 1e6 if len(delays) else float("nan"),
                                 "max": float(delays.max()) / 1e6 if len(delays) else float("nan")},
            "drained": drained, "reference_s": round(time.monotonic() - with_truth, 1),
            **result, "sustained": ok, "sustained_detail": detail,
            "samples": samples, "rss_slopes_mb_per_min": rss_slopes_mb_per_min(samples, self.options.warmup_s),
            "observer_error": observer.error,
        }

    def _expected_orders(self, load: Load) -> dict[str, ExpectedOrder]:
        """The orders of this phase's trades, from the system's reference over what it was sent (with its
        history when phases share products), in the order it went on the wire: packed, a product's events
        reach the engine a pack at a time, and the engine's clock (gate closures, staleness) is the account's."""
        if self.options.pack > 1:
            wire = packed(load, self.options.pack)
            load = load.select(np.lexsort((wire.index, wire.message)))
        if not self.options.reference_over_history:
            return dict(self.system.expected_orders(load, self.env))
        self.history.append(load)
        everything = self.system.expected_orders(Load.concat(self.history), self.env)
        mine = trade_offsets(load)
        return {cid: order for cid, order in everything.items() if (order.product, order.signal_ts_ns) in mine}

    def _drain(self, observer: Observer, load: Load) -> bool:
        """Wait until the store has every row or dead letter it will get and the order path is quiet."""
        deadline = time.monotonic() + self.options.drain_timeout_s
        last, since = (-1, -1), time.monotonic()
        while time.monotonic() < deadline:
            self.check()
            time.sleep(0.5)
            if not observer.samples:
                continue
            sample = observer.samples[-1]
            now = (sample.stored + sample.dead, sample.orders)
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= 3.0:
                return True
        return False

    def _read_back(self, load: Load, sender: OpenLoopSender, wire: Wire, observer: Observer, phase: Phase, *,
                   stored_before: int, dayahead_before: int) -> Observed:
        from connectors.questdb.sql import QuestDBClient

        client = QuestDBClient(self.settings.questdb, timeout_s=120)
        client.wait_applied(["ticks", "book", "dayahead", "dlq"], timeout_s=60)
        seqs = load.seq[load.seq >= 0]
        low, high = (int(seqs.min()), int(seqs.max())) if len(seqs) else (0, -1)
        stored: dict[str, list[int]] = {}
        for table in ("ticks", "book"):
            rows = client.execute(f"SELECT seq FROM {table} WHERE source = '{self.source}' AND seq BETWEEN {low} "
                                  f"AND {high}").get("dataset", [])
            stored[table] = [int(r[0]) for r in rows]
        dayahead = dayahead_rows(client, self.source) - dayahead_before
        dead = client.execute(f"SELECT kafka_partition, kafka_offset, origin FROM dlq WHERE topic = "
                              f"'{self.settings.topics.raw}'").get("dataset", [])
        at_venue, repeats = processes.venue_first_posts(self.venue_port)
        # Per event of the load (the omitted ones never sent): its message's sent time and delivery, its place
        # in a packed message.
        n = len(load)
        sent_ns, appended, partition, offset, index = (np.zeros(n, np.int64), np.full(n, -1, np.int64),
                                                       np.full(n, -1, np.int32), np.full(n, -1, np.int64),
                                                       np.full(n, -1, np.int64))
        rows = np.setdiff1d(np.arange(n), np.asarray(phase.omit, np.int64))
        carried_by = wire.message
        sent_ns[rows], appended[rows] = sender.sent_ns[carried_by], sender.deliveries.appended_ms[carried_by]
        partition[rows], offset[rows] = sender.deliveries.partition[carried_by], sender.deliveries.offset[carried_by]
        index[rows] = wire.index
        curve = [(t, max(c - stored_before, 0)) for t, c in observer.stored_curve]
        return Observed(start_ns=sender.progress.start_ns, sent_ns=sent_ns, appended_ms=appended,
                        partition=partition, offset=offset, index=index, orders=observer.orders,
                        at_venue=at_venue, venue_repeats=repeats, stored_seq=stored, stored_dayahead=dayahead,
                        dead_origins=[(int(p), int(o), origin_index(str(origin))) for p, o, origin in dead],
                        stored_curve=curve)


def origin_index(origin: str) -> int:
    """The place in a packed message of a dead letter's origin (``topic[p]@offset#index``); -1: none."""
    _, mark, index = origin.rpartition("#")
    return int(index) if mark and index.isdigit() else -1


def dayahead_rows(client: Any, source: str) -> int:
    return int(client.scalar(f"SELECT count() FROM dayahead WHERE source = '{source}'") or 0)


def max_sustainable(steps: list[dict[str, Any]]) -> float | None:
    """The highest rate of the ramp that held, up to the first that did not."""
    best = None
    for step in steps:
        if not step["sustained"]:
            break
        best = step["rate_per_s"]
    return best


def rule_text(options: Options) -> str:
    return SUSTAINABLE_RULE.format(p99_ms=options.p99_bound_ms, lag_ms=options.lag_bound_ms,
                                   growth_ms=options.lag_growth_ms)
