"""R5: fuzz the raw topic with malformed messages (hypothesis); the flow never stops, nothing is lost."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from connectors.kafka.reader import read_topic
from tests.helpers import count, produce, run_ingest, with_topics
from tests.unit.test_decode_validate_fuzz import mutated_message
from wattflow.settings import Settings

pytestmark = pytest.mark.stack


@hypothesis_settings(max_examples=3, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(mutated_message(), min_size=50, max_size=300))
def test_fuzzed_raw_topic_produced_equals_stored_plus_dead_lettered(settings: Settings, values: list[bytes]) -> None:
    suffix = uuid.uuid4().hex[:10]
    s = with_topics(settings, suffix)
    # Every valid message carries a unique source so that the count below sees only this run.
    tagged = [v.replace(b'"source":"fuzz"', f'"source":"fuzz-{suffix}"'.encode()) for v in values]
    produce(s, s.topics.raw, tagged)
    run_ingest(s)
    published = [e.event for e in read_topic(s.kafka, s.topics.ticks, idle_timeout_s=2)]
    dead = count(s, f"SELECT count() FROM dlq WHERE topic = '{s.topics.raw}'")
    stored = count(s, f"SELECT count() FROM ticks WHERE source = 'fuzz-{suffix}'")
    print(f"\nR5: produced {len(values)}, valid {len(published)}, dead-lettered {dead}, stored {stored} "
          "(identical valid messages are one row)")
    assert len(published) + dead == len(values)
    mine = {(e["ts_ns"], e["product"], e["trade_id"]) for e in published if e["source"] == f"fuzz-{suffix}"}
    assert stored == len(mine)
