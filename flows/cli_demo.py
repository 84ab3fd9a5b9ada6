"""``wattflow demo``: the main job on its local default (what `make demo` runs)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="bring the native stack up and run the main job, printing what it did",
        description="Start the native stack (if it is not running), create topics and tables, and run the "
        "main job. Leaves the stack running so that you can explore; stop it with `wattflow stack down`.",
    )
    parser.add_argument("--messages", type=int, default=1000, help="messages for the Kafka round trip")
    parser.add_argument(
        "--external-stack", action="store_true",
        help="use the Kafka and QuestDB named in the settings (e.g. docker compose) "
        "instead of starting the native stack",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from flows.cli import console, load_settings
    from flows.cli_stack import init_stack, print_addresses
    from flows.smoke import run_smoke
    from wattflow.stack import Stack

    settings = load_settings(args)
    if not args.external_stack:
        with console.status("starting the native stack (the first run fetches the jars from Maven Central)..."):
            for server, what in Stack(settings).up().items():
                console.print(f"[green]{server}[/]: {what}")
    init_stack(settings)
    with console.status("smoke path: Kafka round trip and QuestDB dedup..."):
        result = run_smoke(settings, args.messages)
    ok = result.produced == result.consumed == args.messages and result.questdb_rows_after_second_write == 1
    console.print(
        f"Kafka: produced {result.produced}, consumed {result.consumed} in {result.kafka_seconds:.2f} s\n"
        f"QuestDB: one row written over ILP/HTTP -> {result.questdb_rows_after_first_write} row; the same row "
        f"written again -> {result.questdb_rows_after_second_write} row (dedup) in {result.questdb_seconds:.2f} s"
    )
    console.print("[bold green]smoke path OK[/]" if ok else "[bold red]smoke path FAILED[/]")
    print_addresses(settings)
    console.print("stop the stack with: wattflow stack down")
    return 0 if ok else 1
