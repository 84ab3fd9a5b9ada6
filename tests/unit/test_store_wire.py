"""The derived topics' wire formats back to what was written, and what the store makes of each message.

Round trips use the real encoders on real batches (features and signals from the real operators); "exact" means
every float bit for bit (NaN comes back as NaN, -0.0 as -0.0) and every other value equal.
"""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from connectors.kafka.sink import KafkaRecords
from connectors.questdb.execution_rows import event_rows, order_rows
from connectors.questdb.position_rows import position_rows
from connectors.questdb.rows import dead_letter_rows, feature_rows, signal_rows
from connectors.store_outputs import decode_derived, derived_outputs
from connectors.wire.dead_letters import dead_letter_records, decode_dead_letter_record
from connectors.wire.events import decode_event, encode_event
from connectors.wire.features import decode_features, feature_records
from connectors.wire.orders import decode_order_record, encode_order_record
from connectors.wire.positions import decode_position, encode_position
from connectors.wire.signals import decode_signals, signal_records
from connectors.wire.signals import signal_rows as signal_row_objects
from tests.helpers import keyed_diff
from tests.store_data import dead_letters, events, feature_batches, order_records, positions, signal_batches
from wattflow.batches import RawBatch
from wattflow.features import FEATURE_NAMES, FeatureBatch
from wattflow.signals import SignalBatch

T0 = 1_900_000_000_000_000_000


