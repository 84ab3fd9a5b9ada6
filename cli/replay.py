"""``wattflow replay`` and ``wattflow record``: recorded feeds into Kafka and back."""

from __future__ import annotations

import argparse
import signal
import tempfile
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from cli.console import HelpFormatter, positive

EXAMPLES_REPLAY = """\
examples:
  wattflow replay day.parquet                  as fast as the broker takes it
  wattflow replay day.parquet --speed 60       a market minute per second
  wattflow replay day.parquet --rate 5000 --loops 3
  wattflow replay day.jsonl --topic md.raw.test --limit 1000
"""


EXAMPLES_RECORD = """\
examples:
  # every clean trade into a feed file
  wattflow record md.ticks ticks.parquet
  wattflow record md.raw.sim raw.jsonl --idle-timeout 10
"""


def register(subparsers: Any) -> None:
    replay = subparsers.add_parser(
        "replay", help="publish a recorded feed into Kafka on a schedule",
        description="Publish every event of a feed file (JSON lines or Parquet, see `wattflow feed`) as one "
        "Kafka message keyed by product, on an absolute schedule: message i is due at start + (event time i "
        "- first event time) / speed, or start + i / rate. Delivery reports are checked: unconfirmed messages "
        "are counted and make the exit code non-zero.",
        epilog=EXAMPLES_REPLAY, formatter_class=HelpFormatter)
    replay.add_argument("file", type=Path, help="feed file (.jsonl, .jsonl.gz or .parquet)")
    replay.add_argument("--topic", help="target topic (default: the raw topic, WATTFLOW_TOPICS_RAW)")
    pace = replay.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=positive, help="event-time speed-up: 1 = real time, 60 = a minute per second")
    pace.add_argument("--rate", type=positive, help="a fixed rate in messages per second")
    pace.add_argument("--max", action="store_true", help="as fast as possible (the default)")
    replay.add_argument("--loop", action="store_true",
                        help="repeat the feed until interrupted (the same messages: the store's dedup keeps one copy)")
    replay.add_argument("--loops", type=int, default=1, help="repeat the feed this many times (default 1)")
    replay.add_argument("--limit", type=int, help="only the first N events")
    replay.add_argument("--pack", type=int, metavar="N",
                        help="pack each run of N consecutive events into one message per product "
                        "({\"events\": [...]}, as a feed adapter forwards a frame): far cheaper per event")
    replay.add_argument("--strict", action="store_true",
                        help="refuse the whole file for one malformed or incomplete row (default: send such a row as "
                        "it came, as a raw message that the flows dead-letter with its origin)")
    replay.add_argument("--delivery-timeout", type=positive, default=120.0,
                        help="seconds the broker has to confirm a message before it counts as failed (default 120)")
    replay.set_defaults(func=run_replay)

    record = subparsers.add_parser(
        "record", help="write a topic back into a feed file",
        description="Read a topic from the beginning to its end and write its events to FILE (.jsonl or "
        ".parquet). Packed clean-topic messages (md.ticks, md.book) are unpacked into events.",
        epilog=EXAMPLES_RECORD, formatter_class=HelpFormatter)
    record.add_argument("topic", help="the topic to read (`wattflow topics` lists them)")
    record.add_argument("file", type=Path, help="the feed file to write (.jsonl, .jsonl.gz or .parquet)")
    record.add_argument("--idle-timeout", type=float, default=5.0, help="stop after this many idle seconds")
    record.add_argument("--dedup", action="store_true",
                        help="keep one copy of events that repeat exactly (a feed replayed twice into the topic)")
    record.set_defaults(func=run_record)


def _require_topic(settings: Any, topic: str) -> None:
    """A KafkaError naming the closest topics when ``topic`` does not exist (the broker creates none itself)."""
    from connectors.kafka.admin import list_topics
    from connectors.kafka.inventory import closest_topics
    from wattflow.errors import KafkaError

    topics = list_topics(settings.kafka, timeout_s=10)
    if topic not in topics:
        close = closest_topics(topic, topics)
        guess = f"did you mean {' or '.join(close)}? " if close else ""
        raise KafkaError(f"topic {topic} does not exist",
                         hint=f"{guess}`wattflow topics` lists them; `wattflow stack init` creates wattflow's own")


