"""B2 decode: raw JSON messages -> usable records, ns per message and bytes retained per decoded message.

Baselines, all on the same messages in the same run: stdlib ``json.loads``, ``orjson.loads`` (a dict per
message), msgspec typed decoding (a Struct per message, and ``decode_lines`` over a whole batch), against
wattflow's ``decode_batch`` (msgspec structs -> numpy columns) with and without ``validate_batch``.

    python -m benchmarks.bench_decode [--messages 500000] [--repeat 3] [--batch-size 20000]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any, Literal

import msgspec
import numpy as np
import orjson

from benchmarks.common import (
    QUIET_WAIT_S,
    CpuMeter,
    Feed,
    best_of,
    console,
    machine_info,
    make_feed,
    print_table,
    wait_for_quiet,
    write_results,
)
from connectors.wire.market import decode_batch
from operators.validate import ProductWindows, validate_batch
from wattflow.batches import IngestBatch, RawBatch


class Trade(msgspec.Struct, tag_field="type", tag="trade"):
    ts_ns: int
    product: str
    price_eur_per_mwh: float
    quantity_mw: float
    side: Literal["BUY", "SELL"]
    trade_id: int
    source: str
    seq: int


class Book(msgspec.Struct, tag_field="type", tag="book"):
    ts_ns: int
    product: str
    side: Literal["BUY", "SELL"]
    level: int
    price_eur_per_mwh: float
    quantity_mw: float
    source: str
    seq: int


_typed = msgspec.json.Decoder(Trade | Book)


def pack(feed: Feed, block: int) -> list[bytes]:
    """The feed's events packed as `replay --pack` sends them: runs of ``block`` events, one message per product."""
    from connectors.kafka.replay import pack_messages

    keys = [key.decode() for key in feed.keys]
    values, _, _ = pack_messages(feed.messages, keys, np.zeros(len(feed), dtype=np.int64), block)
    return values


def raw_batches(messages: list[bytes], batch_size: int) -> list[RawBatch]:
    """The batches KafkaBatchSource would hand over (one partition, consecutive offsets)."""
    batches = []
    for start in range(0, len(messages), batch_size):
        values: list[bytes | None] = list(messages[start:start + batch_size])
        offsets = np.arange(start, start + len(values), dtype=np.int64)
        batches.append(RawBatch("md.raw.sim", 0, values, offsets, np.full(len(values), 1_540_680_000_000_000_000,
                                                                          dtype=np.int64)))
    return batches


# --- the variants: each takes the messages (or batches) and returns what it decoded -------------------


def stdlib_json(messages: list[bytes]) -> list[Any]:
    loads = json.loads
    return [loads(m) for m in messages]


def orjson_loads(messages: list[bytes]) -> list[Any]:
    loads = orjson.loads
    return [loads(m) for m in messages]


def msgspec_typed(messages: list[bytes]) -> list[Any]:
    decode = _typed.decode
    return [decode(m) for m in messages]


def msgspec_lines(batches: list[RawBatch]) -> list[Any]:
    decode_lines = _typed.decode_lines
    out: list[Any] = []
    for batch in batches:
        out.extend(decode_lines(b"\n".join(v or b"" for v in batch.values)))
    return out


def wattflow_decode(batches: list[RawBatch]) -> list[IngestBatch]:
    return [decode_batch(batch) for batch in batches]


def wattflow_decode_validate(batches: list[RawBatch]) -> list[IngestBatch]:
    windows = ProductWindows()
    return [validate_batch(decode_batch(batch), windows) for batch in batches]


# --- checks -------------------------------------------------------------------------------------------


def checksum(result: list[Any]) -> tuple[int, int]:
    """(records, sum of prices in cents): every variant must agree."""
    if result and isinstance(result[0], IngestBatch):
        batches: list[IngestBatch] = result
        count = sum(b.valid + len(b.dead) for b in batches)
        cents = sum(int(np.rint(b.ticks.price_eur_per_mwh * 100).sum() + np.rint(b.book.price_eur_per_mwh * 100).sum())
                    for b in batches)
        return count, cents
    if result and isinstance(result[0], dict):
        return len(result), int(np.rint(np.array([d["price_eur_per_mwh"] for d in result]) * 100).sum())
    return len(result), int(np.rint(np.array([r.price_eur_per_mwh for r in result]) * 100).sum())


def timed(function: Callable[[Any], list[Any]], data: Any, repeat: int) -> tuple[list[float], list[Any]]:
    samples = []
    result: list[Any] = []
    for _ in range(repeat):
        result = []
        gc.collect()
        started = time.perf_counter_ns()
        result = function(data)
        samples.append(float(time.perf_counter_ns() - started))
    return samples, result


