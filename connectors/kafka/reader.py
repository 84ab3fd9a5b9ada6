"""Read a topic from a chosen position and yield its events: for `wattflow tail` and `wattflow record`.

Raw topics hold one event per message; clean topics hold packed messages (see ``records.py``), which are
unpacked here so that readers always see one event at a time; dead letters are shown as they are.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition
from confluent_kafka import KafkaError as RdKafkaError

from wattflow.errors import KafkaError
from wattflow.settings import KafkaSettings


@dataclass(frozen=True, slots=True)
class TopicEvent:
    """One event read from a topic, with where it came from."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    event: dict[str, Any]
    raw: bytes


_FIRST_FETCH_GRACE_S = 15.0


def parse_position(position: str) -> int | datetime:
    """``beginning``, ``end`` or an ISO-8601 time (UTC if no offset is given)."""
    if position == "beginning":
        return OFFSET_BEGINNING
    if position == "end":
        return OFFSET_END
    try:
        moment = datetime.fromisoformat(position.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--from takes beginning, end or an ISO time like 2018-10-28T01:00Z; got {position!r}"
        ) from None
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment


def _explode(value: bytes) -> list[tuple[dict[str, Any], bytes]]:
    try:
        message = orjson.loads(value)
    except orjson.JSONDecodeError:
        return [({"type": "undecodable", "text": value[:200].decode("utf-8", errors="replace")}, value)]
    if isinstance(message, dict) and isinstance(message.get("columns"), dict):
        columns = message["columns"]
        head = {k: v for k, v in message.items() if k != "columns"}
        length = len(next(iter(columns.values()), []))
        return [({"type": head.get("kind", "row"), **head, **{k: v[i] for k, v in columns.items()}}, value)
                for i in range(length)]
    if isinstance(message, dict) and "events" in message and "recv_ns" in message:
        recv = message["recv_ns"]
        return [({**event, "recv_ns": recv[i]}, orjson.dumps(event)) for i, event in enumerate(message["events"])]
    if isinstance(message, dict):
        return [(message, value)]
    return [({"type": "undecodable", "text": value[:200].decode("utf-8", errors="replace")}, value)]


def read_topic(settings: KafkaSettings, topic: str, *, start: int | datetime = OFFSET_BEGINNING,
               follow: bool = False, idle_timeout_s: float = 5.0,
               on_end: Callable[[], None] | None = None) -> Iterator[TopicEvent]:
    """Events of every partition of ``topic`` from ``start``; without ``follow``, stop at the end. ``on_end`` is
    called each time every partition has reached its end (a follower then waits for new messages)."""
    consumer = Consumer({
        **settings.client_config(), "group.id": "wattflow-reader", "enable.auto.commit": False,
        "enable.partition.eof": True, "fetch.wait.max.ms": 50,
        # One consumer reads every partition: without this, librdkafka pauses a partition for a second
        # whenever its local queue is full (measured: 284k -> 665k messages/s).
        "fetch.queue.backoff.ms": 10,
    })
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise KafkaError(f"topic {topic} does not exist or cannot be read",
                             hint="`wattflow topics` lists them")
        partitions = sorted(metadata.partitions)
        if isinstance(start, datetime):
            stamp_ms = int(start.timestamp() * 1000)
            wanted = [TopicPartition(topic, p, stamp_ms) for p in partitions]
            assigned = consumer.offsets_for_times(wanted, timeout=10)
            assigned = [TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
                        for tp in assigned]
        else:
            assigned = [TopicPartition(topic, p, start) for p in partitions]
        consumer.assign(assigned)
        at_end: set[int] = set()
        # The idle timeout starts counting once the broker has answered (data or end of partition): a busy
        # broker may take seconds for the first fetch, and an empty answer then is not the end of the topic.
        last_data = time.monotonic() + _FIRST_FETCH_GRACE_S
        while True:
            messages = consumer.consume(500, 0.2)
            if not messages and not follow and time.monotonic() - last_data > idle_timeout_s:
                return
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == RdKafkaError._PARTITION_EOF:
                        at_end.add(message.partition() or 0)
                        last_data = min(last_data, time.monotonic())
                        continue
                    raise KafkaError(f"reading {topic}: {error}")
                last_data = time.monotonic()
                partition, offset = message.partition() or 0, message.offset() or 0
                at_end.discard(partition)
                for event, raw in _explode(message.value() or b""):
                    yield TopicEvent(topic, partition, offset, message.timestamp()[1], event, raw)
            if len(at_end) == len(partitions):
                if not follow:
                    return
                if on_end is not None and messages:
                    on_end()
    finally:
        consumer.close()
