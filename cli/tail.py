"""``wattflow tail``: watch a topic, as readable columns or one JSON object per line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from cli.console import HelpFormatter
from wattflow.domain import ns_to_datetime

EXAMPLES = """\
examples:
  # every clean trade from the beginning, then new ones
  wattflow tail md.ticks
  # the latest demo run's first 20 orders (orders.d<run>)
  wattflow tail orders --run latest -n 20
  # every dead letter as JSON, stop at the end
  wattflow tail dlq --json -e
  # only signals written from now on
  wattflow tail signals --from end
  wattflow tail md.ticks --from 2026-12-06T10:00Z --product DE-LU
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tail", help="print a topic's messages: market data, features, signals, orders, events, dead letters",
        description="Print the messages of a topic, like kcat: from the beginning by default, then follow new "
        "ones until Ctrl-C. Raw feed topics, clean topics (md.ticks, md.book; packed messages unpacked), "
        "features and signals (one line per row), orders, execution reports, events, positions and the "
        "dead-letter topic (reason and origin). What it reads and waits for goes to stderr; the messages to "
        "stdout. `wattflow topics` lists the topics.",
        epilog=EXAMPLES, formatter_class=HelpFormatter)
    parser.add_argument("topic", help="topic name, e.g. md.ticks, signals, orders, dlq (`wattflow topics`)")
    parser.add_argument("--run", metavar="ID",
                        help="a demo run's copy of the topic (<topic>.d<ID>); `latest` for the newest run")
    parser.add_argument("--from", dest="start", default="beginning",
                        help="beginning (default), end (only new messages) or an ISO time such as 2018-10-28T01:00Z "
                        "(when the broker wrote them)")
    parser.add_argument("--area", help="only events of this delivery area (e.g. DE-LU)")
    parser.add_argument("--product", help="only events of this product key (or a prefix of it)")
    parser.add_argument("--count", "-n", type=int, help="stop after N messages, or at the end of the topic if sooner")
    parser.add_argument("--until-end", "-e", "--no-follow", dest="until_end", action="store_true",
                        help="stop at the end of the topic instead of waiting for new messages")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(func=run)


def resolve_topic(name: str, run_id: str | None, topics: list[str]) -> str:
    """The topic to read: ``name`` itself, or with ``run_id`` the demo run's copy (``latest``: the newest run).
    Raises a KafkaError with the closest names when there is no such topic."""
    from connectors.kafka.inventory import closest_topics
    from wattflow.errors import KafkaError

    if run_id is not None:
        runs = sorted((t for t in topics if t.startswith(f"{name}.d") and t[len(name) + 2:].isdigit()),
                      key=lambda t: int(t[len(name) + 2:]))
        if run_id == "latest":
            if not runs:
                raise KafkaError(f"no demo run has a copy of {name} (no topic {name}.d<run>)",
                                 hint="run `wattflow demo` first, or leave out --run")
            return runs[-1]
        name = f"{name}.d{run_id}"
    if name in topics:
        return name
    close = closest_topics(name, topics)
    guess = f"did you mean {' or '.join(close)}? " if close else ""
    raise KafkaError(f"topic {name} does not exist", hint=f"{guess}`wattflow topics` lists them")


def _matches(event: dict[str, Any], area: str | None, product: str | None) -> bool:
    key = str(event.get("product") or event.get("area") or "")
    if area and not (key == area or key.startswith(area + ":")):
        return False
    return not (product and not key.startswith(product))


def _when(ts_ns: Any) -> str:
    if not isinstance(ts_ns, int):
        return "-"
    return f"{ns_to_datetime(ts_ns):%Y-%m-%d %H:%M:%S.%f}"[:-3] + "Z"


