"""``wattflow loadtest``: how much the system takes, how fast it reacts, whether it holds (see loadtest/)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cli.console import HelpFormatter

_EPILOG = """\
examples:
  wattflow feed simulate --day 2018-10-28 -o day.parquet
  # 1,000 messages/s for 30 s against the running stack
  wattflow loadtest day.parquet
  wattflow loadtest day.parquet --rate 10000 --duration 60
  # event time x600 on an absolute schedule
  wattflow loadtest day.parquet --speed 600
  # the maximum sustainable rate, with its rule
  wattflow loadtest day.parquet --ramp 1000,2000,5000,10000
  # an hour: RSS slope per process, fails if one grows
  wattflow loadtest day.parquet --soak 60 --rate 2000
  # 100 events per raw message (as a feed adapter forwards frames)
  wattflow loadtest day.parquet --rate 20000 --pack 100
  # own servers on free ports; compare with an earlier result
  wattflow loadtest day.parquet --own-stack --out results/ \\
      --compare results/earlier.json
  # judge two results already written (CI), no load sent
  wattflow loadtest --result results/loadtest.json --compare earlier.json

Open loop: message i is due at start + i/rate (or its event time / speed); latency counts from that intended
time, so a slow system cannot slow the load down and hide its latency, and the sender's own delay is reported.

Loops over the feed: pass k moves every event time and delivery period k x 52 weeks forward (product keys
too; the same weekday and daylight-saving days), numbers seq from k x feed length and sets source to the run's
tag, so the store keeps every pass and each stored row is traced to the message sent. A malformed or
incomplete row of the feed is sent as it came (the flows dead-letter it with its origin) unless --strict.
"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "loadtest", help="load-test the flows with a recorded feed: latency per stage, counts, lag, CPU/RSS",
        description="Send a feed to the raw topic on an open-loop schedule through a fresh trading flow, store "
        "flow and paper venue (their own topics on the running stack, or --own-stack), and measure every stage "
        "keyed against the feed: sent -> raw topic -> decided -> at the venue -> acknowledged, and sent -> "
        "stored in QuestDB; counts, losses and doubles at each stage; lag per flow; CPU and RSS per process. "
        "Writes loadtest.json (with the git commit), loadtest.md and PNG plots to --out.",
        epilog=_EPILOG, formatter_class=HelpFormatter)
    p.add_argument("feed", type=Path, nargs="?",
                   help="feed file (.jsonl, .jsonl.gz or .parquet; see `wattflow feed`); not with --result")
    p.add_argument("--result", type=Path, metavar="RESULT.json",
                   help="judge a result already written instead of sending load: losses, a soak's RSS slopes "
                   "(--rss-bound) and --compare; exit 1 as the run itself would")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, help="messages per second (default 1000)")
    pace.add_argument("--speed", type=float, help="event-time speed-up instead of a fixed rate")
    pace.add_argument("--ramp", help="comma-separated rates, each for --duration, to find the maximum sustainable "
                      "rate (stops at the first that does not hold)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load per rate (default 30)")
    p.add_argument("--warmup", type=float, default=5.0,
                   help="seconds at the start of each rate not counted in the latencies (default 5)")
    p.add_argument("--soak", type=float, metavar="MINUTES",
                   help="one long phase at --rate; reports each process's RSS slope and fails above --rss-bound")
    p.add_argument("--products", type=int, help="only the N busiest products of the feed (default all)")
    p.add_argument("--pack", type=int, default=1, metavar="N",
                   help="pack each run of N consecutive events into one raw message per product, as `wattflow "
                   "replay --pack` and a feed adapter do (--rate stays events/s; a pack is due when its last event "
                   "is, and every event is still tracked and timed on its own)")
    p.add_argument("--out", type=Path, help="directory for the results (default .wattflow/loadtest/<time>)")
    p.add_argument("--compare", type=Path, metavar="EARLIER.json",
                   help="print the change against an earlier result; exit 1 on a regression beyond --regression-pct")
    p.add_argument("--regression-pct", type=float, default=20.0, help="what counts as a regression (default 20%%)")
    p.add_argument("--own-stack", action="store_true",
                   help="start an own Kafka and QuestDB on free ports (stopped at the end) instead of the running one")
    p.add_argument("--p99-bound-ms", type=float, default=1000.0,
                   help="p99 tick to order a sustained rate must stay under (default 1000)")
    p.add_argument("--lag-bound-ms", type=float, default=2000.0, help="lag a sustained rate must stay under")
    p.add_argument("--rss-bound", type=float, default=2.0, metavar="MB_PER_MIN",
                   help="RSS slope above which a soak fails (default 2 MB/min)")
    p.add_argument("--kafka-defaults", action="store_true",
                   help="run the flows with Kafka client defaults instead of tuned for latency")
    p.add_argument("--strict", action="store_true", help="refuse a feed with a malformed or incomplete row")
    p.set_defaults(func=run)


