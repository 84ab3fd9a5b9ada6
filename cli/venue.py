"""``wattflow venue``: the paper venue, a simulated exchange that plays a feed and takes orders over HTTP."""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path
from typing import Any

from cli.console import HelpFormatter

EXAMPLES_VENUE = """\
examples:
  # the day's market in real time on port 8700
  wattflow venue --feed day.parquet
  # a market minute per second
  wattflow venue --feed day.parquet --speed 60
  # a manual clock (POST /admin/clock)
  wattflow venue --feed day.parquet --speed 0
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "venue", help="serve the paper venue (simulated exchange over a feed, HTTP order API)",
        description="Play the market of a feed file and take orders over HTTP: POST/GET/DELETE /orders, "
        "GET /fills, /reports, /book/{product}, /health; admin: /admin/faults (down, error_5xx, timeout, slow, "
        "drop) and /admin/clock. Clients send X-API-Key (WATTFLOW_VENUE_API_KEY; a random one is made and "
        "printed if unset). Binds to WATTFLOW_VENUE_HOST:WATTFLOW_VENUE_PORT (default 127.0.0.1:8700).",
        epilog=EXAMPLES_VENUE, formatter_class=HelpFormatter)
    parser.add_argument("--feed", type=Path, required=True, help="feed file (.jsonl, .jsonl.gz or .parquet)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="market clock: event time x SPEED against wall time (default 1); 0 = manual clock "
                        "(POST /admin/clock)")
    parser.add_argument("--port", type=int, help="port (default WATTFLOW_VENUE_PORT, 8700)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli.console import console, load_settings
    from paper.server import serve

    settings = load_settings(args).venue
    api_key = settings.api_key.get_secret_value() if settings.api_key else secrets.token_urlsafe(16)
    admin_key = settings.admin_key.get_secret_value() if settings.admin_key else secrets.token_urlsafe(16)
    port = args.port if args.port is not None else settings.port
    console.print(f"paper venue on http://{settings.host}:{port} playing {args.feed} "
                  f"({'manual clock' if not args.speed else f'x{args.speed:g}'})")
    if not settings.api_key:
        console.print(f"API key (X-API-Key): {api_key}   admin key: {admin_key}   "
                      "(set WATTFLOW_VENUE_API_KEY / WATTFLOW_VENUE_ADMIN_KEY to choose them)")
    serve(args.feed, port, api_key, host=settings.host, admin_key=admin_key,
          rate_limit_per_s=settings.rate_limit_per_s, latency_s=settings.latency_ms / 1000,
          speed=args.speed or None)
    return 0
