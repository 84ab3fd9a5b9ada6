"""The execution engine's three input topics (``signals``, ``execution.reports``, ``control``), decoded together
from one raw batch; what does not decode becomes a dead letter with its origin."""

from __future__ import annotations

from typing import Any

import orjson

from connectors.wire.control import decode_control
from connectors.wire.reports import decode_report
from connectors.wire.signals import signal_rows
from wattflow.batches import DeadLetter, RawBatch
from wattflow.errors import Origin
from wattflow.execution import ExecutionInput
from wattflow.signals import SignalRow


def decode_inputs(batch: RawBatch, topics: dict[str, str]) -> ExecutionInput:
    """Decode a batch of one of the three topics; what does not decode becomes a dead letter with its origin."""
    kind = topics.get(batch.topic, "")
    signals: list[SignalRow] = []
    reports: list[dict[str, Any]] = []
    controls: list[dict[str, Any]] = []
    dead: list[DeadLetter] = []
    for value, offset, ts_ns in zip(batch.values, batch.offsets.tolist(), batch.timestamps_ns.tolist(), strict=True):
        try:
            message = orjson.loads(value or b"")
            if not isinstance(message, dict):
                raise ValueError("expected a JSON object")
            if kind == "signals":
                signals += signal_rows(message)
            elif kind == "reports":
                reports.append(decode_report(message))
            else:
                controls.append(decode_control(message))
        except (ValueError, KeyError, TypeError, IndexError, orjson.JSONDecodeError) as error:
            reason = f"BAD_{kind.upper()}_MESSAGE" if kind else "BAD_MESSAGE"
            dead.append(DeadLetter(int(ts_ns), Origin(batch.topic, batch.partition, int(offset)), reason,
                                   f"{type(error).__name__}: {error}", value or b""))
    return ExecutionInput(signals, reports, controls, dead)
