"""Exceptional events: feed gaps, outages, rejects, risk denials, kill-switch changes (the ``events`` topic and
table). Each is recorded, and fed back to the models as market access."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """An exceptional event: ``kind`` UPPER_SNAKE, ``detail`` plain data (for the events topic and table)."""

    ts_ns: int
    kind: str
    product: str
    severity: str
    detail: dict[str, Any]
