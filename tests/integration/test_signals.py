"""The signals flow against the real servers: features and signals stored and published, deterministic."""

from __future__ import annotations

import hashlib
from datetime import date

import numpy as np
import pytest
from bytewax.testing import run_main

from connectors.feeds.files import FeedFrame, day_ahead_feed, json_lines
from connectors.feeds.smard import day_ahead_day
from connectors.kafka.admin import ensure_topics
from connectors.kafka.reader import read_topic
from flows import signals as signals_flow
from paper.simulator import simulate_day
from tests.helpers import count, produce, run_ingest, with_topics
from wattflow.settings import Settings

pytestmark = pytest.mark.stack


def signals_hash(settings: Settings, topic: str) -> tuple[str, int]:
    """SHA-256 of every signal on a topic, in a canonical order (so that partitioning does not matter)."""
    rows = sorted(
        (e["product"], e["model"], e["ts_ns"], e["trade_id"], e["direction"], round(e["strength"], 12),
         e["target_position_mw"], round(e["confidence"], 12))
        for e in (item.event for item in read_topic(settings.kafka, topic, idle_timeout_s=3))
    )
    return hashlib.sha256(repr(rows).encode()).hexdigest(), len(rows)


def test_signals_flow_is_deterministic_and_stores_everything(settings: Settings, unique: str) -> None:
    s = with_topics(settings, unique)
    day = date(2018, 3, 25)
    frame = FeedFrame.concat([day_ahead_feed(day_ahead_day(None, "DE-AT-LU", day)),
                              simulate_day("DE-AT-LU", day, seed=5, scale=0.08, durations_min=(15, 60))])
    frame = frame.sort_by_time()
    produce(s, s.topics.raw, json_lines(frame), frame.key_strings().tolist())
    run_ingest(s)
    trades = frame.counts_by_type()["trade"]

    run_main(signals_flow.get_flow(s, tail=False, batch_size=5000))
    first_hash, first_count = signals_hash(s, s.topics.signals)

    again = s.model_copy(update={"topics": s.topics.model_copy(update={
        "features": s.topics.features + ".again", "signals": s.topics.signals + ".again"})})
    ensure_topics(s.kafka, {again.topics.features: 3, again.topics.signals: 3})
    run_main(signals_flow.get_flow(again, tail=False, batch_size=337))
    second_hash, second_count = signals_hash(again, again.topics.signals)
    print(f"\nR8: signals hash {first_hash[:16]} ({first_count} signals) == {second_hash[:16]} ({second_count})")
    assert first_count == second_count == 2 * trades
    assert first_hash == second_hash

    products = frame.products()
    in_list = ", ".join(f"'{p}'" for p in products)
    assert count(s, f"SELECT count() FROM features WHERE product IN ({in_list})") == trades
    assert count(s, f"SELECT count() FROM signals WHERE product IN ({in_list})") == 2 * trades
    anchored = count(s, f"SELECT count() FROM features WHERE product IN ({in_list}) "
                        "AND day_ahead_eur_per_mwh IS NOT NULL")
    assert anchored == trades, "every product got its day-ahead anchor"
    negative = count(s, f"SELECT count() FROM features WHERE product IN ({in_list}) AND price_eur_per_mwh < 0")
    moves = count(s, f"SELECT count() FROM signals WHERE product IN ({in_list}) AND direction != 0")
    assert moves > 0
    del negative
    assert np.isfinite(first_count)