def run_replay(args: argparse.Namespace) -> int:
    from cli.console import console, load_settings
    from connectors.feeds.files import feed_format, read_feed
    from connectors.kafka.replay import ReplayStats, replay
    from wattflow.errors import KafkaDeliveryError

    feed_format(args.file)  # the input first: a wrong name or path says so before any server is asked
    if not args.file.is_file():
        raise FileNotFoundError(2, "no such file", str(args.file))
    settings = load_settings(args, needs=("kafka",))
    topic = args.topic or settings.topics.raw
    _require_topic(settings, topic)
    with console.status(f"reading {args.file}..."):
        from connectors.feeds.files import RawFeed, read_raw_feed

        raw_feed = RawFeed(read_feed(args.file), ()) if args.strict else read_raw_feed(args.file)
        values, keys, ts_ns = raw_feed.messages()
        if args.limit:
            values, keys, ts_ns = values[:args.limit], keys[:args.limit], ts_ns[:args.limit]
        events = len(values)
    if raw_feed.bad_rows:
        first = raw_feed.bad_rows[0]
        console.print(f"[yellow]{len(raw_feed.bad_rows):,} malformed or incomplete rows[/] sent as they came (the "
                      f"flows dead-letter them with their origin), first: {first.origin} {first.reason}; --strict "
                      "refuses such a file")
    if args.pack and args.pack > 1:
        from connectors.kafka.replay import pack_messages

        values, keys, ts_ns = pack_messages(values, keys, ts_ns, args.pack)
    loops = 0 if args.loop else args.loops
    stopping = {"now": False}

    def stop(_signum: int, _frame: object) -> None:
        stopping["now"] = True

    previous = signal.signal(signal.SIGINT, stop)
    pace = f"x{args.speed:g}" if args.speed else (f"{args.rate:,.0f} msg/s" if args.rate else "max")
    total = len(values) * loops if loops else None
    console.print(f"replay {args.file.name} -> {topic} ({pace}): "
                  + (f"{total:,} messages" if total else f"{len(values):,} messages a loop, until Ctrl-C"))
    # Fits 80 columns: a short bar, counts, the rate achieved and what is left.
    progress = Progress(BarColumn(bar_width=20), TaskProgressColumn(),
                        TextColumn("{task.completed:,}/{task.fields[total_text]}"),
                        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(compact=True),
                        console=console)
    task = progress.add_task("replay", total=total, total_text=f"{total:,}" if total else "inf", rate="")

    def show(stats: ReplayStats) -> None:
        progress.update(task, completed=stats.sent, rate=f"{stats.achieved_rate:,.0f}/s")

    code = 0
    stats: ReplayStats | None = None
    with progress:
        try:
            stats = replay(settings.kafka, topic, values, keys, ts_ns, speed=args.speed, rate=args.rate,
                           loops=loops, progress=show, should_stop=lambda: stopping["now"],
                           **{"message.timeout.ms": int(args.delivery_timeout * 1000)})
        except KafkaDeliveryError as error:
            console.print(f"[bold red]delivery failed[/]: {error}")
            code = 1
        finally:
            signal.signal(signal.SIGINT, previous)
    if stats is not None:
        packed = f" ({events:,} events packed)" if len(values) != events else ""
        console.print(
            f"sent {stats.sent:,} messages{packed} to {topic} in {stats.elapsed_s:.2f} s "
            f"({stats.achieved_rate:,.0f} msg/s), {stats.failed} unconfirmed, "
            f"at most {stats.max_behind_ms:.1f} ms behind schedule"
        )
    return code


def run_record(args: argparse.Namespace) -> int:
    import orjson

    from cli.console import console, err_console, load_settings
    from connectors.feeds.files import feed_format, read_raw_feed, write_feed
    from connectors.kafka.reader import read_topic

    feed_format(args.file)  # a wrong file name says so before the topic is read
    settings = load_settings(args, needs=("kafka",))
    origins: list[str] = []  # the Kafka origin of each line written, to name a bad one
    skipped: list[tuple[str, str]] = []  # (origin, why) of messages that are not market events
    seen: set[bytes] = set()
    repeats = 0
    with tempfile.TemporaryDirectory() as scratch:
        lines_path = Path(scratch) / "events.jsonl"
        with lines_path.open("wb") as out, console.status(f"reading {args.topic}...") as status:
            for item in read_topic(settings.kafka, args.topic, idle_timeout_s=args.idle_timeout):
                origin = f"{item.topic}[{item.partition}]@{item.offset}"
                if item.event.get("type") not in ("trade", "book", "dayahead"):
                    skipped.append((origin, f"not a market event (type {item.event.get('type')!r})"))
                    continue
                event = {k: v for k, v in item.event.items() if k != "recv_ns"}
                line = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
                if args.dedup:
                    if line in seen:
                        repeats += 1
                        continue
                    seen.add(line)
                out.write(line + b"\n")
                origins.append(origin)
                if len(origins) % 10_000 == 0:
                    status.update(f"reading {args.topic}: {len(origins):,} events")
        raw = read_raw_feed(lines_path)
        for bad in raw.bad_rows:
            line_number = int(bad.origin.rsplit(":", 1)[-1])
            skipped.append((origins[line_number - 1], bad.reason))
        write_feed(raw.frame, args.file)
    dedup = f", {repeats:,} repeats left out (--dedup)" if args.dedup else ""
    console.print(f"recorded {len(raw.frame):,} events from {args.topic} into {args.file}{dedup}")
    if skipped:
        err_console.print(f"[yellow]left out {len(skipped):,} messages that are not valid market events[/] "
                          "(they stay in the topic; the flows dead-letter them):", highlight=False)
        for origin, why in skipped[:5]:
            err_console.print(f"  {origin}: {why}", highlight=False, markup=False)
        if len(skipped) > 5:
            err_console.print(f"  ... and {len(skipped) - 5:,} more", highlight=False)
    return 0
