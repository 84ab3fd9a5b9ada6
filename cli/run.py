"""``wattflow run FLOW``: launch a dataflow on workers and processes, with or without recovery."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from cli.console import HelpFormatter

#: Dataflows by name: the import string `python -m bytewax.run` takes.
#: The servers each flow cannot start without (the venue may be down: the order sink waits for it).
NEEDS = {"trading": ("kafka",), "store": ("kafka", "questdb"), "ingest": ("kafka", "questdb"),
         "signals": ("kafka",), "execution": ("kafka",)}
FLOWS = {"trading": "flows.trading:get_flow", "store": "flows.store:get_flow", "ingest": "flows.ingest:get_flow",
         "signals": "flows.signals:get_flow", "execution": "flows.execution:get_flow"}


EXAMPLES_RUN = """\
examples:
  # tick to order, following the raw topic (Ctrl-C stops)
  wattflow run trading
  # everything into QuestDB, resumable
  wattflow run store -r .wattflow/recovery/store
  # the raw topic once, to its end
  wattflow run ingest --no-tail
  # 2 processes x 2 workers, with recovery
  wattflow run trading -p 2 -w 2 -r rec/
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="run a dataflow (trading, store; ingest, signals, execution) on workers/processes, with recovery",
        description="Run one of wattflow's dataflows. `--workers N` runs N worker threads in this process; "
        "`--processes P` starts P processes on this host (Bytewax's -i/-a), each with N workers. Kafka "
        "partitions are the unit of parallelism, so workers beyond the partition count idle. With "
        "`--recovery DIR` the flow snapshots its state every --snapshot-interval seconds and resumes from the "
        "last snapshot after a crash (rows written twice are absorbed by QuestDB's dedup keys).",
        epilog=EXAMPLES_RUN, formatter_class=HelpFormatter)
    parser.add_argument("flow", choices=sorted(FLOWS))
    parser.add_argument("-w", "--workers", type=int, default=1, help="worker threads per process (default 1)")
    parser.add_argument("-p", "--processes", type=int, default=1, help="processes on this host (default 1)")
    parser.add_argument("-r", "--recovery", type=Path, metavar="DIR",
                        help="recovery directory (created and initialised if missing)")
    parser.add_argument("-s", "--snapshot-interval", type=int, default=2,
                        help="whole seconds between snapshots (epochs), default 2")
    parser.add_argument("--no-tail", action="store_true",
                        help="stop at the end of the input topics instead of waiting for more (replays, tests)")
    parser.add_argument("--batch-size", type=int, default=20_000, help="messages per Kafka poll (default 20000)")
    parser.set_defaults(func=run)


def bytewax_command(flow: str, *, tail: bool, batch_size: int, workers: int, recovery: Path | None,
                    snapshot_interval_s: int, process_id: int | None = None,
                    addresses: list[str] | None = None) -> list[str]:
    """The `python -m bytewax.run ...` line that runs a flow (also printed in the README)."""
    command = [sys.executable, "-m", "bytewax.run", f"{FLOWS[flow]}(tail={tail}, batch_size={batch_size})",
               "-w", str(workers), "-s", str(snapshot_interval_s)]
    if recovery is not None:
        command += ["-r", str(recovery), "-b", "0"]
    if process_id is not None and addresses:
        command += ["-i", str(process_id), "-a", ";".join(addresses)]
    return command


def ensure_recovery_dir(directory: Path, partitions: int) -> None:
    """Create Bytewax's recovery partitions once; an initialised directory is left as it is."""
    from bytewax.recovery import init_db_dir

    if directory.exists() and any(directory.glob("part-*.sqlite3")):
        return
    directory.mkdir(parents=True, exist_ok=True)
    init_db_dir(directory, partitions)


