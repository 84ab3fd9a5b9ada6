"""The ``positions`` topic's format: one JSON object per position row (a product's, or the account ``TOTAL``),
keyed by product; NaN is written as null."""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

import msgspec
import orjson

from wattflow.positions import PositionRow

_FIELDS = tuple(f.name for f in fields(PositionRow))
#: Every float field: a NaN (a flat position's average price, an unknown mark) was written as null.
_FLOATS = tuple(f.name for f in fields(PositionRow) if f.type in ("float", float))


def encode_position(row: PositionRow) -> bytes:
    return orjson.dumps({name: getattr(row, name) for name in _FIELDS})


def decode_position(value: bytes | dict[str, Any]) -> PositionRow:
    """A position row back from its message (null back as NaN). Strict: a missing or unknown field, a wrong type
    or a time beyond 64 bits raise ``ValueError``."""
    message = orjson.loads(value) if isinstance(value, bytes | bytearray) else value
    if not isinstance(message, dict):
        raise ValueError("a position row is a JSON object")
    if set(message) != set(_FIELDS):
        raise ValueError(f"a position row has the fields {list(_FIELDS)}, not {sorted(message)}")
    values = {name: message[name] for name in _FIELDS}
    for name in _FLOATS:
        if values[name] is None:
            values[name] = math.nan
    row = msgspec.convert(values, PositionRow)
    if not -(2**63) <= row.ts_ns < 2**63:
        raise ValueError(f"ts_ns={row.ts_ns} is beyond 64 bits")
    return row
