"""The ``orders`` topic's format: one JSON object per command and outcome (an :class:`OrderRecord`), keyed by
client order id."""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

import msgspec
import orjson

from wattflow.orders import OrderRecord

_FIELDS = OrderRecord.__slots__
#: Float fields whose NaN was written as null (``display_quantity_mw`` is None when the order is no iceberg).
_NAN_FIELDS = tuple(f.name for f in fields(OrderRecord) if f.type in ("float", float))
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
#: Integer fields and the range their table column holds (``side`` is -1, 0 or +1).
_INT_RANGES = {"ts_ns": _INT64, "side": (-1, 1), "signal_ts_ns": _INT64, "attempts": _INT32, "latency_ns": _INT64,
               "decided_wall_ns": _INT64, "answered_wall_ns": _INT64}


def encode_order_record(record: OrderRecord) -> bytes:
    return orjson.dumps({name: getattr(record, name) for name in _FIELDS})


def decode_order_record(value: bytes | dict[str, Any]) -> OrderRecord:
    """An order record back from its message (NaN was written as null and comes back as NaN). Strict: a missing
    required field, an unknown field, a wrong type, an unknown action or an integer out of its column's range
    raise ``ValueError``."""
    message = orjson.loads(value) if isinstance(value, bytes | bytearray) else value
    if not isinstance(message, dict):
        raise ValueError("an order record is a JSON object")
    unknown = set(message) - set(_FIELDS)
    if unknown:
        raise ValueError(f"unknown fields in an order record: {sorted(unknown)}")
    values = dict(message)
    for name in _NAN_FIELDS:
        if name in values and values[name] is None:
            values[name] = math.nan
    record = msgspec.convert(values, OrderRecord)
    for name, (low, high) in _INT_RANGES.items():
        if not low <= getattr(record, name) <= high:
            raise ValueError(f"{name}={getattr(record, name)} is outside [{low}, {high}]")
    return record
