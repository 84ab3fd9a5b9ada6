"""The ``control`` topic's format (the kill switch): ``{"command": "halt"|"reduce"|"resume", "by", "reason",
"wall_ns"}``, written by ``wattflow kill`` and read by the execution engine."""

from __future__ import annotations

import time
from typing import Any

import orjson


def control_message(command: str, *, by: str = "", reason: str = "", command_id: str | None = None,
                    wall_ns: int | None = None) -> bytes:
    """A kill-switch message for the ``control`` topic (``wattflow kill``); ``command_id`` lets the sender find
    the engine's answer (its ``TRADING_STATE_CHANGED`` event carries it)."""
    message: dict[str, Any] = {"command": command, "by": by, "reason": reason,
                               "wall_ns": time.time_ns() if wall_ns is None else wall_ns}
    if command_id is not None:
        message = {"command": command, "id": command_id, **{k: v for k, v in message.items() if k != "command"}}
    return orjson.dumps(message)


def decode_control(message: dict[str, Any]) -> dict[str, Any]:
    """A control message as read (the engine answers an unknown command with a ``CONTROL_REJECTED`` event)."""
    if "command" not in message:
        raise ValueError("control message without 'command'")
    return message
