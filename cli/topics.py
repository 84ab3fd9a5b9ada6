"""``wattflow topics``: the topics a broker holds, with their partitions, message counts and ages."""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson

from cli.console import HelpFormatter

EXAMPLES = """\
examples:
  # every topic: partitions, messages, newest message
  wattflow topics
  # topics whose name contains "orders" (a demo run's orders.d<run> too)
  wattflow topics orders
  # the same as JSON, oldest and newest times in ms
  wattflow topics --json | jq .
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "topics", help="list the topics: partitions, messages, oldest and newest message",
        description="List the broker's topics with their partition count, the messages a reader from the "
        "beginning gets (high minus low watermark), and when the oldest and newest were written. A demo "
        "run's topics end in .d<run id>.",
        epilog=EXAMPLES, formatter_class=HelpFormatter)
    parser.add_argument("pattern", nargs="?", help="only topics whose name contains this")
    parser.add_argument("--all", action="store_true", help="include Kafka's internal topics (__consumer_offsets)")
    parser.add_argument("--json", action="store_true", help="one JSON object per topic and line")
    parser.set_defaults(func=run)


def age(ms: int | None, now_ms: int) -> str:
    """How long ago, in the largest unit that fits: '4 s', '12 min', '3 h', '2 d'; '-' for None."""
    if ms is None:
        return "-"
    seconds = max(0, now_ms - ms) / 1000
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from cli.console import console, load_settings
    from connectors.kafka.inventory import topic_summaries
    from wattflow.domain import ns_to_datetime

    settings = load_settings(args, needs=("kafka",))
    summaries = topic_summaries(settings.kafka, pattern=args.pattern, internal=args.all)
    if args.json:
        for topic in summaries:
            print(orjson.dumps({"topic": topic.name, "partitions": topic.partitions, "messages": topic.messages,
                                "oldest_ms": topic.oldest_ms, "newest_ms": topic.newest_ms}).decode())
        return 0
    if not summaries:
        console.print(f"no topic{' matches ' + repr(args.pattern) if args.pattern else ''} "
                      f"at {settings.kafka.bootstrap_servers} (`wattflow stack init` creates wattflow's)")
        return 0
    now_ms = time.time_ns() // 1_000_000
    wide = console.width >= 110
    table = Table(box=None, pad_edge=False)
    table.add_column("topic", overflow="fold")
    table.add_column("parts", justify="right")
    table.add_column("messages", justify="right")
    if wide:
        table.add_column("oldest (UTC)")
        table.add_column("newest (UTC)")
    table.add_column("newest", justify="right")

    def when(ms: int | None) -> str:
        return "-" if ms is None else f"{ns_to_datetime(ms * 1_000_000):%Y-%m-%d %H:%M:%S}"

    for topic in summaries:
        cells = [topic.name, str(topic.partitions), f"{topic.messages:,}"]
        if wide:
            cells += [when(topic.oldest_ms), when(topic.newest_ms)]
        table.add_row(*cells, age(topic.newest_ms, now_ms) + (" ago" if topic.newest_ms is not None else ""))
    console.print(table)
    return 0
