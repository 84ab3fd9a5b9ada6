"""B6 (ingest part) end to end on the box: raw topic -> ingest -> QuestDB tables + clean Kafka topics.

One stack; the raw topic is pre-loaded once (a simulated DE-LU day of trades and book updates, 0.1% of
the messages broken on purpose) and every variant reads all of it from the beginning:

* wattflow's ingest flow (``flows.ingest.get_flow(settings, tail=False)``): in-process with ``run_main``
  (1 worker), in-process with 2 workers (``cluster_main``), as 1 process (``python -m bytewax.run``) and
  as 2 processes (``-i 0/1 -a ...``). Each run writes the tables ``ticks``/``book``/``dlq`` (truncated
  before each run) and its own clean topics;
* the naive pipeline a user would write: a per-message ``poll()`` loop, ``json.loads``, a range check,
  a per-tick ``Sender.row()`` into QuestDB and a per-tick ``produce()`` to an output topic, both
  flushed every N messages; into tables ``naive_ticks``/``naive_book`` (same DDL) and its own topics.

Each run is timed from its start until every row is visible in QuestDB (WAL applied, counts equal to
the valid rows). Then the stages of the wattflow path are timed one by one on the same messages, outside
Bytewax, to show where the time goes (``--profile`` also runs the flow under cProfile).

    python -m benchmarks.bench_ingest_e2e [--messages 500000] [--no-processes] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import pstats
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from bytewax.testing import cluster_main, run_main
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka import KafkaError as RdKafkaError
from questdb import Sender, TimestampNanos

from benchmarks.common import (
    QUIET_WAIT_S,
    RESULTS_DIR,
    CpuMeter,
    Feed,
    console,
    environment_for,
    machine_info,
    make_feed,
    pin_servers,
    preload,
    print_table,
    running_stack,
    server_pids,
    table_ddl,
    topic_message_count,
    wait_for_quiet,
    write_results,
)
from connectors.kafka.admin import ensure_topics, topic_partitions
from connectors.kafka.producer import CheckedProducer
from connectors.kafka.source import KafkaBatchSource
from connectors.questdb.sink import RetryingWriter, TableRows
from connectors.questdb.sql import QuestDBClient
from connectors.store_outputs import to_kafka_records, to_table_rows
from connectors.wire.market import decode_batch
from connectors.wire.packed import unpack
from flows.ingest import get_flow
from operators.validate import ProductWindows, validate_batch
from wattflow.batches import RawBatch
from wattflow.domain import INTRADAY_PRICE_MAX_EUR_PER_MWH, INTRADAY_PRICE_MIN_EUR_PER_MWH, product_area
from wattflow.settings import Settings
from wattflow.stack.process import free_port

RAW_TOPIC = "bench.raw"
PACKED_TOPIC = "bench.raw.packed"
PARTITIONS = 4
FLOW_TABLES = ["ticks", "book", "dlq"]


def variant_settings(settings: Settings, tag: str, raw: str = RAW_TOPIC) -> Settings:
    """The stack's settings with the raw topic and this variant's own clean topics."""
    topics = settings.topics.model_copy(update={
        "raw": raw, "ticks": f"bench.{tag}.ticks", "book": f"bench.{tag}.book",
        "dayahead": f"bench.{tag}.dayahead", "dlq": f"bench.{tag}.dlq",
    })
    return settings.model_copy(update={"topics": topics})


def truncate(client: QuestDBClient, tables: list[str]) -> None:
    for table in tables:
        client.execute(f"TRUNCATE TABLE {table}")
    client.wait_applied(tables, timeout_s=120)
    for table in tables:
        left = int(client.scalar(f"SELECT count() FROM {table}"))
        if left:
            raise SystemExit(f"{table} still holds {left} rows after TRUNCATE")


def wait_visible(client: QuestDBClient, expected: dict[str, int], timeout_s: float = 600.0) -> dict[str, int]:
    """Wait for the WAL to be applied, then return the row count of each table."""
    client.wait_applied(list(expected), timeout_s=timeout_s)
    return {table: int(client.scalar(f"SELECT count() FROM {table}")) for table in expected}


def count_packed_events(settings: Settings, topic: str) -> int:
    """Events in the packed messages of a clean topic (read to its end)."""
    partitions = topic_partitions(settings.kafka, topic)
    consumer = Consumer({**settings.kafka.client_config(), "group.id": "bench-count",
                         "enable.partition.eof": True, "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    events = eof = 0
    try:
        while eof < partitions:
            for message in consumer.consume(1000, 0.05):
                if message.error():
                    eof += 1
                    continue
                events += len(unpack(message.value() or b"{}")[2])
    finally:
        consumer.close()
    return events


# --- the variants ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    run_s: float  # until the flow / loop returned (everything flushed to Kafka and acknowledged by QuestDB)
    child_cpu_s: float = 0.0


def flow_run_main(settings: Settings, batch_size: int) -> Outcome:
    started = time.perf_counter()
    run_main(get_flow(settings, tail=False, batch_size=batch_size))
    return Outcome(time.perf_counter() - started)


def flow_two_workers(settings: Settings, batch_size: int) -> Outcome:
    started = time.perf_counter()
    cluster_main(get_flow(settings, tail=False, batch_size=batch_size), [], 0, worker_count_per_proc=2)
    return Outcome(time.perf_counter() - started)


def _processes(settings: Settings, batch_size: int, count: int) -> Outcome:
    env = environment_for(settings)
    target = f"flows.ingest:get_flow(tail=False, batch_size={batch_size})"
    command = [sys.executable, "-m", "bytewax.run", target]
    if count > 1:
        addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(count))
        commands = [[*command, "-i", str(i), "-a", addresses] for i in range(count)]
    else:
        commands = [[*command, "-w", "1"]]
    started = time.perf_counter()
    children = [subprocess.Popen(c, env=env, cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT) for c in commands]
    outputs = [child.communicate(timeout=900)[0] for child in children]
    seconds = time.perf_counter() - started
    for child, output in zip(children, outputs, strict=True):
        if child.returncode != 0:
            raise SystemExit(f"bytewax.run exited with {child.returncode}:\n{output.decode(errors='replace')[-3000:]}")
    return Outcome(seconds)


def flow_one_process(settings: Settings, batch_size: int) -> Outcome:
    return _processes(settings, batch_size, 1)


def flow_two_processes(settings: Settings, batch_size: int) -> Outcome:
    return _processes(settings, batch_size, 2)


def naive_pipeline(settings: Settings, flush_every: int) -> Outcome:
    """What a user would write first: poll, json.loads, check, row() and produce() per event."""
    topics = settings.topics
    consumer = Consumer({**settings.kafka.client_config(), "group.id": "bench-naive", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    consumer.assign([TopicPartition(RAW_TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    producer = Producer({**settings.kafka.client_config(), "enable.idempotence": True, "acks": "all"})
    started = time.perf_counter()
    eof = pending = 0
    with Sender.from_conf(settings.questdb.ilp_conf()) as sender:
        while eof < PARTITIONS:
            message = consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == RdKafkaError._PARTITION_EOF:
                    eof += 1
                    continue
                raise RuntimeError(str(error))
            value = message.value() or b""
            try:
                event = json.loads(value)
            except ValueError:
                continue  # a broken message: dropped
            price = event["price_eur_per_mwh"]
            if not INTRADAY_PRICE_MIN_EUR_PER_MWH <= price <= INTRADAY_PRICE_MAX_EUR_PER_MWH:
                continue
            product = event["product"]
            symbols = {"product": product, "area": product_area(product), "side": event["side"],
                       "source": event["source"]}
            recv = TimestampNanos(message.timestamp()[1] * 1_000_000)
            if event["type"] == "trade":
                sender.row("naive_ticks", symbols=symbols, at=TimestampNanos(event["ts_ns"]), columns={
                    "price_eur_per_mwh": price, "quantity_mw": event["quantity_mw"], "trade_id": event["trade_id"],
                    "seq": event["seq"], "recv_ts": recv})
                producer.produce(topics.ticks, value, product.encode())
            else:
                sender.row("naive_book", symbols=symbols, at=TimestampNanos(event["ts_ns"]), columns={
                    "level": event["level"], "price_eur_per_mwh": price, "quantity_mw": event["quantity_mw"],
                    "seq": event["seq"], "recv_ts": recv})
                producer.produce(topics.book, value, product.encode())
            producer.poll(0)
            pending += 1
            if pending >= flush_every:
                sender.flush()
                producer.flush()
                pending = 0
        sender.flush()
    producer.flush()
    consumer.close()
    return Outcome(time.perf_counter() - started)


def preload_packed(settings: Settings, feed: Feed, block: int) -> dict[str, Any]:
    """The same events packed as ``replay --pack`` does (runs of ``block`` events, one message per product);
    messages that are not JSON at all stay single (packed, they would take their neighbours down with them)."""
    from connectors.kafka.replay import pack_messages

    packable, singles = [], []
    for row, value in enumerate(feed.messages):
        try:
            orjson.loads(value)
            packable.append(row)
        except orjson.JSONDecodeError:
            singles.append(row)
    values, keys, _ = pack_messages([feed.messages[i] for i in packable], [feed.keys[i].decode() for i in packable],
                                    np.zeros(len(packable), dtype=np.int64), block)
    values += [feed.messages[i] for i in singles]
    keys += [feed.keys[i].decode() for i in singles]
    ensure_topics(settings.kafka, {PACKED_TOPIC: PARTITIONS})
    started = time.perf_counter()
    producer = CheckedProducer(settings.kafka)
    producer.produce_many(PACKED_TOPIC, keys, values)
    producer.flush(300.0)
    return {"messages": len(values), "events": len(feed), "events_per_message": len(feed) / len(values),
            "mean_bytes": sum(map(len, values)) / len(values), "seconds": time.perf_counter() - started}


# --- stages of the wattflow path, outside Bytewax -------------------------------------------------------


def drain(settings: Settings, batch_size: int) -> list[RawBatch]:
    """Read the raw topic to its end through KafkaBatchSource's partitions, driven directly."""
    source = KafkaBatchSource(settings.kafka, [RAW_TOPIC], tail=False, batch_size=batch_size)
    parts = [source.build_part("stages", part, None) for part in source.list_parts()]
    batches: list[RawBatch] = []
    live = list(parts)
    while live:
        for part in list(live):
            try:
                batches.extend(part.next_batch())
            except StopIteration:
                part.close()
                live.remove(part)
        time.sleep(0.001 if live and not batches else 0)
    return batches


