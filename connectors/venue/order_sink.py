"""The order sink: carries out the execution engine's commands at the venue, then records everything.

For each :class:`~operators.execution.EngineOutput` of a batch, in order:

1. **Commands go to the venue** through :class:`~connectors.venue.client.VenueClient` (bounded retries with
   jitter, the same client order id on every attempt, a circuit breaker):

   * ``Submit``: ACKED or REJECTED is final; UNKNOWN (no answer) stays with the client until
     :meth:`VenueClient.reconcile` settles it, which this sink calls at every batch; an order the venue never
     got (NOT_FOUND) is sent again under the same id. BLOCKED (breaker open) and RATE_LIMITED orders were
     never processed by the venue: they are kept and sent at the next batch the breaker allows.
   * ``Cancel``: an order still kept unsent is simply dropped (status ``CANCELLED_UNSENT``); otherwise
     ``DELETE /orders/{id}`` (an UNKNOWN order is cancelled too, and no longer resent). A cancel the venue
     did not answer is kept and tried again.
   * ``CancelAll`` (kill switch): everything kept unsent is dropped, then ``DELETE /orders``; kept and
     retried until the venue confirms.

2. **Orders the venue will never report on** (dropped while kept, not sent because of the kill switch, or
   unknown to the venue when cancelled) get an execution report from the sink itself (``"source":
   "order_sink"``, ``exec_id`` 0) on the reports topic, so that the engine releases what risk counted for them.

3. **Everything is recorded** with delivery checked: one record per command and outcome on the ``orders``
   topic and in the ``orders`` table; the engine's events plus the client's (breaker changes, unknown and
   reconciled orders) on ``events``; the execution reports the engine applied in ``execution_reports``;
   position rows in ``positions``. ``write_batch`` returns only when QuestDB and Kafka confirmed, or raises
   (the flow stops and resumes from its last snapshot: re-sent orders carry the same ids, and the venue
   answers them as replays).

The engine emits an empty output at least every ``heartbeat_s`` of wall time, so kept orders, cancels and
reconciliations make progress when no signals arrive.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from connectors.kafka.producer import CheckedProducer
from connectors.kafka.sink import KafkaRecords
from connectors.questdb.execution_rows import event_rows, order_rows, report_rows
from connectors.questdb.position_rows import position_rows
from connectors.questdb.rows import dead_letter_rows
from connectors.questdb.sink import RetryingWriter, TableRows
from connectors.venue.client import (
    NOT_FOUND,
    RATE_LIMITED,
    CircuitBreaker,
    OrderRequest,
    SubmitStatus,
    VenueClient,
)
from connectors.wire.dead_letters import dead_letter_records
from connectors.wire.events import encode_event
from connectors.wire.orders import encode_order_record
from wattflow.enums import OrderAction
from wattflow.errors import VenueError
from wattflow.events import Event
from wattflow.execution import EngineOutput
from wattflow.orders import Cancel, CancelAll, OrderRecord, Submit
from wattflow.settings import KafkaSettings, QuestDBSettings, TopicSettings, VenueSettings

log = logging.getLogger(__name__)


def _submit_record(command: Submit, status: str, *, attempts: int = 0, reason: str = "",
                   answered_wall_ns: int = 0) -> OrderRecord:
    plan = command.plan
    latency = answered_wall_ns - command.decided_wall_ns if answered_wall_ns and command.decided_wall_ns else 0
    return OrderRecord(command.ts_ns, plan.product, plan.client_order_id, OrderAction.SUBMIT, status, plan.model,
                       int(plan.side), plan.price_eur_per_mwh, plan.quantity_mw, plan.tif, plan.urgency,
                       plan.arrival_mid_eur_per_mwh, plan.estimated_slippage_eur_per_mwh, plan.signal_ts_ns,
                       attempts, latency, reason, command.decided_wall_ns, answered_wall_ns,
                       plan.display_quantity_mw)


def _request(command: Submit) -> OrderRequest:
    plan = command.plan
    return OrderRequest(plan.client_order_id, plan.product, plan.side.name, plan.price_eur_per_mwh,
                        plan.quantity_mw, plan.tif, display_quantity_mw=plan.display_quantity_mw)


class OrderDesk:
    """The venue side of the sink, without Bytewax, Kafka or QuestDB: commands in, order records out."""

    def __init__(self, client: VenueClient, *, wall_clock_ns: Any = time.time_ns) -> None:
        self.client = client
        self.kept: dict[str, Submit] = {}  # never processed by the venue (breaker open, rate limited)
        self.pending: list[Cancel | CancelAll] = []  # cancels the venue has not confirmed yet
        self._wall_clock_ns = wall_clock_ns
        self._events_seen = 0

    def execute(self, commands: list[Submit | Cancel | CancelAll]) -> list[OrderRecord]:
        records: list[OrderRecord] = []
        records += self._retry_kept()
        for command in commands:
            if isinstance(command, Submit):
                records.append(self._submit(command))
            else:
                records += self._cancel(command)
        records += self._reconcile()
        return records

    def client_events(self) -> list[Event]:
        """The client's events since the last call (breaker changes, unknown and reconciled orders)."""
        fresh = self.client.events[self._events_seen:]
        self._events_seen = len(self.client.events)
        events = []
        for event in fresh:
            detail = event.get("detail")
            detail = dict(detail) if isinstance(detail, dict) else {"detail": detail}
            events.append(Event(int(event.get("ts") or self._wall_clock_ns()), str(event["kind"]).upper(),
                                str(detail.get("product", "")), "WARNING", detail))
        return events

    def _submit(self, command: Submit) -> OrderRecord:
        outcome = self.client.submit(_request(command))
        answered = self._wall_clock_ns()
        status = outcome.status.value
        if outcome.status is SubmitStatus.ACKED:
            status = "REPLAYED" if outcome.replayed else "ACKED"
        elif outcome.status is SubmitStatus.BLOCKED or outcome.reason == RATE_LIMITED:
            self.kept[command.client_order_id] = command
            status = "BLOCKED" if outcome.status is SubmitStatus.BLOCKED else RATE_LIMITED
        return _submit_record(command, status, attempts=outcome.attempts, reason=outcome.reason or "",
                              answered_wall_ns=answered)

    def _retry_kept(self) -> list[OrderRecord]:
        """Send the kept orders again, oldest first; the first still refused ends the round (it and the rest stay
        kept, and are not recorded again: their status has not changed)."""
        records: list[OrderRecord] = []
        for cid, command in list(self.kept.items()):
            del self.kept[cid]
            record = self._submit(command)
            if cid in self.kept:
                break
            records.append(record)
        return records

    def _cancel(self, command: Cancel | CancelAll) -> list[OrderRecord]:
        records: list[OrderRecord] = []
        if isinstance(command, Cancel):
            dropped = self.kept.pop(command.client_order_id, None)
            self.client.unknown.pop(command.client_order_id, None)
            self.client.not_found.pop(command.client_order_id, None)
            if dropped is not None:
                return [OrderRecord(command.ts_ns, command.product, command.client_order_id, OrderAction.CANCEL,
                                    "CANCELLED_UNSENT", reason=command.reason)]
        else:
            for cid, dropped in list(self.kept.items()):
                if command.product is None or dropped.product == command.product:
                    del self.kept[cid]
                    records.append(OrderRecord(command.ts_ns, dropped.product, cid, OrderAction.CANCEL,
                                               "CANCELLED_UNSENT", reason=command.reason))
            for store in (self.client.unknown, self.client.not_found):
                for cid, payload in list(store.items()):
                    if command.product is None or payload.get("product") == command.product:
                        del store[cid]
        self.pending.append(command)
        return records + self._flush_cancels()

    def _flush_cancels(self) -> list[OrderRecord]:
        records: list[OrderRecord] = []
        while self.pending:
            command = self.pending[0]
            try:
                if isinstance(command, Cancel):
                    answer = self.client.cancel(command.client_order_id)
                    status = "NOT_FOUND" if answer is None else str(answer.get("status", "CANCELLED"))
                    records.append(OrderRecord(command.ts_ns, command.product, command.client_order_id,
                                               OrderAction.CANCEL, status, reason=command.reason,
                                               answered_wall_ns=self._wall_clock_ns()))
                else:
                    cancelled = self.client.cancel_all(command.product)
                    records.append(OrderRecord(command.ts_ns, command.product or "", "*", OrderAction.CANCEL_ALL,
                                               f"CANCELLED_{len(cancelled)}", reason=command.reason,
                                               answered_wall_ns=self._wall_clock_ns()))
            except VenueError as error:
                log.warning("cancel not confirmed, kept for the next batch: %s", error)
                return records
            self.pending.pop(0)
        return records

    def _reconcile(self) -> list[OrderRecord]:
        records: list[OrderRecord] = []
        if self.pending:
            records += self._flush_cancels()
        if not self.client.unknown:
            return records
        settled = self.client.reconcile()
        for cid, status in settled.items():
            if status != NOT_FOUND:
                continue
            payload = self.client.not_found.pop(cid)
            outcome = self.client.submit(payload)
            records.append(OrderRecord(0, str(payload.get("product", "")), cid, OrderAction.RESUBMIT,
                                       "RESENT" if outcome.status is SubmitStatus.ACKED else outcome.status.value,
                                       attempts=outcome.attempts, reason=outcome.reason or "",
                                       answered_wall_ns=self._wall_clock_ns()))
        return records

    @property
    def outstanding(self) -> int:
        """Orders and cancels whose outcome the venue has not confirmed yet."""
        return len(self.kept) + len(self.pending) + len(self.client.unknown) + len(self.client.not_found)