def _same_floats(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit, except that any NaN equals any NaN (JSON null carries no NaN payload)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    keep = ~np.isnan(a)
    return bool(np.array_equal(a[keep].view(np.int64), b[keep].view(np.int64)))


def _messages(records: KafkaRecords) -> list[bytes]:
    return list(records.values)


def _batch(topic: str, values: list[bytes | None], partition: int = 1, first_offset: int = 40) -> RawBatch:
    n = len(values)
    return RawBatch(topic, partition, values, np.arange(first_offset, first_offset + n, dtype=np.int64),
                    np.arange(n, dtype=np.int64) * 1_000_000 + T0)


def test_features_round_trip_exactly_with_nan() -> None:
    batches = feature_batches(5_000_000)
    odd = FeatureBatch("DE-LU:2018-10-28T01:00Z:PT15M", np.array([0, 2**62], dtype=np.int64),
                       np.array([-(2**63), 2**63 - 1], dtype=np.int64), np.zeros((len(FEATURE_NAMES), 2)))
    odd.values[0] = [-0.0, 5e-324]
    odd.values[1] = [np.nan, 1.7976931348623157e308]
    for batch in [*batches, odd]:
        (message,) = _messages(feature_records(batch, "features"))
        back = decode_features(message)
        assert back.product == batch.product
        assert back.ts_ns.dtype == np.int64 and np.array_equal(back.ts_ns, batch.ts_ns)
        assert np.array_equal(back.trade_id, batch.trade_id)
        assert _same_floats(back.values, batch.values)
        assert decode_features(orjson.loads(message)).values.shape == batch.values.shape
    assert any(np.isnan(b.values).any() for b in batches)


def test_signals_round_trip_exactly_with_nan_and_their_market() -> None:
    batches = signal_batches(feature_batches(6_000_000))
    assert any(np.isnan(b.strength).any() for b in batches)
    for batch in batches:
        for message in _messages(signal_records(batch, "signals")):
            back = decode_signals(message)
            assert (back.product, back.model) == (batch.product, batch.model)
            assert back.direction.dtype == np.int8 and np.array_equal(back.direction, batch.direction)
            assert np.array_equal(back.ts_ns, batch.ts_ns) and np.array_equal(back.trade_id, batch.trade_id)
            for name in ("strength", "target_position_mw", "confidence", "horizon_s"):
                assert _same_floats(getattr(back, name), getattr(batch, name)), name
            assert set(back.market) == set(batch.market)
            assert all(_same_floats(back.market[k], batch.market[k]) for k in batch.market)
            # The execution flow's reader of the same message agrees.
            assert [r.trade_id for r in signal_row_objects(orjson.loads(message))] == batch.trade_id.tolist()


def test_a_large_batch_splits_and_every_part_decodes() -> None:
    values = np.random.default_rng(1).normal(size=(len(FEATURE_NAMES), 2_500))
    big = FeatureBatch("DE-LU:2018-10-28T01:00Z:PT15M", np.arange(2_500, dtype=np.int64),
                       np.arange(2_500, dtype=np.int64), values)
    parts = [decode_features(m) for m in _messages(feature_records(big, "features"))]
    assert [len(p) for p in parts] == [1_000, 1_000, 500]
    assert _same_floats(np.concatenate([p.values for p in parts], axis=1), big.values)


@pytest.mark.parametrize("change", [
    lambda m: m["columns"].pop("zscore"),
    lambda m: m["columns"].update(extra=[1.0]),
    lambda m: m["columns"].update(zscore=["1.5"]),
    lambda m: m["columns"].update(zscore=[True]),
    lambda m: m["columns"].update(trade_id=[1.5]),
    lambda m: m["columns"].update(trade_id=[2**64]),
    lambda m: m["columns"].update(zscore=[1.0, 2.0]),
    lambda m: m.update(kind="signals"),
    lambda m: m.update(product=None),
])
def test_a_features_message_that_is_not_exactly_the_format_is_refused(change: object) -> None:
    batch = FeatureBatch("DE-LU:2018-10-28T01:00Z:PT15M", np.array([1], dtype=np.int64), np.array([1], dtype=np.int64),
                         np.ones((len(FEATURE_NAMES), 1)))
    message = orjson.loads(feature_records(batch, "features").values[0])
    change(message)  # type: ignore[operator]
    with pytest.raises(ValueError):
        decode_features(json.dumps(message).encode())  # json: orjson refuses 2**64


@pytest.mark.parametrize("change", [
    lambda m: m["columns"].update(direction=[2]),
    lambda m: m["columns"].pop("horizon_s"),
    lambda m: m["market"].update(mid_eur_per_mwh=["x"]),
    lambda m: m.pop("model"),
])
def test_a_signals_message_that_is_not_exactly_the_format_is_refused(change: object) -> None:
    batch = SignalBatch("DE-LU:2018-10-28T01:00Z:PT15M", "m", np.array([1], dtype=np.int64),
                        np.array([1], dtype=np.int64), np.array([1], dtype=np.int8), np.ones(1), np.ones(1),
                        np.ones(1), np.ones(1), {"mid_eur_per_mwh": np.ones(1)})
    message = orjson.loads(signal_records(batch, "signals").values[0])
    change(message)  # type: ignore[operator]
    with pytest.raises(ValueError):
        decode_signals(orjson.dumps(message))


def test_order_records_positions_and_events_give_the_same_rows_through_their_topic() -> None:
    """A flow that writes a record itself and the store that writes it from the topic make the same row, so the
    dedup keys fold the two."""
    records = order_records(T0, "u1")
    back = [decode_order_record(encode_order_record(r)) for r in records]
    assert order_rows(back).frame.equals(order_rows(records).frame)
    rows = positions(T0)
    assert position_rows([decode_position(encode_position(r)) for r in rows]).frame.equals(position_rows(rows).frame)
    items = events(T0)
    decoded = [decode_event(encode_event(e, source)) for e, source in items]
    assert [s for _, s in decoded] == [s for _, s in items]
    direct = event_rows([e for e, _ in items], [s for _, s in items]).frame
    assert event_rows([e for e, _ in decoded], [s for _, s in decoded]).frame.equals(direct)
    assert direct["event_id"].nunique() == len(items) - 1  # the same event by two components: one id, two sources


def test_two_outcomes_of_one_command_are_two_rows_and_a_replay_is_the_same_row() -> None:
    blocked, acked, *_ = order_records(T0, "u2")
    frame = order_rows([blocked, acked, blocked]).frame
    keys = list(zip(frame.ts, frame.client_order_id, frame.action, frame.status, frame.answered_ts, strict=True))
    assert keys[0] != keys[1] and keys[0] == keys[2]
    never = order_rows(order_records(T0, "u3")[-1:]).frame
    assert never.answered_ts.isna().all()  # an order never sent has no answer time: NULL


def test_dead_letters_round_trip_with_their_origin() -> None:
    letters = dead_letters(T0, ["signals.x", "md.ticks.x"])
    back = [decode_dead_letter_record(m) for m in dead_letter_records(letters, "dlq").values]
    assert [str(d.origin) for d in back] == ["signals.x[1]@17", "md.ticks.x[0]@5#3", "/feeds/signals.x.jsonl:12"]
    assert dead_letter_rows(back).frame.equals(dead_letter_rows(letters).frame)


def test_every_derived_topic_message_that_does_not_decode_is_a_dead_letter_with_its_origin() -> None:
    kinds = {"f": "features", "s": "signals", "o": "orders", "r": "reports", "e": "events", "p": "positions",
             "d": "dlq"}
    good = {
        "f": feature_records(feature_batches(7_000_000, trades=20)[0], "f").values[0],
        "s": signal_records(signal_batches(feature_batches(7_100_000, trades=20))[0], "s").values[0],
        "o": encode_order_record(order_records(T0, "u4")[0]),
        "r": orjson.dumps({"client_order_id": "c", "product": "DE-LU:x", "kind": "ack", "ts_ns": T0, "exec_id": 1}),
        "e": encode_event(*events(T0)[0]),
        "p": encode_position(positions(T0)[0]),
        "d": dead_letter_records(dead_letters(T0, ["a", "b"])[:1], "d").values[0],
    }
    bad = [b"", None, b"not json", b"[1, 2]", b'{"ts_ns": -5}', b'{"ts_ns": "1"}']
    for topic, kind in kinds.items():
        values = [good[topic], *bad, good[topic]]
        decoded, dead = decode_derived(_batch(topic, values), kind)
        assert len(decoded) == 2 and len(dead) == len(bad), kind
        assert [str(d.origin) for d in dead] == [f"{topic}[1]@{41 + i}" for i in range(len(bad))]
        assert {d.reason for d in dead} == {f"BAD_{kind.upper()}_MESSAGE"}
        assert [d.ts_ns for d in dead] == [T0 + (1 + i) * 1_000_000 for i in range(len(bad))]
        assert all(d.error for d in dead) and dead[2].payload == b"not json"
        outputs = derived_outputs(_batch(topic, values), kinds, "d")
        tables = [rows.table for rows in outputs.rows]
        assert tables[-1] == "dlq" and len(outputs.rows[-1]) == len(bad)
        # Published on dlq too, except what came from dlq itself (it would be read again: a loop).
        assert [len(r) for r in outputs.records] == ([] if topic == "d" else [len(bad)])


def test_a_time_before_1970_is_a_dead_letter_not_a_write_questdb_refuses() -> None:
    early = order_records(-1_000, "u5")[0]
    decoded, dead = decode_derived(_batch("o", [encode_order_record(early)]), "orders")
    assert decoded == [] and "before 1970" in dead[0].error


def test_features_and_signals_of_many_messages_are_one_frame() -> None:
    features = feature_batches(8_000_000, trades=60)
    signals = signal_batches(features)
    assert len(feature_rows(features)) == 60 and feature_rows(features).frame["product"].nunique() == len(features)
    assert len(signal_rows(signals)) == sum(len(s) for s in signals)
    one = feature_rows(features[0]).frame.reset_index(drop=True)
    many = feature_rows(features).frame.iloc[:len(features[0])].reset_index(drop=True)
    assert one.astype({"product": object, "area": object}).equals(many.astype({"product": object, "area": object}))


def test_the_keyed_comparison_sees_a_lost_row_and_a_doubled_one() -> None:
    """The check every store test relies on: it goes red on a lost row, on a doubled row (even when a loss would
    make up for it in a count) and on a changed value."""
    rows = [(1, "a", 1.5), (2, "b", None), (3, "c", 2.0)]
    assert keyed_diff(rows, list(rows)).same
    assert keyed_diff(rows, rows[:2]).missing == [((3, "c", 2.0), 1)]
    doubled = keyed_diff(rows, [rows[0], rows[0], rows[1]])
    assert doubled.extra == [((1, "a", 1.5), 1)] and doubled.missing == [((3, "c", 2.0), 1)]
    assert not keyed_diff(rows, [rows[0], rows[1], (3, "c", 2.5)]).same
