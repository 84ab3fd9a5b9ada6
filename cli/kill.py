"""``wattflow kill --halt | --reduce | --resume``: the kill switch, through the ``control`` topic."""

from __future__ import annotations

import argparse
import getpass
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from cli.console import HelpFormatter
from wattflow.settings import Settings

EXAMPLES_KILL = """\
examples:
  # stop trading, cancel everything, wait for confirmation
  wattflow kill --halt --reason "venue incident"
  # only position-reducing orders from now on
  wattflow kill --reduce
  # trade again
  wattflow kill --resume
  # the state now, who set it and why
  wattflow kill --status
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "kill", help="kill switch: halt trading (cancel every open order), reduce only, or resume",
        description="Send a kill-switch command to the execution flow through the control topic "
        "(WATTFLOW_TOPICS_CONTROL), delivery confirmed by the broker. --halt: HALTED, no new order and every "
        "open order at the venue cancelled. --reduce: REDUCING, open orders cancelled, then only orders that "
        "shrink a position. --resume: ACTIVE. Then waits (--wait seconds) for the flow to confirm the new "
        "state on the events topic and, for --halt/--reduce, the venue to confirm the cancel-all on the orders "
        "topic, and prints how long each took. A command sent while no execution flow runs applies when it "
        "starts (it reads the control topic from its last position).",
        epilog=EXAMPLES_KILL, formatter_class=HelpFormatter)
    state = parser.add_mutually_exclusive_group(required=True)
    state.add_argument("--halt", dest="command", action="store_const", const="halt", help="stop all trading")
    state.add_argument("--reduce", dest="command", action="store_const", const="reduce",
                       help="only position-reducing orders")
    state.add_argument("--resume", dest="command", action="store_const", const="resume", help="trade again")
    state.add_argument("--status", dest="command", action="store_const", const="status",
                       help="only show the state: the last change the flow confirmed, and commands not yet applied")
    parser.add_argument("--reason", default="", help="why (kept in the event)")
    parser.add_argument("--wait", type=float, default=10.0, metavar="SECONDS",
                        help="how long to wait for confirmation (default 10; 0: do not wait)")
    parser.set_defaults(func=run)


@dataclass(frozen=True, slots=True)
class KillResult:
    command_id: str
    sent_wall_ns: int
    state_after_s: float | None = None  # the engine applied it (TRADING_STATE_CHANGED)
    cancel_all_after_s: float | None = None  # the venue confirmed the cancel-all
    cancelled: int | None = None


def send_kill(settings: Settings, command: str, *, reason: str = "", wait_s: float = 10.0,
              by: str | None = None) -> KillResult:
    """Put a kill-switch command on the control topic (delivery checked) and wait for its confirmations."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    from connectors.wire.control import control_message
    from wattflow.errors import KafkaError

    topics = settings.topics
    command_id = uuid.uuid4().hex
    consumer = None
    if wait_s > 0:
        consumer = Consumer({**settings.kafka.client_config(), "group.id": f"wattflow-kill-{command_id}",
                             "enable.auto.commit": False, "enable.partition.eof": False})
        assignment = []
        for topic in (topics.events, topics.orders):
            metadata = consumer.list_topics(topic, timeout=10).topics[topic]
            for partition in metadata.partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                assignment.append(TopicPartition(topic, partition, high))
        consumer.assign(assignment)
    # A plain producer without idempotence (a repeated command is harmless) and without linger: no producer id
    # to fetch first, nothing to wait for. Connected before the clock starts.
    producer = Producer({**settings.kafka.client_config(), "acks": "all", "linger.ms": 0,
                         "enable.idempotence": False})
    producer.list_topics(topics.control, timeout=10)
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    sent = time.time_ns()
    message = control_message(command, by=by or getpass.getuser(), reason=reason, command_id=command_id, wall_ns=sent)
    producer.produce(topics.control, message, key=b"control", on_delivery=delivered)
    if producer.flush(30) or failures:
        raise KafkaError(f"the {command} command was not confirmed by the broker: {failures or 'timed out'}",
                         hint="check the broker (`wattflow stack status`) and send the command again")
    if consumer is None:
        return KillResult(command_id, sent)
    state_s = cancel_s = None
    cancelled = None
    needs_cancel = command in ("halt", "reduce")
    deadline = time.monotonic() + wait_s
    try:
        while time.monotonic() < deadline and (state_s is None or (needs_cancel and cancel_s is None)):
            polled = consumer.poll(0.05)
            if polled is None or polled.error() is not None:
                continue
            try:
                record = orjson.loads(polled.value() or b"")
            except orjson.JSONDecodeError:
                continue
            if not isinstance(record, dict):
                continue
            found = record.get("detail")
            detail: dict[str, Any] = found if isinstance(found, dict) else {}
            if (polled.topic() == topics.events and record.get("kind") == "TRADING_STATE_CHANGED"
                    and detail.get("command_id") == command_id):
                state_s = (int(detail.get("applied_wall_ns") or time.time_ns()) - sent) / 1e9
            elif (polled.topic() == topics.orders and record.get("action") == "CANCEL_ALL"
                  and int(record.get("answered_wall_ns") or 0) >= sent):
                cancel_s = (int(record["answered_wall_ns"]) - sent) / 1e9
                status = str(record.get("status", ""))
                cancelled = int(status.rsplit("_", 1)[-1]) if status.rsplit("_", 1)[-1].isdigit() else None
    finally:
        consumer.close()
    return KillResult(command_id, sent, state_s, cancel_s, cancelled)


