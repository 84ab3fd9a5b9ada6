"""Helpers for the integration tests: raw messages, topics of their own, running the ingest and store flows, and
keyed comparisons of what a table holds against what was sent in."""

from __future__ import annotations

import math
import os
import sys
import time
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from bytewax.testing import run_main
from confluent_kafka import Message, Producer

from connectors.kafka.admin import ensure_topics
from connectors.kafka.producer import CheckedProducer
from connectors.questdb.sql import QuestDBClient
from flows import ingest, store
from wattflow.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
#: 2018-10-27T22:40Z: every DE-LU product delivered on 2018-10-28 from 01:00Z on is open then.
OPEN_TS_NS = 1_540_680_000_000_000_000
PRODUCTS = [f"DE-LU:2018-10-28T{h:02d}:{m:02d}Z:PT15M" for h in range(1, 6) for m in (0, 15, 30, 45)]


def trade(i: int, source: str, *, product: str | None = None, price: float = 45.12, quantity: float = 1.5,
          ts_ns: int | None = None, **extra: Any) -> bytes:
    message = {
        "type": "trade", "ts_ns": OPEN_TS_NS + i * 1000 if ts_ns is None else ts_ns,
        "product": product or PRODUCTS[i % len(PRODUCTS)], "price_eur_per_mwh": price,
        "quantity_mw": quantity, "side": "BUY" if i % 2 else "SELL", "trade_id": i, "source": source, "seq": i,
        **extra,
    }
    return orjson.dumps(message)


def book(i: int, source: str, *, level: int = 0, quantity: float = 2.0) -> bytes:
    return orjson.dumps({
        "type": "book", "ts_ns": OPEN_TS_NS + i * 1000, "product": PRODUCTS[i % len(PRODUCTS)],
        "side": "BUY" if i % 2 else "SELL", "level": level, "price_eur_per_mwh": 44.0 + (i % 7),
        "quantity_mw": quantity, "source": source, "seq": i,
    })


#: The topic settings a test gets its own copy of.
TOPIC_NAMES = ("raw", "ticks", "book", "dayahead", "dlq", "events", "features", "signals", "orders",
               "execution_reports", "positions", "control", "decisions")


def with_topics(settings: Settings, suffix: str, partitions: int = 2) -> Settings:
    """A copy of the settings whose topics are this test's own (created here)."""
    topics = settings.topics.model_copy(update={
        name: f"{getattr(settings.topics, name)}.{suffix}"
        for name in TOPIC_NAMES
    })
    ensure_topics(settings.kafka, {
        topics.raw: partitions, topics.ticks: partitions, topics.book: partitions, topics.dayahead: 1,
        topics.dlq: 1, topics.events: 1, topics.features: partitions, topics.signals: partitions,
        topics.orders: partitions, topics.execution_reports: partitions, topics.positions: partitions,
        topics.control: 1, topics.decisions: 1,
    })
    return settings.model_copy(update={"topics": topics})


def product_key(value: bytes) -> str:
    """Key a raw message by its product, as a feed adapter does (so a product stays on one partition)."""
    try:
        message = orjson.loads(value)
    except orjson.JSONDecodeError:
        return "undecodable"
    return str(message.get("product") or message.get("area") or "none") if isinstance(message, dict) else "none"


def produce(settings: Settings, topic: str, values: Sequence[bytes], keys: Sequence[str] | None = None) -> None:
    producer = CheckedProducer(settings.kafka)
    producer.produce_many(topic, keys or [product_key(v) for v in values], values)
    producer.flush()


def run_ingest(settings: Settings) -> None:
    """The ingest flow in this process, until the end of its raw topic."""
    run_main(ingest.get_flow(settings, tail=False, batch_size=5_000))


def run_store(settings: Settings, batch_size: int = 5_000) -> None:
    """The store flow in this process, until the end of all its input topics."""
    run_main(store.get_flow(settings, tail=False, batch_size=batch_size))


