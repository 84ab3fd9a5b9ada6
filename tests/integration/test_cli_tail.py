"""`wattflow topics` and `wattflow tail` as a user runs them (processes, against the real broker): counts
exact against the messages produced here, tail stops where it says it does, names what it reads, and a demo
run's copy of a topic is found by `--run latest`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest

from tests.helpers import flow_env, produce, python, trade, with_topics
from wattflow.settings import Settings

pytestmark = pytest.mark.stack


def wattflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The command as a process; 60 s is only a guard against a hang (these used to wait forever)."""
    return subprocess.run([python(), "-m", "cli", *args], env={**env, "COLUMNS": "80"}, capture_output=True,
                          text=True, timeout=60, check=False)


def test_topics_counts_and_tail_stops_at_the_end_or_the_count(settings: Settings, unique: str) -> None:
    s = with_topics(settings, unique, partitions=2)
    values = [trade(i, f"src-{unique}") for i in range(5)]
    produce(s, s.topics.raw, values)
    env = flow_env(s)

    listed = wattflow(env, "topics", unique, "--json")
    assert listed.returncode == 0, listed.stderr
    counts = {row["topic"]: row["messages"] for row in map(orjson.loads, listed.stdout.splitlines())}
    assert counts[s.topics.raw] == 5 and counts[s.topics.dlq] == 0

    first = wattflow(env, "tail", s.topics.raw, "-n", "2", "--json")
    assert first.returncode == 0, first.stderr
    assert len(first.stdout.splitlines()) == 2
    assert f"{s.topics.raw}: 2 partitions, 5 messages; reading from the beginning" in " ".join(first.stderr.split())

    more = wattflow(env, "tail", s.topics.raw, "-n", "10", "--json")  # fewer than asked: stops at the end
    assert more.returncode == 0, more.stderr
    got = sorted(orjson.dumps({k: v for k, v in orjson.loads(line).items() if not k.startswith("_")})
                 for line in more.stdout.splitlines())
    assert got == sorted(orjson.dumps(orjson.loads(v)) for v in values)
    assert "5 of the 10 messages asked for" in " ".join(more.stderr.split())

    empty = wattflow(env, "tail", s.topics.dlq, "-e")
    assert (empty.returncode, empty.stdout) == (0, "")


def test_tail_finds_a_demo_runs_topic_and_names_the_closest_for_a_typo(settings: Settings, unique: str) -> None:
    base = with_topics(settings, unique, partitions=1)
    runs = []
    for run_id in ("1796000000001", "1796000000002"):
        topics = base.topics.model_copy(update={"orders": f"{base.topics.orders}.d{run_id}"})
        run = base.model_copy(update={"topics": topics})
        from connectors.kafka.admin import ensure_topics

        ensure_topics(run.kafka, {run.topics.orders: 1})
        produce(run, run.topics.orders, [orjson.dumps({"run": run_id})], ["k"])
        runs.append(run)
    env = flow_env(base)

    latest = wattflow(env, "tail", base.topics.orders, "--run", "latest", "--json", "-e")
    assert latest.returncode == 0, latest.stderr
    assert [orjson.loads(line)["run"] for line in latest.stdout.splitlines()] == ["1796000000002"]

    typo = wattflow(env, "tail", base.topics.orders[:-1])
    assert typo.returncode == 1
    assert "does not exist" in typo.stderr and f"did you mean {base.topics.orders}" in " ".join(typo.stderr.split())
    assert "Traceback" not in typo.stderr


def test_record_keeps_valid_events_names_the_bad_ones_and_dedups_on_request(settings: Settings, unique: str,
                                                                            tmp_path: Path) -> None:
    from connectors.feeds.files import read_feed

    s = with_topics(settings, unique, partitions=1)
    good = [trade(i, f"src-{unique}") for i in range(3)]
    produce(s, s.topics.raw, [*good, good[0], b'{"type": "trade", "ts_ns": null}'])
    env = flow_env(s)

    plain = wattflow(env, "record", s.topics.raw, str(tmp_path / "all.parquet"), "--idle-timeout", "2")
    assert plain.returncode == 0, plain.stderr
    once = wattflow(env, "record", s.topics.raw, str(tmp_path / "once.parquet"), "--idle-timeout", "2", "--dedup")
    assert once.returncode == 0, once.stderr
    all_ids = sorted(read_feed(tmp_path / "all.parquet").trade_id.tolist())
    once_ids = sorted(read_feed(tmp_path / "once.parquet").trade_id.tolist())
    assert (all_ids, once_ids) == ([0, 0, 1, 2], [0, 1, 2])
    assert f"{s.topics.raw}[0]@4" in plain.stderr and "left out 1 messages" in " ".join(plain.stderr.split())
    assert "1 repeats left out" in " ".join(once.stdout.split())


def test_replay_to_a_topic_that_does_not_exist_says_so_with_the_closest_name(settings: Settings, unique: str,
                                                                            tmp_path: Path) -> None:
    s = with_topics(settings, unique, partitions=1)
    feed = tmp_path / "one.jsonl"
    feed.write_bytes(trade(1, f"src-{unique}") + b"\n")
    result = wattflow(flow_env(s), "replay", str(feed), "--topic", s.topics.raw[:-1])
    assert result.returncode == 1, result.stdout + result.stderr
    said = " ".join(result.stderr.split())
    assert f"topic {s.topics.raw[:-1]} does not exist" in said and f"did you mean {s.topics.raw}" in said
    assert "Traceback" not in result.stderr
