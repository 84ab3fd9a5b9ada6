"""Helpers for the integration tests: raw messages, topics of their own, running the ingest flow."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from bytewax.testing import run_main

from connectors.kafka.admin import ensure_topics
from connectors.kafka.producer import CheckedProducer
from connectors.questdb.sql import QuestDBClient
from flows import ingest
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
               "execution_reports", "control", "positions")


def with_topics(settings: Settings, suffix: str, partitions: int = 2) -> Settings:
    """A copy of the settings whose topics are this test's own (created here)."""
    topics = settings.topics.model_copy(update={
        name: f"{getattr(settings.topics, name)}.{suffix}"
        for name in TOPIC_NAMES
    })
    ensure_topics(settings.kafka, {
        topics.raw: partitions, topics.ticks: partitions, topics.book: partitions, topics.dayahead: 1,
        topics.dlq: 1, topics.events: 1, topics.features: partitions, topics.signals: partitions,
        topics.orders: partitions, topics.execution_reports: partitions, topics.control: 1,
        topics.positions: partitions,
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


def count(settings: Settings, sql: str) -> int:
    client = QuestDBClient(settings.questdb)
    client.wait_applied(["ticks", "book", "dlq", "dayahead"])
    return int(client.scalar(sql))


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
