"""The execution flow: signals (with the market at each) -> sizing -> pre-trade risk -> the venue.

    python -m bytewax.run "flows.execution:get_flow()" -w 1
    wattflow run execution [--recovery DIR] [--no-tail]

Reads three topics: ``signals`` (from the signals flow; each record carries the sizing inputs, so no join
with ``features`` is needed), ``execution.reports`` (the venue's execution reports, published by
``wattflow adapter``) and ``control`` (the kill switch, written by ``wattflow kill``). One engine
(``operators.execution``) trades the whole account, so everything is keyed to the account: position limits
span products. Its state (risk, positions, working orders) is snapshotted for recovery; after a crash the
replayed signals give the same client order ids, which the venue answers as replays, never as new orders.

The order sink (``connectors.venue.order_sink``) carries out the engine's commands at the venue (retries,
UNKNOWN outcomes reconciled, circuit breaker) and records orders, events, execution reports and positions
in Kafka and QuestDB. A malformed input message becomes a dead letter (``dlq``), never a crash.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from bytewax import operators as op
from bytewax.dataflow import Dataflow, Stream, operator
from bytewax.operators import StatefulLogic

from connectors.kafka.source import KafkaBatchSource
from connectors.venue.order_sink import OrderSink
from operators.execution import EngineOutput, EngineSettings, EngineState, ExecutionEngine, SignalRow, signal_rows
from wattflow.batches import DeadLetter, RawBatch
from wattflow.errors import Origin
from wattflow.settings import Settings, VenueSettings

ACCOUNT = "account"


@dataclass(frozen=True, slots=True)
class ExecutionInput:
    """What one raw batch holds for the engine: signal rows, execution reports, control commands, dead letters."""

    signals: list[SignalRow]
    reports: list[dict[str, Any]]
    controls: list[dict[str, Any]]
    dead: list[DeadLetter]


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
                for name in ("client_order_id", "product", "kind", "ts_ns"):
                    if name not in message:
                        raise ValueError(f"execution report without {name!r}")
                reports.append(message)
            else:
                if "command" not in message:
                    raise ValueError("control message without 'command'")
                controls.append(message)
        except (ValueError, KeyError, TypeError, IndexError, orjson.JSONDecodeError) as error:
            reason = f"BAD_{kind.upper()}_MESSAGE" if kind else "BAD_MESSAGE"
            dead.append(DeadLetter(int(ts_ns), Origin(batch.topic, batch.partition, int(offset)), reason,
                                   f"{type(error).__name__}: {error}", value or b""))
    return ExecutionInput(signals, reports, controls, dead)


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


def get_flow(settings: Settings | None = None, *, tail: bool = True, batch_size: int = 5_000) -> Dataflow:
    settings = settings or Settings.load()
    topics = settings.topics
    kinds = {topics.signals: "signals", topics.execution_reports: "reports", topics.control: "control"}
    flow = Dataflow("execution")
    raw = op.input("inputs", flow, KafkaBatchSource(settings.kafka, list(kinds), tail=tail, batch_size=batch_size))
    decoded = op.map("decode", raw, lambda batch: decode_inputs(batch, kinds))
    outputs = execute("execute", decoded, settings=EngineSettings.from_settings(settings.execution))
    op.output("orders", outputs, OrderSink(_with_venue_key(settings), settings.questdb, settings.kafka, topics))
    return flow


def _with_venue_key(settings: Settings) -> VenueSettings:
    """The venue settings with the trading key: WATTFLOW_VENUE_API_KEY, else the one `wattflow stack up` stored
    for the venue it started (a clear error names both when there is neither)."""
    if settings.venue.api_key is not None:
        return settings.venue
    from pydantic import SecretStr

    from connectors.venue.adapter import venue_api_key

    return settings.venue.model_copy(update={"api_key": SecretStr(venue_api_key(settings))})


def control_message(command: str, *, by: str = "", reason: str = "") -> bytes:
    """A kill-switch message for the ``control`` topic (``wattflow kill``)."""
    return orjson.dumps({"command": command, "by": by, "reason": reason, "wall_ns": time.time_ns()})
