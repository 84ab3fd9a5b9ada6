"""B5 QuestDB sink with a real local QuestDB: rows/s sent, rows/s visible, batch latency p50/p99.

The same N ticks (synthetic trades over 100 DE-LU products, unique dedup keys) go, in batches of B rows,
over ILP/HTTP into a fresh table per variant and round, created with the very DDL of ``ticks``
(connectors/questdb/tables.py: WAL, DEDUP UPSERT KEYS) under another name, so that dedup costs the same:

* ``Sender.row()`` per tick, from a Python tuple per tick (what a per-event pipeline has), flush per batch;
* ``Sender.dataframe()`` per batch, from a DataFrame built from the numpy columns (strings as objects);
* wattflow: ``tick_rows(TickBatch)`` then ``RetryingWriter.write`` (retained buffer, ``dataframe()``).

"sent" is when the last flush returned (QuestDB acknowledged the rows into its WAL); "visible" is when
``wait_applied`` saw the WAL applied and ``count()`` returned N. Batch latency: from handing a batch to
the sink until its flush returned (serialisation + HTTP round trip).

    python -m benchmarks.bench_questdb_sink [--rows 1000000] [--batch-rows 10000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from questdb import Sender, TimestampNanos

from benchmarks.common import (
    DAY,
    QUIET_WAIT_S,
    SYNTHETIC_TS_NS,
    CpuMeter,
    console,
    machine_info,
    percentile,
    pin_servers,
    print_table,
    running_stack,
    server_pids,
    table_ddl,
    wait_for_quiet,
    write_results,
)
from connectors.questdb.rows import tick_rows
from connectors.questdb.sink import RetryingWriter
from connectors.questdb.sql import QuestDBClient
from wattflow.batches import TickBatch
from wattflow.domain import product_area
from wattflow.settings import Settings


def make_ticks(n: int, seed: int = 7, products: int = 100) -> TickBatch:
    """``n`` trades over ``products`` DE-LU products of 2018-10-28, all open, unique (ts, product, trade_id)."""
    from wattflow.domain import products_of_day

    keys = [p.key for p in products_of_day("DE-LU", DAY)
            if p.delivery_start_ns >= SYNTHETIC_TS_NS + 3 * 3600 * 10**9][:products]
    rng = np.random.default_rng(seed)
    ts = SYNTHETIC_TS_NS + np.sort(rng.integers(0, 3_600 * 10**9, n))
    columns: dict[str, Any] = {
        "ts_ns": ts.astype(np.int64), "recv_ns": (ts + 1_000_000).astype(np.int64),
        "product": np.array(keys, dtype=object)[rng.integers(0, len(keys), n)],
        "price_eur_per_mwh": np.round(rng.normal(50, 15, n), 2),
        "quantity_mw": np.round(rng.integers(1, 200, n) / 10, 1),
        "side": np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8), "trade_id": np.arange(1, n + 1, dtype=np.int64),
        "source": np.full(n, "bench", dtype=object), "seq": np.arange(n, dtype=np.int64),
        "offset": np.arange(n, dtype=np.int64), "index": np.full(n, -1, dtype=np.int64),
        "wire": np.full(n, b"", dtype=object),
    }
    # Only the columns TickBatch has (its layout grows now and then).
    return TickBatch(**{f.name: columns[f.name] for f in dataclasses.fields(TickBatch)})


@dataclass
class Run:
    """One variant's timings: per-batch latencies, flush-only latencies, and the stage totals."""

    batch_s: list[float] = field(default_factory=list)
    flush_s: list[float] = field(default_factory=list)
    prepare_s: float = 0.0  # building the rows (frame) from the batch, where the variant does it


