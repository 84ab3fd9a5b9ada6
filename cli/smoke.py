"""The smoke path: one round trip through real Kafka and real QuestDB, proving the stack works.

Produces messages to a topic and consumes them back, writes a row to QuestDB over ILP/HTTP, reads it
back over SQL, and writes the very same row again to show that the dedup keys keep one.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import orjson
from confluent_kafka import Consumer, TopicPartition
from questdb import Sender, TimestampNanos

from connectors.kafka.admin import ensure_topics
from connectors.kafka.producer import CheckedProducer
from connectors.questdb.sql import QuestDBClient
from connectors.questdb.tables import ensure_tables
from wattflow.errors import KafkaError
from wattflow.settings import Settings

SMOKE_TOPIC = "wattflow.smoke"


@dataclass(frozen=True, slots=True)
class SmokeResult:
    produced: int
    consumed: int
    kafka_seconds: float
    questdb_rows_after_first_write: int
    questdb_rows_after_second_write: int
    questdb_seconds: float


def kafka_round_trip(settings: Settings, count: int = 1000, timeout_s: float = 30.0) -> tuple[int, int]:
    """Produce ``count`` tagged messages and consume them back from the topic's start."""
    ensure_topics(settings.kafka, {SMOKE_TOPIC: 1})
    run_id = uuid.uuid4().hex
    producer = CheckedProducer(settings.kafka)
    for i in range(count):
        producer.produce(SMOKE_TOPIC, orjson.dumps({"run": run_id, "i": i}), key=str(i).encode())
    producer.flush()
    consumer = Consumer({
        **settings.kafka.client_config(), "group.id": f"wattflow-smoke-{run_id}", "enable.auto.commit": False,
    })
    consumer.assign([TopicPartition(SMOKE_TOPIC, 0, 0)])
    seen: set[int] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while len(seen) < count and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if message.error():
                    raise KafkaError(f"consume failed: {message.error()}")
                value = orjson.loads(message.value() or b"{}")
                if value.get("run") == run_id:
                    seen.add(value["i"])
    finally:
        consumer.close()
    return producer.delivered, len(seen)


def questdb_dedup_round_trip(settings: Settings) -> tuple[int, int]:
    """Write one event row twice over ILP/HTTP; return the row count after each write."""
    client = QuestDBClient(settings.questdb)
    ensure_tables(client, ["events"])
    source = f"smoke-{uuid.uuid4().hex[:12]}"
    ts = TimestampNanos(time.time_ns())
    counts = []
    for _ in range(2):
        with Sender.from_conf(settings.questdb.ilp_conf()) as sender:
            sender.row(
                "events",
                symbols={"kind": "SMOKE", "source": source, "severity": "INFO"},
                columns={"detail": "wattflow smoke test row"},
                at=ts,
            )
            sender.flush()
        client.wait_applied(["events"])
        counts.append(int(client.scalar(f"SELECT count() FROM events WHERE source = '{source}'")))
    return counts[0], counts[1]


def run_smoke(settings: Settings, messages: int = 1000) -> SmokeResult:
    started = time.monotonic()
    produced, consumed = kafka_round_trip(settings, messages)
    kafka_seconds = time.monotonic() - started
    started = time.monotonic()
    first, second = questdb_dedup_round_trip(settings)
    return SmokeResult(produced, consumed, kafka_seconds, first, second, time.monotonic() - started)
