"""A Kafka sink for Bytewax that writes everything before ``write_batch`` returns, or raises.

Bytewax's stock ``KafkaSink`` never checks delivery reports nor ``flush()``'s result: with the broker gone,
messages vanish and the flow ends normally. Here every write is flushed and checked (idempotent producer,
acks=all); what the broker did not confirm raises :class:`~wattflow.errors.KafkaDeliveryError`, so that
the flow stops loudly and resumes from its last snapshot instead of losing data.
"""

from __future__ import annotations

from dataclasses import dataclass

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from connectors.kafka.producer import CheckedProducer
from wattflow.settings import KafkaSettings


@dataclass(frozen=True, slots=True)
class KafkaRecords:
    """Messages for one topic: parallel lists of keys, values and (optional) timestamps in ms."""

    topic: str
    keys: list[str] | list[bytes] | list[None]
    values: list[bytes]
    timestamps_ms: list[int] | None = None

    def __len__(self) -> int:
        return len(self.values)


class _KafkaRecordsPartition(StatelessSinkPartition[KafkaRecords]):
    def __init__(self, producer: CheckedProducer, flush_timeout_s: float) -> None:
        self.producer = producer
        self.flush_timeout_s = flush_timeout_s

    def write_batch(self, items: list[KafkaRecords]) -> None:
        for records in items:
            self.producer.produce_many(records.topic, records.keys, records.values, records.timestamps_ms)
        self.producer.flush(self.flush_timeout_s)

    def close(self) -> None:
        self.producer.flush(self.flush_timeout_s)


class KafkaRecordsSink(DynamicSink[KafkaRecords]):
    """Each worker has its own idempotent producer; each ``write_batch`` ends in a checked flush."""

    def __init__(self, settings: KafkaSettings, *, flush_timeout_s: float = 120.0, **producer_config: object) -> None:
        self.settings = settings
        self.flush_timeout_s = flush_timeout_s
        self.producer_config = producer_config

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _KafkaRecordsPartition:
        producer = CheckedProducer(self.settings, **{"client.id": f"wattflow-{step_id}-{worker_index}",
                                                     **self.producer_config})
        return _KafkaRecordsPartition(producer, self.flush_timeout_s)
