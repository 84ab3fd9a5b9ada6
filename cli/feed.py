"""``wattflow feed``: make and inspect recorded feeds (simulated intraday days, real day-ahead prices)."""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.console import HelpFormatter
from wattflow.domain import AREAS, DURATIONS_MIN, delivery_day_bounds_ns, ns_to_datetime, product_area

_GERMAN_GENERATION_AREAS = ("DE-LU", "DE-AT-LU")


def _console() -> Console:
    try:
        from cli.console import console
    except ImportError:  # the lead's CLI module is optional when this group is used on its own
        return Console(highlight=False)
    return console


def _area(text: str) -> str:
    if text not in AREAS:
        raise argparse.ArgumentTypeError(f"unknown area {text!r}; known: {', '.join(sorted(AREAS))}")
    return text


def _areas(text: str) -> list[str]:
    return [_area(part.strip()) for part in text.split(",") if part.strip()]


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day like 2018-10-28") from None


def _durations(text: str) -> tuple[int, ...]:
    try:
        durations = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of minutes like 15,60") from None
    if not durations or any(d not in DURATIONS_MIN for d in durations):
        raise argparse.ArgumentTypeError(f"durations must be among {DURATIONS_MIN}, got {text!r}")
    return durations


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be positive")
    return value


EXAMPLES_FEED = """\
examples:
  wattflow feed simulate --area DE-LU --day 2018-10-28 -o day.parquet
  wattflow feed info day.parquet   events by type, time span, products
  wattflow feed dayahead --area DE-LU --day 2018-10-28 -o da.jsonl
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "feed", help="make and inspect recorded feeds (simulated intraday days, day-ahead prices)",
        description="Recorded feeds are JSON lines (*.jsonl, *.jsonl.gz: one Kafka raw message per line) or "
        "Parquet (*.parquet), chosen by the output file name.",
        epilog=EXAMPLES_FEED, formatter_class=HelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    simulate = actions.add_parser(
        "simulate", help="simulate one area's intraday trades and L2 book for a delivery day",
        description="Seeded and deterministic: the same options give the same file. Prices follow the real "
        "day-ahead price of each hour (the shipped SMARD sample, or --prices-file), shifted by the wind and "
        "solar surprise for German areas (the shipped ENTSO-E sample, or --generation-file). Days in the "
        "samples: 2018-01-01/02, 2018-03-24..26, 2018-06-01, 2018-09-30, 2018-10-01, 2018-10-27..29.",
    )
    simulate.add_argument("--area", type=_area, default="DE-LU", help="delivery area (default DE-LU)")
    simulate.add_argument("--day", type=_day, default=date(2018, 10, 28),
                          help="local delivery day, YYYY-MM-DD (default 2018-10-28, a 25-hour day)")
    simulate.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    simulate.add_argument("--scale", type=_positive, default=1.0,
                          help="multiplies trade and book intensity, for load tests (default 1.0: ~60k trades, "
                          "~500k book updates)")
    simulate.add_argument("--durations", type=_durations, default=(15, 60),
                          help="product durations in minutes, comma-separated (default 15,60)")
    simulate.add_argument("--no-generation", action="store_true",
                          help="do not shift prices by the wind + solar generation surprise")
    simulate.add_argument("--with-dayahead", action="store_true",
                          help="also include the day's day-ahead prices (published 12:45 the day before)")
    simulate.add_argument("--prices-file", type=Path, metavar="CSV",
                          help="SMARD day-ahead export to anchor prices on (default: the shipped sample)")
    simulate.add_argument("--generation-file", type=Path, metavar="PARQUET",
                          help="ENTSO-E generation file (default: the shipped sample)")
    simulate.add_argument("-o", "--output", type=Path, required=True, metavar="FILE",
                          help="where to write the feed (*.jsonl, *.jsonl.gz or *.parquet)")
    simulate.set_defaults(func=run_simulate)

    dayahead = actions.add_parser(
        "dayahead", help="turn SMARD day-ahead prices into a feed",
        description="One event per area and delivery hour, stamped with its publication time (12:45 local on "
        "the day before delivery). Missing prices are skipped. DE-LU has prices from 2018-10-01 on; before, "
        "ask for DE-AT-LU.",
    )
    dayahead.add_argument("--areas", type=_areas, default=["DE-LU"],
                          help="comma-separated areas (default DE-LU), e.g. DE-LU,FR,NL")
    dayahead.add_argument("--from", dest="first_day", type=_day, default=date(2018, 10, 27),
                          help="first local delivery day (default 2018-10-27)")
    dayahead.add_argument("--to", dest="last_day", type=_day, default=date(2018, 10, 29),
                          help="last local delivery day, inclusive (default 2018-10-29)")
    dayahead.add_argument("--file", type=Path, metavar="CSV",
                          help="SMARD day-ahead export (default: the shipped 2018 sample)")
    dayahead.add_argument("-o", "--output", type=Path, required=True, metavar="FILE",
                          help="where to write the feed (*.jsonl, *.jsonl.gz or *.parquet)")
    dayahead.set_defaults(func=run_dayahead)

    info = actions.add_parser("info", help="summarise a feed file: events by type, time span, products",
                              description="Reads the whole file (JSON lines or Parquet) and checks every line.")
    info.add_argument("file", type=Path, metavar="FILE", help="a feed file")
    info.add_argument("--json", action="store_true", help="one JSON object (for scripts)")
    info.set_defaults(func=run_info)


def _time(ts_ns: int) -> str:
    return f"{ns_to_datetime(ts_ns):%Y-%m-%d %H:%M:%S}Z"


def _summary(title: str, frame: Any, path: Path, timings: dict[str, float]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    for name, count in frame.counts_by_type().items():
        if count:
            table.add_row(f"{name} events", f"{count:,}")
    table.add_row("events", f"{len(frame):,}")
    products = frame.products()
    if products:
        table.add_row("products", f"{len(products)} ({products[0]} .. {products[-1]})")
    areas = sorted({product_area(key) for key in frame.keys})
    table.add_row("areas", ", ".join(areas) or "-")
    table.add_row("sources", ", ".join(frame.sources) or "-")
    if len(frame):
        table.add_row("first event", _time(int(frame.ts_ns.min())))
        table.add_row("last event", _time(int(frame.ts_ns.max())))
    table.add_row("file", f"{path} ({path.stat().st_size / 1e6:,.1f} MB)")
    for what, seconds in timings.items():
        table.add_row(f"{what} time", f"{seconds:.2f} s")
    return table


def run_simulate(args: argparse.Namespace) -> int:
    from connectors.feeds.files import FeedFrame, day_ahead_feed, feed_format, write_feed
    from connectors.feeds.smard import day_ahead_anchor, day_ahead_day
    from paper.simulator import read_generation, simulate_day

    console = _console()
    feed_format(args.output)  # fail on a bad file name or a day without prices before the work
    anchor = day_ahead_anchor(args.prices_file, args.area, args.day)
    generation = None
    if not args.no_generation and args.area not in _GERMAN_GENERATION_AREAS:
        console.print(f"[yellow]note[/]: generation data is German; {args.area} prices are not shifted")
    elif not args.no_generation:
        generation = read_generation(args.generation_file)
        first_ns, end_ns = delivery_day_bounds_ns(args.area, args.day)
        starts = generation.delivery_start_ns
        if not np.any((starts >= first_ns) & (starts < end_ns)):
            console.print(f"[yellow]note[/]: no generation data for {args.day}; prices are not shifted")
            generation = None
    started = time.perf_counter()
    with Progress(TextColumn("simulating {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task(f"{args.area} {args.day}", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        frame = simulate_day(args.area, args.day, args.seed, args.scale, args.durations, anchor, generation,
                             progress=advance)
    if args.with_dayahead:
        prices = day_ahead_day(args.prices_file, args.area, args.day)
        frame = FeedFrame.concat([day_ahead_feed(prices), frame]).sort_by_time()
    simulated = time.perf_counter() - started
    started = time.perf_counter()
    with console.status(f"writing {args.output} ..."):
        write_feed(frame, args.output)
    written = time.perf_counter() - started
    title = f"simulated {args.area} {args.day} (seed {args.seed}, scale {args.scale:g})"
    console.print(_summary(title, frame, args.output, {"simulation": simulated, "write": written}))
    return 0


def run_dayahead(args: argparse.Namespace) -> int:
    from connectors.feeds.files import day_ahead_feed, write_feed
    from connectors.feeds.smard import read_day_ahead

    console = _console()
    if args.last_day < args.first_day:
        console.print(f"[red]--to {args.last_day} is before --from {args.first_day}[/]")
        return 2
    started = time.perf_counter()
    prices = read_day_ahead(args.file, args.areas, args.first_day, args.last_day + timedelta(days=1))
    frame = day_ahead_feed(prices)
    write_feed(frame, args.output)
    elapsed = time.perf_counter() - started
    table = _summary(f"day-ahead {','.join(args.areas)} {args.first_day} .. {args.last_day}", frame,
                     args.output, {"total": elapsed})
    for area in args.areas:
        hours = sum(1 for price in prices if price.area == area)
        table.add_row(f"{area} hours", f"{hours}" + ("" if hours else " (no prices: see --help)"))
    console.print(table)
    return 0


def run_info(args: argparse.Namespace) -> int:
    from connectors.feeds.files import read_feed

    console = _console()
    started = time.perf_counter()
    with console.status(f"reading {args.file} ..."):
        frame = read_feed(args.file)
    if args.json:
        import orjson

        print(orjson.dumps({
            "file": str(args.file), "bytes": args.file.stat().st_size, "events": len(frame),
            "by_type": {name: int(n) for name, n in frame.counts_by_type().items()},
            "products": frame.products(), "areas": sorted({product_area(key) for key in frame.keys}),
            "sources": list(frame.sources),
            "first_ts_ns": int(frame.ts_ns.min()) if len(frame) else None,
            "last_ts_ns": int(frame.ts_ns.max()) if len(frame) else None}).decode())
        return 0
    table = _summary(f"feed {args.file.name}", frame, args.file, {"read": time.perf_counter() - started})
    durations = frame.duration_min[frame.event_type != 2]
    if len(durations):
        per_duration = {int(d): len({p for p in frame.products() if p.endswith(f"PT{int(d)}M")})
                        for d in np.unique(durations)}
        table.add_row("products by duration", ", ".join(f"{d} min: {n}" for d, n in per_duration.items()))
    console.print(table)
    return 0
