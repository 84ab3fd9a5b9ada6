"""Kafka records as the flows hand them to a sink: parallel lists of keys, values and timestamps for one topic.

Bytewax's stock ``KafkaSink`` never checks delivery reports nor ``flush()``'s result: with the broker gone,
messages vanish and the flow ends normally. wattflow's flows write through
:class:`~connectors.store_and_publish.StoreAndPublishSink`, whose every write ends in a checked flush
(:class:`~connectors.kafka.producer.CheckedProducer`, idempotent, acks=all): what the broker did not confirm
raises, so that the flow stops loudly and resumes from its last snapshot instead of losing data.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KafkaRecords:
    """Messages for one topic: parallel lists of keys, values and (optional) timestamps in ms."""

    topic: str
    keys: list[str] | list[bytes] | list[None]
    values: list[bytes]
    timestamps_ms: list[int] | None = None

    def __len__(self) -> int:
        return len(self.values)
