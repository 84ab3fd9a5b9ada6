"""The user's commands end to end: feed simulate -> replay -> run ingest -> tail / record."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import NewTopic

from connectors.feeds.files import read_feed
from connectors.kafka.admin import admin_client
from tests.helpers import count, flow_env, python, with_topics
from wattflow.settings import Settings

pytestmark = pytest.mark.stack


def wattflow(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python(), "-m", "cli", *args], env={**env, "COLUMNS": "200"}, capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_simulate_replay_ingest_tail_record(settings: Settings, unique: str, tmp_path: Path) -> None:
    s = with_topics(settings, unique)
    env = flow_env(s)
    feed = tmp_path / "day.parquet"
    made = wattflow(env, "feed", "simulate", "--area", "DE-LU", "--day", "2018-03-25", "--seed", "3",
                    "--scale", "0.05", "--durations", "60", "-o", str(feed))
    assert made.returncode == 0, made.stderr
    frame = read_feed(feed)
    counts = frame.counts_by_type()
    assert counts["trade"] > 100 and counts["book"] > 100

    sent = wattflow(env, "replay", str(feed), "--rate", "50000")
    assert sent.returncode == 0, sent.stderr
    assert f"sent {len(frame):,} messages to {s.topics.raw}" in sent.stdout
    assert "0 unconfirmed" in sent.stdout

    ran = wattflow(env, "run", "ingest", "--no-tail", "--processes", "2")
    assert ran.returncode == 0, ran.stderr[-3000:]
    products = tuple(frame.products())
    in_list = ", ".join(f"'{p}'" for p in products)
    assert count(s, f"SELECT count() FROM ticks WHERE product IN ({in_list})") == counts["trade"]
    assert count(s, f"SELECT count() FROM book WHERE product IN ({in_list})") == counts["book"]

    tailed = wattflow(env, "tail", s.topics.ticks, "--from", "beginning", "--count", "5", "--json")
    assert tailed.returncode == 0, tailed.stderr
    events = [orjson.loads(line) for line in tailed.stdout.splitlines()]
    assert len(events) == 5 and all(e["type"] == "trade" and e["product"] in products for e in events)

    product = products[0]
    readable = wattflow(env, "tail", s.topics.book, "--from", "beginning", "--product", product, "--no-follow")
    lines = readable.stdout.splitlines()
    assert lines and all(product in line and " book " in line for line in lines)

    recorded = tmp_path / "recorded.parquet"
    back = wattflow(env, "record", s.topics.raw, str(recorded), "--idle-timeout", "2")
    assert back.returncode == 0, back.stderr
    again = read_feed(recorded)
    assert len(again) == len(frame)
    assert sorted(again.seq.tolist()) == sorted(frame.seq.tolist())


def test_replay_fails_loudly_when_the_broker_cannot_confirm(settings: Settings, unique: str,
                                                           tmp_path: Path) -> None:
    """A topic whose broker-side limit is smaller than any message (max.message.bytes 64): the broker refuses
    every write and confirms none, and replay says so with the count and exit code 1."""
    topic = f"unconfirmable.{unique}"
    admin = admin_client(settings.kafka)
    for future in admin.create_topics([NewTopic(topic, 1, 1, config={"max.message.bytes": "64"})]).values():
        future.result()
    env = flow_env(settings)
    feed = tmp_path / "day.jsonl"
    made = wattflow(env, "feed", "simulate", "--scale", "0.01", "--durations", "60", "-o", str(feed))
    assert made.returncode == 0
    sent = wattflow(env, "replay", str(feed), "--topic", topic, "--max", "--delivery-timeout", "3",
                    "--limit", "500")
    assert sent.returncode == 1, sent.stdout + sent.stderr
    assert "delivery failed" in sent.stdout and "did not confirm 500 of 500" in sent.stdout
