"""``wattflow stack``: the native Kafka + QuestDB stack (no Docker needed)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from cli.console import HelpFormatter
from wattflow.settings import Settings

EXAMPLES_STACK = """\
examples:
  # fetch the jars once, start Kafka and QuestDB, create topics and tables
  wattflow stack up
  # is each server running? (for scripts)
  wattflow stack status --json
  wattflow stack logs kafka -n 100 the last 100 lines of Kafka's log
  # stop everything this state directory started
  wattflow stack down
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "stack", help="start, stop and inspect the native Kafka + QuestDB stack",
        description="Run real Apache Kafka (KRaft, one node) and QuestDB from Maven Central jars, bound to "
        "127.0.0.1, under the state directory (WATTFLOW_STATE_DIR, default ./.wattflow). The jars are "
        "fetched once with Maven into WATTFLOW_STACK_CACHE_DIR (default ~/.cache/wattflow). With WATTFLOW_VENUE_FEED "
        "set, the paper venue is started too (on WATTFLOW_VENUE_HOST:PORT, at WATTFLOW_VENUE_SPEED; its keys are "
        "WATTFLOW_VENUE_API_KEY / WATTFLOW_VENUE_ADMIN_KEY, or made once and kept in <state dir>/venue/keys.json).",
        epilog=EXAMPLES_STACK, formatter_class=HelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="fetch (once), start both servers, create topics and tables",
                            description="Start whatever is not running (and the paper venue when "
                            "WATTFLOW_VENUE_FEED is set), wait until each answers, then create the Kafka topics "
                            "and QuestDB tables that do not exist yet.")
    up.add_argument("--no-init", action="store_true", help="do not create topics and tables")
    up.set_defaults(func=run_up)
    down = actions.add_parser("down", help="stop the servers and the venue (SIGTERM, SIGKILL after a grace period)")
    down.set_defaults(func=run_down)
    status = actions.add_parser("status", help="report each server: running, stopped, dead or unresponsive",
                                description="Exit code 0 when every server (the venue too, when the stack "
                                "has one) runs and answers, 1 otherwise.")
    status.add_argument("--json", action="store_true", help="one JSON object per server (for scripts)")
    status.set_defaults(func=run_status)
    logs = actions.add_parser("logs", help="print the last lines of a server's logs")
    logs.add_argument("server", choices=["kafka", "questdb", "venue"])
    logs.add_argument("-n", "--lines", type=int, default=40, help="how many lines (default 40)")
    logs.set_defaults(func=run_logs)
    init = actions.add_parser("init", help="create the Kafka topics and QuestDB tables (idempotent)")
    init.set_defaults(func=run_init)


def init_stack(settings: Settings) -> dict[str, list[str]]:
    """Create wattflow's topics and tables where they are missing, and stamp every wattflow topic with the
    broker's append time (topics of an older stack included). Safe to run any number of times."""
    from connectors.kafka.admin import align_topic_config, ensure_topics
    from connectors.questdb.sql import QuestDBClient
    from connectors.questdb.tables import ensure_tables

    topics = ensure_topics(settings.kafka, settings.topics.all_topics(), settings.topics.replication_factor)
    align_topic_config(settings.kafka, [name for name in settings.topics.all_topics() if name not in topics])
    tables = ensure_tables(QuestDBClient(settings.questdb))
    return {"topics": topics, "tables": tables}


def print_addresses(settings: Settings) -> None:
    from cli.console import console
    from wattflow.stack import Stack

    for server, addresses in Stack(settings).addresses().items():
        for what, address in addresses.items():
            console.print(f"  {server:8} {what:16} {address}")


def run_up(args: argparse.Namespace) -> int:
    from cli.console import console, load_settings
    from wattflow.stack import Stack

    settings = load_settings(args)
    stack = Stack(settings)
    with console.status("fetching jars (first time only) and starting Kafka and QuestDB..."):
        outcome = stack.up()
    for server, what in outcome.items():
        console.print(f"[green]{server}[/]: {what}")
    if "venue" in outcome and settings.venue.api_key is None:
        console.print(f"venue keys: {settings.state_dir / 'venue' / 'keys.json'} (`wattflow adapter` reads them; "
                      "set WATTFLOW_VENUE_API_KEY / WATTFLOW_VENUE_ADMIN_KEY to choose them)")
    if stack.jars and stack.jars.downloaded:
        console.print(f"fetched Kafka and QuestDB jars from Maven Central in {stack.jars.seconds:.1f} s")
    if not args.no_init:
        created = init_stack(settings)
        console.print(f"topics created: {', '.join(created['topics']) or 'none (all exist)'}")
        console.print(f"tables created: {', '.join(created['tables']) or 'none (all exist)'}")
    print_addresses(settings)
    return 0


def run_down(args: argparse.Namespace) -> int:
    from cli.console import console, load_settings
    from wattflow.stack import Stack

    for server, what in Stack(load_settings(args)).down().items():
        console.print(f"{server}: {what}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from cli.console import console, load_settings
    from wattflow.stack import Stack

    settings = load_settings(args)
    statuses = Stack(settings).status()
    if args.json:
        import orjson

        for status in statuses:
            print(orjson.dumps({"server": status.name, "state": status.state, "pid": status.pid,
                                "addresses": status.addresses, "detail": status.detail}).decode())
        return 0 if all(s.healthy for s in statuses) else 1
    table = Table(title=f"wattflow stack ({settings.state_dir})")
    for column in ("server", "state", "pid", "addresses", "detail"):
        table.add_column(column)
    colour = {"running": "green", "stopped": "yellow", "dead": "red", "unresponsive": "red"}
    for status in statuses:
        table.add_row(
            status.name, f"[{colour[status.state]}]{status.state}[/]", str(status.pid or "-"),
            "\n".join(f"{k}: {v}" for k, v in status.addresses.items()), status.detail,
        )
    console.print(table)
    return 0 if all(s.healthy for s in statuses) else 1


def run_logs(args: argparse.Namespace) -> int:
    from cli.console import console, load_settings
    from wattflow.stack import Stack

    console.print(Stack(load_settings(args)).logs(args.server, args.lines), markup=False)
    return 0


def run_init(args: argparse.Namespace) -> int:
    from cli.console import console, load_settings

    created = init_stack(load_settings(args, needs=("kafka", "questdb")))
    console.print(f"topics created: {', '.join(created['topics']) or 'none (all exist)'}")
    console.print(f"tables created: {', '.join(created['tables']) or 'none (all exist)'}")
    return 0