def format_line(event: dict[str, Any], partition: int, offset: int) -> str:
    kind = event.get("type")
    if kind == "trade":
        return (f"{_when(event.get('ts_ns'))}  trade {event.get('product', '?'):32} {event.get('side', '?'):4} "
                f"{event.get('price_eur_per_mwh', 0):>10.2f} EUR/MWh {event.get('quantity_mw', 0):>7.1f} MW "
                f"id={event.get('trade_id')}")
    if kind == "book":
        return (f"{_when(event.get('ts_ns'))}  book  {event.get('product', '?'):32} {event.get('side', '?'):4} "
                f"L{event.get('level')} {event.get('price_eur_per_mwh', 0):>10.2f} EUR/MWh "
                f"{event.get('quantity_mw', 0):>7.1f} MW")
    if kind == "dayahead":
        return (f"{_when(event.get('ts_ns'))}  day-ahead {event.get('area')} delivery "
                f"{_when(event.get('delivery_start_ns'))} {event.get('price_eur_per_mwh', 0):.2f} EUR/MWh")
    if kind == "signals":
        arrow = {1: "BUY ", -1: "SELL", 0: "flat"}.get(int(event.get("direction") or 0), "?")
        return (f"{_when(event.get('ts_ns'))}  signal {event.get('product', '?'):32} {event.get('model', '?'):20} "
                f"{arrow} strength={event.get('strength', 0):.2f} target={event.get('target_position_mw', 0):+.1f} MW "
                f"confidence={event.get('confidence', 0):.2f}")
    if kind == "features":
        return (f"{_when(event.get('ts_ns'))}  features {event.get('product', '?'):32} "
                f"price={event.get('price_eur_per_mwh')} z={event.get('zscore')} "
                f"imbalance={event.get('imbalance')} vwap={event.get('vwap_eur_per_mwh')}")
    side = {1: "BUY", -1: "SELL"}.get(event.get("side"), str(event.get("side", "")))  # type: ignore[arg-type]
    if "client_order_id" in event and "action" in event:  # an order record
        what = f"{side} {event.get('quantity_mw') or 0:.1f} MW @ {event.get('price_eur_per_mwh') or 0:.2f}"
        why = f" {event['reason']}" if event.get("reason") else ""
        return (f"{_when(event.get('ts_ns'))}  order {event['action']:<6} {event.get('status', '?'):<9} "
                f"{event.get('product', '*')} {what if event['action'] != 'CANCEL' else ''}{why}")
    if "exec_id" in event:  # an execution report
        fill = (f" {event.get('last_quantity_mw', 0):.1f} MW @ {event.get('last_price_eur_per_mwh')}"
                if event.get("kind") == "fill" else "")
        return (f"{_when(event.get('ts_ns'))}  report {event.get('kind', '?'):<6} {event.get('status', '?'):<9} "
                f"{event.get('product', '?')} {side}{fill} {event.get('client_order_id', '')}")
    if "kind" in event and "severity" in event:  # an event
        detail = " ".join(f"{k}={v}" for k, v in (event.get("detail") or {}).items())
        return (f"{_when(event.get('ts_ns'))}  event {event['kind']:<16} {event.get('severity', ''):<7} "
                f"{event.get('product') or '*'} {detail}")
    if "position_mw" in event and "pnl_eur" in event:  # a position
        return (f"{_when(event.get('ts_ns'))}  position {event.get('product', '?')} "
                f"{event.get('position_mw', 0):+.1f} MW pnl {event.get('pnl_eur', 0):+,.2f} EUR "
                f"{event.get('trading_state', '')}")
    if "reason" in event and "origin" in event:
        return f"{_when(event.get('ts_ns'))}  DEAD  {event['origin']:24} {event['reason']:24} {event.get('error', '')}"
    return f"p{partition}@{offset}  {orjson.dumps(event).decode()[:200]}"


def run(args: argparse.Namespace) -> int:
    from cli.console import err_console, load_settings
    from connectors.kafka.inventory import topic_summaries
    from connectors.kafka.reader import parse_position, read_topic
    from wattflow.errors import SettingsError

    settings = load_settings(args, needs=("kafka",))
    try:
        start = parse_position(args.start)
    except ValueError as error:
        raise SettingsError(str(error), hint="e.g. --from beginning, --from end, --from 2026-12-06T10:00Z") from None
    summaries = {t.name: t for t in topic_summaries(settings.kafka, timestamps=False)}
    topic = resolve_topic(args.topic, args.run, sorted(summaries))
    follow = not args.until_end and args.count is None
    where = {"beginning": "from the beginning", "end": "from the end (new messages only)"}.get(
        args.start, f"from {args.start}")
    then = "then waiting for new ones (Ctrl-C to stop)" if follow else "until the end"
    info = summaries[topic]
    err_console.print(f"{topic}: {info.partitions} partitions, {info.messages:,} messages; reading {where}, {then}",
                      highlight=False)
    shown = 0
    waiting = False

    def at_end() -> None:
        nonlocal waiting
        if not waiting:
            err_console.print(f"at the end of {topic} after {shown:,} messages; waiting for new ones "
                              "(Ctrl-C to stop)", highlight=False)
            waiting = True

    out = sys.stdout
    try:
        for item in read_topic(settings.kafka, topic, start=start, follow=follow, idle_timeout_s=2.0,
                               on_end=at_end):
            if not _matches(item.event, args.area, args.product):
                continue
            waiting = False
            if args.json:
                out.write(orjson.dumps({**item.event, "_partition": item.partition, "_offset": item.offset}).decode())
            else:
                out.write(format_line(item.event, item.partition, item.offset))
            out.write("\n")
            shown += 1
            if args.count is not None and shown >= args.count:
                break
    except KeyboardInterrupt:
        out.flush()
        err_console.print(f"stopped after {shown:,} messages", highlight=False)
        return 130
    except BrokenPipeError:  # `| head`: the reader went away
        return 0
    out.flush()
    if args.count is not None and shown < args.count:
        err_console.print(f"end of {topic}: {shown:,} of the {args.count:,} messages asked for", highlight=False)
    return 0
