"""The ``events`` topic's format: one JSON object per exceptional event, keyed by its kind, with the component
that recorded it (``source``)."""

from __future__ import annotations

from typing import Any

import orjson

from wattflow.events import Event


def encode_event(event: Event, source: str) -> bytes:
    return orjson.dumps({"ts_ns": event.ts_ns, "kind": event.kind, "source": source, "product": event.product,
                         "severity": event.severity, "detail": event.detail}, default=str)


def decode_event(value: bytes | dict[str, Any]) -> tuple[Event, str]:
    """An event and the component that recorded it."""
    message = orjson.loads(value) if isinstance(value, bytes | bytearray) else value
    if not isinstance(message, dict):
        raise ValueError("an event is a JSON object")
    detail = message.get("detail") or {}
    return (Event(int(message["ts_ns"]), str(message["kind"]), str(message.get("product") or ""),
                  str(message.get("severity") or "INFO"), detail if isinstance(detail, dict) else {"detail": detail}),
            str(message.get("source") or ""))
