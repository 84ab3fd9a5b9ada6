"""A full simulated trading day at maximum speed: the trading flow's own throughput, and the store flow's with
the trading flow running beside it.

One real stack (Kafka, QuestDB), the paper venue in this process on a manual clock (every order accepted, no
rate limit). The simulated DE-LU day (2018-10-28, the 25-hour day: ~60,000 trades and ~500,000 L2 book
updates, plus its day-ahead prices) is written to a fresh raw topic (4 partitions) **before** the flows
start, so each flow runs against a backlog, as after an outage or when replaying a day, with
``python -m bytewax.run "flows.<name>:get_flow(tail=False)"`` in its own process until the end of its
input. Variants, each with fresh topics:

* **store alone**: the store flow over the raw day (the ingest flow's figure before this change);
* **trading alone**: the trading flow over the raw day (events/s; its lag is the backlog it works off);
* **trading + store side by side**: both at once on the same 2 cores, as they run live.

Counts against the feed sent in, exact: the store's ``ticks`` + ``book`` + ``dayahead`` rows of the day
(after QuestDB's WAL applied) must equal the valid events sent; the trading flow's signals (distinct keys
on the ``signals`` topic) must equal trades x models.

    python -m benchmarks.bench_trading_day [--scale 1.0]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import console, environment_for, machine_info, print_table, running_stack, write_results

ROOT = Path(__file__).resolve().parent.parent
DAY = date(2018, 10, 28)


def feed(scale: float) -> Any:
    from connectors.feeds.files import FeedFrame, day_ahead_feed
    from connectors.feeds.smard import day_ahead_day
    from paper.simulator import simulate_day

    return FeedFrame.concat([day_ahead_feed(day_ahead_day(None, "DE-LU", DAY)),
                             simulate_day("DE-LU", DAY, seed=7, scale=scale, durations_min=(15, 60))]).sort_by_time()


def run_flows(names: list[str], env: dict[str, str], logs: Path) -> dict[str, float]:
    """Start the flows at once, each to the end of its input; seconds each took (start to exit)."""
    from cli.run import bytewax_command

    started = time.monotonic()
    children = {}
    for name in names:
        command = bytewax_command(name, tail=False, batch_size=20_000 if name == "store" else 5_000, workers=1,
                                  recovery=None, snapshot_interval_s=2)
        children[name] = subprocess.Popen(command, env=env, cwd=ROOT, stdout=(logs / f"{name}.log").open("wb"),
                                          stderr=subprocess.STDOUT)
    took: dict[str, float] = {}
    while len(took) < len(children):
        for name, child in children.items():
            if name not in took and child.poll() is not None:
                if child.returncode:
                    raise SystemExit(f"{name} failed: " + (logs / f"{name}.log").read_text(errors="replace")[-3000:])
                took[name] = time.monotonic() - started
        time.sleep(0.05)
    return took


def distinct_signals(settings: Any) -> int:
    from connectors.kafka.reader import read_topic

    messages = {(i.partition, i.offset): i.raw for i in read_topic(settings.kafka, settings.topics.signals,
                                                                   idle_timeout_s=3)}
    keys = set()
    for raw in messages.values():
        message = orjson.loads(raw)
        columns = message["columns"]
        keys.update((message["product"], message["model"], ts, trade)
                    for ts, trade in zip(columns["ts_ns"], columns["trade_id"], strict=True))
    return len(keys)


def stored_rows(settings: Any, source: str) -> int:
    from connectors.questdb.sql import QuestDBClient

    client = QuestDBClient(settings.questdb)
    client.wait_applied(["ticks", "book", "dayahead"])
    ticks = int(client.scalar(f"SELECT count() FROM ticks WHERE source = '{source}'"))
    book = int(client.scalar(f"SELECT count() FROM book WHERE source = '{source}'"))
    return ticks + book


def run(args: argparse.Namespace) -> dict[str, Any]:
    from connectors.feeds.files import json_lines, write_feed
    from connectors.kafka.admin import ensure_topics
    from connectors.kafka.producer import CheckedProducer
    from paper.server import serve
    from wattflow.domain import Product
    from wattflow.stack.process import free_port

    machine = machine_info()
    with console.status("simulating the day..."):
        frame = feed(args.scale)
    counts = frame.counts_by_type()
    source = "sim"  # the simulator's source name (the day-ahead prices keep theirs)
    values = json_lines(frame)
    keys = frame.key_strings().tolist()
    trades = counts.get("trade", 0)
    console.print(f"the day: {len(values):,} events ({counts})")
    results = []
    with tempfile.TemporaryDirectory(prefix="wattflow-day-") as scratch, running_stack() as stack:
        logs = Path(scratch)
        path = write_feed(frame, logs / "feed.parquet")
        opened = max(Product.parse(p).trading_window().open_ns for p in frame.products())
        for label, names in (("store alone", ["store"]), ("trading alone", ["trading"]),
                             ("trading + store side by side", ["trading", "store"])):
            console.rule(label)
            tag = uuid.uuid4().hex[:6]
            base = stack.settings
            topics = base.topics.model_copy(update={name: f"day.{tag}.{getattr(base.topics, name)}" for name in (
                "raw", "ticks", "book", "dayahead", "features", "signals", "orders", "execution_reports", "events",
                "positions", "dlq", "control")})
            settings = base.model_copy(update={"topics": topics})
            ensure_topics(settings.kafka, topics.all_topics())
            # A fresh source name per variant, so that the stored rows of each are counted apart.
            variant_source = f"day{tag}"
            old, new = f'"source":"{source}"'.encode(), f'"source":"{variant_source}"'.encode()
            tagged = [v.replace(old, new) for v in values]
            producer = CheckedProducer(settings.kafka)
            producer.produce_many(topics.raw, keys, tagged)
            producer.flush(120)
            venue = serve(path, free_port(), "bench-day", admin_key="bench-day-admin", rate_limit_per_s=0,
                          background=True)
            venue.set_clock(opened + 1)
            try:
                from pydantic import SecretStr

                settings = settings.model_copy(update={"venue": settings.venue.model_copy(update={
                    "port": venue.port, "api_key": SecretStr("bench-day")})})
                env = {**environment_for(settings), "PYTHONPATH": str(ROOT)}
                took = run_flows(names, env, logs)
            finally:
                venue.stop()
            row: dict[str, Any] = {"variant": label, "events": len(values), "seconds": took}
            if "store" in took:
                stored = stored_rows(settings, variant_source)
                row["store_events_per_s"] = len(values) / took["store"]
                row["stored"] = stored
                row["expected_stored"] = counts.get("trade", 0) + counts.get("book", 0)
            if "trading" in took:
                signals = distinct_signals(settings)
                row["trading_events_per_s"] = len(values) / took["trading"]
                row["signals"] = signals
                row["expected_signals"] = trades * 2
            console.print(row)
            results.append(row)
    rows = [[r["variant"], f"{r['events']:,}",
             f"{r['seconds'].get('trading', float('nan')):.1f}", f"{r.get('trading_events_per_s', float('nan')):,.0f}",
             f"{r.get('signals', 0):,} / {r.get('expected_signals', 0):,}" if "trading" in r["seconds"] else "-",
             f"{r['seconds'].get('store', float('nan')):.1f}", f"{r.get('store_events_per_s', float('nan')):,.0f}",
             f"{r.get('stored', 0):,} / {r.get('expected_stored', 0):,}" if "store" in r["seconds"] else "-"]
            for r in results]
    print_table("a full simulated day at maximum speed (a backlog in the raw topic, 4 partitions, 1 worker each)",
                ["variant", "events", "trading s", "trading events/s", "signals / expected", "store s",
                 "store events/s", "ticks+book stored / expected"], rows,
                caption="Each flow from its start to the end of its input. Expected: signals = trades x 2 models "
                "(distinct keys on the signals topic); stored = the day's valid trades and book updates (rows in "
                "QuestDB after the WAL applied). 2 cores shared by Kafka, QuestDB, the venue and the flows.")
    write_results("bench_trading_day", vars(args), results, machine=machine,
                  notes=["the raw day is in Kafka before the flows start: each works off a backlog",
                         "the paper venue on a manual clock in the benchmark's process; fills not fed back"])
    return {"results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_trading_day", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="scale of the simulated day (default 1)")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
