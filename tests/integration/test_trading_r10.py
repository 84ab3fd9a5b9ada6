"""R10: the trading flow SIGKILLed at six random points while it trades a simulated stretch, the venue faulting
too (timeouts, 5xx, dropped connections), restarted with recovery each time; against the real servers. The kill
points are shares of the decisions drawn from a seed (printed), reached when the venue's log holds that many
order entries, so that every process is killed while it trades.

**The truth** is only what the flow did not write: the raw market messages sent in, and the paper venue's own log
of every request it received (``VenueServer.requests()``: each as it arrived, before its fault, retries included,
with the fault drawn for it, its status and an order entry's body) and its fills.

**What a decision is** (``tests/r10.py`` has the rules). The engine decides at most one order per signal row, and
a signal row is a pure function of the raw input (R1 for the trading flow), so a decision is identified by its
*trigger* (product, model, signal time, trade id) and its *terms* (product, side, price, quantity, time in force,
display quantity), not by its client order id: ids are mapped back to triggers by hashing every signal the input
determines, and "the same decision under two ids" is counted by terms (distinct ids the venue got an order entry
for, per terms, beyond the number of decisions with those terms).

**Which decisions the input determines.** An uninterrupted run of the same raw topic against a fault-free venue of
its own: its venue's log holds every decision once (nothing is kept, refused or dropped on a healthy venue). It is
the same function of the input as the faulted run because nothing the venue answers feeds back into the engine's
decisions here: fills are not fed back during the day (no reports stream; the venue's clock is manual), the limits
never bind (so releasing risk changes nothing), and the sink's own reports (a cancel the venue did not know) only
close orders the engine has already stopped working. The breaker is given 50 failures, so that a burst of faults
never keeps an order the engine then cancels unsent (the open breaker at the kill is ``test_trading_crash.py``'s).
The venue's faults are drawn per request from its own seeded generator (``FaultConfig(mode="mix")``), a schedule
that does not depend on the flow's records; the decisions counted do not depend on it either.

**Counted against the input, not the flow's orders topic**: a decision is *lost* unless one of its order entries
was processed by the faulted venue (or, every entry having failed, a cancel of it reached the venue after them:
superseded); an order entry that is no decision of the input is *extra*. Positions: after the day the venue's
reports are streamed into the flow's reports topic (``wattflow adapter``, as in production) and the flow is
resumed once more; its last position per product must equal the venue's fills, signed, per product.

Keyed and exact throughout: missing and extra keys are listed; the mutation test shows the same function red.
"""

from __future__ import annotations

import random
import subprocess
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson
import pytest
from bytewax.testing import run_main

from cli.run import bytewax_command, ensure_recovery_dir
from connectors.feeds.files import FeedFrame, day_ahead_feed, json_lines, write_feed
from connectors.feeds.smard import day_ahead_day
from connectors.kafka.admin import ensure_topics
from connectors.kafka.reader import read_topic
from flows import trading as trading_flow
from paper.limits import FaultConfig
from paper.server import VenueServer, serve
from paper.simulator import simulate_day
from tests.helpers import flow_env, produce, with_topics
from tests.r10 import (
    R10Result,
    Terms,
    Trigger,
    decisions_of,
    first_orders_after_reconciliation,
    r10_check,
    terms_of,
    triggers_of,
)
from tests.trading import ADMIN, API, keyed_differences, keyed_signals, reports_adapter, venue_settings
from wattflow.domain import Product
from wattflow.settings import Settings
from wattflow.stack.process import free_port

pytestmark = [pytest.mark.stack, pytest.mark.slow]

NAMES = ("orders", "events", "signals", "features", "positions", "execution_reports", "control", "decisions")
KILLS = 6
#: The venue's faults while the flow trades: per request, drawn from the venue's seeded generator.
FAULTS = FaultConfig(mode="mix", mix=(("timeout", 0.02), ("error_5xx", 0.04), ("drop", 0.02)), timeout_s=1.5)


@dataclass
class Evidence:
    """What R10 compares: the input's decisions and triggers, and the faulted run's venue and positions."""

    decisions: dict[tuple[Trigger | None, Terms], str]
    triggers: dict[str, Trigger]
    requests: list[dict[str, Any]]
    orders_at_venue: list[str]
    fills: list[tuple[str, int, float]]
    positions_mw: dict[str, float]
    kills: list[float] = field(default_factory=list)
    seed: str = ""
    signals: tuple[int, int, int, int] = (0, 0, 0, 0)  # expected, missing, extra, changed
    reconciled: list[dict[str, Any]] = field(default_factory=list)
    starts_ns: list[int] = field(default_factory=list)  # when each process of the faulted run was started

    def check(self) -> R10Result:
        return r10_check(self.decisions, self.triggers, self.requests, orders_at_venue=self.orders_at_venue,
                         fills=self.fills, positions_mw=self.positions_mw)


