"""``wattflow tail``: watch a topic, as readable columns or one JSON object per line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from wattflow.domain import ns_to_datetime


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tail", help="print a topic's events (raw, clean or dead letters)",
        description="Print the events of a topic: raw feed topics, clean topics (md.ticks, md.book; their packed "
        "messages are unpacked) and the dead-letter topic (reason and origin). Follows new messages until "
        "interrupted unless --count or --no-follow is given.",
    )
    parser.add_argument("topic")
    parser.add_argument("--from", dest="start", default="end",
                        help="beginning, end (default) or an ISO time such as 2018-10-28T01:00Z")
    parser.add_argument("--area", help="only events of this delivery area (e.g. DE-LU)")
    parser.add_argument("--product", help="only events of this product key (or a prefix of it)")
    parser.add_argument("--count", "-n", type=int, help="stop after N events")
    parser.add_argument("--no-follow", action="store_true", help="stop at the end of the topic")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(func=run)


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
    if "reason" in event and "origin" in event:
        return f"{_when(event.get('ts_ns'))}  DEAD  {event['origin']:24} {event['reason']:24} {event.get('error', '')}"
    return f"p{partition}@{offset}  {orjson.dumps(event).decode()[:200]}"


def run(args: argparse.Namespace) -> int:
    from cli.console import load_settings
    from connectors.kafka.reader import parse_position, read_topic

    settings = load_settings(args, needs=("kafka",))
    follow = not args.no_follow
    shown = 0
    out = sys.stdout
    try:
        for item in read_topic(settings.kafka, args.topic, start=parse_position(args.start), follow=follow,
                               idle_timeout_s=2.0):
            if not _matches(item.event, args.area, args.product):
                continue
            if args.json:
                out.write(orjson.dumps({**item.event, "_partition": item.partition, "_offset": item.offset}).decode())
            else:
                out.write(format_line(item.event, item.partition, item.offset))
            out.write("\n")
            shown += 1
            if args.count is not None and shown >= args.count:
                break
    except KeyboardInterrupt:
        pass
    out.flush()
    return 0
