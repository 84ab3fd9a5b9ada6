"""The ``execution.reports`` topic's format: one JSON object per execution report (ack, fill, cancel, reject),
written by the venue adapter and by the order sink for orders the venue never saw."""

from __future__ import annotations

from typing import Any

#: The fields every execution report carries.
REQUIRED_FIELDS = ("client_order_id", "product", "kind", "ts_ns")


def decode_report(message: dict[str, Any]) -> dict[str, Any]:
    """An execution report as read, checked for the fields the engine needs."""
    for name in REQUIRED_FIELDS:
        if name not in message:
            raise ValueError(f"execution report without {name!r}")
    return message
