"""The ``execution.reports`` topic's format: one JSON object per execution report (ack, fill, cancel, reject),
written by the venue adapter and by the order sink for orders the venue never saw."""

from __future__ import annotations

from typing import Any

#: The fields every execution report carries.
REQUIRED_FIELDS = ("client_order_id", "product", "kind", "ts_ns")

_INT64 = (-(2**63), 2**63 - 1)
#: The type of each field the ``execution_reports`` table stores (other fields are carried along, not stored).
_INTS = {"ts_ns": _INT64, "exec_id": _INT64, "order_id": _INT64, "side": (-1, 1)}
_STRINGS = ("client_order_id", "product", "kind", "status", "liquidity", "reason", "source")
_FLOATS = ("price_eur_per_mwh", "last_price_eur_per_mwh", "last_quantity_mw", "cum_quantity_mw",
           "leaves_quantity_mw")


def decode_report(message: dict[str, Any]) -> dict[str, Any]:
    """An execution report as read, checked for the fields the engine needs."""
    for name in REQUIRED_FIELDS:
        if name not in message:
            raise ValueError(f"execution report without {name!r}")
    return message


def check_report(message: dict[str, Any]) -> dict[str, Any]:
    """:func:`decode_report`, and every field the table stores of the type its column holds (null is "not known"
    except for the required fields): what the store needs before it writes a report."""
    decode_report(message)
    for name in REQUIRED_FIELDS:
        if message[name] is None:
            raise ValueError(f"execution report with {name}=null")
    for name, (low, high) in _INTS.items():
        value = message.get(name)
        if value is not None and (type(value) is not int or not low <= value <= high):
            raise ValueError(f"execution report field {name}={value!r} is not an integer in [{low}, {high}]")
    for name in _STRINGS:
        value = message.get(name)
        if value is not None and type(value) is not str:
            raise ValueError(f"execution report field {name}={value!r} is not a string")
    for name in _FLOATS:
        value = message.get(name)
        if value is not None and type(value) not in (int, float):
            raise ValueError(f"execution report field {name}={value!r} is not a number")
    return message