#: Outcomes after which the venue will never report on the order: the sink reports it closed itself.
_NEVER_AT_VENUE = {"CANCELLED_UNSENT": "cancel", "NOT_SENT": "cancel", "NOT_FOUND": "cancel"}


def local_report(record: OrderRecord) -> dict[str, Any] | None:
    """An execution report for an order the venue will never report on (never sent, or unknown to it), so that
    the engine releases what pre-trade risk still counts for it; None when the venue reports by itself."""
    kind = _NEVER_AT_VENUE.get(record.status)
    if kind is None and record.status == "REJECTED" and record.reason.startswith("HTTP_"):
        kind = "reject"  # refused before the venue's order entry (a malformed request)
    if kind is None or record.client_order_id == "*":
        return None
    return {"exec_id": 0, "kind": kind, "ts_ns": record.ts_ns or record.answered_wall_ns,
            "client_order_id": record.client_order_id, "product": record.product, "side": record.side,
            "status": "CANCELLED" if kind == "cancel" else "REJECTED", "last_quantity_mw": 0.0,
            "reason": record.status if kind == "cancel" else record.reason, "source": "order_sink"}


def _kill_switch_first(commands: list[Submit | Cancel | CancelAll]) -> tuple[list[Submit | Cancel | CancelAll],
                                                                             list[OrderRecord]]:
    """The batch's commands from its last account-wide cancel-all on, and a record for each submit left out
    before it: the kill switch was pulled after those orders were decided, so they must not go out now (HALTED
    means nothing new; the engine has already forgotten them) and the cancel-all covers the cancels."""
    kills = [i for i, c in enumerate(commands) if isinstance(c, CancelAll) and c.product is None]
    if not kills:
        return commands, []
    last = kills[-1]
    why = f"KILL_SWITCH_{getattr(commands[last], 'reason', '')}"
    held = [_submit_record(c, "NOT_SENT", reason=why) for c in commands[:last] if isinstance(c, Submit)]
    return commands[last:], held