def _frame() -> FeedFrame:
    day = date(2018, 3, 25)
    frame = FeedFrame.concat([day_ahead_feed(day_ahead_day(None, "DE-AT-LU", day)),
                              simulate_day("DE-AT-LU", day, seed=11, scale=0.08, durations_min=(15, 60))])
    return frame.sort_by_time()


def _order_entries(venue: VenueServer) -> int:
    """Order entries (``POST /orders``) the venue has received so far, retries and replays included."""
    return sum(1 for r in venue.request_records() if r.method == "POST" and r.path == "/orders")


def _last_positions(s: Settings) -> dict[str, float]:
    """The flow's last position row per product (the account TOTAL left out), in the topic's order."""
    out: dict[str, float] = {}
    for item in read_topic(s.kafka, s.topics.positions, idle_timeout_s=3):
        row = orjson.loads(item.raw)
        if row["product"] != "TOTAL":
            out[row["product"]] = float(row["position_mw"])
    return out


def _reports_published(s: Settings) -> int:
    """The highest venue exec_id on the flow's reports topic (the sink's own reports carry 0)."""
    return max((int(orjson.loads(i.raw).get("exec_id") or 0)
                for i in read_topic(s.kafka, s.topics.execution_reports, idle_timeout_s=0.5)), default=0)


