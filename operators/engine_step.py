"""The execution engine as a Bytewax step: one engine for the whole account, snapshotted for recovery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bytewax import operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulLogic

from operators.execution import EngineSettings, EngineState, ExecutionEngine
from wattflow.execution import EngineOutput, ExecutionInput

ACCOUNT = "account"


class _EngineLogic(StatefulLogic[ExecutionInput, EngineOutput, EngineState]):
    """The engine as a Bytewax stateful step, with a wall-clock heartbeat so the sink makes progress."""

    def __init__(self, settings: EngineSettings, state: EngineState | None, heartbeat: timedelta) -> None:
        self.engine = ExecutionEngine(settings, state)
        self.heartbeat = heartbeat
        self._next = datetime.now(UTC) + heartbeat

    def on_item(self, value: ExecutionInput) -> tuple[list[EngineOutput], bool]:
        out = EngineOutput()
        # Control first: a kill switch in the same batch as signals must win over them.
        for command in value.controls:
            out.extend(self.engine.on_control(command))
        if value.reports:
            out.extend(self.engine.on_reports(value.reports))
        if value.signals:
            out.extend(self.engine.on_signals(value.signals))
        out.dead += value.dead
        self._next = datetime.now(UTC) + self.heartbeat
        return [out], StatefulLogic.RETAIN

    def on_notify(self) -> tuple[list[EngineOutput], bool]:
        self._next = datetime.now(UTC) + self.heartbeat
        return [EngineOutput()], StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        return self._next

    def snapshot(self) -> EngineState:
        return self.engine.snapshot()


@operator
def execute(step_id: str, up: Stream[ExecutionInput], *, settings: EngineSettings,
            heartbeat: timedelta = timedelta(milliseconds=250)) -> Stream[EngineOutput]:
    """The account's engine over every input (keyed to one account: limits span products)."""
    keyed = op.key_on("account", up, lambda _: ACCOUNT)
    decided = op.stateful("engine", keyed, lambda resume: _EngineLogic(settings, resume, heartbeat))
    return op.map("unkey", decided, lambda key_value: key_value[1])
