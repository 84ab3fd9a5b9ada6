"""The clean topics' format (``md.ticks``, ``md.book``, ``md.dayahead``): packed messages.

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
from connectors.wire.market import encode_events

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
