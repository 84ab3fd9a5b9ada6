"""What goes into and out of the execution engine as one step of a flow.

In: :class:`ExecutionInput` (signal rows, execution reports, control commands and the dead letters of what
did not decode); out: :class:`EngineOutput` (commands for the order sink, events, position rows, the
execution reports the engine applied, dead letters).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wattflow.batches import DeadLetter
from wattflow.events import Event
from wattflow.orders import Command
from wattflow.positions import PositionRow
from wattflow.signals import SignalRow


@dataclass(frozen=True, slots=True)
class ExecutionInput:
    """What one raw batch holds for the engine: signal rows, execution reports, control commands, dead letters."""

    signals: list[SignalRow]
    reports: list[dict[str, Any]]
    controls: list[dict[str, Any]]
    dead: list[DeadLetter]


@dataclass(slots=True)
class EngineOutput:
    commands: list[Command] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    positions: list[PositionRow] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)  # input the flow could not decode
    #: How far the engine has read each (product, model)'s signals: the event time of the last row it acted on.
    #: It never acts on a row of that pair at or before this time again (the order sink's orphan watch uses it).
    progress_ns: dict[tuple[str, str], int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.commands or self.events or self.positions or self.reports or self.dead)

    def extend(self, other: EngineOutput) -> None:
        self.commands += other.commands
        self.events += other.events
        self.positions += other.positions
        self.reports += other.reports
        self.dead += other.dead
        for key, ts_ns in other.progress_ns.items():
            if ts_ns > self.progress_ns.get(key, -1):
                self.progress_ns[key] = ts_ns
