"""Order-path availability under venue faults, through the trading flow against the real servers (Kafka, the paper
venue over HTTP): a venue outage (every request answered 503 for 20 minutes of market time) and a burst of rejects
(the venue refuses the account's key for 10 minutes of market time: every order answered 401, rejected ``HTTP_401``).

The flow runs as a process, tailing its topics; the test replays a simulated day into the raw topic in steps of
market time (one step of ``STEP_MIN`` minutes at a time around the fault, each step sent only once the flow has
written the features of every trade of the previous one and its order outcomes have settled), and switches the
venue's fault on and off between steps. So the fault covers a stretch of market time and the engine reads each
step's order outcomes (the order sink's ``status`` and ``reject`` reports) at the latest during the next step.

Truths the flow did not write: the feed sent (its trades, keyed), the venue's own request log (every order entry,
with the fault it drew, retries included) and the signals topic hashed to client order ids (``signal_triggers``:
which signal, so which market time, each order entry answers). Nothing here asserts a duration.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from bytewax.testing import run_main
from confluent_kafka import Consumer, TopicPartition

from cli.run import bytewax_command
from connectors.feeds.files import TRADE, FeedFrame, day_ahead_feed, json_lines, write_feed
from connectors.feeds.smard import day_ahead_day
from connectors.kafka.admin import ensure_topics
from connectors.kafka.reader import read_topic
from connectors.wire.events import decode_event
from connectors.wire.features import decode_features
from flows import trading as trading_flow
from operators.sizing import client_order_id
from paper.limits import FaultConfig
from paper.server import VenueServer, serve
from paper.simulator import simulate_day
from tests.helpers import flow_env, keyed_diff, produce, with_topics
from tests.trading import ADMIN, API, orders, venue_settings
from wattflow.domain import NS_PER_MINUTE, NS_PER_SECOND, Product, gate_closure_ns
from wattflow.events import Event
from wattflow.features import ACCESS_FEATURES
from wattflow.settings import Settings
from wattflow.stack.process import free_port

pytestmark = pytest.mark.stack

NAMES = ("orders", "events", "signals", "features", "positions", "execution_reports", "control")
MIN_ACCESS = 0.5
#: Market minutes per step of the replay around a fault (the engine reads a step's order outcomes by the next one).
STEP_MIN = 2
#: The engine's order-path settings (the defaults, stated here because the bounds use them).
HALF_LIFE_S, TOLERATED = 300.0, 3.0


def _day() -> FeedFrame:
    day = date(2018, 3, 25)
    frame = FeedFrame.concat([day_ahead_feed(day_ahead_day(None, "DE-AT-LU", day)),
                              simulate_day("DE-AT-LU", day, seed=5, scale=0.08, durations_min=(15, 60))])
    return frame.sort_by_time()


def _fault_start_ns(frame: FeedFrame) -> int:
    """Market time of the fault: 100 minutes before the gate closure of the product with the most trades in the
    hour before that (the busy part of the day, where many products trade at once)."""
    keys, trades = frame.key_strings(), frame.event_type == TRADE
    counts = {p: int(((keys == p) & trades & (frame.ts_ns >= gate_closure_ns(p) - 160 * NS_PER_MINUTE)
                      & (frame.ts_ns < gate_closure_ns(p) - 100 * NS_PER_MINUTE)).sum()) for p in frame.products()}
    return gate_closure_ns(max(counts, key=lambda p: counts[p])) - 100 * NS_PER_MINUTE


class _Topic:
    """A topic of one partition read on from where the last look stopped (the flow's output as it comes)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers,
                                  "group.id": f"test-{topic}", "enable.auto.commit": False,
                                  "enable.partition.eof": False})
        self.consumer.assign([TopicPartition(topic, 0, 0)])
        self.values: list[bytes] = []

    def read(self) -> int:
        while True:
            messages = self.consumer.consume(10_000, timeout=0.2)
            if not messages:
                return len(self.values)
            self.values += [m.value() for m in messages if m.error() is None and m.value() is not None]

    def close(self) -> None:
        self.consumer.close()


