"""Property tests: whatever bytes arrive, decoding and validation never raise and never lose a message."""

from __future__ import annotations

import math

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.wire.market import decode_batch
from operators.validate import ProductWindows, validate_batch
from wattflow.batches import RawBatch

OPEN_TS_NS = 1_540_680_000_000_000_000
PRODUCTS = ["DE-LU:2018-10-28T01:00Z:PT15M", "DE-LU:2018-10-28T05:00Z:PT60M"]

numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64), st.integers(-(2**63), 2**63 - 1),
    st.just(1e308), st.just(-0.0), st.decimals(allow_nan=False, allow_infinity=False, places=3).map(float),
)
field_values = st.one_of(
    numbers, st.text(max_size=12), st.booleans(), st.none(), st.lists(st.integers(-1000, 1000), max_size=2),
)


def _valid_trade(i: int) -> dict[str, object]:
    return {"type": "trade", "ts_ns": OPEN_TS_NS + i, "product": PRODUCTS[i % 2], "price_eur_per_mwh": 45.12,
            "quantity_mw": 1.5, "side": "BUY", "trade_id": i, "source": "fuzz", "seq": i}


@st.composite
def mutated_message(draw: st.DrawFn) -> bytes:
    message = _valid_trade(draw(st.integers(0, 10_000)))
    action = draw(st.sampled_from(["keep", "replace", "drop", "add", "truncate", "garbage", "nan", "closed"]))
    if action == "replace":
        message[draw(st.sampled_from(sorted(message)))] = draw(field_values)
    elif action == "drop":
        message.pop(draw(st.sampled_from(sorted(message))))
    elif action == "add":
        message[draw(st.text(min_size=1, max_size=8))] = draw(field_values)
    elif action == "closed":
        message["ts_ns"] = OPEN_TS_NS + 10**15
    if action == "garbage":
        return draw(st.binary(max_size=64))
    encoded = orjson.dumps(message)
    if draw(st.booleans()) and action == "replace":
        encoded = encoded.replace(b'"seq":', b'"seq":123456789012345678901234567890,"x":', 1)
    if action == "truncate":
        encoded = encoded[: draw(st.integers(0, max(len(encoded) - 1, 0)))]
    if action == "nan":
        encoded = encoded.replace(b"45.12", b"NaN")
    return encoded


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(mutated_message(), min_size=1, max_size=8), min_size=1, max_size=10))
def test_every_event_of_packed_messages_is_either_valid_or_dead_lettered(frames: list[list[bytes]]) -> None:
    values = [b'{"events":[' + b",".join(frame) + b"]}" for frame in frames]
    raw = RawBatch("fuzz", 0, values, np.arange(len(values), dtype=np.int64), np.ones(len(values), dtype=np.int64))
    checked = validate_batch(decode_batch(raw), ProductWindows())
    # What a message holds, by an independent parser: its events, or one unusable message.
    expected = 0
    for value in values:
        try:
            envelope = orjson.loads(value)
        except orjson.JSONDecodeError:
            expected += 1
            continue
        events = envelope.get("events")
        expected += len(events) if isinstance(events, list) and len(envelope) == 1 else 1
    assert checked.valid + len(checked.dead) == expected
    for letter in checked.dead:
        assert letter.reason.isupper() and str(letter.origin).startswith("fuzz[0]@")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated_message(), min_size=1, max_size=40))
def test_every_message_is_either_valid_or_dead_lettered(values: list[bytes]) -> None:
    raw = RawBatch("fuzz", 0, list(values), np.arange(len(values), dtype=np.int64),
                   np.full(len(values), 1, dtype=np.int64))
    checked = validate_batch(decode_batch(raw), ProductWindows())
    assert checked.valid + len(checked.dead) == len(values)
    accounted = [*checked.ticks.offset.tolist(), *(d.origin.offset for d in checked.dead)]
    assert sorted(accounted) == list(range(len(values)))
    for letter in checked.dead:
        assert letter.reason.isupper() and letter.error and letter.origin.topic == "fuzz"
    prices = checked.ticks.price_eur_per_mwh
    assert np.all(np.isfinite(prices)) and np.all(np.abs(prices) <= 9999)
    assert all(math.isclose(q * 10, round(q * 10), abs_tol=1e-6) and q > 0 for q in checked.ticks.quantity_mw)
