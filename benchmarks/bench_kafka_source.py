"""B4 Kafka ingest with a real local broker: msgs/s consumed to the end of a pre-loaded topic.

One stack (real Kafka and QuestDB, free ports, temporary directory) for the whole run. The topic is
pre-loaded once with N raw messages over 4 partitions (lz4, as wattflow's producer sends them); then each
variant reads all of it from the beginning with a fresh consumer and must count exactly N:

* a plain ``poll()`` loop and a ``consume(num_messages=...)`` loop (librdkafka defaults, one consumer
  assigned all partitions), and the same ``consume()`` loop with wattflow's consumer settings;
* Bytewax's stock ``KafkaSource(tail=False)`` (its default batch of 1000, and 20000) in a minimal flow:
  input -> a counting sink, ``run_main`` (one worker);
* wattflow's ``KafkaBatchSource(tail=False)`` in the same minimal flow.

    python -m benchmarks.bench_kafka_source [--messages 1000000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from bytewax import operators as op
from bytewax.connectors.kafka import KafkaSource
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka import KafkaError as RdKafkaError

from benchmarks.common import (
    QUIET_WAIT_S,
    CpuMeter,
    best_of,
    console,
    machine_info,
    make_feed,
    pin_servers,
    preload,
    print_table,
    running_stack,
    server_pids,
    topic_message_count,
    wait_for_quiet,
    write_results,
)
from connectors.kafka.source import DEFAULT_CONSUMER_CONFIG, KafkaBatchSource
from wattflow.batches import RawBatch
from wattflow.settings import Settings

TOPIC = "bench.raw"
PARTITIONS = 4
CONSUME_TIMEOUT_S = 0.05
NO_QUEUE_BACKOFF = {"fetch.queue.backoff.ms": 10}


# --- plain confluent-kafka loops ----------------------------------------------------------------------


def _consumer(settings: Settings, extra: dict[str, Any]) -> Consumer:
    consumer = Consumer({**settings.kafka.client_config(), "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "enable.partition.eof": True, **extra})
    consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    return consumer


@dataclass
class Outcome:
    """What a variant read: the count, and when (perf_counter) the first and the last message arrived."""

    count: int = 0
    first: float = 0.0
    last: float = 0.0


def poll_loop(settings: Settings, _batch: int) -> Outcome:
    consumer = _consumer(settings, {})
    count = eof = 0
    first = last = 0.0
    try:
        while eof < PARTITIONS:
            message = consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() != RdKafkaError._PARTITION_EOF:
                    raise RuntimeError(str(error))
                eof += 1
                continue
            message.value()
            if not count:
                first = time.perf_counter()
            count += 1
        last = time.perf_counter()
    finally:
        consumer.close()
    return Outcome(count, first, last)


def _consume_loop(settings: Settings, batch: int, extra: dict[str, Any]) -> Outcome:
    consumer = _consumer(settings, extra)
    count = eof = 0
    first = last = 0.0
    try:
        while eof < PARTITIONS:
            # A short timeout: consume() waits for num_messages or the timeout, so at the end of the topic a
            # long one would be waited out in full.
            for message in consumer.consume(num_messages=batch, timeout=CONSUME_TIMEOUT_S):
                error = message.error()
                if error is not None:
                    if error.code() != RdKafkaError._PARTITION_EOF:
                        raise RuntimeError(str(error))
                    eof += 1
                    continue
                message.value()
                if not count:
                    first = time.perf_counter()
                count += 1
        last = time.perf_counter()
    finally:
        consumer.close()
    return Outcome(count, first, last)


def consume_loop(settings: Settings, batch: int) -> Outcome:
    return _consume_loop(settings, batch, {})


def consume_loop_tuned(settings: Settings, batch: int) -> Outcome:
    return _consume_loop(settings, batch, DEFAULT_CONSUMER_CONFIG)


def consume_loop_no_backoff(settings: Settings, batch: int) -> Outcome:
    return _consume_loop(settings, batch, {**DEFAULT_CONSUMER_CONFIG, **NO_QUEUE_BACKOFF})


# --- minimal Bytewax flows: input -> counting sink ----------------------------------------------------


class _CountingPartition(StatelessSinkPartition[Any]):
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome

    def write_batch(self, items: list[Any]) -> None:
        now = time.perf_counter()
        if not self.outcome.count:
            self.outcome.first = now
        self.outcome.last = now
        if items and isinstance(items[0], RawBatch):
            self.outcome.count += sum(len(batch) for batch in items)
        else:
            self.outcome.count += len(items)


class CountingSink(DynamicSink[Any]):
    """Counts messages: one per item, or ``len(batch)`` for RawBatch items."""

    def __init__(self) -> None:
        self.outcome = Outcome()

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CountingPartition:
        return _CountingPartition(self.outcome)


def _run_flow(source: Source[Any]) -> Outcome:
    flow = Dataflow("bench_kafka_source")
    sink = CountingSink()
    op.output("count", op.input("in", flow, source), sink)
    run_main(flow)
    return sink.outcome


def bytewax_stock(settings: Settings, batch: int) -> Outcome:
    return _run_flow(KafkaSource([settings.kafka.bootstrap_servers], [TOPIC], tail=False, batch_size=batch))


def wattflow_source(settings: Settings, batch: int) -> Outcome:
    return _run_flow(KafkaBatchSource(settings.kafka, [TOPIC], tail=False, batch_size=batch))


def wattflow_source_no_backoff(settings: Settings, batch: int) -> Outcome:
    return _run_flow(KafkaBatchSource(settings.kafka, [TOPIC], tail=False, batch_size=batch,
                                      consumer_config=NO_QUEUE_BACKOFF))


def run(args: argparse.Namespace) -> dict[str, Any]:
    machine = machine_info()
    with console.status(f"making {args.messages:,} messages..."):
        feed = make_feed(args.messages, seed=args.seed, synthetic=args.synthetic)
    n = len(feed)
    console.print(f"{n:,} messages, {feed.mean_bytes:.0f} B on average: {feed.origin}")
    variants: list[tuple[str, Callable[[Settings, int], Outcome], int]] = [
        ("poll() loop", poll_loop, 1),
        (f"consume({args.consume_batch}) loop", consume_loop, args.consume_batch),
        (f"consume({args.consume_batch}) loop, wattflow config", consume_loop_tuned, args.consume_batch),
        (f"consume({args.consume_batch}) loop, wattflow config + no queue backoff", consume_loop_no_backoff,
         args.consume_batch),
        ("Bytewax KafkaSource, batch 1000 (its default)", bytewax_stock, 1000),
        (f"Bytewax KafkaSource, batch {args.batch_size}", bytewax_stock, args.batch_size),
        (f"wattflow KafkaBatchSource, batch {args.batch_size}", wattflow_source, args.batch_size),
        (f"wattflow KafkaBatchSource, batch {args.batch_size} + no queue backoff", wattflow_source_no_backoff,
         args.batch_size),
    ]
    samples: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    steady: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    startup: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    cpu: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in variants}
    with running_stack() as stack:
        settings = stack.settings
        pids = server_pids(stack)
        with console.status("pre-loading the topic..."):
            loaded = preload(settings, TOPIC, feed, PARTITIONS)
        stored = topic_message_count(settings, TOPIC)
        if stored != n:
            raise SystemExit(f"the topic holds {stored} messages, not {n}")
        console.print(f"pre-loaded {n:,} messages in {loaded['seconds']:.1f} s ({loaded['msgs_per_s']:,} msgs/s)")
        if args.pin:
            pin_servers(stack, server_cpus={1}, client_cpus={0})
        # Read it all once so that every variant finds the log segments in the page cache.
        poll_loop(settings, 1)
        for round_ in range(args.rounds):
            order = variants if round_ % 2 == 0 else list(reversed(variants))
            for name, function, batch in order:
                with console.status(f"round {round_ + 1}: {name}..."):
                    used_quiet = wait_for_quiet(args.quiet_wait)
                    meter = CpuMeter(pids).start()
                    started = time.perf_counter()
                    outcome = function(settings, batch)
                    seconds = time.perf_counter() - started
                    used = meter.stop()
                if outcome.count != n:
                    raise SystemExit(f"{name} counted {outcome.count:,} messages, expected {n:,}")
                samples[name].append(seconds)
                startup[name].append(outcome.first - started)
                steady[name].append(outcome.last - outcome.first)
                cpu[name].append({**used, **used_quiet})
                console.print(f"  round {round_ + 1}: {name}: {n / seconds:,.0f} msgs/s "
                              f"(kafka {used['cpu_kafka_s']:.1f} s CPU, others {used['cpu_other_s']:.1f} s)")
    rows: list[dict[str, Any]] = []
    for name, _, batch in variants:
        stats = best_of(samples[name])
        rows.append({"variant": name, "batch": batch, "seconds_min": stats["min"], "seconds_median": stats["median"],
                     "msgs_per_s_best": n / stats["min"], "msgs_per_s_median": n / stats["median"],
                     "us_per_msg_best": stats["min"] / n * 1e6, "counted": n,
                     "first_message_s_median": float(np.median(startup[name])),
                     "steady_msgs_per_s_best": n / min(steady[name]), "cpu_per_round": cpu[name]})
    reference = rows[0]["msgs_per_s_best"]
    stock = next(r for r in rows if r["variant"].startswith("Bytewax"))["msgs_per_s_best"]
    for row in rows:
        row["x_vs_poll"] = row["msgs_per_s_best"] / reference
        row["x_vs_bytewax_stock"] = row["msgs_per_s_best"] / stock
    print_table(
        f"Kafka source: {n:,} messages ({feed.mean_bytes:.0f} B avg) over {PARTITIONS} partitions, read to the end",
        ["variant", "msgs/s (best)", "msgs/s (median)", "us/msg", "x vs poll()", "x vs Bytewax stock",
         "1st msg after s", "steady msgs/s", "client CPU s", "kafka CPU s", "other CPU s"],
        [[r["variant"], r["msgs_per_s_best"], r["msgs_per_s_median"], r["us_per_msg_best"], r["x_vs_poll"],
          r["x_vs_bytewax_stock"], r["first_message_s_median"], r["steady_msgs_per_s_best"],
          min(c["cpu_client_s"] for c in r["cpu_per_round"]),
          min(c["cpu_kafka_s"] for c in r["cpu_per_round"]), min(c["cpu_other_s"] for c in r["cpu_per_round"])]
         for r in rows],
        caption=f"best and median of {args.rounds} rounds (order reversed every other round); every variant counted "
        f"exactly {n:,}. CPU: seconds in the best round; 'other' = processes outside this benchmark. "
        + ("Client pinned to CPU 0, servers to CPU 1." if args.pin
           else "Not pinned: broker and client share 2 cores."),
    )
    notes = [
        "all variants read the same pre-loaded topic from the beginning with a fresh consumer; the log is in the page "
        "cache (read once before timing)",
        "plain loops use one consumer for all partitions; Bytewax sources use one consumer per partition (4), "
        "all in one worker (run_main)",
        "the broker runs on the same 2-core box: its CPU per variant is in cpu_per_round (cpu_kafka_s)",
        "Bytewax's stock source also enables statistics.interval.ms=1000 and builds a KafkaSourceMessage per message",
        f"consume() loops use timeout={CONSUME_TIMEOUT_S} s: consume() waits for num_messages or the timeout, so a "
        "long timeout is waited out in full at the end of the topic",
        "'no queue backoff' adds fetch.queue.backoff.ms=10 (librdkafka's default 1000 ms pauses fetching for a whole "
        "second each time a partition's local queue holds queued.min.messages=100000)",
        "'1st msg after s': from the start of the variant (consumer creation) to the first message; librdkafka "
        "retries the initial offset query after ~500 ms when the partition leader is not known yet at assign()",
        "'steady msgs/s': messages / (last - first message time), i.e. without start-up and end-of-topic detection",
    ]
    write_results("bench_kafka_source", vars(args), rows, machine=machine, notes=notes,
                  extra={"feed": feed.describe(), "preload": loaded})
    return {"rows": rows}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_kafka_source", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=1_000_000, help="messages pre-loaded and read (default 1000000)")
    p.add_argument("--rounds", type=int, default=2, help="times each variant reads the topic (default 2)")
    p.add_argument("--batch-size", type=int, default=20_000, help="wattflow source batch (the flow's default)")
    p.add_argument("--consume-batch", type=int, default=1_000, help="num_messages of the consume() loops")
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
