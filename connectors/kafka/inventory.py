"""What a broker holds: each topic's partitions, message count and the times of its oldest and newest message."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from wattflow.settings import KafkaSettings


@dataclass(frozen=True, slots=True)
class TopicSummary:
    """One topic: ``messages`` is the sum over partitions of high minus low watermark (what a reader from the
    beginning gets); ``oldest_ms``/``newest_ms`` the Kafka timestamps of the first and last message (None when
    empty). wattflow's topics are stamped with the time the broker wrote each message."""

    name: str
    partitions: int
    messages: int
    oldest_ms: int | None
    newest_ms: int | None


def _edge_timestamps(consumer: Consumer, topic: str,
                     marks: dict[int, tuple[int, int]]) -> tuple[int | None, int | None]:
    """The timestamps of the first and the last message of every non-empty partition: one fetch each."""
    stamps: list[int] = []
    for partition, (low, high) in marks.items():
        for offset in {low, high - 1} if high > low else ():
            consumer.assign([TopicPartition(topic, partition, offset)])
            message = consumer.poll(5.0)
            if message is not None and message.error() is None:
                stamps.append(message.timestamp()[1])
    return (min(stamps), max(stamps)) if stamps else (None, None)


def topic_summaries(settings: KafkaSettings, *, pattern: str | None = None, internal: bool = False,
                    timestamps: bool = True, timeout_s: float = 10.0) -> list[TopicSummary]:
    """Every topic (those whose name contains ``pattern``), sorted by name; ``internal`` includes Kafka's own
    (``__consumer_offsets``...)."""
    consumer = Consumer({**settings.client_config(), "group.id": "wattflow-inventory", "enable.auto.commit": False})
    try:
        topics = consumer.list_topics(timeout=timeout_s).topics
        out = []
        for name in sorted(topics):
            if (name.startswith("__") and not internal) or (pattern and pattern not in name):
                continue
            partitions = sorted(topics[name].partitions)
            marks = {p: consumer.get_watermark_offsets(TopicPartition(name, p), timeout=timeout_s) for p in partitions}
            oldest, newest = _edge_timestamps(consumer, name, marks) if timestamps else (None, None)
            out.append(TopicSummary(name, len(partitions), sum(high - low for low, high in marks.values()),
                                    oldest, newest))
        return out
    finally:
        consumer.close()


def closest_topics(name: str, names: list[str], n: int = 3) -> list[str]:
    """The names most like ``name`` (for a did-you-mean hint), and any that start with it."""
    starting = [other for other in names if other.startswith(name + ".")]
    return list(dict.fromkeys([*difflib.get_close_matches(name, names, n=n, cutoff=0.6), *starting[:n]]))[:n]
