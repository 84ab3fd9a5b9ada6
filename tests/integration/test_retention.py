"""Kafka keeps what it is given: a replayed 2018 day survives the broker's time-based retention.

Kafka deletes a closed log segment once its newest message timestamp is older than the retention (7 days here),
at its periodic retention check (every 2 s on the test stack). A topic stamped with a 2018 event time is
therefore emptied at the first check after its segment rolls. wattflow creates every topic with
``message.timestamp.type=LogAppendTime``: the broker stamps each message with the time it wrote it, whatever the
producer set; event time stays in the payload.

Truth: the high watermarks right after the flows wrote, and a canary topic stamped with 2018 times (created the
way Kafka does by default) that the broker must empty: it proves that retention checks ran after every topic's
segment was rolled, so a topic that kept everything kept it through a real check, not because none happened.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from bytewax.testing import run_main
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from connectors.feeds.files import FeedFrame, day_ahead_feed, json_lines, write_feed
from connectors.feeds.smard import day_ahead_day
from connectors.kafka.admin import admin_client
from connectors.kafka.producer import CheckedProducer
from connectors.venue.adapter import VenueAdapter
from flows import trading as trading_flow
from paper.server import serve
from paper.simulator import simulate_day
from tests.helpers import run_ingest, with_topics
from tests.trading import ADMIN, API, venue_settings
from wattflow.domain import Product
from wattflow.settings import Settings
from wattflow.stack.process import free_port

pytestmark = [pytest.mark.stack, pytest.mark.slow]

#: A 2018 time in ms: the Kafka timestamp a producer stamping event time would give.
OLD_MS = int(datetime(2018, 3, 25, 12, tzinfo=UTC).timestamp() * 1000)
#: Topics the flows derive from the raw topic, and the raw topic itself.
DERIVED = ("raw", "ticks", "book", "dayahead", "dlq", "features", "signals", "orders", "execution_reports",
           "events", "positions")


def watermarks(settings: Settings, topic: str) -> dict[int, tuple[int, int]]:
    """Partition -> (low, high) watermark of ``topic``, as the broker reports them."""
    consumer = Consumer({**settings.kafka.client_config(), "group.id": "wattflow-retention-test"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in partitions}
    finally:
        consumer.close()


def wait_for_low_watermark(settings: Settings, topic: str, low: int, timeout_s: float = 90.0) -> None:
    """Until partition 0 of ``topic`` starts at ``low`` or later: the broker ran a retention check that deleted."""
    deadline = time.monotonic() + timeout_s
    while watermarks(settings, topic)[0][0] < low:
        assert time.monotonic() < deadline, (
            f"the broker deleted nothing from {topic} in {timeout_s:.0f} s: no retention check ran "
            "(is log.retention.check.interval.ms set on the test stack?)")
        time.sleep(0.5)


def _frame() -> FeedFrame:
    day = date(2018, 3, 25)
    frame = FeedFrame.concat([day_ahead_feed(day_ahead_day(None, "DE-AT-LU", day)),
                              simulate_day("DE-AT-LU", day, seed=7, scale=0.05, durations_min=(60,))])
    return frame.sort_by_time()


def test_a_replayed_2018_day_keeps_every_topic_whole_through_a_retention_check(
        settings: Settings, unique: str, tmp_path: Path) -> None:
    """Red if any topic lost a message to retention (its low watermark moved, or its high one fell behind what
    the flows wrote plus the one probe sent here), or if the flows wrote nothing to a topic (nothing to lose)."""
    s = with_topics(settings, unique, partitions=2)
    frame = _frame()
    # Raw messages stamped with their 2018 event time, as a feed adapter that stamps event time would send them,
    # and one malformed message, so that the dead-letter topic has something to keep.
    values = [*json_lines(frame), b'{"type": "trade", "ts": null}']
    keys = [*frame.key_strings().tolist(), "bad"]
    producer = CheckedProducer(s.kafka)
    producer.produce_many(s.topics.raw, keys, values, [OLD_MS] * len(values))
    producer.flush()
    run_ingest(s)

    feed = write_feed(frame, tmp_path / "feed.parquet")
    venue = serve(feed, free_port(), API, admin_key=ADMIN, rate_limit_per_s=100_000, background=True)
    venue.set_clock(max(Product.parse(p).trading_window().open_ns for p in frame.products()) + 1)
    trading = venue_settings(s, venue, max_orders_per_interval=100_000, max_total_position_mw=100_000.0)
    try:
        run_main(trading_flow.get_flow(trading, tail=False, batch_size=500))
        # The venue's execution reports into their topic, as `wattflow adapter` forwards them.
        with venue.lock:
            reports = len(venue.exchange.reports)
        adapter = VenueAdapter(trading, market=False, api_key=API).start()
        try:
            deadline = time.monotonic() + 60
            while sum(high for _, high in watermarks(s, s.topics.execution_reports).values()) < reports:
                assert time.monotonic() < deadline, "the adapter did not forward the venue's reports"
                time.sleep(0.2)
        finally:
            adapter.stop()
    finally:
        venue.stop()

    topics = {name: getattr(s.topics, name) for name in DERIVED}
    written = {name: watermarks(s, topic) for name, topic in topics.items()}
    empty = [name for name, marks in written.items() if sum(high - low for low, high in marks.values()) == 0]
    assert empty == [], f"the flows wrote nothing to {empty}: this test would prove nothing for them"

    # One probe per partition, stamped with the same 2018 time: an append rolls a segment whose first message
    # is older than segment.ms, so every segment the flows wrote becomes deletable if its times are old.
    probes = [(topic, p) for topic in topics.values() for p in watermarks(s, topic)]
    prober = Producer(s.kafka.client_config())
    for topic, partition in probes:
        prober.produce(topic, b'{"probe": true}', partition=partition, timestamp=OLD_MS)
    assert prober.flush(30) == 0, "the broker did not confirm every probe"

    # The canary: a topic with Kafka's default CreateTime, two 2018-stamped messages, then a third. Its low
    # watermark reaching 2 means two retention checks deleted after the probes rolled every segment above.
    canary = f"retention-canary.{unique}"
    admin = admin_client(s.kafka)
    for future in admin.create_topics([NewTopic(canary, 1, 1)]).values():
        future.result()
    producer.produce_many(canary, ["c", "c"], [b"1", b"2"], [OLD_MS, OLD_MS])
    producer.flush()
    wait_for_low_watermark(s, canary, 1)
    producer.produce_many(canary, ["c"], [b"3"], [OLD_MS])
    producer.flush()
    wait_for_low_watermark(s, canary, 2)

    after = {name: watermarks(s, topic) for name, topic in topics.items()}
    # Per topic: messages the flows wrote that the broker no longer holds (offsets below the low watermark), and
    # partitions whose end moved other than by the one probe.
    lost = {name: sum(min(after[name][p][0], high) for p, (_, high) in marks.items())
            for name, marks in written.items()}
    moved = {name: [p for p, (_, high) in marks.items() if after[name][p][1] != high + 1]
             for name, marks in written.items()}
    kept = sum(high for marks in written.values() for _, high in marks.values())
    print(f"\nretention: {kept:,} messages in {len(topics)} topics; the canary stamped 2018 was emptied to "
          f"offset {watermarks(s, canary)[0][0]}; messages lost to retention: "
          f"{ {name: n for name, n in lost.items() if n} or 'none'}")
    assert {name: n for name, n in lost.items() if n} == {}
    assert {name: parts for name, parts in moved.items() if parts} == {}


def test_stack_init_stamps_topics_of_an_older_stack_with_the_append_time(settings: Settings, unique: str) -> None:
    """A topic made before wattflow set LogAppendTime (Kafka's default CreateTime) is changed by `stack init`;
    red if the config stays CreateTime, or if a topic already right is changed again."""
    from confluent_kafka.admin import ConfigResource

    from cli.stack import init_stack
    from connectors.kafka.admin import TOPIC_CONFIG

    s = settings.model_copy(update={"topics": settings.topics.model_copy(update={"signals": f"signals.{unique}"})})
    admin = admin_client(s.kafka)
    for future in admin.create_topics([NewTopic(s.topics.signals, 1, 1)]).values():
        future.result()

    def stamp(topic: str) -> str:
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        deadline = time.monotonic() + 30
        while True:  # a topic just created is known to every broker component a moment later
            try:
                return str(admin.describe_configs([resource])[resource].result()["message.timestamp.type"].value)
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    before = stamp(s.topics.signals)
    init_stack(s)
    after = stamp(s.topics.signals)
    from connectors.kafka.admin import align_topic_config

    again = align_topic_config(s.kafka, [s.topics.signals, s.topics.orders])
    print(f"\nstack init: {s.topics.signals} {before} -> {after}; a second pass changed {again or 'nothing'}")
    assert (before, after, again) == ("CreateTime", TOPIC_CONFIG["message.timestamp.type"], [])