class Display:
    """One status line: rewritten in place on a terminal, a plain line every 5 s in a pipe (no control codes)."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.last = 0.0

    def __call__(self, sample: Any, phase: Any) -> None:
        now = time.monotonic()
        if now - self.last < (0.5 if self.tty else 5.0):
            return
        self.last = now
        elapsed = max(sample.t_s, 1e-9)
        p99 = "-" if sample.p99_so_far_ms != sample.p99_so_far_ms else f"{sample.p99_so_far_ms:,.0f}"
        line = (f"{phase.name[:12]:12} {sample.t_s:4.0f}s sent {sample.sent:>9,} {sample.sent / elapsed:>6,.0f}/s "
                f"lag {sample.trading_lag_ms:>6,.0f}ms {sample.store_lag_messages:>6,}msg p99 {p99:>5}ms")
        if self.tty:
            sys.stdout.write("\r" + line[:79].ljust(79))
        else:
            sys.stdout.write(line[:79] + "\n")
        sys.stdout.flush()

    def end(self) -> None:
        if self.tty:
            sys.stdout.write("\n")


def run(args: argparse.Namespace) -> int:
    import contextlib

    from cli.console import console, load_settings
    from connectors.feeds.files import RawFeed, read_feed, read_raw_feed
    from loadtest import processes, report
    from loadtest.load import DAYAHEAD_KIND, build_load
    from loadtest.run import LoadTest, Options, Phase, max_sustainable, rule_text
    from wattflow.errors import SettingsError

    if args.result is not None:
        return judged(load_result(args.result), args)
    if args.feed is None:
        raise SettingsError("give a feed file (or --result RESULT.json to judge a result already written)",
                            hint="make one with `wattflow feed simulate -o day.parquet`")
    if not args.feed.exists():
        raise SettingsError(f"no feed file {args.feed}", hint="make one with `wattflow feed simulate -o day.parquet`")
    ramp = [float(r) for r in args.ramp.split(",")] if args.ramp else []
    rate = args.rate if args.rate or args.speed else 1000.0
    duration = args.soak * 60 if args.soak else args.duration
    feed = RawFeed(read_feed(args.feed), ()) if args.strict else read_raw_feed(args.feed)
    if feed.bad_rows:
        console.print(f"{len(feed.bad_rows)} malformed or incomplete rows are sent as they came (dead-lettered by "
                      f"the flows), first {feed.bad_rows[0].origin} {feed.bad_rows[0].reason}")
    out = args.out or Path(".wattflow/loadtest") / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    options = Options(duration_s=duration, warmup_s=args.warmup, p99_bound_ms=args.p99_bound_ms,
                      lag_bound_ms=args.lag_bound_ms, rss_bound_mb_per_min=args.rss_bound,
                      tuned=not args.kafka_defaults, pack=max(args.pack, 1))
    source = "lt" + datetime.now(UTC).strftime("%H%M%S")
    loop = 0

    def phase(name: str, rate_per_s: float | None, seconds: float, **flags: Any) -> Phase:
        nonlocal loop
        load = build_load(feed, source=source, rate_per_s=rate_per_s, speed=None if rate_per_s else args.speed,
                          duration_s=seconds, products=args.products, first_loop=loop)
        loop += load.loops
        return Phase(name, load, rate_per_s or len(load) / max(load.offsets_ns[-1] / 1e9, 1e-9), **flags)

    display = Display()
    with contextlib.ExitStack() as stack:
        if args.own_stack:
            with console.status("starting Kafka and QuestDB on free ports..."):
                settings = stack.enter_context(processes.own_stack()).settings
        else:
            settings = load_settings(args, needs=("kafka", "questdb"))
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wattflow-loadtest-")))
        warm = phase("warm-up", min(rate or 200.0, 200.0), max(args.warmup, 3.0))
        first = warm.load
        products = sorted({p for p in first.product.tolist() if p})
        clock = int(first.ts_ns[first.kind != DAYAHEAD_KIND].min()) if (first.kind != DAYAHEAD_KIND).any() else 0
        with console.status("starting the venue and the flows..."):
            test = stack.enter_context(LoadTest(settings, options, logs, products=products, clock_ns=clock,
                                                source=source, on_sample=display))
        console.print(f"run {test.run_id}: topics lt{test.run_id}.*, source {source}, logs {logs}")
        test.run_phase(warm)
        display.end()
        phases: list[dict[str, Any]] = []
        for step in ramp:
            result = test.run_phase(phase(f"ramp {step:,.0f}/s", step, duration, ramp=True))
            display.end()
            phases.append(result)
            console.print(f"  {result['phase']}: {'held' if result['sustained'] else 'did not hold'} "
                          f"{result['sustained_detail']}")
            if not result["sustained"]:
                break
        if not ramp:
            label = f"soak {args.soak:g} min" if args.soak else (f"{rate:,.0f}/s" if rate else f"x{args.speed:g}")
            phases.append(test.run_phase(phase(label, rate, duration, soak=bool(args.soak))))
            display.end()
    document: dict[str, Any] = {
        "tool": "wattflow loadtest", "commit": report.git_commit(), "machine": report.machine(),
        "feed": str(args.feed), "arguments": {k: str(v) for k, v in vars(args).items() if k != "func"},
        "rule": rule_text(options), "ramp": bool(ramp),
        "max_sustainable_rate_per_s": max_sustainable(phases) if ramp else None,
        "phases": phases, "result": phases[-1] if phases else {},
        "rss_slopes_mb_per_min": phases[-1]["rss_slopes_mb_per_min"] if phases else {},
    }
    written = report.write(document, out)
    console.print(report.markdown(document), markup=False, highlight=False)
    console.print("wrote " + ", ".join(str(p) for p in written))
    if ramp:
        console.print(f"maximum sustainable rate: {document['max_sustainable_rate_per_s']} messages/s\n"
                      f"  rule: {document['rule']}")
    return judged(document, args)


def load_result(path: Path) -> dict[str, Any]:
    import orjson

    from wattflow.errors import SettingsError

    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as error:
        raise SettingsError(f"cannot read the result {path}: {error}",
                            hint="give a loadtest.json written by `wattflow loadtest`") from None
    if not isinstance(document, dict) or "phases" not in document:
        raise SettingsError(f"{path} is not a `wattflow loadtest` result (no phases)",
                            hint="give a loadtest.json written by `wattflow loadtest`")
    return document


def judged(document: dict[str, Any], args: argparse.Namespace) -> int:
    """Print the verdict (losses, soak RSS growth, the change against --compare); 1 when it failed."""
    from cli.console import console
    from loadtest.verdict import judge

    earlier = load_result(args.compare) if args.compare else None
    failed, lines = judge(document, rss_bound_mb_per_min=args.rss_bound, earlier=earlier,
                          regression_pct=args.regression_pct)
    if earlier is not None:
        console.print(f"against {args.compare} (git {earlier.get('commit', '?')}):", markup=False, highlight=False)
    for line in lines:
        console.print("  " + line, markup=False, highlight=False)
    console.print("verdict: FAILED" if failed else "verdict: passed", markup=False, highlight=False)
    return 1 if failed else 0
