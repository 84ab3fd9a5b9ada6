"""The ``orders`` topic's format: one JSON object per command and outcome (an :class:`OrderRecord`), keyed by
client order id."""

from __future__ import annotations

import math
from typing import Any

import orjson

from wattflow.enums import OrderAction
from wattflow.orders import OrderRecord

_FIELDS = OrderRecord.__slots__


def encode_order_record(record: OrderRecord) -> bytes:
    return orjson.dumps({name: getattr(record, name) for name in _FIELDS})


def decode_order_record(value: bytes | dict[str, Any]) -> OrderRecord:
    """An order record back from its message (NaN was written as null and comes back as NaN)."""
    message = orjson.loads(value) if isinstance(value, bytes | bytearray) else value
    if not isinstance(message, dict):
        raise ValueError("an order record is a JSON object")
    fields: dict[str, Any] = {}
    for name in _FIELDS:
        if name in message:
            fields[name] = message[name]
    for name in ("price_eur_per_mwh", "quantity_mw", "urgency", "arrival_mid_eur_per_mwh",
                 "estimated_slippage_eur_per_mwh"):
        if fields.get(name) is None:
            fields[name] = math.nan
    fields["action"] = OrderAction(fields["action"])
    return OrderRecord(**fields)
