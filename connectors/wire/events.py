"""The ``events`` topic's format: one JSON object per exceptional event, keyed by its kind, with the component
that recorded it (``source``)."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from connectors.wire.columns import Int64
from wattflow.events import Event


def encode_event(event: Event, source: str) -> bytes:
    return orjson.dumps({"ts_ns": event.ts_ns, "kind": event.kind, "source": source, "product": event.product,
                         "severity": event.severity, "detail": event.detail}, default=str)


class _EventMessage(msgspec.Struct, forbid_unknown_fields=True):
    ts_ns: Int64
    kind: str
    source: str = ""
    product: str | None = None
    severity: str | None = None
    detail: Any = None


def decode_event(value: bytes | dict[str, Any]) -> tuple[Event, str]:
    """An event and the component that recorded it (``source``; "" when the message names none). Strict: a
    missing ``ts_ns`` or ``kind``, an unknown field or a wrong type raise ``ValueError``; a detail that is not an
    object is kept as ``{"detail": value}``."""
    message = (msgspec.json.decode(value, type=_EventMessage) if isinstance(value, bytes | bytearray)
               else msgspec.convert(value, _EventMessage))
    detail = message.detail or {}
    return (Event(message.ts_ns, message.kind, message.product or "", message.severity or "INFO",
                  detail if isinstance(detail, dict) else {"detail": detail}),
            message.source)
