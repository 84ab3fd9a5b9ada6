"""A batched Kafka source for Bytewax: one item per poll, not one per message.

Bytewax's stock ``KafkaSource`` wraps every message in a Python object (about 2 us each) and polls with
a 1 ms timeout. This source hands each poll of up to ``batch_size`` messages to the flow as one
:class:`~wattflow.batches.RawBatch`, never blocks in ``next_batch`` (it schedules itself with
``next_awake`` when there is nothing to read), and resumes from a one-integer snapshot: the offset of the
*next* message to read. Offsets live in Bytewax's recovery store, not in a consumer group.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition
from confluent_kafka import KafkaError as RdKafkaError
from confluent_kafka.admin import AdminClient

from wattflow.batches import RawBatch
from wattflow.errors import KafkaError, Origin
from wattflow.settings import KafkaSettings
from wattflow.shutdown import stop_requested
from wattflow.tally import TALLY

log = logging.getLogger("wattflow.kafka")

#: Consumer settings for throughput: large fetches, a short broker wait so that latency stays low.
DEFAULT_CONSUMER_CONFIG: dict[str, Any] = {
    "enable.auto.commit": False,
    "fetch.wait.max.ms": 20,
    "fetch.min.bytes": 1,
    "queued.max.messages.kbytes": 262_144,
    "fetch.max.bytes": 52_428_800,
    "max.partition.fetch.bytes": 10_485_760,
}
_IDLE = timedelta(milliseconds=2)


class _KafkaBatchPartition(StatefulSourcePartition[RawBatch, int]):
    def __init__(self, config: dict[str, Any], topic: str, partition: int, offset: int, *, batch_size: int,
                 tail: bool, idle: timedelta = _IDLE) -> None:
        self._topic, self._partition, self._batch_size, self._tail = topic, partition, batch_size, tail
        self._idle = idle
        self._offset = offset
        self._consumer = Consumer(config)
        # Fetching metadata first makes the first fetch start at once (0.5 s sooner, measured).
        self._consumer.list_topics(topic, timeout=10)
        self._consumer.assign([TopicPartition(topic, partition, offset)])
        self._eof = False
        self._awake: datetime | None = None

    def next_batch(self) -> list[RawBatch]:
        if self._eof or stop_requested():
            raise StopIteration
        messages = self._consumer.consume(self._batch_size, 0)
        if not messages:
            self._awake = datetime.now(UTC) + self._idle
            return []
        self._awake = None
        good = []
        for message in messages:
            error = message.error()
            if error is None:
                good.append(message)
            elif error.code() == RdKafkaError._PARTITION_EOF:
                if not self._tail:
                    self._eof = True
            elif error.fatal():
                raise KafkaError(f"fatal consumer error: {error}",
                                 origin=Origin(self._topic, self._partition, self._offset))
            else:
                # Transient (broker restarting, leader moving): librdkafka retries by itself.
                log.warning("consumer of %s[%d]: %s", self._topic, self._partition, error)
        if not good:
            return []
        offsets = np.fromiter((m.offset() for m in good), dtype=np.int64, count=len(good))
        timestamps_ns = np.fromiter((m.timestamp()[1] for m in good), dtype=np.int64, count=len(good)) * 1_000_000
        # Resume from the next message, not this one.
        self._offset = int(offsets[-1]) + 1
        TALLY.add("read", self._topic, len(good))
        return [RawBatch(self._topic, self._partition, [m.value() for m in good], offsets, timestamps_ns)]

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        self._consumer.close()


class KafkaBatchSource(FixedPartitionedSource[RawBatch, int]):
    """Read topics in batches; each Kafka partition is a Bytewax partition (the unit of parallelism).

    ``tail=False`` ends each partition at the end it finds, which suits tests and one-off replays.
    """

    def __init__(self, settings: KafkaSettings, topics: list[str], *, tail: bool = True,
                 from_beginning: bool = True, batch_size: int = 20_000,
                 consumer_config: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.topics = topics
        self.tail = tail
        self.starting_offset = OFFSET_BEGINNING if from_beginning else OFFSET_END
        self.batch_size = batch_size
        self.consumer_config = consumer_config or {}

    def list_parts(self) -> list[str]:
        admin = AdminClient(self.settings.client_config())
        parts: list[str] = []
        for topic in self.topics:
            metadata = admin.list_topics(topic, timeout=30).topics.get(topic)
            if metadata is None or metadata.error is not None:
                raise KafkaError(f"cannot read partitions of topic {topic}: {metadata.error if metadata else '?'}",
                                 hint="create it with `wattflow stack init`")
            parts.extend(f"{index}-{topic}" for index in sorted(metadata.partitions))
        return parts

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _KafkaBatchPartition:
        index, topic = for_part.split("-", 1)
        config = {
            **self.settings.client_config(),
            **DEFAULT_CONSUMER_CONFIG,
            "group.id": f"wattflow-{step_id}",
            "enable.partition.eof": not self.tail,
            **({} if self.settings.consumer_fetch_wait_max_ms is None
               else {"fetch.wait.max.ms": self.settings.consumer_fetch_wait_max_ms}),
            **self.consumer_config,
        }
        offset = self.starting_offset if resume_state is None else resume_state
        idle = _IDLE if self.settings.source_idle_ms is None else timedelta(milliseconds=self.settings.source_idle_ms)
        return _KafkaBatchPartition(config, topic, int(index), offset, batch_size=self.batch_size, tail=self.tail,
                                    idle=idle)
