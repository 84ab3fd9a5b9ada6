"""Fault tests (reliability promises R1, R3): SIGKILL the ingest flow, restart QuestDB mid-ingest.

They run on a stack of their own, so that restarting a server never disturbs the other tests. Each prints
its figure (run pytest with -s to see them).
"""

from __future__ import annotations

import contextlib
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.run import bytewax_command, ensure_recovery_dir
from cli.stack import init_stack
from connectors.kafka.reader import read_topic
from connectors.kafka.replay import replay
from tests.conftest import isolated_settings
from tests.helpers import book, count, flow_env, produce, product_key, trade, wait_for_count, with_topics
from wattflow.stack import Stack

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(isolated_settings(tmp_path_factory.mktemp("fault-stack")))
    stack.up()
    init_stack(stack.settings)
    yield stack
    stack.down()


def test_sigkill_at_random_points_then_recovery_stores_every_tick_once(fault_stack: Stack, unique: str,
                                                                      tmp_path: Path) -> None:
    settings = with_topics(fault_stack.settings, unique, partitions=2)
    source = f"k-{unique}"
    trades, books = 120_000, 60_000
    produce(settings, settings.topics.raw,
            [trade(i, source) for i in range(trades)] + [book(i, source, level=i % 5) for i in range(books)]
            + [b"{broken", b'{"type":"trade"}'])
    recovery = tmp_path / "recovery"
    ensure_recovery_dir(recovery, 1)
    command = bytewax_command("ingest", tail=False, batch_size=1000, workers=1, recovery=recovery,
                              snapshot_interval_s=1)
    env = flow_env(settings)
    rng = random.Random(20181028)
    # Kill points: random shares of the feed stored so far (so that each kill lands mid-stream), plus one
    # random moment in the first seconds (start-up, before the first snapshot).
    thresholds = sorted(rng.uniform(0.1, 0.9) * trades for _ in range(3))
    client_sql = f"SELECT count() FROM ticks WHERE source = '{source}'"
    kills = 0
    early = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(rng.uniform(0.2, 1.5))
    early.kill()
    early.wait()
    for threshold in thresholds:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            if count(settings, client_sql) >= threshold:
                process.kill()
                kills += 1
                break
            time.sleep(0.05)
        process.wait()
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert final.returncode == 0, final.stderr[-3000:]

    stored = count(settings, f"SELECT count() FROM ticks WHERE source = '{source}'")
    distinct = count(settings, f"SELECT count() FROM (SELECT DISTINCT ts, product, trade_id FROM ticks "
                               f"WHERE source = '{source}')")
    stored_book = count(settings, f"SELECT count() FROM book WHERE source = '{source}'")
    published = sum(1 for _ in read_topic(settings.kafka, settings.topics.ticks, idle_timeout_s=3))
    print(f"\nR1: {kills} SIGKILLs mid-stream (+1 at start-up); ticks missing={trades - distinct}, "
          f"duplicates in QuestDB={stored - distinct}; book missing={books - stored_book}; "
          f"ticks re-published to Kafka after resume={published - trades}")
    assert kills >= 2, "the flow finished before the kills: make the feed bigger"
    assert stored == distinct == trades
    assert stored_book == books
    assert published >= trades
    assert count(settings, f"SELECT count() FROM dlq WHERE topic = '{settings.topics.raw}'") == 2


