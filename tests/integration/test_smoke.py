"""The smoke path through the real servers: Kafka round trip, ILP/HTTP write, SQL read, dedup."""

from __future__ import annotations

import pytest

from cli.smoke import kafka_round_trip, questdb_dedup_round_trip
from connectors.kafka.admin import ensure_topics
from connectors.questdb.sql import QuestDBClient
from wattflow.settings import Settings

pytestmark = pytest.mark.stack


def test_kafka_produce_and_consume(settings: Settings) -> None:
    produced, consumed = kafka_round_trip(settings, count=500)
    assert (produced, consumed) == (500, 500)


def test_questdb_write_read_and_dedup(settings: Settings) -> None:
    first, second = questdb_dedup_round_trip(settings)
    assert (first, second) == (1, 1)


def test_topics_and_tables_exist_and_init_is_idempotent(settings: Settings) -> None:
    from cli.stack import init_stack

    assert init_stack(settings) == {"topics": [], "tables": []}
    assert ensure_topics(settings.kafka, settings.topics.all_topics()) == []
    client = QuestDBClient(settings.questdb)
    for table in ("ticks", "book", "dayahead", "events", "dlq"):
        ddl = client.scalar(f"SHOW CREATE TABLE {table}")
        assert "DEDUP UPSERT KEYS" in ddl, ddl
        (meta,) = client.query(f"SELECT walEnabled, dedup FROM tables() WHERE table_name = '{table}'")
        assert meta == {"walEnabled": True, "dedup": True}