@dataclass
class _Run:
    features: dict[tuple[str, int, int], tuple[Any, ...]]
    events: list[Event]
    orders: list[dict[str, Any]]
    entries: list[tuple[str, str]]  # the venue's order entries: (client order id, fault drawn), in arrival order
    #: client order id -> (product, market time, feed access) of the signal that caused it
    triggers: dict[str, tuple[str, int, float]]
    venue: VenueServer


def _access_row(batch: Any, k: int) -> tuple[Any, ...]:
    return tuple("nan" if math.isnan(v) else v for v in (float(batch.column(n)[k]) for n in ACCESS_FEATURES))


def _features(values: list[bytes]) -> dict[tuple[str, int, int], tuple[Any, ...]]:
    out: dict[tuple[str, int, int], tuple[Any, ...]] = {}
    for value in values:
        batch = decode_features(value)
        for k, (ts, trade) in enumerate(zip(batch.ts_ns.tolist(), batch.trade_id.tolist(), strict=True)):
            out[(batch.product, ts, trade)] = _access_row(batch, k)
    return out


def _trade_keys(frame: FeedFrame) -> set[tuple[str, int, int]]:
    trades = frame.event_type == TRADE
    return set(zip(frame.key_strings()[trades].tolist(), frame.ts_ns[trades].tolist(),
                   frame.trade_id[trades].tolist(), strict=True))


def _start_venue(frame: FeedFrame, tmp: Path, run: str) -> VenueServer:
    venue = serve(write_feed(frame, tmp / f"{run}.parquet"), free_port(), API, admin_key=ADMIN,
                  rate_limit_per_s=100_000, background=True)
    venue.set_clock(max(Product.parse(p).trading_window().open_ns for p in frame.products()) + 1)
    return venue


def _faulted_run(settings: Settings, frame: FeedFrame, tmp: Path, run: str, *, start_ns: int, end_ns: int,
                 fault_on: Callable[[VenueServer], None], fault_off: Callable[[VenueServer], None]) -> _Run:
    """The trading flow (a process, tailing) over ``frame``, replayed step by step; the venue faulted (``fault_on``)
    for the steps of market time in [start_ns, end_ns)."""
    s = with_topics(settings, run, partitions=1)
    venue = _start_venue(frame, tmp, run)
    r = venue_settings(s, venue, max_orders_per_interval=100_000, max_total_position_mw=100_000.0,
                       min_access=MIN_ACCESS, order_path_half_life_s=HALF_LIFE_S,
                       order_path_tolerated_failures=TOLERATED)
    ensure_topics(r.kafka, {r.topics.raw: 1, **{getattr(r.topics, name): 1 for name in NAMES}})
    env = flow_env(r)
    env.update({"WATTFLOW_VENUE_TIMEOUT_S": "0.4", "WATTFLOW_VENUE_MAX_ATTEMPTS": "2",
                "WATTFLOW_VENUE_BREAKER_FAILURES": "3", "WATTFLOW_VENUE_BREAKER_RESET_S": "0.5"})
    log = tmp / f"{run}.log"
    flow = subprocess.Popen(bytewax_command("trading", tail=True, batch_size=2_000, workers=1, recovery=None,
                                            snapshot_interval_s=5), env=env, stdout=subprocess.DEVNULL,
                            stderr=log.open("wb"))
    features, outcomes = _Topic(r, r.topics.features), _Topic(r, r.topics.orders)
    step = STEP_MIN * NS_PER_MINUTE
    # Steps: everything before the fault less an hour at once, then STEP_MIN minutes at a time to an hour after it.
    edges = [frame.ts_ns.min(), start_ns - 60 * NS_PER_MINUTE]
    while edges[-1] < end_ns + 60 * NS_PER_MINUTE:
        edges.append(edges[-1] + step)
    edges.append(frame.ts_ns.max() + 1)
    seen: set[tuple[str, int, int]] = set()
    try:
        faulted = False
        for lo, hi in itertools.pairwise(edges):
            if (start_ns <= lo < end_ns) != faulted:
                faulted = not faulted
                (fault_on if faulted else fault_off)(venue)
            part = frame.take((frame.ts_ns >= lo) & (frame.ts_ns < hi))
            if len(part):
                produce(r, r.topics.raw, json_lines(part), part.key_strings().tolist())
            want = _trade_keys(part)
            deadline = time.monotonic() + 120
            while not want <= seen:
                assert flow.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, f"the flow wrote no features for {len(want - seen)} trades"
                before = len(features.values)
                features.read()
                seen |= set(_features(features.values[before:]))
            # The step's order outcomes settled: nothing new on `orders` for a while (pacing only, never asserted).
            count, quiet = outcomes.read(), 0
            while quiet < 3:
                time.sleep(0.3)
                quiet = quiet + 1 if outcomes.read() == count else 0
                count = len(outcomes.values)
        fault_off(venue)
        time.sleep(2)
    finally:
        features.close()
        outcomes.close()
        flow.terminate()
        flow.wait(30)
        venue.stop()
    signals = [orjson.loads(i.raw) for i in {(i.partition, i.offset): i for i in
                                             read_topic(r.kafka, r.topics.signals, idle_timeout_s=3)}.values()]
    triggers = {client_order_id(m["product"], m["model"], ts, trade): (m["product"], ts, access)
                for m in signals for ts, trade, access in zip(m["columns"]["ts_ns"], m["columns"]["trade_id"],
                                                              m["market"]["feed_access"], strict=True)}
    entries = [(q.client_order_id, q.fault) for q in venue.request_records()
               if q.method == "POST" and q.path == "/orders"]
    return _Run(_features(features.values), [decode_event(i.raw)[0] for i in
                                             read_topic(r.kafka, r.topics.events, idle_timeout_s=3)],
                orders(r), entries, triggers, venue)


