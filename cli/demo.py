"""``wattflow demo``: the main job on its local default (what `make demo` runs)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.console import HelpFormatter, positive

EXAMPLES_DEMO = """\
examples:
  # the native stack, then a simulated day traded live (~2 min)
  wattflow demo
  # the same day played slower (less latency per market second)
  wattflow demo --minutes 5
  # no servers: the day through the engine and a paper exchange
  wattflow demo --in-process
  # only check that Kafka and QuestDB answer
  wattflow demo --smoke
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="bring the native stack up and run the main job: a simulated trading day, traded live",
        description="Start the native stack (if it is not running), create topics and tables, simulate the "
        "intraday market of DE-LU on 2018-10-28 (25 delivery hours) anchored on real day-ahead prices, and "
        "trade it live: the paper venue plays the day (fitted into --minutes of wall time), the feed adapter "
        "streams it into Kafka, and two flows run side by side as processes: the trading flow (each tick to "
        "features, signals and limit orders at the venue under pre-trade risk, in milliseconds) and the store "
        "flow (every tick and everything derived into QuestDB, beside the hot path). Ends with a summary (stored "
        "rows, dead letters, signals and their hash, orders, "
        "fills, fill ratio, slippage, PnL, risk denials, events), example queries and plots under "
        "<state dir>/reports. The stack keeps running so that you can explore; stop it with `wattflow stack "
        "down`.",
        epilog=EXAMPLES_DEMO, formatter_class=HelpFormatter)
    parser.add_argument(
        "--external-stack", action="store_true",
        help="use the Kafka and QuestDB named in the settings (e.g. docker compose) "
        "instead of starting the native stack",
    )
    parser.add_argument("--scale", type=positive, default=1.0,
                        help="scale the simulated day's activity (default 1: ~60k trades, ~500k book updates)")
    parser.add_argument("--minutes", type=positive, default=1.5,
                        help="wall-clock minutes to play the day's ~33 hours of trading in (default 1.5; more "
                        "minutes = a slower market, less latency per market second)")
    parser.add_argument("--in-process", action="store_true",
                        help="no stack: drive the day's trading through the engine and a paper exchange in this "
                        "process (cli/engine_day.py) and print its decisions, orders and risk denials by reason")
    parser.add_argument("--lag-s", type=float, default=0.0,
                        help="with --in-process: market seconds of lag to play (signals taken in steps this long, "
                        "partition after partition; reports a step late); the live demo's is minutes")
    parser.add_argument("--smoke", action="store_true",
                        help="only the quick smoke path (Kafka round trip, QuestDB write/read/dedup)")
    parser.set_defaults(func=run)


#: Rows of an example query shown in the terminal; the rest is one query away (the SQL is printed below it).
SHOWN_ROWS = 8


def _table(title: str, rows: list[dict[str, Any]]) -> Table:
    more = len(rows) - SHOWN_ROWS
    caption = f"... and {more:,} more rows: run the query below in the QuestDB console" if more > 0 else None
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for column in rows[0] if rows else ["(no rows)"]:
        table.add_column(column, overflow="fold")
    for row in rows[:SHOWN_ROWS]:
        table.add_row(*(f"{v:,.2f}" if isinstance(v, float) else str(v) for v in row.values()))
    return table


