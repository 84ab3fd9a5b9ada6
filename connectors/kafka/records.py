"""Batches as Kafka records for the clean topics (``md.ticks``, ``md.book``, ``md.dayahead``) and ``dlq``.

Clean topics carry **packed** messages: one message per product and input batch, holding that product's
events in order, keyed by product (area is its prefix) so that a product stays on one partition::

    {"product": "DE-LU:2018-10-28T01:00Z:PT15M", "recv_ns": [...], "events": [{raw trade}, ...]}

A message per tick would cost about 1 us of produce call each, more than all the rest of the ingest path;
packed, the cost is per product and batch. Each event is the raw message exactly as validated (the strict
decoder guarantees its canonical field set) and ``recv_ns[i]`` is when event ``i`` reached Kafka.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd

from connectors.kafka.sink import KafkaRecords
from connectors.wire import encode_dead_letter, encode_events
from operators.features import FEATURE_NAMES, FeatureBatch
from operators.models import SignalBatch
from wattflow.batches import DeadLetter

#: At most this many events in one packed message (keeps messages well under Kafka's 1 MB default).
MAX_EVENTS_PER_MESSAGE = 2_000


def packed_records(keys: np.ndarray, wire: np.ndarray, recv_ns: np.ndarray, topic: str,
                   key_field: str = "product") -> KafkaRecords:
    """Group rows by key (stable, so each key's events keep their order) into packed messages."""
    if not len(keys):
        return KafkaRecords(topic, [], [], [])
    codes, uniques = pd.factorize(keys)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    out_keys: list[str] = []
    values: list[bytes] = []
    stamps: list[int] = []
    wire_sorted = wire[order].tolist()
    recv_sorted = recv_ns[order]
    starts = [0, *bounds.tolist()]
    ends = [*bounds.tolist(), len(order)]
    for start, end in zip(starts, ends, strict=True):
        key = uniques[codes[order[start]]]
        for chunk in range(start, end, MAX_EVENTS_PER_MESSAGE):
            stop = min(chunk + MAX_EVENTS_PER_MESSAGE, end)
            recv = recv_sorted[chunk:stop]
            values.append(b"".join((
                b'{"', key_field.encode(), b'":', orjson.dumps(key),
                b',"recv_ns":', orjson.dumps(recv, option=orjson.OPT_SERIALIZE_NUMPY),
                b',"events":[', encode_events(wire_sorted[chunk:stop]), b"]}",
            )))
            out_keys.append(key)
            stamps.append(int(recv[-1]) // 1_000_000)
    return KafkaRecords(topic, out_keys, values, stamps)


def unpack(value: bytes) -> tuple[str, list[int], list[dict[str, Any]]]:
    """The key, receive times and events of a packed message (for consumers that want dicts)."""
    message = orjson.loads(value)
    key = message.get("product", message.get("area"))
    return key, message["recv_ns"], message["events"]


def dead_letter_records(letters: list[DeadLetter], topic: str) -> KafkaRecords:
    """One message per dead letter, keyed by its origin, with reason, error text and the payload."""
    return KafkaRecords(topic, [str(d.origin) for d in letters], [encode_dead_letter(d) for d in letters],
                        [d.ts_ns // 1_000_000 for d in letters])


#: At most this many rows in one features or signals message (a features row is about 40 numbers: ~0.6 MB).
MAX_ROWS_PER_MESSAGE = 1_000


def _chunks(n: int) -> list[slice]:
    return [slice(start, min(start + MAX_ROWS_PER_MESSAGE, n)) for start in range(0, n, MAX_ROWS_PER_MESSAGE)]


def feature_records(features: FeatureBatch, topic: str) -> KafkaRecords:
    """Columnar messages per product and batch, ``{"product", "kind": "features", "columns": {...}}``, at most
    ``MAX_ROWS_PER_MESSAGE`` rows each (so no message nears Kafka's 1 MB limit, whatever the batch)."""
    keys, values, stamps = [], [], []
    for part in _chunks(len(features.ts_ns)):
        columns = {"ts_ns": features.ts_ns[part], "trade_id": features.trade_id[part],
                   **{name: features.values[k][part] for k, name in enumerate(FEATURE_NAMES)}}
        values.append(orjson.dumps({"product": features.product, "kind": "features", "columns": columns},
                                   option=orjson.OPT_SERIALIZE_NUMPY))
        keys.append(features.product)
        stamps.append(int(features.ts_ns[part][-1]) // 1_000_000)
    return KafkaRecords(topic, keys, values, stamps)


def signal_records(signals: SignalBatch, topic: str) -> KafkaRecords:
    """Columnar messages per product, model and batch: ``{"product", "model", "kind": "signals",
    "columns": {...}, "market": {...}}``; ``market`` holds the sizing inputs at each signal (NaN as null). At
    most ``MAX_ROWS_PER_MESSAGE`` rows each."""
    keys, values, stamps = [], [], []
    for part in _chunks(len(signals.ts_ns)):
        columns = {"ts_ns": signals.ts_ns[part], "trade_id": signals.trade_id[part],
                   "direction": signals.direction[part], "strength": signals.strength[part],
                   "target_position_mw": signals.target_position_mw[part], "confidence": signals.confidence[part],
                   "horizon_s": signals.horizon_s[part]}
        market = {name: column[part] for name, column in signals.market.items()}
        values.append(orjson.dumps({"product": signals.product, "model": signals.model, "kind": "signals",
                                    "columns": columns, "market": market}, option=orjson.OPT_SERIALIZE_NUMPY))
        keys.append(signals.product)
        stamps.append(int(signals.ts_ns[part][-1]) // 1_000_000)
    return KafkaRecords(topic, keys, values, stamps)
