"""``wattflow adapter``: the paper venue's market and execution-report streams into Kafka."""

from __future__ import annotations

import argparse
import signal
import time
from typing import Any

from cli.console import HelpFormatter

EXAMPLES_ADAPTER = """\
examples:
  # market and reports from the venue into Kafka, until Ctrl-C
  wattflow adapter
  # only the execution reports
  wattflow adapter --no-market
  # stop when the venue's feed is over
  wattflow adapter --until-exhausted
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "adapter", help="forward the paper venue's streams (market data, execution reports) into Kafka",
        description="Follow the paper venue's streaming API (WATTFLOW_VENUE_HOST:PORT, key WATTFLOW_VENUE_API_KEY, "
        "or the keys `wattflow stack up` stored) and publish into Kafka: GET /stream/market -> the raw topic "
        "(WATTFLOW_TOPICS_RAW), each raw message byte for byte as `wattflow replay` would send it, keyed by "
        "product; GET /stream/reports -> WATTFLOW_TOPICS_EXECUTION_REPORTS, keyed by client order id, the report "
        "JSON plus \"source\": \"venue\". Every message is confirmed by Kafka before the adapter moves on; a lost "
        "stream (no line, not even a heartbeat, within --idle-timeout) is resumed after the last confirmed "
        "position with exponential backoff and jitter, and recorded on the events topic. Runs until Ctrl-C.",
        epilog=EXAMPLES_ADAPTER, formatter_class=HelpFormatter)
    parser.add_argument("--market", action=argparse.BooleanOptionalAction, default=True,
                        help="forward the market stream to the raw topic (default: yes)")
    parser.add_argument("--reports", action=argparse.BooleanOptionalAction, default=True,
                        help="forward execution reports to the execution-reports topic (default: yes)")
    parser.add_argument("--until-exhausted", action="store_true",
                        help="stop once the venue's feed is over and everything it streamed is in Kafka")
    parser.add_argument("--idle-timeout", type=float, default=5.0, metavar="S",
                        help="a stream silent this long is dead and is reconnected (default 5; heartbeats: 1 s)")
    parser.add_argument("--max-backoff", type=float, default=5.0, metavar="S",
                        help="longest wait between reconnect attempts (default 5)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli.console import console, load_settings
    from connectors.venue.adapter import AdapterOptions, StreamStats, VenueAdapter

    settings = load_settings(args, needs=("kafka", "venue"))
    adapter = VenueAdapter(settings, market=args.market, reports=args.reports, until_exhausted=args.until_exhausted,
                           options=AdapterOptions(idle_timeout_s=args.idle_timeout, backoff_max_s=args.max_backoff))
    streams = ", ".join(f.stream for f in adapter.followers)
    console.print(f"adapter: {settings.venue.url} ({streams}) -> {settings.topics.raw}, "
                  f"{settings.topics.execution_reports}; events on {settings.topics.events}")

    def show(stats: dict[str, StreamStats]) -> str:
        return "; ".join(f"{s.stream}: {s.published:,} published (at {s.position}, lag {s.lag}), "
                         f"{s.reconnects} reconnects" for s in stats.values())

    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: adapter.stop())
    adapter.start()
    try:
        last_report = time.monotonic()
        while not adapter.join(0.5):
            if time.monotonic() - last_report >= 5.0:
                console.print(show(adapter.stats))
                last_report = time.monotonic()
    finally:
        signal.signal(signal.SIGINT, previous)
        adapter.stop()
    console.print(f"done: {show(adapter.stats)}")
    return 0