@pytest.fixture(scope="module")
def evidence(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    """The reference run, then the faulted run with its kills, resumed to the end, then the reports streamed in."""
    import uuid

    unique = uuid.uuid4().hex[:10]  # the seed of the kill points (printed)
    tmp = tmp_path_factory.mktemp("r10")
    s = with_topics(settings, unique, partitions=1)
    frame = _frame()
    produce(s, s.topics.raw, json_lines(frame), frame.key_strings().tolist())
    feed = write_feed(frame, tmp / "feed.parquet")
    opened = max(Product.parse(p).trading_window().open_ns for p in frame.products())

    def prepared(run: str, venue: VenueServer) -> Settings:
        topics = s.topics.model_copy(update={name: f"{getattr(s.topics, name)}.{run}" for name in NAMES})
        ensure_topics(s.kafka, {getattr(topics, name): 1 for name in NAMES})
        # min_access 0: the access gate off. R10 counts the order path's promises against an uninterrupted run
        # on a healthy venue; with the gate on, the faults drawn here would lower order-path availability at
        # wall-clock moments and the flow would rightly decide less (the gate has its own tests:
        # test_order_path_faults.py).
        ready = venue_settings(s.model_copy(update={"topics": topics}), venue, max_orders_per_interval=100_000,
                               max_total_position_mw=100_000.0, min_access=0.0)
        return ready.model_copy(update={"venue": ready.venue.model_copy(update={
            "max_attempts": 2, "breaker_failures": 50, "breaker_reset_s": 0.5})})

    def venue() -> VenueServer:
        server = serve(feed, free_port(), API, admin_key=ADMIN, rate_limit_per_s=100_000, background=True)
        server.set_clock(opened + 1)
        return server

    reference_venue = venue()
    try:
        reference = prepared("ref", reference_venue)
        run_main(trading_flow.get_flow(reference, tail=False, batch_size=500))
        expected_signals, _ = keyed_signals(reference)
        triggers = triggers_of(expected_signals)
        decisions = decisions_of(reference_venue.requests(), triggers)
    finally:
        reference_venue.stop()

    faulted = venue()
    try:
        run = prepared("kill", faulted)
        faulted.set_faults(FAULTS)
        recovery = tmp / "recovery"
        ensure_recovery_dir(recovery, 1)
        command = bytewax_command("trading", tail=False, batch_size=500, workers=1, recovery=recovery,
                                  snapshot_interval_s=1)
        env = flow_env(run)
        rng = random.Random(unique)
        # Kill points: shares of the decisions, as order entries the venue has received (its own log), so that
        # each process is killed while it trades; a point already passed is moved to 10 entries after the start.
        shares = sorted(rng.uniform(0.05, 0.85) for _ in range(KILLS))
        killed: list[float] = []
        starts: list[int] = []
        for share in shares:
            starts.append(time.time_ns())
            target = max(round(share * len(decisions)), _order_entries(faulted) + 10)
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 180
            while process.poll() is None and time.monotonic() < deadline:
                if _order_entries(faulted) >= target:
                    process.kill()
                    killed.append(target / len(decisions))
                    break
                time.sleep(0.02)
            process.wait()
            # Every request the killed process had sent is in the venue's log (its connections closed) before the
            # next start's time is taken: the log is split by those times, so a straggler belongs to its process.
            deadline = time.monotonic() + 60
            while faulted.open_connections() and time.monotonic() < deadline:
                time.sleep(0.05)
        faulted.set_faults(FaultConfig())  # the venue recovers for the rest of the day
        starts.append(time.time_ns())
        final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert final.returncode == 0, final.stderr[-3000:]
        got_signals, _ = keyed_signals(run)
        missing, extra, changed = keyed_differences(expected_signals, got_signals)
        last_exec_id = len(faulted.exchange.reports)
        with reports_adapter(run):  # the venue's reports into the flow's reports topic, as in production
            deadline = time.monotonic() + 120
            while _reports_published(run) < last_exec_id:
                assert time.monotonic() < deadline, "the adapter did not publish every report"
                time.sleep(0.5)
        starts.append(time.time_ns())
        settled = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert settled.returncode == 0, settled.stderr[-3000:]
        reconciled = [e.event["detail"] for e in read_topic(run.kafka, run.topics.events, idle_timeout_s=3)
                      if e.event["kind"] == "VENUE_RECONCILED"]
        with faulted.lock:
            orders_at_venue = [r.client_order_id for r in faulted.exchange.reports if r.kind == "ack"]
            fills = [(f.product, int(f.side), float(f.quantity_mw)) for f in faulted.exchange.fills()]
        return Evidence(decisions, triggers, faulted.requests(), orders_at_venue, fills, _last_positions(run),
                        killed, unique, (len(expected_signals), len(missing), len(extra), len(changed)), reconciled,
                        starts)
    finally:
        faulted.stop()


def test_r10_sigkilled_while_the_venue_faults_no_decision_lost_none_doubled_positions_equal_fills(
        evidence: Evidence) -> None:
    """Red if a decision of the input never got through to the venue, if an order entry is no decision of the
    input, if a decision went out under a second id, if a position differs from the venue's fills, or if a start
    of the flow sent an order or a cancel before the venue had answered its reconciliation (the venue's log, split
    by the wall times the processes were started)."""
    result = evidence.check()
    expected, missing, extra, changed = evidence.signals
    trading_starts, first_wrong = first_orders_after_reconciliation(evidence.requests, evidence.starts_ns)
    restored_at_venue = sum(r["restored_at_venue"] for r in evidence.reconciled)
    settled = sum(sum(r["unknown_settled"].values()) for r in evidence.reconciled)
    print(f"\nR10 seed {evidence.seed}: {len(evidence.kills)} SIGKILLs, at order entries "
          f"{', '.join(f'{x:.0%}' for x in evidence.kills)}\n  of the decisions;\n"
          f"  signals {expected}: missing {missing}, extra {extra}, changed {changed};\n"
          f"  {len(evidence.starts_ns)} starts, {trading_starts} sent orders, each only after reconciling\n"
          f"  ({len(first_wrong)} did not; {len(evidence.reconciled)} VENUE_RECONCILED events: {restored_at_venue}\n"
          f"  restored orders found at the venue, {settled} UNKNOWN settled)\n{result.line()}")
    assert len(evidence.kills) >= 5, "the flow finished before the kills: make the day longer"
    assert (missing, extra, changed) == (0, 0, 0)
    assert first_wrong == [] and trading_starts >= len(evidence.kills)
    assert result.lost[:5] == [] and result.extra[:5] == [] and result.two_ids[:5] == []
    assert result.position_differences[:5] == []
    assert result.ok
    assert result.faults.get("drop", 0) and result.faults.get("error_5xx", 0) and result.faults.get("timeout", 0)
    assert any(diff for _, diff in result.positions.values()), "no fills: positions = fills would prove nothing"
    # Every start reconciled (an event lost with a process killed before it was published aside).
    assert 1 <= len(evidence.reconciled) <= len(evidence.starts_ns)


def test_r10_check_goes_red_when_a_decision_is_dropped_or_an_order_doubled(evidence: Evidence) -> None:
    """The same comparison over the real run's evidence, mutated by hand: every order entry of one decision taken
    out of the venue's log (a decision lost), and one order entry sent again under a second id (the same decision
    twice). Each must turn the check red with its key listed."""
    assert evidence.check().ok  # the evidence as it is
    key, cid = sorted(evidence.decisions.items(), key=repr)[len(evidence.decisions) // 2]
    dropped = [r for r in evidence.requests if r["client_order_id"] != cid]
    lost = r10_check(evidence.decisions, evidence.triggers, dropped, orders_at_venue=evidence.orders_at_venue,
                     fills=evidence.fills, positions_mw=evidence.positions_mw)
    entry = next(r for r in evidence.requests if r["method"] == "POST" and r.get("body")
                 and r["client_order_id"] == cid)
    again = {**entry, "client_order_id": f"{cid}-again", "body": {**entry["body"], "client_order_id": f"{cid}-again"}}
    doubled = r10_check(evidence.decisions, evidence.triggers, [*evidence.requests, again],
                        orders_at_venue=[*evidence.orders_at_venue, f"{cid}-again"], fills=evidence.fills,
                        positions_mw=evidence.positions_mw)
    print(f"\nmutation, one decision's requests dropped: lost {lost.lost}, extra {lost.extra}\n"
          f"mutation, one order doubled under {cid}-again: two ids {doubled.two_ids}, extra {doubled.extra}")
    assert not lost.ok and lost.lost == [key] and lost.extra == [] and lost.two_ids == []
    assert not doubled.ok and doubled.lost == []
    assert doubled.two_ids == [(terms_of(entry["body"]), [f"{cid}-again"])]
    assert doubled.extra == [(None, terms_of(entry["body"]))]