def run(args: argparse.Namespace) -> int:
    from cli.console import console, load_settings
    from cli.stack import init_stack, print_addresses
    from wattflow.stack import Stack

    settings = load_settings(args)
    if args.in_process:
        return _in_process(settings, args.scale, args.lag_s)
    if not args.external_stack:
        with console.status("starting the native stack (the first run fetches the jars from Maven Central)..."):
            for server, what in Stack(settings).up().items():
                console.print(f"[green]{server}[/]: {what}")
    init_stack(settings)
    if args.smoke:
        return _smoke(settings)

    from cli.demo_day import run_demo
    from cli.trading_day import DayProgress
    from wattflow.domain import ns_to_datetime

    progress = Progress(TextColumn("[bold]{task.fields[stage]}[/]"), BarColumn(),
                        TextColumn("market {task.fields[clock]}"), TextColumn("{task.fields[published]}"),
                        TimeElapsedColumn(), console=console, transient=True)
    task = progress.add_task("day", total=1.0, stage="starting", clock="", published="")

    def show(state: DayProgress) -> None:
        clock = ns_to_datetime(state.market_ns).strftime("%Y-%m-%d %H:%M UTC") if state.market_ns else ""
        extra = f"{state.published:,}/{state.events:,} events" + (f", {state.orders:,} order records"
                                                                   if state.orders else "")
        progress.update(task, completed=state.fraction, stage=state.stage, clock=clock, published=extra)

    with progress:
        report = run_demo(settings, scale=args.scale, minutes=args.minutes, progress=show,
                          status=lambda text: console.print(f"[dim]{text}[/]"))

    counts = report.counts_by_type
    day = report.day
    console.print(f"\n[bold]Simulated DE-LU 2018-10-28[/] ({report.feed_path}): {counts['trade']:,} trades, "
                  f"{counts['book']:,} book updates, {counts['dayahead']:,} day-ahead prices "
                  f"+ {report.bad_messages} malformed messages")
    run_suffix = day.settings.topics.raw.rsplit(".d", 1)[-1]
    console.print(f"traded live at x{day.speed:,.0f} in {day.seconds:.0f} s: the adapter published "
                  f"{day.published:,} venue events ({day.reconnects} reconnects); this run's topics end in "
                  f".d{run_suffix}; logs in {next(iter(day.logs.values())).parent} (flows) and "
                  f"{settings.state_dir / 'logs' / 'kafka-clients.log'} (Kafka clients)")
    console.print(f"stored in QuestDB: ticks {report.stored['ticks']:,}, book {report.stored['book']:,}, "
                  f"dayahead {report.stored['dayahead']:,}")
    console.print("dead letters by reason: " + (", ".join(f"{k} {v}" for k, v in report.dead_by_reason.items())
                                                 or "none"))
    for title, sql, rows in report.queries:
        console.print()
        console.print(_table(title, rows))
        console.print(f"[dim]{sql}[/]", soft_wrap=True)
    console.print()
    console.print(_table("signals per product and model (first rows)", report.signals_table))
    console.print(f"signals: {report.signals_count:,} stored for DE-LU; "
                  f"signals hash {report.signals_hash[:16]} (the same feed always gives the same hash)")
    if report.plot_path is not None:
        console.print(f"plot of price, fair value and signals: {report.plot_path}")
    if report.trading is not None:
        from reports.trading import print_trading_summary

        console.print()
        print_trading_summary(report.trading, console)
    t2o = report.day.tick_to_order_ms
    if t2o.get("count"):
        console.print(f"tick to order during the day: p50 {t2o['p50']:,.1f} ms, p99 {t2o['p99']:,.1f} ms, max "
                      f"{t2o['max']:,.1f} ms over {int(t2o['count']):,} orders (from the trade at the venue to "
                      "the order's arrival there: feed, adapter, Kafka, the trading flow, HTTP)")
    if report.outage is not None:
        console.print()
        for line in report.outage.lines():
            console.print(line, markup=False, soft_wrap=True)
    for plot in report.trading_plots:
        console.print(f"plot: {plot}")
    if report.calibration_plot is not None:
        console.print(f"plot: {report.calibration_plot} (fill probability: predicted against what happened)")
    expected = counts["trade"], counts["book"]
    ok = (report.stored["ticks"], report.stored["book"]) == expected
    console.print()
    console.print("[bold green]every valid event stored once (rows this run stored)[/]" if ok else
                  f"[bold red]this run stored {report.stored} but the feed has {expected}[/]")
    print_addresses(settings)
    console.print("next: open the QuestDB console at the URL above; `wattflow positions` for positions and PnL; "
                  "`wattflow tail orders --run latest -n 10` for this run's orders; `wattflow stack down` to stop "
                  "(`source .venv/bin/activate` puts `wattflow` on your PATH)")
    return 0 if ok else 1


def _in_process(settings: Any, scale: float, lag_s: float) -> int:
    from cli.console import console
    from cli.demo_day import demo_feed
    from cli.engine_day import run_engine_day

    with console.status("the demo day through the engine and a paper exchange, in this process..."):
        _, frame = demo_feed(settings, scale=scale)
        day = run_engine_day(settings, frame, step_s=lag_s)
    denials = ", ".join(f"{reason} {count:,}" for reason, count in day.denials_by_reason.items()) or "none"
    console.print(f"in-process day (lag {lag_s:g} s of market time): {day.signals:,} signals, "
                  f"{day.decisions:,} decisions put to pre-trade risk: {day.orders:,} orders "
                  f"({day.orders_at_exchange:,} at the exchange), {day.fills:,} fills; risk denials: {denials}; "
                  f"denial share {day.denial_share:.2%}")
    console.print("events: " + ", ".join(f"{kind} {count:,}" for kind, count in day.events_by_kind.items()))
    return 0 if day.orders == day.orders_at_exchange else 1


def _smoke(settings: Any) -> int:
    from cli.console import console
    from cli.smoke import run_smoke

    with console.status("smoke path: Kafka round trip and QuestDB dedup..."):
        result = run_smoke(settings)
    ok = result.produced == result.consumed and result.questdb_rows_after_second_write == 1
    console.print(
        f"Kafka: produced {result.produced}, consumed {result.consumed} in {result.kafka_seconds:.2f} s\n"
        f"QuestDB: one row written over ILP/HTTP -> {result.questdb_rows_after_first_write} row; the same row "
        f"written again -> {result.questdb_rows_after_second_write} row (dedup) in {result.questdb_seconds:.2f} s"
    )
    console.print("[bold green]smoke path OK[/]" if ok else "[bold red]smoke path FAILED[/]")
    return 0 if ok else 1