def _clean_access(settings: Settings, frame: FeedFrame, tmp: Path, run: str) -> dict[tuple[str, int, int],
                                                                                        tuple[Any, ...]]:
    """The access series of the same feed from a run in this process (no fault, all of it at once)."""
    s = with_topics(settings, run, partitions=1)
    produce(s, s.topics.raw, json_lines(frame), frame.key_strings().tolist())
    venue = _start_venue(frame, tmp, run)
    try:
        ensure_topics(s.kafka, {getattr(s.topics, name): 1 for name in NAMES})
        r = venue_settings(s, venue, max_orders_per_interval=100_000, max_total_position_mw=100_000.0,
                           min_access=MIN_ACCESS)
        run_main(trading_flow.get_flow(r, tail=False, batch_size=2_000))
        return _features([i.raw for i in {(i.partition, i.offset): i for i in
                                          read_topic(r.kafka, r.topics.features, idle_timeout_s=3)}.values()])
    finally:
        venue.stop()


def _blind_windows(events: list[Event]) -> dict[str, list[tuple[int, int]]]:
    """Per product, [ACCESS_LOST, the ACCESS_RESTORED after it) in market time, in the engine's order."""
    out: dict[str, list[tuple[int, int]]] = {}
    opened: dict[str, int] = {}
    for e in events:
        if e.kind == "ACCESS_LOST":
            assert e.product not in opened, f"ACCESS_LOST twice for {e.product}"
            opened[e.product] = e.ts_ns
        elif e.kind == "ACCESS_RESTORED":
            out.setdefault(e.product, []).append((opened.pop(e.product), e.ts_ns))
    for product, since in opened.items():
        out.setdefault(product, []).append((since, 2**63))
    return out


def _blind_at(windows: dict[str, list[tuple[int, int]]], product: str, ts_ns: int) -> bool:
    return any(a <= ts_ns < b for a, b in windows.get(product, []))


