"""The demo's trading day driven in-process: the engine's decisions without the stack (no Kafka, no HTTP).

The same simulated day as ``wattflow demo`` (DE-LU, 2018-10-28, seed 7) goes through the trading flow's own
steps in this process, in feed order: decode and validate (``operators.validate``), features and models
(``operators.signals.market_step``), the execution engine (``operators.execution``); the engine's commands go to
a :class:`paper.exchange.PaperExchange` playing the same feed, whose execution reports come straight back to
the engine. No latency and no batching across the wire, so the figures are deterministic: a run is the same as
the last (the live demo's depend on timing, at x1,300 market speed).

What it counts:

* **decisions**: the orders the engine put to pre-trade risk, ``orders + denials``;
* **orders**: Submit commands (approved by risk), and, as an independent truth, the orders the exchange was
  sent (distinct client order ids in its reports: an ack or a reject each);
* **denials by reason**: ``RISK_DENIED`` events by their reason code; **denial share** = denials / decisions.
"""

from __future__ import annotations

import collections
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from connectors.feeds.files import FeedFrame, json_lines
from connectors.wire.market import decode_batch
from operators.execution import EngineSettings, ExecutionEngine
from operators.features import FeatureSettings, ProductFeatures
from operators.models import ModelSettings, load_models
from operators.signals import by_product, market_step
from operators.validate import ProductWindows, validate_batch
from paper.exchange import PaperExchange
from paper.messages import ExecutionReport, UnknownOrderError
from wattflow.batches import RawBatch
from wattflow.domain import NS_PER_SECOND
from wattflow.events import Event
from wattflow.execution import EngineOutput
from wattflow.orders import Cancel, CancelAll, Command, Submit
from wattflow.settings import Settings
from wattflow.signals import SignalRow


@dataclass
class EngineDay:
    signals: int = 0
    orders: int = 0  # Submit commands
    orders_at_exchange: int = 0  # distinct client order ids the exchange answered (its own log)
    order_ids: list[str] = field(default_factory=list)  # of the Submit commands, in order
    exchange_order_ids: list[str] = field(default_factory=list)  # acked or rejected by the exchange, in order
    fills: int = 0
    denials_by_reason: dict[str, int] = field(default_factory=dict)
    events_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def denials(self) -> int:
        return sum(self.denials_by_reason.values())

    @property
    def decisions(self) -> int:
        return self.orders + self.denials

    @property
    def denial_share(self) -> float:
        return self.denials / self.decisions if self.decisions else 0.0


def signal_rows(settings: Settings, frame: FeedFrame, batch_size: int = 5_000) -> Iterator[SignalRow]:
    """The trading flow's signal rows for ``frame`` (one partition, in feed order)."""
    limit_mw = settings.signals.max_position_mw
    models = load_models(settings.signals.model_names(), ModelSettings(max_position_mw=limit_mw))
    feature_settings = FeatureSettings(in_log_order=True)
    durations = settings.signals.durations()
    windows = ProductWindows()
    products: dict[str, ProductFeatures] = {}
    lines: list[bytes | None] = list(json_lines(frame))
    for start in range(0, len(lines), batch_size):
        values = lines[start:start + batch_size]
        raw = RawBatch("raw", 0, values, np.arange(start, start + len(values), dtype=np.int64),
                       np.zeros(len(values), dtype=np.int64))
        batch = validate_batch(decode_batch(raw), windows)
        features = []
        for key, events in by_product(batch, durations):
            state = products.get(key)
            if state is None:
                state = products[key] = ProductFeatures.new(key, feature_settings)
            produced = state.on_events(events)
            if produced is not None:
                features.append(produced)
        if features:
            yield from market_step(features, models).rows


def _report(report: ExecutionReport) -> dict[str, Any]:
    return {"exec_id": report.exec_id, "kind": str(report.kind), "ts_ns": report.ts_ns,
            "client_order_id": report.client_order_id, "product": report.product, "side": report.side,
            "status": str(report.status), "price_eur_per_mwh": report.price_eur_per_mwh,
            "last_price_eur_per_mwh": report.last_price_eur_per_mwh, "last_quantity_mw": report.last_quantity_mw,
            "reason": str(report.reason) if report.reason is not None else None}


