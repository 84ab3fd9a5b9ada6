"""The raw-message decoder: single and packed messages, strictness, and where a bad event came from."""

from __future__ import annotations

import numpy as np
import orjson

from connectors.kafka.replay import pack_messages
from connectors.wire.market import decode_batch, encode_events
from wattflow.batches import RawBatch

OPEN_TS_NS = 1_540_680_000_000_000_000


def _trade(i: int, product: str = "DE-LU:2018-10-28T01:00Z:PT15M", **extra: object) -> bytes:
    return orjson.dumps({"type": "trade", "ts_ns": OPEN_TS_NS + i, "product": product, "price_eur_per_mwh": -12.5,
                         "quantity_mw": 0.7, "side": "SELL", "trade_id": i, "source": "t", "seq": i, **extra})


def _book(i: int) -> bytes:
    return orjson.dumps({"type": "book", "ts_ns": OPEN_TS_NS + i, "product": "DE-LU:2018-10-28T01:00Z:PT15M",
                         "side": "BUY", "level": 0, "price_eur_per_mwh": 10.0, "quantity_mw": 0.0, "source": "t",
                         "seq": i})


def _raw(values: list[bytes]) -> RawBatch:
    n = len(values)
    return RawBatch("raw", 2, list(values), np.arange(100, 100 + n, dtype=np.int64), np.full(n, 7, dtype=np.int64))


def test_single_messages_decode_into_columns_with_their_origin() -> None:
    batch = decode_batch(_raw([_trade(1), _book(2), _trade(3)]))
    assert batch.ticks.trade_id.tolist() == [1, 3]
    assert batch.ticks.offset.tolist() == [100, 102] and batch.ticks.index.tolist() == [-1, -1]
    assert batch.ticks.side.tolist() == [-1, -1] and batch.ticks.price_eur_per_mwh.tolist() == [-12.5, -12.5]
    assert batch.book.quantity_mw.tolist() == [0.0] and batch.book.offset.tolist() == [101]
    assert batch.ticks.wire[0] == _trade(1)
    assert batch.dead == []


def test_packed_messages_decode_event_by_event_and_forward_canonical_bytes() -> None:
    packed = b'{"events":[' + b",".join([_trade(1), _book(2), _trade(3)]) + b"]}"
    batch = decode_batch(_raw([packed, _trade(4)]))
    assert batch.ticks.trade_id.tolist() == [1, 3, 4]
    assert batch.ticks.index.tolist() == [0, 2, -1] and batch.ticks.offset.tolist() == [100, 100, 101]
    assert batch.book.index.tolist() == [1]
    assert orjson.loads(b"[" + encode_events(batch.ticks.wire.tolist()) + b"]")[0] == orjson.loads(_trade(1))
    assert encode_events([_trade(4)]) == _trade(4)


def test_a_bad_event_inside_a_packed_message_is_dead_lettered_alone() -> None:
    bad = _trade(2).replace(b'"quantity_mw":0.7', b'"quantity_mw":"0.7"')
    packed = b'{"events":[' + b",".join([_trade(1), bad, _trade(3), b'{"type":"nope"}']) + b"]}"
    batch = decode_batch(_raw([packed]))
    assert batch.ticks.trade_id.tolist() == [1, 3]
    assert [(str(d.origin), d.reason) for d in batch.dead] == [("raw[2]@100#1", "WRONG_TYPE"),
                                                                 ("raw[2]@100#3", "UNKNOWN_TYPE")]


def test_a_broken_envelope_is_one_dead_letter() -> None:
    batch = decode_batch(_raw([b'{"events":[' + _trade(1), b'{"events":{"a":1}}', b'{"events":[],"x":1}']))
    assert [d.reason for d in batch.dead] == ["TRUNCATED", "BAD_ENVELOPE", "BAD_ENVELOPE"]
    assert [str(d.origin) for d in batch.dead] == ["raw[2]@100", "raw[2]@101", "raw[2]@102"]


def test_pack_messages_groups_by_key_and_keeps_each_keys_order() -> None:
    values = [_trade(i, product=f"DE-LU:2018-10-28T0{1 + i % 3}:00Z:PT15M") for i in range(10)]
    keys = [orjson.loads(v)["product"] for v in values]
    packed, packed_keys, ts = pack_messages(values, keys, np.arange(10, dtype=np.int64) * 5, block=6)
    assert len(packed) == 6 and sorted(ts.tolist()) == ts.tolist()
    events = []
    for key, message in zip(packed_keys, packed, strict=True):
        inner = orjson.loads(message)["events"]
        assert {e["product"] for e in inner} == {key}
        events.extend(inner)
    assert sorted(e["trade_id"] for e in events) == list(range(10))
    batch = decode_batch(_raw(packed))
    assert sorted(batch.ticks.trade_id.tolist()) == list(range(10))


def test_clean_topic_messages_decode_with_their_own_receive_times() -> None:
    from connectors.wire.packed import packed_records

    first = decode_batch(_raw([_trade(1), _trade(2), _book(3)]))
    ticks = first.ticks
    records = packed_records(ticks.product, ticks.wire, np.array([11, 12], dtype=np.int64), "md.ticks")
    again = decode_batch(_raw(records.values))
    assert again.ticks.trade_id.tolist() == [1, 2]
    assert again.ticks.recv_ns.tolist() == [11, 12]
    assert again.dead == []


def test_features_and_signals_of_a_large_batch_split_into_messages_under_a_megabyte() -> None:


    from connectors.wire.columns import MAX_ROWS_PER_MESSAGE
    from connectors.wire.features import feature_records
    from connectors.wire.signals import signal_records
    from wattflow.features import FEATURE_NAMES, FeatureBatch
    from wattflow.signals import MARKET_COLUMNS, SignalBatch

    n = 2 * MAX_ROWS_PER_MESSAGE + 7
    rng = np.random.default_rng(1)
    ts = np.arange(n, dtype=np.int64) * 1_000_000_000 + 1_540_000_000_000_000_000
    features = FeatureBatch("DE-LU:2018-10-28T12:00Z:PT60M", ts, np.arange(n, dtype=np.int64),
                            rng.normal(size=(len(FEATURE_NAMES), n)))
    records = feature_records(features, "features")
    assert len(records.values) == 3 and all(len(v) < 1_000_000 for v in records.values)
    rows = [orjson.loads(v)["columns"]["trade_id"] for v in records.values]
    assert [i for part in rows for i in part] == list(range(n))
    signals = SignalBatch(features.product, "m", ts, np.arange(n, dtype=np.int64), np.ones(n, dtype=np.int8),
                          rng.random(n), rng.random(n), rng.random(n), rng.random(n),
                          {name: rng.random(n) for name in MARKET_COLUMNS})
    records = signal_records(signals, "signals")
    assert len(records.values) == 3 and all(len(v) < 1_000_000 for v in records.values)
    decoded = [orjson.loads(v) for v in records.values]
    assert [t for d in decoded for t in d["columns"]["ts_ns"]] == ts.tolist()
    assert [v for d in decoded for v in d["market"]["volume_mw"]] == signals.market["volume_mw"].tolist()