def _check(run: _Run, clean: dict[tuple[str, int, int], tuple[Any, ...]], start_ns: int, end_ns: int, *,
           failed: set[str], name: str) -> None:
    """The checks common to both faults (see the tests' docstrings); ``failed``: the client order ids whose entry
    failed at the venue. Prints the figures."""
    # The feed part of access is a function of the feed alone: the venue fault changes none of it (keyed, exact).
    same = keyed_diff(sorted((*k, *v) for k, v in clean.items()), sorted((*k, *v) for k, v in run.features.items()))
    assert same.same, f"feed access differs from the unfaulted run's: {same}"

    # Every order entry the venue logged is traced to the signal that caused it (the signals topic, hashed).
    unknown = [cid for cid, _ in run.entries if cid not in run.triggers]
    assert unknown == [], f"order entries no signal explains: {unknown[:5]}"
    failing = sorted({run.triggers[cid][1] for cid, _ in run.entries if cid in failed})
    assert failing, f"{name}: the venue logged no failed order entry"
    decided = sorted({run.triggers[r["client_order_id"]][1] for r in run.orders if r["action"] == "SUBMIT"
                      and r["client_order_id"] in run.triggers and run.triggers[r["client_order_id"]][1] >= start_ns})
    # The third order decided in the fault fails (f0 = 3 failures bring availability to exp(-1) < 0.5); the engine
    # reads its outcome at the latest during the next step: availability below the gate by then.
    bound_ns = decided[2] + 2 * STEP_MIN * NS_PER_MINUTE
    degraded = [e for e in run.events if e.kind == "ORDER_PATH_DEGRADED"]
    assert [e.ts_ns for e in degraded if e.ts_ns < start_ns] == [], "the order path degraded before the fault"
    first = min(e.ts_ns for e in degraded)
    assert start_ns <= first <= bound_ns, (first - start_ns) / 60e9
    numbers = next(e.detail for e in degraded if e.ts_ns == first)
    assert numbers["order_path_availability"] < MIN_ACCESS == numbers["min_access"]

    # No order decided while its product was blind reached the venue (the venue's own log, each entry traced to
    # its signal): the engine never knows of a fill here (no reports stream), so any such order adds exposure.
    windows = _blind_windows(run.events)
    while_blind = [(cid, run.triggers[cid]) for cid, _ in run.entries if _blind_at(windows, *run.triggers[cid][:2])]
    assert while_blind == [], f"{name}: order entries decided while their product was blind: {while_blind[:5]}"
    lost = [e for e in run.events if e.kind == "ACCESS_LOST" and first <= e.ts_ns < end_ns]
    blind_by_path = [e for e in lost if e.detail["feed_access"] == 1.0]
    assert blind_by_path and all(e.detail["order_path_availability"] < MIN_ACCESS for e in blind_by_path)

    # Recovery: the venue is healthy from the first step at or after the fault's end, so the engine reads the last
    # failure by the end of the step after it; from then, at most F failures (every failed outcome the sink
    # recorded) decay to f0 ln 2 (availability 0.5) within H log2(F / (f0 ln 2)). Every product's last signal
    # after that (before its gate), with full feed access, finds it not blind.
    failures = len([r for r in run.orders if r["action"] in ("SUBMIT", "RESUBMIT")
                    and r["status"] in {"BLOCKED", "UNKNOWN", "REJECTED"}])
    recover_ns = end_ns + 2 * STEP_MIN * NS_PER_MINUTE + round(
        HALF_LIFE_S * NS_PER_SECOND * max(0.0, math.log2(failures / (TOLERATED * math.log(2)))))
    last: dict[str, int] = {}
    for product, ts, access in run.triggers.values():
        if recover_ns <= ts < gate_closure_ns(product) and access == 1.0:
            last[product] = max(last.get(product, 0), ts)
    still = sorted(p for p, ts in last.items() if _blind_at(windows, p, ts))
    assert last and still == [], f"{name}: blind after the recovery bound: {still[:5]}"
    restored = [e for e in run.events if e.kind == "ACCESS_RESTORED" and e.ts_ns >= end_ns]
    kinds: dict[str, int] = {}
    for e in run.events:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    print(f"\n{name}: {len(failed)} orders failed at the venue ({len(run.entries)} order entries in its log); "
          f"order-path availability below {MIN_ACCESS} {(first - start_ns) / 60e9:.1f} min of market time after the "
          f"fault started (bound {(bound_ns - start_ns) / 60e9:.1f}: the third order decided in it + 2 steps), at "
          f"{numbers['order_path_availability']:.3f} ({numbers['failures_by_reason']}); {len(lost)} ACCESS_LOST "
          f"while faulted ({len(blind_by_path)} with full feed access), {len(restored)} ACCESS_RESTORED after its "
          f"end; recovery bound {(recover_ns - end_ns) / 60e9:.1f} min after the end ({failures} failed outcomes "
          f"recorded): {len(last)} products signalling after it with full feed access, 0 blind; order entries "
          f"decided while blind 0; feed access of {len(run.features)} trades = the unfaulted run's, keyed; "
          f"events {dict(sorted(kinds.items()))}")