def test_questdb_killed_and_restarted_mid_ingest_loses_nothing(fault_stack: Stack, unique: str) -> None:
    settings = with_topics(fault_stack.settings, unique, partitions=2)
    source = f"q-{unique}"
    total = 100_000
    values = [trade(i, source) for i in range(total)]
    keys = [product_key(v) for v in values]
    import numpy as np

    flow = subprocess.Popen(bytewax_command("ingest", tail=True, batch_size=2000, workers=1, recovery=None,
                                            snapshot_interval_s=1),
                            env=flow_env(settings), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sender = threading.Thread(target=replay, args=(settings.kafka, settings.topics.raw, values, keys,
                                                   np.arange(total, dtype=np.int64)), kwargs={"rate": 10_000.0})
    try:
        sender.start()
        # Kill QuestDB once the flow has stored a first share (its start-up time varies with the load).
        before = wait_for_count(settings, f"SELECT count() FROM ticks WHERE source = '{source}'", 5_000, 60)
        questdb = fault_stack.questdb()
        questdb.process.kill()
        time.sleep(2.0)
        fault_stack.up()
        sender.join()
        stored = wait_for_count(settings, f"SELECT count() FROM ticks WHERE source = '{source}'", total, 120)
        assert flow.poll() is None, flow.stderr.read().decode()[-3000:] if flow.stderr else ""
    finally:
        flow.terminate()
        flow.wait(timeout=30)
    print(f"\nR3: QuestDB SIGKILLed after {before} of {total} ticks and restarted; ticks in QuestDB = {stored}, "
          f"published = {total}")
    assert 0 < before < total, "the restart did not fall mid-ingest"
    assert stored == total
    assert count(settings, f"SELECT count() FROM (SELECT DISTINCT ts, product, trade_id FROM ticks "
                           f"WHERE source = '{source}')") == total




def test_signals_flow_sigkilled_and_resumed_gives_the_signals_of_an_uninterrupted_run(
        fault_stack: Stack, unique: str, tmp_path: Path) -> None:
    import hashlib
    from datetime import date

    from bytewax.testing import run_main

    from connectors.feeds.files import FeedFrame, day_ahead_feed, json_lines
    from connectors.feeds.smard import day_ahead_day
    from connectors.kafka.admin import ensure_topics
    from connectors.questdb.sql import QuestDBClient
    from flows import signals as signals_flow
    from paper.simulator import simulate_day
    from tests.helpers import run_ingest

    settings = with_topics(fault_stack.settings, unique, partitions=2)
    day = date(2018, 6, 1)
    frame = FeedFrame.concat([day_ahead_feed(day_ahead_day(None, "DE-AT-LU", day)),
                              simulate_day("DE-AT-LU", day, seed=9, scale=0.4, durations_min=(15, 60))]).sort_by_time()
    produce(settings, settings.topics.raw, json_lines(frame), frame.key_strings().tolist())
    run_ingest(settings)

    # Reference: an uninterrupted run into topics of its own.
    reference = settings.model_copy(update={"topics": settings.topics.model_copy(update={
        "features": settings.topics.features + ".ref", "signals": settings.topics.signals + ".ref"})})
    ensure_topics(settings.kafka, {reference.topics.features: 2, reference.topics.signals: 2})
    run_main(signals_flow.get_flow(reference, tail=False))

    def digest(topic: str) -> tuple[str, int]:
        rows = sorted({(e["product"], e["model"], e["ts_ns"], e["trade_id"], e["direction"], e["strength"],
                        e["target_position_mw"]) for e in (i.event for i in read_topic(settings.kafka, topic,
                                                                                         idle_timeout_s=3))})
        return hashlib.sha256(repr(rows).encode()).hexdigest(), len(rows)

    recovery = tmp_path / "recovery"
    ensure_recovery_dir(recovery, 1)
    command = [*bytewax_command("signals", tail=False, batch_size=500, workers=1, recovery=recovery,
                                snapshot_interval_s=1)]
    env = flow_env(settings)
    client = QuestDBClient(settings.questdb)
    trades = frame.counts_by_type()["trade"]
    kills = 0
    for share in (0.25, 0.6):
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            published = sum(1 for _ in read_topic(settings.kafka, settings.topics.features, idle_timeout_s=0.2))
            if published >= share * trades:
                process.kill()
                kills += 1
                break
            time.sleep(0.2)
        process.wait()
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert final.returncode == 0, final.stderr[-3000:]
    resumed, resumed_count = digest(settings.topics.signals)
    expected, expected_count = digest(reference.topics.signals)
    del client
    print(f"\nR1 (signals): {kills} SIGKILLs; distinct signals after resume {resumed_count} == {expected_count} "
          f"of an uninterrupted run; hashes {resumed[:12]} / {expected[:12]}")
    assert kills >= 1
    assert (resumed, resumed_count) == (expected, expected_count)


def test_kafka_broker_killed_and_restarted_while_trading_loses_no_order(fault_stack: Stack, unique: str,
                                                                       tmp_path: Path) -> None:
    """R2: the broker is SIGKILLed and restarted while the execution flow trades; every order the venue took
    has its record on the orders topic, and none was sent twice."""
    from connectors.kafka.producer import CheckedProducer
    from connectors.wire.signals import signal_records
    from tests.trading import (
        T0,
        acks_at_venue,
        orders,
        reports_adapter,
        signals,
        start_venue,
        venue_settings,
    )

    products = [f"DE-LU:2018-10-28T{hour:02d}:00Z:PT60M" for hour in range(12, 16)]
    venue = start_venue(tmp_path, products)
    settings = venue_settings(with_topics(fault_stack.settings, unique, partitions=2), venue, clip_interval_s=0.0,
                              order_ttl_s=3600.0, max_orders_per_interval=100_000)
    log = tmp_path / "flow.log"
    flow = subprocess.Popen(bytewax_command("execution", tail=True, batch_size=500, workers=1, recovery=None,
                                            snapshot_interval_s=1), env=flow_env(settings),
                            stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    rounds, killed_at = 30, 10
    adapter = contextlib.ExitStack()  # the reports stream, closed in finally
    adapter.enter_context(reports_adapter(settings))
    try:
        for k in range(rounds):
            if k == killed_at:
                fault_stack.kafka().process.kill()
                time.sleep(2.0)
                fault_stack.up()
            producer = CheckedProducer(settings.kafka)
            for i, product in enumerate(products):
                batch = signals([4.0 if k % 2 else -4.0], first_trade=90_000 + k * 10 + i, product=product,
                                start_ns=T0 + k * 20_000_000_000, gap_s=1)
                records = signal_records(batch, settings.topics.signals)
                producer.produce_many(records.topic, [str(key) for key in records.keys], records.values)
            producer.flush(120)
            time.sleep(0.3)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert flow.poll() is None, log.read_text()[-3000:]
            recorded = {r["client_order_id"] for r in orders(settings, idle_timeout_s=1)
                        if r["action"] == "SUBMIT" and r["status"] in ("ACKED", "REPLAYED", "RESENT")}
            if set(acks_at_venue(venue)) <= recorded and len(recorded) >= 4 * rounds:
                break
            time.sleep(1)
    finally:
        adapter.close()
        flow.terminate()
        flow.wait(30)
        venue.stop()
    acks = acks_at_venue(venue)
    recorded = {r["client_order_id"] for r in orders(settings)
                if r["action"] == "SUBMIT" and r["status"] in ("ACKED", "REPLAYED", "RESENT")}
    print(f"\nR2: broker SIGKILLed and restarted after {killed_at} of {rounds} rounds; orders at the venue "
          f"{len(acks)} (duplicates {len(acks) - len(set(acks))}); acknowledged orders recorded on the orders "
          f"topic {len(recorded & set(acks))} of {len(set(acks))}; missing {len(set(acks) - recorded)}")
    assert len(acks) == len(set(acks))
    assert set(acks) <= recorded  # sent = acknowledged = consumed
    assert len(set(acks)) >= 4 * rounds  # every round's order per product reached the venue