class _OrderSinkPartition(StatelessSinkPartition[EngineOutput]):
    def __init__(self, desk: OrderDesk, writer: RetryingWriter, producer: CheckedProducer, topics: TopicSettings,
                 *, source: str, flush_timeout_s: float) -> None:
        self.desk = desk
        self.writer = writer
        self.producer = producer
        self.topics = topics
        self.source = source
        self.flush_timeout_s = flush_timeout_s

    def write_batch(self, items: list[EngineOutput]) -> None:
        events: list[Event] = []
        positions = []
        reports: list[dict[str, Any]] = []
        dead = []
        commands, records = _kill_switch_first([c for output in items for c in output.commands])
        records += self.desk.execute(commands)
        for output in items:
            events += output.events
            positions += output.positions
            reports += output.reports
            dead += output.dead
        events += self.desk.client_events()
        kafka: list[KafkaRecords] = []
        rows: list[TableRows] = []
        if records:
            kafka.append(KafkaRecords(self.topics.orders, [r.client_order_id for r in records],
                                      [encode_order_record(r) for r in records]))
            rows.append(order_rows(records))
            local = [report for report in map(local_report, records) if report is not None]
            if local:
                kafka.append(KafkaRecords(self.topics.execution_reports, [r["client_order_id"] for r in local],
                                          [orjson.dumps(r) for r in local]))
        if events:
            kafka.append(KafkaRecords(self.topics.events, [e.kind for e in events],
                                      [encode_event(e, self.source) for e in events]))
            rows.append(event_rows(events, self.source))
        if reports:
            rows.append(report_rows(reports))
        if positions:
            rows.append(position_rows(positions))
        if dead:
            kafka.append(dead_letter_records(dead, self.topics.dlq))
            rows.append(dead_letter_rows(dead))
        for batch in kafka:
            self.producer.produce_many(batch.topic, batch.keys, batch.values, batch.timestamps_ms)
        self.producer.poll(0)
        if rows:
            self.writer.write(rows)
        self.producer.flush(self.flush_timeout_s)

    def close(self) -> None:
        self.writer.close()
        self.producer.flush(self.flush_timeout_s)


class OrderSink(DynamicSink[EngineOutput]):
    """Per worker: a venue client (retries, breaker, reconciliation), an ILP writer and a checked producer."""

    def __init__(self, venue: VenueSettings, questdb: QuestDBSettings, kafka: KafkaSettings, topics: TopicSettings,
                 *, source: str = "execution", flush_timeout_s: float = 60.0) -> None:
        if venue.api_key is None:
            raise VenueError("no venue API key", hint="set WATTFLOW_VENUE_API_KEY (the key the venue was started with)")
        self.venue = venue
        self.questdb = questdb
        self.kafka = kafka
        self.topics = topics
        self.source = source
        self.flush_timeout_s = flush_timeout_s

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _OrderSinkPartition:
        venue = self.venue
        assert venue.api_key is not None
        client = VenueClient(venue.url, venue.api_key.get_secret_value(), timeout_s=venue.timeout_s,
                             max_attempts=venue.max_attempts,
                             breaker=CircuitBreaker(venue.breaker_failures, venue.breaker_reset_s))
        producer = CheckedProducer(self.kafka, **{"client.id": f"wattflow-{step_id}-{worker_index}"})
        return _OrderSinkPartition(OrderDesk(client), RetryingWriter(self.questdb), producer, self.topics,
                                   source=self.source, flush_timeout_s=self.flush_timeout_s)
