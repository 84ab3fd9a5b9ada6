"""R7's timings: the kill switch under load, time to HALTED and to the venue's confirmed cancel-all.

    python -m benchmarks.bench_kill_switch                  # 200 halt/resume cycles (p99 from 200 samples)
    python -m benchmarks.bench_kill_switch --cycles 400

The execution flow (a process, as `wattflow run execution` starts it) trades eight products while signals
stream in at ``--rate`` records per second with a moving book, so working orders are replaced all the time and
some rest at the paper venue (its own process) at every halt. Each cycle: wait until orders rest at the venue,
send ``halt`` through the control topic (``cli.kill.send_kill``, the code behind `wattflow kill --halt`), take
the two times it reports (the engine's ``TRADING_STATE_CHANGED`` and the venue's answer to the cancel-all, both
from the moment the command was sent), count the orders still open at the venue (the venue's own books), then
``resume``. A percentile is quoted only with enough samples behind it: p99 needs at least 200 cycles (at 200 the
p99 is the mean of the two slowest), otherwise the table says "-".

Counted, not assumed: halts sent = HALTED confirmed = cancel-alls confirmed, and 0 orders open at the venue after
each halt; a cycle missing a confirmation is reported as such and fails the run.

Baseline, in the same run against the same venue: the cancel-all itself, ``DELETE /orders`` sent straight to the
venue over HTTP with orders resting (what the order path adds on top of it is Kafka, the flow and the sink).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks.bench_tick_to_order import API_KEY, ROOT, T0, Child, start_child, start_venue
from benchmarks.common import (
    console,
    environment_for,
    machine_info,
    percentile,
    print_table,
    running_stack,
    write_results,
)

PRODUCTS = [f"DE-LU:2018-10-28T{hour:02d}:00Z:PT60M" for hour in range(12, 20)]
#: The fewest samples a quoted percentile needs (p50: 10, p95: 40, p99: 200).
MIN_SAMPLES = {50: 10, 95: 40, 99: 200}


def signal_batch(product: str, k: int, rate: float) -> Any:
    """One signal of ``product``: the book moves every half second and the target turns every second, so each
    product's working order is replaced a few times a second, as on a busy intraday day."""
    from wattflow.domain import gate_closure_ns
    from wattflow.signals import SignalBatch

    bid = 45.0 + (k // max(int(rate / 2), 1)) % 3
    ask = bid + 2.0
    target = 5.0 if (k // max(int(rate), 1)) % 2 else -5.0
    ts = np.array([T0 + (k + 1) * 100_000_000], dtype=np.int64)
    market = {"minutes_to_gate_closure": (gate_closure_ns(product) - ts) / 60e9,
              "best_bid_eur_per_mwh": np.array([bid]), "best_ask_eur_per_mwh": np.array([ask]),
              "mid_eur_per_mwh": np.array([(bid + ask) / 2]), "bid_depth_near_mid_mw": np.array([30.0]),
              "ask_depth_near_mid_mw": np.array([30.0]), "volume_mw": np.array([100.0])}
    return SignalBatch(product, "mean_reversion", ts, np.array([10_000 + k], dtype=np.int64),
                       np.array([np.sign(target)], dtype=np.int8), np.array([abs(target) / 10]),
                       np.array([target]), np.array([0.5]), np.array([60.0]), market)


class SignalLoad(threading.Thread):
    """Signals for every product at ``rate`` records per second; counts what it sent."""

    def __init__(self, settings: Any, rate: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.rate = settings, rate
        self.stop = threading.Event()
        self.sent = 0

    def run(self) -> None:
        from connectors.kafka.producer import CheckedProducer
        from connectors.wire.signals import signal_records

        producer = CheckedProducer(self.settings.kafka)
        started = time.monotonic()
        k = 0
        while not self.stop.is_set():
            records = signal_records(signal_batch(PRODUCTS[k % len(PRODUCTS)], k, self.rate),
                                     self.settings.topics.signals)
            producer.produce_many(records.topic, [str(key) for key in records.keys], records.values)
            producer.poll(0)
            k += 1
            self.sent = k
            pause = started + k / self.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        producer.flush(30)


def open_orders(port: int) -> int:
    """Orders open at the venue: its own books (``GET /orders``)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/orders", headers={"X-API-Key": API_KEY})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return len(orjson.loads(answer.read()))


def direct_cancel_all(port: int) -> tuple[float, int]:
    """The baseline: ``DELETE /orders`` straight to the venue; (seconds, orders it cancelled)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/orders", method="DELETE",
                                     headers={"X-API-Key": API_KEY})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=10) as answer:
        body = orjson.loads(answer.read())
    return time.perf_counter() - started, len(body) if isinstance(body, list) else 0


def wait_for_resting(port: int, flow: Child, timeout_s: float = 60.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        flow.check()
        resting = open_orders(port)
        if resting:
            return resting
        time.sleep(0.02)
    raise SystemExit("no order came to rest at the venue within a minute")


def quoted(samples: list[float], q: int) -> float:
    """The ``q`` percentile in ms, or NaN (shown "-") with fewer samples than it needs."""
    return percentile(samples, q) * 1000 if len(samples) >= MIN_SAMPLES[q] else float("nan")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from cli.kill import send_kill
    from cli.run import bytewax_command
    from connectors.kafka.admin import ensure_topics
    from connectors.venue.adapter import VenueAdapter

    machine = machine_info()
    logs = Path(tempfile.mkdtemp(prefix="wattflow-bench-kill-"))
    with running_stack() as stack:
        venue, port = start_venue(logs, PRODUCTS)
        topics = stack.settings.topics.model_copy(update={
            name: f"{getattr(stack.settings.topics, name)}.kill" for name in
            ("signals", "orders", "events", "execution_reports", "positions", "control", "dlq")})
        ensure_topics(stack.settings.kafka, {name: 1 for name in topics.all_topics()})
        settings = stack.settings.model_copy(update={
            "topics": topics,
            "venue": stack.settings.venue.model_copy(update={"port": port}),
            "execution": stack.settings.execution.model_copy(update={
                "clip_interval_s": 0.0, "order_ttl_s": 3600.0, "max_orders_per_interval": 100_000,
                "max_total_position_mw": 10_000.0})})
        env = {**environment_for(settings), "PYTHONPATH": str(ROOT), "WATTFLOW_VENUE_API_KEY": API_KEY}
        flow = start_child("execution", bytewax_command("execution", tail=True, batch_size=2000, workers=1,
                                                        recovery=None, snapshot_interval_s=5), env, logs)
        adapter = VenueAdapter(settings, market=False, reports=True, api_key=API_KEY)
        adapter.start()
        load = SignalLoad(settings, args.rate)
        load.start()
        to_halted: list[float] = []
        to_cancelled: list[float] = []
        resting_at_halt: list[int] = []
        open_after: list[int] = []
        unconfirmed = 0
        baseline: list[float] = []
        baseline_cancelled: list[int] = []
        try:
            started = time.perf_counter()
            with console.status("halt/resume cycles...") as status:
                for cycle in range(args.cycles):
                    resting_at_halt.append(wait_for_resting(port, flow))
                    result = send_kill(settings, "halt", reason="bench", wait_s=20)
                    if result.state_after_s is None or result.cancel_all_after_s is None:
                        unconfirmed += 1
                    else:
                        to_halted.append(result.state_after_s)
                        to_cancelled.append(result.cancel_all_after_s)
                    open_after.append(open_orders(port))
                    if send_kill(settings, "resume", wait_s=20).state_after_s is None:
                        unconfirmed += 1
                    status.update(f"halt/resume cycle {cycle + 1} of {args.cycles}")
            cycles_s = time.perf_counter() - started
            # The baseline on the same venue, the flow trading: orders rest, then DELETE /orders straight to it.
            with console.status("baseline: DELETE /orders straight to the venue..."):
                for _ in range(args.cycles):
                    wait_for_resting(port, flow)
                    seconds, cancelled = direct_cancel_all(port)
                    baseline.append(seconds)
                    baseline_cancelled.append(cancelled)
        finally:
            load.stop.set()
            load.join(30)
            adapter.stop()
            adapter.join(30)
            flow_cpu = flow.stop()
            venue.stop()

    halts = args.cycles
    rows = [
        ["wattflow: time to HALTED (control topic -> engine)", len(to_halted), quoted(to_halted, 50),
         quoted(to_halted, 95), quoted(to_halted, 99), max(to_halted, default=float("nan")) * 1000],
        ["wattflow: time to cancel-all confirmed by the venue", len(to_cancelled), quoted(to_cancelled, 50),
         quoted(to_cancelled, 95), quoted(to_cancelled, 99), max(to_cancelled, default=float("nan")) * 1000],
        ["baseline: DELETE /orders straight to the venue", len(baseline), quoted(baseline, 50),
         quoted(baseline, 95), quoted(baseline, 99), max(baseline, default=float("nan")) * 1000],
    ]
    print_table(f"R7 kill switch under {args.rate:,.0f} signal records/s ({halts} halt/resume cycles, ms)",
                ["what", "samples", "p50", "p95", "p99", "max"], rows,
                caption=f"halts sent {halts}, HALTED and cancel-all confirmed {len(to_cancelled)}, unconfirmed "
                        f"{unconfirmed}; orders resting at each halt: median {np.median(resting_at_halt):.0f}; "
                        f"open at the venue after a halt: {sum(open_after)} in all; p99 needs >= 200 samples")
    results = {
        "halts_sent": halts, "confirmed": len(to_cancelled), "unconfirmed": unconfirmed,
        "open_after_halt_total": int(sum(open_after)),
        "resting_at_halt": {"median": float(np.median(resting_at_halt)), "max": int(max(resting_at_halt))},
        "to_halted_ms": {f"p{q}": quoted(to_halted, q) for q in (50, 95, 99)},
        "to_cancel_all_ms": {f"p{q}": quoted(to_cancelled, q) for q in (50, 95, 99)},
        "baseline_delete_orders_ms": {f"p{q}": quoted(baseline, q) for q in (50, 95, 99)},
        "baseline_cancelled_median": float(np.median(baseline_cancelled)) if baseline_cancelled else 0.0,
        "signals_sent": load.sent, "cycles_s": cycles_s, "flow_cpu_s": flow_cpu,
        "samples": {"to_halted_s": to_halted, "to_cancel_all_s": to_cancelled, "baseline_s": baseline},
    }
    write_results("bench_kill_switch", vars(args), results, machine=machine, notes=[
        "times from the moment the command was sent (wall clock of this process) to the engine's "
        "TRADING_STATE_CHANGED (applied_wall_ns) and to the venue's answer to the cancel-all (answered_wall_ns)",
        "the venue, the flow, Kafka and QuestDB share this box's cores with the signal load"])
    if unconfirmed or sum(open_after):
        raise SystemExit(f"{unconfirmed} commands unconfirmed, {sum(open_after)} orders open after a halt")
    return results


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_kill_switch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cycles", type=int, default=200, help="halt/resume cycles (default 200: enough for a p99)")
    p.add_argument("--rate", type=float, default=400.0, help="signal records per second (default 400)")
    return p


def main(argv: list[str] | None = None) -> int:
    run(parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