def retained_bytes(function: Callable[[Any], list[Any]], data: Any) -> int:
    """Bytes allocated and still held once ``function``'s result exists (the input excluded)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = function(data)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del result
    return held


def run(args: argparse.Namespace) -> dict[str, Any]:
    machine = machine_info()
    with console.status(f"making {args.messages:,} messages..."):
        feed: Feed = make_feed(args.messages, seed=args.seed, synthetic=args.synthetic)
    messages = feed.messages
    n = len(messages)
    console.print(f"{n:,} messages, {feed.mean_bytes:.0f} bytes on average: {feed.origin}")
    batches = {size: raw_batches(messages, size) for size in sorted({args.batch_size, args.small_batch_size})}
    variants: list[tuple[str, Callable[[Any], list[Any]], Any, str]] = [
        ("json.loads (stdlib)", stdlib_json, messages, "dict per message"),
        ("orjson.loads", orjson_loads, messages, "dict per message"),
        ("msgspec typed", msgspec_typed, messages, "Struct per message"),
        (f"msgspec decode_lines, batch {args.batch_size:,}", msgspec_lines, batches[args.batch_size],
         "Struct per message, one call per batch"),
    ]
    for size in sorted(batches, reverse=True):
        variants += [
            (f"wattflow decode_batch, batch {size:,}", wattflow_decode, batches[size], "numpy columns"),
            (f"wattflow decode+validate, batch {size:,}", wattflow_decode_validate, batches[size],
             "numpy columns, validated"),
        ]
    packed: dict[int, list[RawBatch]] = {}
    if args.pack > 1:
        packed_values = pack(feed, args.pack)
        per_batch = max(1, round(args.batch_size * len(packed_values) / n))  # about batch-size events a batch
        packed[per_batch] = raw_batches(packed_values, per_batch)
        variants += [
            (f"wattflow decode_batch, packed {args.pack}/msg, ~{args.batch_size:,} events/batch", wattflow_decode,
             packed[per_batch], "numpy columns (wire re-encoded per event)"),
            (f"wattflow decode+validate, packed {args.pack}/msg, ~{args.batch_size:,} events/batch",
             wattflow_decode_validate, packed[per_batch], "numpy columns, validated"),
        ]
    raw_bytes_per_message = sum(sys.getsizeof(m) for m in messages) / n
    rows: list[dict[str, Any]] = []
    reference: tuple[int, int] | None = None
    memory_sample = min(n, args.memory_messages)
    for name, function, data, output in variants:
        with console.status(f"{name}..."):
            quiet = wait_for_quiet(args.quiet_wait)
            meter = CpuMeter({}).start()
            samples, result = timed(function, data, args.repeat)
            cpu = meter.stop()
            check = checksum(result)
            del result
            if reference is None:
                reference = check
            if check != reference:
                raise SystemExit(f"{name} decoded {check}, stdlib json {reference}: the variants disagree")
            if isinstance(data[0], bytes):
                sample_data, sample_events = data[:memory_sample], memory_sample
            elif "packed" in name:
                sample_data = data[:max(1, round(len(data) * memory_sample / n))]
                sample_events = sum(checksum(wattflow_decode(sample_data))[0] for _ in (0,))
            else:
                sample_data, sample_events = raw_batches(messages[:memory_sample], len(data[0].values)), memory_sample
            held = retained_bytes(function, sample_data) / sample_events
        stats = best_of(samples)
        row = {"variant": name, "output": output, "ns_per_msg_min": stats["min"] / n,
               "ns_per_msg_median": stats["median"] / n, "msgs_per_s": n / (stats["min"] / 1e9),
               "bytes_retained_per_msg": held, "cpu": cpu, "quiet": quiet}
        if name.startswith("wattflow") and "packed" not in name:
            # The `wire` column references the raw message objects, so they stay alive with the batch.
            row["bytes_retained_incl_raw_kept_alive"] = held + raw_bytes_per_message
        rows.append(row)
        console.print(f"  {name}: {row['ns_per_msg_min']:.0f} ns/msg (min of {args.repeat})")
    baseline = rows[0]["ns_per_msg_min"]
    for row in rows:
        row["speedup_vs_stdlib_json"] = baseline / row["ns_per_msg_min"]
    print_table(
        f"decode: {n:,} messages ({feed.describe()['trades']:,} trades, {feed.describe()['book_updates']:,} book "
        f"updates, {feed.mean_bytes:.0f} B avg)",
        ["variant", "ns/msg (min)", "ns/msg (median)", "msgs/s", "x vs json", "bytes retained/msg"],
        [[r["variant"], r["ns_per_msg_min"], r["ns_per_msg_median"], r["msgs_per_s"], r["speedup_vs_stdlib_json"],
          r["bytes_retained_per_msg"] if "bytes_retained_incl_raw_kept_alive" not in r else
          f"{r['bytes_retained_per_msg']:.0f} (+{raw_bytes_per_message:.0f} raw kept alive)"] for r in rows],
        caption=f"min and median of {args.repeat} runs, gc enabled; bytes retained measured with tracemalloc on "
        f"{memory_sample:,} messages (input excluded). wattflow's `wire` column keeps each raw message "
        f"({raw_bytes_per_message:.0f} B as a bytes object) alive as long as the batch.",
    )
    notes = [
        "one process, no servers of its own; cpu.cpu_other_s per variant is CPU that other processes on the box "
        "took meanwhile (contention: with 2 cores, more than ~1 core-second per second of wall time disturbs it)",
        "ns/msg covers trades and book updates alike (the feed's mix); per-message variants build a list",
        "wattflow variants start from RawBatch objects (what KafkaBatchSource yields); building them is not timed",
        f"raw bytes object per message: {raw_bytes_per_message:.0f} B (sys.getsizeof)",
    ]
    write_results("bench_decode", vars(args), rows, machine=machine, notes=notes, extra={"feed": feed.describe()})
    return {"rows": rows}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_decode", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=500_000, help="raw messages to decode (default 500000)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per variant; min and median reported")
    p.add_argument("--batch-size", type=int, default=20_000, help="wattflow batch size (the flow's default)")
    p.add_argument("--small-batch-size", type=int, default=500,
                   help="a second, smaller batch size for wattflow (what a poll returns when tailing)")
    p.add_argument("--pack", type=int, default=100,
                   help="also decode the same events packed N per message ({\"events\": [...]}; 0: skip)")
    p.add_argument("--memory-messages", type=int, default=100_000, help="messages for the tracemalloc pass")
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