def test_a_venue_outage_lowers_order_path_availability_blinds_products_and_it_recovers(
        settings: Settings, unique: str, tmp_path: Path) -> None:
    """The venue answers 503 to everything for 20 minutes of market time (from 100 minutes before the busiest
    product's gate). Bounds, with f0 = 3 tolerated failures and a half-life H of 5 min: order-path availability
    below 0.5 (``ORDER_PATH_DEGRADED``, with the numbers) no earlier than the fault and no later than the third
    order decided in it + 2 steps; each product that then signals is blind (``ACCESS_LOST`` with the numbers); no
    order decided while its product was blind reaches the venue (its log, every entry traced to its signal); after
    the fault's end + 2 steps + H log2(F / (f0 ln 2)), every product signalling with full feed access is no longer
    blind. The feed part of access is that of an unfaulted run, keyed and exact."""
    frame = _day()
    start = _fault_start_ns(frame)
    end = start + 20 * NS_PER_MINUTE
    run = _faulted_run(settings, frame, tmp_path, f"{unique}o", start_ns=start, end_ns=end,
                       fault_on=lambda v: v.set_faults(FaultConfig(mode="down")),
                       fault_off=lambda v: v.set_faults(FaultConfig()))
    clean = _clean_access(settings, frame, tmp_path, f"{unique}c")
    _check(run, clean, start, end, failed={cid for cid, fault in run.entries if fault == "down"},
           name="venue outage 20 min")


def test_a_burst_of_rejects_lowers_order_path_availability_blinds_products_and_it_recovers(
        settings: Settings, unique: str, tmp_path: Path) -> None:
    """The venue refuses the account's key for 10 minutes of market time: every order entry answered 401, rejected
    ``HTTP_401`` (the order sink reports each, the engine counts each as a failed order outcome). Same bounds and
    checks as the outage: below 0.5 no later than the third order decided in the burst + 2 steps, no order decided
    while blind reaches the venue, back after the recovery bound; the feed part of access is unchanged."""
    frame = _day()
    start = _fault_start_ns(frame)
    end = start + 10 * NS_PER_MINUTE

    def revoke(venue: VenueServer) -> None:
        venue.api_keys = frozenset({"revoked"})

    def restore(venue: VenueServer) -> None:
        venue.api_keys = frozenset({API})

    run = _faulted_run(settings, frame, tmp_path, f"{unique}r", start_ns=start, end_ns=end, fault_on=revoke,
                       fault_off=restore)
    statuses = [r["status"] for r in run.orders if r["action"] == "SUBMIT" and r.get("reason") == "HTTP_401"]
    assert statuses and set(statuses) == {"REJECTED"}
    clean = _clean_access(settings, frame, tmp_path, f"{unique}c")
    # 401 answers are not faults the venue draws: a failed entry is one the sink recorded REJECTED HTTP_401.
    rejected = {r["client_order_id"] for r in run.orders if r.get("reason") == "HTTP_401"}
    _check(run, clean, start, end, failed=rejected, name="burst of rejects 10 min")