def run_engine_day(settings: Settings, frame: FeedFrame, *, step_s: float = 0.0, partitions: int = 4) -> EngineDay:
    """Trade ``frame`` in-process (see the module docstring) and count what the engine decided.

    ``step_s`` > 0 plays the live flow's lag: the engine takes the signals of ``step_s`` market seconds as one
    step, one raw-topic partition (of ``partitions``, by product) after the other, so the rows of a step reach
    it out of time order across products; its commands reach the exchange at the end of the step and the
    reports they cause reach the engine at the start of the next (at the demo's x1,300, 0.1 s of wall time is
    130 s of market time)."""
    engine = ExecutionEngine(EngineSettings.from_settings(settings.execution))
    exchange = PaperExchange(frame)
    day = EngineDay()
    denials: collections.Counter[str] = collections.Counter()
    kinds: collections.Counter[str] = collections.Counter()

    def count(events: list[Event]) -> None:
        for event in events:
            kinds[event.kind] += 1
            if event.kind == "RISK_DENIED":
                denials[str(event.detail["reason"])] += 1

    def execute(command: Command) -> Sequence[ExecutionReport]:
        """One engine command at the exchange; the executions it caused."""
        if isinstance(command, Submit):
            day.orders += 1
            day.order_ids.append(command.client_order_id)
            plan = command.plan
            return exchange.submit(plan.client_order_id, plan.product, int(plan.side), plan.price_eur_per_mwh,
                                   plan.quantity_mw, str(plan.tif),
                                   display_quantity_mw=plan.display_quantity_mw).executions
        if isinstance(command, Cancel):
            try:
                return exchange.cancel(command.client_order_id).executions
            except UnknownOrderError:
                return []
        if isinstance(command, CancelAll):
            return [r for cancelled in exchange.cancel_all(command.product) for r in cancelled.executions]
        return []

    def apply(out: EngineOutput) -> None:
        """The commands, each command's reports handed back to the engine at once (no lag)."""
        count(out.events)
        for command in out.commands:
            executions = execute(command)
            if executions:  # on_reports of nothing is nothing
                apply(engine.on_reports([_report(r) for r in executions]))

    if step_s <= 0:
        for row in signal_rows(settings, frame):
            day.signals += 1
            apply(engine.on_reports([_report(r) for r in exchange.advance_to(row.ts_ns)]))
            apply(engine.on_signals([row]))
    else:
        step_ns = round(step_s * NS_PER_SECOND)
        held: list[ExecutionReport] = []
        pending: list[SignalRow] = []

        def play(rows: list[SignalRow], until_ns: int) -> None:
            reports = held + exchange.advance_to(until_ns)
            held.clear()
            out = engine.on_reports([_report(r) for r in reports])
            rows.sort(key=lambda r: zlib.crc32(r.product.encode()) % partitions)  # stable: time order kept within
            out.extend(engine.on_signals(rows))
            apply_later(out, held)

        def apply_later(out: EngineOutput, into: list[ExecutionReport]) -> None:
            """The commands, their reports held for the next step (the lag)."""
            count(out.events)
            for command in out.commands:
                into += execute(command)

        end_ns = 0
        for row in signal_rows(settings, frame):
            day.signals += 1
            if pending and row.ts_ns >= end_ns:
                play(pending, end_ns)
                pending = []
            if not pending:
                end_ns = row.ts_ns + step_ns
            pending.append(row)
        if pending:
            play(pending, end_ns)
    day.exchange_order_ids = [r.client_order_id for r in exchange.reports if str(r.kind) in ("ack", "reject")]
    day.orders_at_exchange = len(set(day.exchange_order_ids))
    day.fills = sum(1 for r in exchange.reports if str(r.kind) == "fill")
    day.denials_by_reason = dict(sorted(denials.items()))
    day.events_by_kind = dict(sorted(kinds.items()))
    return day