def stage_breakdown(settings: Settings, client: QuestDBClient, batch_size: int, n: int) -> list[dict[str, Any]]:
    """Time each stage of the ingest path over the whole topic; writes go to stage_* tables and topics."""
    for table in ("ticks", "book", "dlq"):
        client.execute(table_ddl(table, f"stage_{table}"))
    tags = variant_settings(settings, "stages")
    ensure_topics(settings.kafka, {t: PARTITIONS for t in (tags.topics.ticks, tags.topics.book, tags.topics.dlq)})
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(name: str) -> Iterator[None]:
        started, started_cpu = time.perf_counter(), time.thread_time()
        yield
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
        cpu[name] = cpu.get(name, 0.0) + time.thread_time() - started_cpu

    with stage("consume (KafkaBatchSource partitions)"):
        raw = drain(settings, batch_size)
    windows = ProductWindows()
    writer = RetryingWriter(settings.questdb)
    producer = CheckedProducer(settings.kafka, **{"client.id": "bench-stages"})
    for batch in raw:
        with stage("decode_batch"):
            decoded = decode_batch(batch)
        with stage("validate_batch"):
            checked = validate_batch(decoded, windows)
        with stage("to_table_rows (DataFrames)"):
            rows = to_table_rows(checked)
        rows = [TableRows(f"stage_{r.table}", r.frame, r.symbols, r.at) for r in rows]
        with stage("QuestDB write (serialise + HTTP flush)"):
            writer.write(rows)
        with stage("to_kafka_records (packing)"):
            records = to_kafka_records(checked, tags.topics)
        with stage("Kafka produce + checked flush"):
            for record in records:
                producer.produce_many(record.topic, record.keys, record.values, record.timestamps_ms)
            producer.flush()
    writer.close()
    with stage("QuestDB WAL apply (wait_applied)"):
        client.wait_applied(["stage_ticks", "stage_book", "stage_dlq"], timeout_s=600)
    total = sum(timings.values())
    return [{"stage": name, "seconds": s, "us_per_msg": s / n * 1e6, "share": s / total,
             "thread_cpu_s": cpu[name], "cpu_us_per_msg": cpu[name] / n * 1e6, "waiting_s": max(s - cpu[name], 0.0),
             "batches": len(raw)} for name, s in timings.items()]


