"""The ``positions`` topic's format: one JSON object per position row (a product's, or the account ``TOTAL``),
keyed by product; NaN is written as null."""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

import orjson

from wattflow.positions import PositionRow

_FIELDS = tuple(f.name for f in fields(PositionRow))
_FLOATS = ("avg_price_eur_per_mwh", "mark_eur_per_mwh")


def encode_position(row: PositionRow) -> bytes:
    return orjson.dumps({name: getattr(row, name) for name in _FIELDS})


def decode_position(value: bytes | dict[str, Any]) -> PositionRow:
    message = orjson.loads(value) if isinstance(value, bytes | bytearray) else value
    if not isinstance(message, dict):
        raise ValueError("a position row is a JSON object")
    values = {name: message[name] for name in _FIELDS}
    for name in _FLOATS:
        if values[name] is None:
            values[name] = math.nan
    return PositionRow(**values)