def kill_status(settings: Settings) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The latest ``TRADING_STATE_CHANGED`` event (None: no change recorded, the flow starts ACTIVE) and the
    control commands written after it that no event confirms yet."""
    from connectors.kafka.reader import read_topic

    changes = [item.event for item in read_topic(settings.kafka, settings.topics.events, idle_timeout_s=1.0)
               if item.event.get("kind") == "TRADING_STATE_CHANGED"]
    latest = max(changes, key=lambda e: int((e.get("detail") or {}).get("applied_wall_ns") or 0), default=None)
    confirmed = {str((e.get("detail") or {}).get("command_id")) for e in changes}
    since = int((latest or {}).get("detail", {}).get("command_wall_ns") or 0)
    pending = [item.event for item in read_topic(settings.kafka, settings.topics.control, idle_timeout_s=1.0)
               if str(item.event.get("id")) not in confirmed and int(item.event.get("wall_ns") or 0) > since]
    return latest, pending


def run_status(settings: Settings) -> int:
    from cli.console import console
    from wattflow.domain import ns_to_datetime

    latest, pending = kill_status(settings)
    if latest is None:
        console.print("ACTIVE: no state change recorded on the events topic (a trading flow starts ACTIVE)")
    else:
        detail = latest.get("detail") or {}
        when = ns_to_datetime(int(detail.get("applied_wall_ns") or 0)).strftime("%Y-%m-%d %H:%M:%S UTC")
        why = f", reason: {detail['reason']}" if detail.get("reason") else ""
        console.print(f"{detail.get('to', '?')} since {when} (from {detail.get('from', '?')}, by "
                      f"{detail.get('by') or '?'}{why})")
    for command in pending:
        console.print(f"[yellow]pending[/]: {command.get('command')} sent by {command.get('by') or '?'} is not "
                      "confirmed by a flow yet (it applies when the trading flow reads it)")
    return 0


def run(args: argparse.Namespace) -> int:
    from cli.console import console, err_console, load_settings

    settings = load_settings(args, needs=("kafka",))
    if args.command == "status":
        return run_status(settings)
    result = send_kill(settings, args.command, reason=args.reason, wait_s=args.wait)
    state = {"halt": "HALTED", "reduce": "REDUCING", "resume": "ACTIVE"}[args.command]
    console.print(f"sent {args.command} to {settings.topics.control} (id {result.command_id[:12]})")
    if args.wait <= 0:
        return 0
    if result.state_after_s is None:
        err_console.print(f"[yellow]no confirmation within {args.wait:g} s[/]: is `wattflow run execution` "
                          "running? The command waits on the control topic and applies when the flow reads it.")
        return 1
    console.print(f"[bold]{state}[/] after {result.state_after_s * 1000:.0f} ms")
    if args.command != "resume":
        if result.cancel_all_after_s is None:
            err_console.print(f"[yellow]the venue has not confirmed the cancel-all within {args.wait:g} s[/]: the "
                              "order sink keeps retrying it (see `wattflow tail events`)")
            return 1
        console.print(f"cancel-all confirmed by the venue after {result.cancel_all_after_s * 1000:.0f} ms "
                      f"({result.cancelled if result.cancelled is not None else '?'} open orders cancelled)")
    return 0
