"""Run every benchmark, one after the other (each starts and stops its own stack where it needs one).

    python -m benchmarks.run_all            # default sizes (about 10-15 minutes on a 2-core box)
    python -m benchmarks.run_all --quick    # smaller sizes (about 2-3 minutes)
    python -m benchmarks.run_all --only bench_decode bench_questdb_sink

Each benchmark prints its table and writes benchmarks/results/<name>.json; a failing benchmark does not
stop the others, and the exit code is 1 when any failed.
"""

from __future__ import annotations

import argparse
import time
import traceback
from collections.abc import Callable

from benchmarks import (
    bench_day_ahead,
    bench_decode,
    bench_ingest_e2e,
    bench_kafka_source,
    bench_kill_switch,
    bench_questdb_sink,
    bench_signals_flow,
    bench_trading_day,
    bench_venue_client,
)
from benchmarks.common import console, print_table

BENCHMARKS: dict[str, tuple[Callable[[list[str] | None], int], list[str]]] = {}
try:  # B1, the feature kernels (written alongside operators/kernels)
    from benchmarks import bench_kernels

    BENCHMARKS["bench_kernels"] = (bench_kernels.main, ["--ticks", "100000", "--repeat", "2", "--per-event-ticks",
                                                        "20000", "--book-updates", "50000"])
except ImportError as missing:
    console.print(f"[yellow]bench_kernels not available: {missing}[/]")
BENCHMARKS.update({
    "bench_day_ahead": (bench_day_ahead.main, []),
    "bench_decode": (bench_decode.main, ["--messages", "100000", "--repeat", "2"]),
    "bench_kafka_source": (bench_kafka_source.main, ["--messages", "200000", "--rounds", "1"]),
    "bench_questdb_sink": (bench_questdb_sink.main, ["--rows", "200000", "--rounds", "1"]),
    "bench_ingest_e2e": (bench_ingest_e2e.main, ["--messages", "100000"]),
    "bench_signals_flow": (bench_signals_flow.main, ["--scale", "0.3", "--repeat", "1", "--per-item-ticks", "30000",
                                                     "--ready-runs", "1"]),
})
try:  # tick to order through the three flows and the paper venue (about 4-5 minutes with these arguments)
    from benchmarks import bench_tick_to_order

    BENCHMARKS["bench_tick_to_order"] = (bench_tick_to_order.main, ["--quick"])
except ImportError as missing:
    console.print(f"[yellow]bench_tick_to_order not available: {missing}[/]")
BENCHMARKS["bench_trading_day"] = (bench_trading_day.main, ["--scale", "0.3"])
# R7's and the venue client's timings (moved out of the tests); the kill switch keeps 200 cycles even when quick:
# its p99 needs them.
BENCHMARKS["bench_kill_switch"] = (bench_kill_switch.main, ["--cycles", "200"])
BENCHMARKS["bench_venue_client"] = (bench_venue_client.main, ["--orders", "1000", "--retry-after-samples", "5"])
#: The benchmarks that start a stack (and so may pin the servers).
WITH_STACK = {"bench_kafka_source", "bench_questdb_sink", "bench_ingest_e2e"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_all", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one round each")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these")
    parser.add_argument("--pin", action="store_true",
                        help="pin the client to CPU 0 and the servers to CPU 1 (benchmarks with a stack)")
    args = parser.parse_args(argv)
    outcomes = []
    for name, (function, quick) in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        arguments = list(quick) if args.quick else []
        if args.pin and name in WITH_STACK:
            arguments.append("--pin")
        console.rule(f"{name} {' '.join(arguments)}")
        started = time.perf_counter()
        try:
            status = "ok" if function(arguments) == 0 else "failed"
        except (Exception, SystemExit) as error:  # one failure must not stop the rest
            status = f"failed: {error}"
            console.print(traceback.format_exc())
        outcomes.append((name, status, time.perf_counter() - started))
    print_table("benchmarks run", ["benchmark", "outcome", "seconds"], outcomes)
    return 0 if all(status == "ok" for _, status, _ in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