def _slices(n: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def per_tick_rows(settings: Settings, table: str, ticks: TickBatch, batch_rows: int) -> Run:
    """A tuple per tick (not timed: a per-event pipeline has one anyway), one row() call each."""
    tuples = list(zip(ticks.product.tolist(), [product_area(p) for p in ticks.product.tolist()],
                      ["BUY" if s == 1 else "SELL" for s in ticks.side.tolist()], ticks.source.tolist(),
                      ticks.price_eur_per_mwh.tolist(), ticks.quantity_mw.tolist(), ticks.trade_id.tolist(),
                      ticks.seq.tolist(), ticks.ts_ns.tolist(), ticks.recv_ns.tolist(), strict=True))
    run = Run()
    with Sender.from_conf(settings.questdb.ilp_conf()) as sender:
        row = sender.row
        for part in _slices(len(tuples), batch_rows):
            started = time.perf_counter()
            for product, area, side, source, price, quantity, trade_id, seq, ts, recv in tuples[part]:
                row(table, symbols={"product": product, "area": area, "side": side, "source": source},
                    columns={"price_eur_per_mwh": price, "quantity_mw": quantity, "trade_id": trade_id, "seq": seq,
                             "recv_ts": TimestampNanos(recv)},
                    at=TimestampNanos(ts))
            flushing = time.perf_counter()
            sender.flush()
            done = time.perf_counter()
            run.flush_s.append(done - flushing)
            run.batch_s.append(done - started)
    return run


def per_batch_dataframe(settings: Settings, table: str, ticks: TickBatch, batch_rows: int) -> Run:
    """A DataFrame per batch, from the numpy columns (strings as Python objects), one dataframe() call."""
    run = Run()
    side_names = np.array(["SELL", "", "BUY"], dtype=object)
    with Sender.from_conf(settings.questdb.ilp_conf()) as sender:
        for part in _slices(len(ticks), batch_rows):
            started = time.perf_counter()
            product = ticks.product[part]
            frame = pd.DataFrame({
                "ts": ticks.ts_ns[part].view("datetime64[ns]"), "product": product,
                "area": np.array([product_area(p) for p in product.tolist()], dtype=object),
                "price_eur_per_mwh": ticks.price_eur_per_mwh[part], "quantity_mw": ticks.quantity_mw[part],
                "side": side_names[ticks.side[part] + 1], "trade_id": ticks.trade_id[part],
                "source": ticks.source[part], "seq": ticks.seq[part],
                "recv_ts": ticks.recv_ns[part].view("datetime64[ns]"),
            })
            built = time.perf_counter()
            run.prepare_s += built - started
            sender.dataframe(frame, table_name=table, symbols=["product", "area", "side", "source"], at="ts")
            flushing = time.perf_counter()
            sender.flush()
            done = time.perf_counter()
            run.flush_s.append(done - flushing)
            run.batch_s.append(done - started)
    return run


def wattflow_writer(settings: Settings, table: str, ticks: TickBatch, batch_rows: int) -> Run:
    """What the ingest flow does per batch: tick_rows() (categoricals) then RetryingWriter.write()."""
    run = Run()
    writer = RetryingWriter(settings.questdb)
    try:
        for part in _slices(len(ticks), batch_rows):
            started = time.perf_counter()
            rows = tick_rows(ticks.take(np.arange(part.start, part.stop)), table)
            built = time.perf_counter()
            run.prepare_s += built - started
            writer.write([rows])
            done = time.perf_counter()
            run.flush_s.append(done - built)  # serialisation + flush: write() does both
            run.batch_s.append(done - started)
    finally:
        writer.close()
    return run


VARIANTS: list[tuple[str, str, Callable[[Settings, str, TickBatch, int], Run]]] = [
    ("row() per tick", "row", per_tick_rows),
    ("dataframe() per batch", "df", per_batch_dataframe),
    ("wattflow tick_rows + RetryingWriter", "wf", wattflow_writer),
]


def run(args: argparse.Namespace) -> dict[str, Any]:
    machine = machine_info()
    ticks = make_ticks(args.rows, args.seed)
    n = len(ticks)
    expected_sum = int(ticks.trade_id.sum())
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in VARIANTS}
    with running_stack() as stack:
        settings = stack.settings
        client = QuestDBClient(settings.questdb)
        pids = server_pids(stack)
        if args.pin:
            pin_servers(stack, server_cpus={1}, client_cpus={0})
        for round_ in range(args.rounds):
            order = VARIANTS if round_ % 2 == 0 else list(reversed(VARIANTS))
            for name, tag, function in order:
                table = f"bench_ticks_{tag}_{round_}"
                client.execute(table_ddl("ticks", table))
                with console.status(f"round {round_ + 1}: {name} -> {table}..."):
                    quiet = wait_for_quiet(args.quiet_wait)
                    meter = CpuMeter(pids).start()
                    started = time.perf_counter()
                    timings = function(settings, table, ticks, args.batch_rows)
                    sent = time.perf_counter() - started
                    client.wait_applied([table], timeout_s=600)
                    count = int(client.scalar(f"SELECT count() FROM {table}"))
                    visible = time.perf_counter() - started
                    used = meter.stop()
                total = int(client.scalar(f"SELECT sum(trade_id) FROM {table}"))
                if count != n or total != expected_sum:
                    raise SystemExit(f"{name}: {table} holds {count} rows (sum of trade ids {total}), expected {n} "
                                     f"({expected_sum})")
                results[name].append({
                    "table": table, "sent_s": sent, "visible_s": visible, "rows": count,
                    "rows_per_s_sent": n / sent, "rows_per_s_visible": n / visible,
                    "prepare_s": timings.prepare_s,
                    "batch_p50_ms": percentile(timings.batch_s, 50) * 1e3,
                    "batch_p99_ms": percentile(timings.batch_s, 99) * 1e3,
                    "flush_p50_ms": percentile(timings.flush_s, 50) * 1e3,
                    "flush_p99_ms": percentile(timings.flush_s, 99) * 1e3,
                    "cpu": used, "quiet": quiet,
                })
                console.print(f"  round {round_ + 1}: {name}: {n / sent:,.0f} rows/s sent, "
                              f"{n / visible:,.0f} rows/s visible (questdb {used['cpu_questdb_s']:.1f} s CPU, "
                              f"others {used['cpu_other_s']:.1f} s)")
    rows = []
    for name, _, _ in VARIANTS:
        runs = results[name]
        best = min(runs, key=lambda r: r["sent_s"])
        rows.append({
            "variant": name, "rows": n, "batch_rows": args.batch_rows,
            "rows_per_s_sent_best": max(r["rows_per_s_sent"] for r in runs),
            "rows_per_s_sent_median": float(np.median([r["rows_per_s_sent"] for r in runs])),
            "rows_per_s_visible_best": max(r["rows_per_s_visible"] for r in runs),
            "us_per_row_sent_best": min(r["sent_s"] for r in runs) / n * 1e6,
            "batch_p50_ms": best["batch_p50_ms"], "batch_p99_ms": best["batch_p99_ms"],
            "flush_p50_ms": best["flush_p50_ms"], "flush_p99_ms": best["flush_p99_ms"],
            "prepare_us_per_row": best["prepare_s"] / n * 1e6,
            "rounds": runs,
        })
    reference = rows[0]["rows_per_s_sent_best"]
    for row in rows:
        row["x_sent_vs_row"] = row["rows_per_s_sent_best"] / reference
        row["x_visible_vs_row"] = row["rows_per_s_visible_best"] / rows[0]["rows_per_s_visible_best"]
    print_table(
        f"QuestDB sink: {n:,} ticks in batches of {args.batch_rows:,} over ILP/HTTP into WAL+dedup tables",
        ["variant", "rows/s sent", "x", "rows/s visible", "x", "us/row sent", "batch p50 ms", "batch p99 ms",
         "flush p50 ms", "flush p99 ms", "frame us/row", "questdb CPU s", "other CPU s"],
        [[r["variant"], r["rows_per_s_sent_best"], r["x_sent_vs_row"], r["rows_per_s_visible_best"],
          r["x_visible_vs_row"], r["us_per_row_sent_best"], r["batch_p50_ms"], r["batch_p99_ms"], r["flush_p50_ms"],
          r["flush_p99_ms"], r["prepare_us_per_row"], min(x["cpu"]["cpu_questdb_s"] for x in r["rounds"]),
          min(x["cpu"]["cpu_other_s"] for x in r["rounds"])] for r in rows],
        caption=f"best of {args.rounds} rounds (order reversed every other round), each into a fresh table; counts and "
        "sum(trade_id) verified. x = ratio to row(). 'flush' is the flush() call for the baselines and write() "
        "(serialise + flush) for wattflow; 'frame' is building the DataFrame (dataframe(): plain objects; "
        "wattflow: tick_rows with categoricals). " + ("Client on CPU 0, servers on CPU 1." if args.pin else
                                                      "Not pinned: QuestDB and the client share 2 cores."),
    )
    notes = [
        "ILP over HTTP (auto_flush off), one flush per batch, the same configuration string for all variants "
        "(QuestDBSettings.ilp_conf())",
        "every variant writes into its own table created with wattflow's ticks DDL (WAL, DEDUP UPSERT KEYS(ts, "
        "product, trade_id)); row counts and sum(trade_id) verified",
        "visible = until wait_applied() (polled every 0.1 s) and count() == N: includes QuestDB's WAL apply",
        "QuestDB and Kafka run on the same 2-core box; their CPU during each variant is in rounds[].cpu",
        "the row() variant starts from a Python tuple per tick, prepared before timing",
    ]
    write_results("bench_questdb_sink", vars(args), rows, machine=machine, notes=notes)
    return {"rows": rows}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_questdb_sink", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000, help="ticks written per variant (default 1000000)")
    p.add_argument("--batch-rows", type=int, default=10_000, help="rows per flush (default 10000)")
    p.add_argument("--rounds", type=int, default=2, help="times each variant runs, each into a fresh table")
    p.add_argument("--pin", action="store_true", help="pin this process to CPU 0 and the servers to CPU 1")
    p.add_argument("--quiet-wait", type=float, default=QUIET_WAIT_S,
                   help="before each variant, wait up to this many seconds for the box to go idle (0: do not wait)")
    p.add_argument("--seed", type=int, default=7)
    return p


def main(argv: list[str] | None = None) -> int:
    run(parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
