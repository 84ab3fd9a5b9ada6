"""Ingest against the real servers: every valid record stored once, every bad one dead-lettered.

Each test runs twice: with the ingest flow, and with the store flow (whose raw path is the same code, and which
also reads the dead letters back from ``dlq``: still one row each)."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from connectors.kafka.reader import read_topic
from tests.helpers import book, count, produce, run_ingest, run_store, trade, with_topics
from wattflow.settings import Settings

pytestmark = pytest.mark.stack

Runner = Callable[[Settings], None]


@pytest.fixture(params=["ingest", "store"])
def run_flow(request: pytest.FixtureRequest) -> Runner:
    """The flow that stores the raw topic: the ingest flow, or the store flow."""
    return run_ingest if request.param == "ingest" else run_store


def test_valid_records_are_stored_and_published_bad_ones_dead_lettered(settings: Settings, unique: str,
        run_flow: Runner) -> None:
    source = f"t-{unique}"
    s = with_topics(settings, unique)
    good_trades = [trade(i, source) for i in range(3000)]
    good_book = [book(i, source, level=i % 5) for i in range(2000)]
    bad = [
        b"not json", b"", b'{"type":"trade"', trade(90_001, source, price=-10_000.0),
        trade(90_002, source, price=45.123), trade(90_003, source, quantity=0.05),
        trade(90_004, source, quantity=-1.0), trade(90_005, source, product="DE-LU:2018-10-28T01:07Z:PT15M"),
        trade(90_006, source, ts_ns=1_600_000_000_000_000_000), trade(90_007, source, surprise="field"),
        b'{"type":"trade","ts_ns":"yesterday","product":"x","price_eur_per_mwh":1,"quantity_mw":1,'
        b'"side":"BUY","trade_id":1,"source":"s","seq":1}',
        b'{"type":"quote","ts_ns":1}', b'{"type":"trade","ts_ns":1,"price_eur_per_mwh":NaN}',
    ]
    negative = [trade(80_000 + i, source, price=-499.99 - i) for i in range(3)]
    produce(s, s.topics.raw, good_trades + good_book + bad + negative)
    run_flow(s)

    assert count(s, f"SELECT count() FROM ticks WHERE source = '{source}'") == 3000 + 3
    assert count(s, f"SELECT count() FROM ticks WHERE source = '{source}' AND price_eur_per_mwh < 0") == 3
    assert count(s, f"SELECT count() FROM book WHERE source = '{source}'") == 2000
    assert count(s, f"SELECT count() FROM dlq WHERE topic = '{s.topics.raw}'") == len(bad)
    produced = len(good_trades) + len(good_book) + len(bad) + len(negative)
    stored = count(s, f"SELECT count() FROM ticks WHERE source = '{source}'") + 2000
    assert produced == stored + len(bad)

    letters = [e.event for e in read_topic(s.kafka, s.topics.dlq, idle_timeout_s=2)]
    reasons = sorted(letter["reason"] for letter in letters)
    assert reasons == sorted([
        "MALFORMED_JSON", "EMPTY_MESSAGE", "TRUNCATED", "PRICE_OUT_OF_RANGE", "PRICE_NOT_ON_TICK",
        "QUANTITY_NOT_ON_STEP", "QUANTITY_NOT_POSITIVE", "UNKNOWN_PRODUCT", "PRODUCT_CLOSED", "UNKNOWN_FIELD",
        "WRONG_TYPE", "UNKNOWN_TYPE", "MALFORMED_JSON",
    ])
    for letter in letters:
        assert letter["topic"] == s.topics.raw and letter["offset"] >= 0 and letter["error"]
        assert letter["origin"] == f"{s.topics.raw}[{letter['partition']}]@{letter['offset']}"
    out_of_range = next(letter for letter in letters if letter["reason"] == "PRICE_OUT_OF_RANGE")
    assert "price=-10000.0000" in out_of_range["error"] and "limits=[-9999.00, 9999.00]" in out_of_range["error"]

    ticks = [e.event for e in read_topic(s.kafka, s.topics.ticks, idle_timeout_s=2)]
    assert sorted(t["trade_id"] for t in ticks) == sorted([*range(3000), 80_000, 80_001, 80_002])
    assert all(t["recv_ns"] > 0 for t in ticks)
    per_product: dict[str, list[int]] = {}
    for t in ticks:
        per_product.setdefault(t["product"], []).append(t["seq"])
    assert all(seqs == sorted(seqs) for seqs in per_product.values()), "a product's ticks stay in order"


def test_replaying_the_same_feed_twice_adds_nothing(settings: Settings, unique: str,
        run_flow: Runner) -> None:
    source = f"t-{unique}"
    s = with_topics(settings, unique)
    feed = [trade(i, source) for i in range(2000)] + [book(i, source) for i in range(1000)]
    produce(s, s.topics.raw, feed)
    run_flow(s)
    first = (count(s, f"SELECT count() FROM ticks WHERE source = '{source}'"),
             count(s, f"SELECT count() FROM book WHERE source = '{source}'"))
    again = with_topics(settings, unique + "b")
    produce(again, again.topics.raw, feed)
    run_flow(again)
    second = (count(s, f"SELECT count() FROM ticks WHERE source = '{source}'"),
              count(s, f"SELECT count() FROM book WHERE source = '{source}'"))
    assert first == second == (2000, 1000)


def test_day_ahead_prices_are_stored_and_published(settings: Settings, unique: str,
        run_flow: Runner) -> None:
    s = with_topics(settings, unique)
    source = f"da-{unique}"
    start = 1_540_677_600_000_000_000  # 2018-10-27T22:00Z
    prices = [orjson.dumps({"type": "dayahead", "ts_ns": start - 40_000_000_000_000, "area": "DE-LU",
                            "delivery_start_ns": start + h * 3_600_000_000_000, "duration_min": 60,
                            "price_eur_per_mwh": -12.5 + h, "source": source, "seq": h}) for h in range(25)]
    bad = orjson.dumps({"type": "dayahead", "ts_ns": 1, "area": "DE-LU", "delivery_start_ns": start,
                        "duration_min": 60, "price_eur_per_mwh": 4000.01, "source": source, "seq": 99})
    produce(s, s.topics.raw, [*prices, bad])
    run_flow(s)
    assert count(s, f"SELECT count() FROM dayahead WHERE source = '{source}'") == 25
    assert count(s, f"SELECT count() FROM dlq WHERE topic = '{s.topics.raw}' AND reason = 'PRICE_OUT_OF_RANGE'") == 1
    published = [e.event for e in read_topic(s.kafka, s.topics.dayahead, idle_timeout_s=2)]
    assert len(published) == 25 and published[0]["area"] == "DE-LU"


def test_packed_raw_messages_are_ingested_event_by_event(settings: Settings, unique: str,
        run_flow: Runner) -> None:
    import numpy as np

    from connectors.kafka.replay import pack_messages
    from tests.helpers import product_key

    source = f"p-{unique}"
    s = with_topics(settings, unique)
    events = [trade(i, source) for i in range(4000)] + [book(i, source, level=i % 3) for i in range(4000)]
    events[17] = trade(17, source, price=45.001)  # off the 0.01 tick: dead-lettered alone
    keys = [product_key(v) for v in events]
    values, packed_keys, _ = pack_messages(events, keys, np.arange(len(events), dtype=np.int64), block=500)
    produce(s, s.topics.raw, values, packed_keys)
    run_flow(s)
    assert count(s, f"SELECT count() FROM ticks WHERE source = '{source}'") == 3999
    assert count(s, f"SELECT count() FROM book WHERE source = '{source}'") == 4000
    (letter,) = [e.event for e in read_topic(s.kafka, s.topics.dlq, idle_timeout_s=2)]
    assert letter["reason"] == "PRICE_NOT_ON_TICK" and "#" in letter["origin"]