class Progress:
    """While a flow runs in this process: a line on stderr with what it has read, stored and published, every
    5 s on a terminal, every 30 s in a pipe or a log."""

    def __init__(self, flow: str, dlq_topic: str) -> None:
        self.flow, self.dlq_topic = flow, dlq_topic
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self.started = time.monotonic()

    def __enter__(self) -> Progress:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(2)

    def _run(self) -> None:
        from wattflow.tally import TALLY, summary

        every_s = 5.0 if sys.stderr.isatty() else 30.0
        while not self.done.wait(every_s):
            elapsed = time.monotonic() - self.started
            sys.stderr.write(f"{self.flow} {elapsed:,.0f} s: {summary(TALLY.snapshot(), self.dlq_topic)}\n")
            sys.stderr.flush()


def _ignore_interrupt() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run(args: argparse.Namespace) -> int:
    from cli.console import console, load_settings
    from wattflow.shutdown import stop_on_interrupt, stop_requested
    from wattflow.stack.process import free_port
    from wattflow.tally import TALLY, summary

    settings = load_settings(args, needs=NEEDS[args.flow])
    tail = not args.no_tail
    if args.recovery is not None:
        ensure_recovery_dir(args.recovery, max(1, args.workers * args.processes))
    env = dict(os.environ)
    if getattr(args, "settings", None):
        env["WATTFLOW_SETTINGS_FILE"] = str(args.settings)
    started = time.monotonic()
    if args.processes == 1:
        import importlib

        from bytewax.recovery import RecoveryConfig
        from bytewax.run import cli_main

        module = importlib.import_module(FLOWS[args.flow].split(":")[0])
        flow = module.get_flow(settings, tail=tail, batch_size=args.batch_size)
        recovery = RecoveryConfig(args.recovery, backup_interval=timedelta(0)) if args.recovery else None
        console.print(f"running {args.flow} with {args.workers} worker(s)" + (" (until the end of input)" if not tail
                                                                              else " (Ctrl-C to stop)"))
        if args.recovery is None:
            console.print("no --recovery: every input topic is read from the beginning (with --recovery DIR a "
                          "run resumes where the last one stopped)")
        stop_on_interrupt()
        with Progress(args.flow, settings.topics.dlq):
            cli_main(flow, workers_per_process=args.workers,
                     epoch_interval=timedelta(seconds=args.snapshot_interval), recovery_config=recovery)
        done = summary(TALLY.snapshot(), settings.topics.dlq)
        if stop_requested():
            console.print(f"{args.flow} stopped by Ctrl-C after {time.monotonic() - started:.1f} s: {done}"
                          + (f"; its snapshot is in {args.recovery} (resume with the same --recovery)"
                             if args.recovery else ""))
            return 130
        console.print(f"{args.flow} finished in {time.monotonic() - started:.1f} s: {done}")
        return 0
    else:
        addresses = [f"127.0.0.1:{free_port()}" for _ in range(args.processes)]
        children = [
            subprocess.Popen(bytewax_command(args.flow, tail=tail, batch_size=args.batch_size, workers=args.workers,
                                             recovery=args.recovery, snapshot_interval_s=args.snapshot_interval,
                                             process_id=i, addresses=addresses), env=env,
                             # The terminal's Ctrl-C is ours: they ignore it and we stop them (no Rust panic). They stay
                             # in our session, so a closed terminal or a killed parent still takes them down.
                             preexec_fn=_ignore_interrupt)  # noqa: PLW1509 - no thread started yet in this process
            for i in range(args.processes)
        ]
        console.print(f"running {args.flow} in {args.processes} processes x {args.workers} worker(s): "
                      f"pids {', '.join(str(c.pid) for c in children)}")
        try:
            codes = [child.wait() for child in children]
        except KeyboardInterrupt:
            for child in children:
                child.terminate()
            for child in children:
                child.wait()
            console.print(f"{args.flow} stopped by Ctrl-C after {time.monotonic() - started:.1f} s"
                          + (f"; resume from {args.recovery} with the same --recovery" if args.recovery else ""))
            return 130
        if any(codes):
            console.print(f"[red]a process failed[/]: exit codes {codes}")
            return 1
    console.print(f"{args.flow} finished in {time.monotonic() - started:.1f} s")
    return 0
