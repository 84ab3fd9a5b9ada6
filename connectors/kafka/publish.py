"""A Kafka sink for the hot path: publish without waiting per batch, confirm delivery before each snapshot.

``write_batch`` only queues the records (librdkafka sends them from its own threads), so a flow never waits
on the broker between a tick and its order. Bytewax calls :meth:`snapshot` at the end of every epoch, before
the epoch's snapshots commit (with or without recovery): the sink flushes there and raises
:class:`~wattflow.errors.KafkaDeliveryError` when the broker did not confirm everything, so a crash can never
commit a snapshot past records that were not stored. Delivery stays at least once; every record's key and
content are deterministic, so consumers dedup by key where they need to (QuestDB's dedup keys).

A ``FixedPartitionedSink`` rather than a ``DynamicSink`` only for that snapshot hook: it has one partition,
``publish``, whose resume state is nothing.
"""

from __future__ import annotations

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from connectors.kafka.producer import CheckedProducer
from connectors.kafka.sink import KafkaRecords
from wattflow.settings import KafkaSettings

PART = "publish"


class _PublishPartition(StatefulSinkPartition[list[KafkaRecords], None]):
    def __init__(self, producer: CheckedProducer, flush_timeout_s: float) -> None:
        self.producer = producer
        self.flush_timeout_s = flush_timeout_s

    def write_batch(self, items: list[list[KafkaRecords]]) -> None:
        for records in items:
            for batch in records:
                self.producer.produce_many(batch.topic, batch.keys, batch.values, batch.timestamps_ms)
        self.producer.poll(0)

    def snapshot(self) -> None:
        self.producer.flush(self.flush_timeout_s)

    def close(self) -> None:
        self.producer.flush(self.flush_timeout_s)


class PublishSink(FixedPartitionedSink[list[KafkaRecords], None]):
    """Items are ``(key, [KafkaRecords, ...])``; every key goes to the one partition."""

    def __init__(self, kafka: KafkaSettings, *, flush_timeout_s: float = 60.0) -> None:
        self.kafka = kafka
        self.flush_timeout_s = flush_timeout_s

    def list_parts(self) -> list[str]:
        return [PART]

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _PublishPartition:
        producer = CheckedProducer(self.kafka, **{"client.id": f"wattflow-{step_id}", "linger.ms": 5})
        return _PublishPartition(producer, self.flush_timeout_s)