def profile_flow(settings: Settings, client: QuestDBClient, batch_size: int) -> list[dict[str, Any]]:
    truncate(client, FLOW_TABLES)
    profiler = cProfile.Profile()
    profiler.enable()
    run_main(get_flow(settings, tail=False, batch_size=batch_size))
    profiler.disable()
    path = RESULTS_DIR / "bench_ingest_e2e.pstats"
    profiler.dump_stats(path)
    stats = pstats.Stats(profiler, stream=io.StringIO())
    rows = []
    for (filename, line, function), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{Path(filename).name}:{line}({function})", "calls": calls, "tottime_s": tottime,
                     "cumtime_s": cumtime})
    rows.sort(key=lambda r: r["tottime_s"], reverse=True)
    console.print(f"cProfile of the in-process flow written to {path}")
    return rows[:25]


# --- driver -----------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    machine = machine_info()
    with console.status(f"making {args.messages:,} messages..."):
        feed: Feed = make_feed(args.messages, seed=args.seed, invalid_fraction=args.invalid_fraction,
                               synthetic=args.synthetic)
    n = len(feed)
    expected = feed.expected
    console.print(f"{n:,} messages ({feed.mean_bytes:.0f} B avg): {feed.origin}; expected rows {expected}")
    flows: list[tuple[str, str, Callable[[Settings, int], Outcome]]] = [
        ("wattflow, run_main (1 worker, in-process)", "wf1", flow_run_main),
        ("wattflow, 2 workers in 1 process (cluster_main)", "wf2w", flow_two_workers),
    ]
    if args.processes:
        flows += [("wattflow, 1 process (python -m bytewax.run)", "wf1p", flow_one_process),
                  ("wattflow, 2 processes (bytewax.run -i/-a)", "wf2p", flow_two_processes)]
    if args.pack > 1:
        flows.append((f"wattflow, run_main, packed raw topic ({args.pack} events/msg)", "wfpk", flow_run_main))
    results: list[dict[str, Any]] = []
    extra: dict[str, Any] = {"feed": feed.describe()}
    with running_stack() as stack:
        settings = stack.settings
        client = QuestDBClient(settings.questdb)
        pids = server_pids(stack)
        with console.status("pre-loading the raw topic..."):
            extra["preload"] = preload(settings, RAW_TOPIC, feed, PARTITIONS)
        if topic_message_count(settings, RAW_TOPIC) != n:
            raise SystemExit("the raw topic does not hold every message")
        if args.pack > 1:
            with console.status("pre-loading the packed raw topic..."):
                extra["preload_packed"] = preload_packed(settings, feed, args.pack)
        for table in ("ticks", "book"):
            client.execute(table_ddl(table, f"naive_{table}"))
        if args.pin:
            pin_servers(stack, server_cpus={1}, client_cpus={0})
        naive_settings = variant_settings(settings, "naive")
        ensure_topics(settings.kafka, {naive_settings.topics.ticks: PARTITIONS, naive_settings.topics.book: PARTITIONS})
        plan: list[tuple[str, str, Callable[[Settings, int], Outcome], int]] = [
            (name, tag, function, args.batch_size) for name, tag, function in flows]
        plan.append((f"naive: poll + json.loads + row() + produce(), flush every {args.flush_every:,}", "naive",
                     naive_pipeline, args.flush_every))
        for name, tag, function, size in plan:
            is_naive = tag == "naive"
            tables = {f"naive_{t}": expected[t] for t in ("ticks", "book")} if is_naive else \
                {t: expected[t] for t in FLOW_TABLES}
            these = naive_settings if is_naive else \
                variant_settings(settings, tag, PACKED_TOPIC if tag == "wfpk" else RAW_TOPIC)
            if not is_naive:
                ensure_topics(settings.kafka, these.topics.all_topics())
                truncate(client, FLOW_TABLES)
            with console.status(f"{name}..."):
                quiet = wait_for_quiet(args.quiet_wait)
                meter = CpuMeter(pids).start()
                started = time.perf_counter()
                outcome = function(these, size)
                counts = wait_visible(client, tables)
                visible = time.perf_counter() - started
                used = meter.stop()
            if counts != tables:
                raise SystemExit(f"{name}: tables hold {counts}, expected {tables}")
            published = {
                "ticks": topic_message_count(settings, these.topics.ticks) if is_naive
                else count_packed_events(settings, these.topics.ticks),
                "book": topic_message_count(settings, these.topics.book) if is_naive
                else count_packed_events(settings, these.topics.book),
            }
            if not is_naive:
                published["dlq"] = topic_message_count(settings, these.topics.dlq)
            wanted = {k: expected[k] for k in published}
            if published != wanted:
                raise SystemExit(f"{name}: published {published} events, expected {wanted}")
            stored = sum(tables[t] for t in tables if not t.endswith("dlq"))
            results.append({
                "variant": name, "messages": n, "run_s": outcome.run_s, "visible_s": visible,
                "msgs_per_s": n / visible, "ticks_per_s_stored": stored / visible,
                "us_per_msg": visible / n * 1e6, "rows": counts, "published": published, "cpu": used,
                "quiet": quiet,
            })
            console.print(f"  {name}: {n / visible:,.0f} msgs/s to visible ({visible:.1f} s; "
                          f"run {outcome.run_s:.1f} s; CPU client {used['cpu_client_s']:.1f} s, "
                          f"kafka {used['cpu_kafka_s']:.1f} s, questdb {used['cpu_questdb_s']:.1f} s, "
                          f"others {used['cpu_other_s']:.1f} s)")
        with console.status("timing the stages one by one..."):
            extra["stages_quiet"] = wait_for_quiet(args.quiet_wait)
            stages = stage_breakdown(settings, client, args.batch_size, n)
        extra["stages"] = stages
        if args.profile:
            with console.status("profiling the in-process flow..."):
                extra["profile_top_tottime"] = profile_flow(variant_settings(settings, "wf1"), client, args.batch_size)
    naive = results[-1]
    for row in results:
        row["x_vs_naive"] = row["msgs_per_s"] / naive["msgs_per_s"]
    print_table(
        f"ingest end to end: {n:,} raw messages ({feed.describe()['trades']:,} trades, "
        f"{feed.describe()['book_updates']:,} book updates, {len(feed) - expected['ticks'] - expected['book']:,} "
        "broken) -> QuestDB + Kafka",
        ["variant", "msgs/s", "x vs naive", "us/msg", "ticks+book rows/s stored", "run s", "visible s",
         "client CPU s", "client busy", "kafka CPU s", "questdb CPU s", "other CPU s"],
        [[r["variant"], r["msgs_per_s"], r["x_vs_naive"], r["us_per_msg"], r["ticks_per_s_stored"], r["run_s"],
          r["visible_s"], r["cpu"]["cpu_client_s"], f"{r['cpu']['cpu_client_s'] / r['visible_s']:.0%}",
          r["cpu"]["cpu_kafka_s"], r["cpu"]["cpu_questdb_s"], r["cpu"]["cpu_other_s"]] for r in results],
        caption="msgs/s = raw messages / time from start until all rows visible in QuestDB (WAL applied, counts "
        "verified); published clean-topic events and dead letters verified too. Client CPU includes child "
        "processes; 'client busy' = client CPU / visible time (above 100%: more than one core). "
        + ("Client on CPU 0, servers on CPU 1." if args.pin
                         else "Not pinned: client, Kafka and QuestDB share 2 cores."),
    )
    print_table(
        f"where the time goes: the wattflow ingest path's stages timed one by one ({stages[0]['batches']} batches, "
        "outside Bytewax)",
        ["stage", "wall s", "wall us/msg", "share of wall", "thread CPU us/msg", "waiting s"],
        [[s["stage"], s["seconds"], s["us_per_msg"], f"{s['share']:.0%}", s["cpu_us_per_msg"], s["waiting_s"]]
         for s in stages],
        caption="thread CPU = time.thread_time() of the calling thread (excludes librdkafka's and the servers' "
        "threads); waiting = wall - thread CPU: waiting for a server, or for a core (2 cores shared).",
    )
    if args.profile:
        print_table("cProfile of the in-process flow (top by own time)",
                    ["function", "calls", "tottime s", "cumtime s"],
                    [[p["function"], p["calls"], p["tottime_s"], p["cumtime_s"]]
                     for p in extra["profile_top_tottime"]])
    notes = [
        "all variants read the same pre-loaded raw topic (4 partitions) from the beginning",
        "wattflow variants write tables ticks/book/dlq (truncated and checked empty before each run) and their own "
        "clean topics; the naive pipeline writes naive_ticks/naive_book (same DDL) and its own topics",
        "the naive pipeline drops broken messages silently; wattflow also stores them in dlq (table and topic)",
        "the 'run' time ends when the flow returns (QuestDB acknowledged every write, Kafka confirmed every message); "
        "'visible' adds QuestDB's WAL apply",
        "the servers share the 2 cores with the client: each variant's CPU seconds per process are in cpu",
        "stages: each stage over all batches, sequentially in one thread, no Bytewax; QuestDB/Kafka writes go to "
        "stage_* tables and topics; the WAL apply row is the server catching up after the last write",
    ]
    write_results("bench_ingest_e2e", {k: v for k, v in vars(args).items()}, results, machine=machine, notes=notes,
                  extra=extra)
    return {"rows": results, **extra}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_ingest_e2e", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=500_000, help="raw messages pre-loaded (default 500000)")
    p.add_argument("--batch-size", type=int, default=20_000, help="wattflow source batch (the flow's default)")
    p.add_argument("--flush-every", type=int, default=10_000, help="naive pipeline: flush QuestDB and Kafka every N")
    p.add_argument("--invalid-fraction", type=float, default=0.001, help="broken messages (default 0.001)")
    p.add_argument("--pack", type=int, default=100,
                   help="also run the flow on the same events packed N per message, as `replay --pack N` sends "
                   "them (default 100; 0: skip)")
    p.add_argument("--no-processes", dest="processes", action="store_false",
                   help="skip the python -m bytewax.run variants (1 and 2 processes)")
    p.add_argument("--profile", action="store_true", help="also run the in-process flow under cProfile")
    p.add_argument("--pin", action="store_true", help="pin this process to CPU 0 and the servers to CPU 1")
    p.add_argument("--quiet-wait", type=float, default=QUIET_WAIT_S,
                   help="before each variant, wait up to this many seconds for the box to go idle (0: do not wait)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--synthetic", action="store_true", help="synthetic trades instead of the simulator's mix")
    return p


def main(argv: list[str] | None = None) -> int:
    run(parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