#: Every table the store flow writes.
STORE_TABLES = ["ticks", "book", "dayahead", "dlq", "features", "signals", "orders", "execution_reports", "events",
                "positions"]


def wal_applied(settings: Settings) -> QuestDBClient:
    """Wait until every WAL table QuestDB holds (wattflow's and those a test made of its own) has applied all it
    received, and return a client: what every count and every read of a table in the tests goes through, so that
    no check reads a table while rows it was sent are still in its WAL."""
    client = QuestDBClient(settings.questdb)
    client.wait_applied([row["name"] for row in client.query("SELECT name FROM wal_tables()")])
    return client


def count(settings: Settings, sql: str) -> int:
    return int(wal_applied(settings).scalar(sql))


def fetch(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    """Every row of a query as tuples (after every WAL table has applied what it received). A NaN double comes
    back from QuestDB as null (None)."""
    result = wal_applied(settings).execute(sql)
    return [tuple(row) for row in result.get("dataset", [])]


def nan_as_none(value: Any) -> Any:
    """How QuestDB gives a value back: NaN (and an infinity) as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


@dataclass(frozen=True)
class KeyedDiff:
    """Rows expected but not found (``missing``) and found but not expected (``extra``), each with how many
    times; a row stored twice is one ``extra``."""

    missing: list[tuple[Hashable, int]]
    extra: list[tuple[Hashable, int]]

    @property
    def same(self) -> bool:
        return not self.missing and not self.extra

    def __str__(self) -> str:
        def show(items: list[tuple[Hashable, int]]) -> str:
            head = ", ".join(f"{row!r} x{n}" for row, n in items[:5])
            return f"{len(items)} [{head}{', ...' if len(items) > 5 else ''}]"

        return f"missing {show(self.missing)}; extra {show(self.extra)}"


def keyed_diff(expected: Iterable[Hashable], actual: Iterable[Hashable]) -> KeyedDiff:
    """Compare two multisets of rows: every row counted, so a duplicate shows as extra and a lost row as missing
    (never a set, which would hide a duplicate; never a count, which would let a duplicate make up for a loss)."""
    want, have = Counter(expected), Counter(actual)
    return KeyedDiff(sorted((want - have).items(), key=repr), sorted((have - want).items(), key=repr))


@dataclass(frozen=True)
class Delivered:
    """A message as the broker took it: where (its origin) and when (its Kafka timestamp)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    value: bytes

    @property
    def origin(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


def produce_with_origins(settings: Settings, topic: str, values: Sequence[bytes],
                         keys: Sequence[str | bytes | None] | None = None) -> list[Delivered]:
    """Produce and return each message's partition, offset and timestamp as the broker confirmed them."""
    producer = Producer({**settings.kafka.client_config(), "enable.idempotence": True, "acks": "all"})
    delivered: list[Delivered] = []
    failed: list[str] = []

    def report(error: Any, message: Message) -> None:
        if error is not None:
            failed.append(str(error))
            return
        value = message.value()
        assert value is not None
        delivered.append(Delivered(topic, message.partition(), message.offset(), message.timestamp()[1], value))

    for i, value in enumerate(values):
        producer.produce(topic, value, keys[i] if keys else None, on_delivery=report)
    left = producer.flush(60)
    assert not failed and not left and len(delivered) == len(values), (failed, left, len(delivered))
    return delivered


def wait_for_count(settings: Settings, sql: str, expected: int, timeout_s: float = 60.0) -> int:
    deadline = time.monotonic() + timeout_s
    seen = -1
    while time.monotonic() < deadline:
        seen = count(settings, sql)
        if seen >= expected:
            return seen
        time.sleep(0.3)
    return seen


def flow_env(settings: Settings) -> dict[str, str]:
    """Environment for a flow subprocess: the same settings as these, through WATTFLOW_* variables."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **settings.to_env()}


def python() -> str:
    return sys.executable
