"""The order sink: carries out the execution engine's commands at the venue without ever making the flow wait
on it, and publishes what came of them.

``OrderSink`` is a Bytewax ``FixedPartitionedSink`` with one partition, :data:`PARTITION` (``"account"``): the flow
keys every :class:`~wattflow.execution.EngineOutput` to it (``op.key_on(..., lambda _: PARTITION)``). A stateful
sink partition gets a :meth:`~_OrderSinkPartition.snapshot` call at the end of every epoch (with or without
recovery), before the epoch's snapshot commits; its state is a
:class:`~connectors.venue.dispatcher.DispatcherState` (below).

**Reconciliation first.** At every start (a resume after a crash above all) the dispatcher asks the venue, before
any command goes out (the restored ones included), for its open orders, its execution reports since the highest
``exec_id`` the sink had seen (carried in the snapshot) and the status of the snapshot's UNKNOWN orders
(``connectors.venue.reconcile``); the ``VENUE_RECONCILED`` event on ``events`` records the result. While the venue
cannot be asked, it is tried again at each drain and every command waits, queued (and in the snapshot).

**Durable before it goes out.** Each new order's decision is appended to the write-ahead decision log
(``connectors.venue.decision_log``, the ``decisions`` topic) and waits in the dispatcher's queue until the broker
confirmed it; the snapshot carries the log's mark, and after a restart the decisions logged since are read back
and watched: one the resumed engine does not make again is an orphan, cancelled at the venue once the engine has
read past its signal (``connectors.venue.orphans``, ``ORPHANED_AFTER_RESTART``).

``write_batch`` never waits on the venue or on Kafka:

1. the kill switch first (:func:`~connectors.venue.desk.kill_switch_first`: a batch's submits decided before its
   last account-wide cancel-all are ``NOT_SENT``);
2. the commands go to the :class:`~connectors.venue.dispatcher.Dispatcher`, which carries them out on worker
   threads, up to ``WATTFLOW_VENUE_MAX_IN_FLIGHT`` requests at once over pooled keep-alive connections, through the
   :class:`~connectors.venue.desk.OrderDesk` (retries with jitter under the same id, UNKNOWN outcomes reconciled
   and resent if the venue never got them, orders refused by the open breaker or the rate limit kept and sent
   again oldest first, a circuit breaker), keeping the order rules (a cancel after its submit; a cancel-all after
   everything before it and before everything after it);
3. what finished so far is drained and queued to Kafka (``produce_many``, no flush): one record per command and
   outcome on ``orders`` (keyed by client order id, with the send and answer wall times), an execution report of
   its own (``"source": "order_sink"``) on ``execution.reports`` for each order the venue will never report on (so
   that the engine releases what risk counted for it), the engine's and the client's events on ``events``, the
   engine's position rows on ``positions`` (keyed by product), dead letters on ``dlq``.

:meth:`~_OrderSinkPartition.snapshot` returns everything handed over and not yet known to be finished, so that
an order the engine's snapshot of the same epoch counts as decided is never lost with the process: the commands
queued and in flight (in their order), the orders kept (breaker open, rate limited), the UNKNOWN and NOT_FOUND
orders awaiting reconciliation, the cancels and cancel-alls the venue has not confirmed
(:meth:`~connectors.venue.dispatcher.Dispatcher.checkpoint`; a small picklable
:class:`~connectors.venue.dispatcher.DispatcherState`, read without waiting on the venue). It publishes the
records of what finished, then flushes the producer and raises :class:`~wattflow.errors.KafkaDeliveryError` if
the broker did not confirm everything, so that no snapshot commits past unconfirmed records.
:meth:`OrderSink.build_part` given that state restores it before any new command
(:meth:`~connectors.venue.dispatcher.Dispatcher.restore`): the restored commands go first, in their order,
under their own client order ids (the venue answers a resent order as a replay, ``REPLAYED``; a resent cancel
of a done order changes nothing), kept orders are retried and UNKNOWN ones reconciled as usual; an
``ORDER_SINK_RESTORED`` event on ``events`` says how much was restored. A command may so be carried out, and
recorded on ``orders``, twice across a crash (at least once), never lost.
:meth:`~_OrderSinkPartition.close` (end of a finite input) finishes the queue and what is in flight (bounded: the
venue timeout x attempts without progress), runs one round of reconciliation, drains and flushes.

**Transitional**: given ``questdb``, the sink also writes the QuestDB rows it wrote before the store flow existed
(``orders``, ``events``, ``execution_reports`` with the reports the engine applied, ``positions``, ``dlq``),
synchronously in ``write_batch`` (and for what :meth:`snapshot` and :meth:`close` drain), so that the execution
flow (``flows/execution.py``) keeps its tables until the store flow writes them from the topics. The trading
flow passes ``questdb=None``: no QuestDB on the order path.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from connectors.kafka.producer import CheckedProducer
from connectors.kafka.sink import KafkaRecords
from connectors.questdb.execution_rows import event_rows, order_rows, report_rows
from connectors.questdb.position_rows import position_rows
from connectors.questdb.rows import dead_letter_rows
from connectors.questdb.sink import RetryingWriter, TableRows
from connectors.venue.client import CircuitBreaker, VenueClient
from connectors.venue.decision_log import DecisionLog, read_decisions
from connectors.venue.desk import OrderDesk, kill_switch_first, local_report
from connectors.venue.dispatcher import Dispatcher, DispatcherState
from connectors.venue.orphans import Orphan, OrphanWatch
from connectors.wire.dead_letters import dead_letter_records
from connectors.wire.decisions import LoggedDecision
from connectors.wire.events import encode_event
from connectors.wire.orders import encode_order_record
from connectors.wire.positions import encode_position
from wattflow.batches import DeadLetter
from wattflow.enums import CancelReason
from wattflow.errors import VenueError
from wattflow.events import Event
from wattflow.execution import EngineOutput
from wattflow.orders import Cancel, Command, OrderRecord, Submit
from wattflow.positions import PositionRow
from wattflow.settings import KafkaSettings, QuestDBSettings, TopicSettings, VenueSettings

__all__ = ["PARTITION", "DispatcherState", "OrderDesk", "OrderSink", "OrderSinkState", "local_report"]

log = logging.getLogger(__name__)

#: The order sink's one partition: the flow keys every engine output to it.
PARTITION = "account"

# Kept for callers of the earlier name.
_kill_switch_first = kill_switch_first


@dataclass(frozen=True, slots=True)
class OrderSinkState:
    """The order sink's snapshot: what the dispatcher has not finished; the decision log's mark (every decision
    made after this snapshot is in the log from there); the logged decisions of an earlier restart still
    watched for orphans (``connectors.venue.orphans``): not made again yet, or made again with other terms."""

    dispatcher: DispatcherState = field(default_factory=DispatcherState)
    decisions_from: int = -1
    watched: tuple[LoggedDecision, ...] = ()
    changed: tuple[LoggedDecision, ...] = ()


def _known_ids(state: DispatcherState) -> set[str]:
    """The client order ids a snapshot's state carries out or settles by itself."""
    desk = state.desk
    return ({c.client_order_id for c in state.commands if isinstance(c, Submit)}
            | {c.client_order_id for c in desk.kept} | set(desk.unknown) | set(desk.not_found))


class _OrderSinkPartition(StatefulSinkPartition[EngineOutput, OrderSinkState]):
    def __init__(self, dispatcher: Dispatcher, producer: CheckedProducer, topics: TopicSettings, *, source: str,
                 flush_timeout_s: float, close_stall_s: float, writer: RetryingWriter | None = None,
                 decision_log: DecisionLog | None = None, cancel_orphans: bool = True) -> None:
        self.dispatcher = dispatcher
        self.desk = dispatcher.desk
        self.producer = producer
        self.topics = topics
        self.source = source
        self.flush_timeout_s = flush_timeout_s
        self.close_stall_s = close_stall_s
        self.writer = writer
        self.decision_log = decision_log
        self.cancel_orphans = cancel_orphans
        self.orphans = OrphanWatch()

    def write_batch(self, values: list[EngineOutput]) -> None:
        orphans: list[Orphan] = []
        if self.orphans:
            for output in values:
                orphans += self.orphans.observe(output.commands, output.progress_ns)
        commands, records = kill_switch_first([c for output in values for c in output.commands])
        if commands:
            self._put(commands)
        records += self.dispatcher.drain()
        if self.orphans:
            orphans += self.orphans.on_records(records)
        events: list[Event] = self._settle(orphans)
        positions: list[PositionRow] = []
        reports: list[dict[str, Any]] = []
        dead: list[DeadLetter] = []
        for output in values:
            events += output.events
            positions += output.positions
            reports += output.reports
            dead += output.dead
        events += self._own_events()
        self._publish(records, events, positions, reports, dead)

    def _put(self, commands: list[Command]) -> None:
        """Hand commands to the dispatcher; new orders wait there until the decision log has them (durable first)."""
        submits = [c for c in commands if isinstance(c, Submit)]
        if self.decision_log is None or not submits:
            self.dispatcher.put(commands)
            return
        self.dispatcher.put(commands, unconfirmed=[c.client_order_id for c in submits])
        self.decision_log.append(submits)

    def _settle(self, orphans: list[Orphan]) -> list[Event]:
        """Cancel the orphans at the venue (after any command on their ids), one event each."""
        if not orphans:
            return []
        now = time.time_ns()
        events = [Event(now, "ORPHANED_AFTER_RESTART", o.decision.product, "WARNING",
                        {**o.detail(), "cancelled": self.cancel_orphans}) for o in orphans]
        for orphan in orphans:
            log.warning("order %s (%s) was decided before the crash and not again since the restart (%s): %s",
                        orphan.decision.client_order_id, orphan.decision.product, orphan.why,
                        "cancelled at the venue" if self.cancel_orphans else "left alone (orphan cancel disabled)")
        if self.cancel_orphans:
            self.dispatcher.put([Cancel(o.decision.client_order_id, o.decision.product,
                                        CancelReason.ORPHANED_AFTER_RESTART, o.decision.ts_ns) for o in orphans])
        return events

    def _own_events(self) -> list[Event]:
        events = self.desk.client_events()
        if self.decision_log is not None:
            events += self.decision_log.events()
        return events

    def snapshot(self) -> OrderSinkState:
        """What is not yet known to be finished (never waiting on the venue), the decision log's mark and the
        decisions still watched for orphans; the records of what finished are published, and the broker must
        confirm every record so far (raises KafkaDeliveryError if not)."""
        mark = self.decision_log.mark() if self.decision_log is not None else -1
        records, state = self.dispatcher.checkpoint()
        self._publish(records, self._own_events())
        self.producer.flush(self.flush_timeout_s)
        return OrderSinkState(state, mark, self.orphans.watched(), self.orphans.changed())

    def restore(self, state: OrderSinkState | DispatcherState, logged: list[LoggedDecision] | None = None,
                logged_to: int = -1) -> None:
        """Put a snapshot's state back before any new command, and say so (log and ``ORDER_SINK_RESTORED``); with
        ``logged`` (the decision log read from the snapshot's mark to ``logged_to``), watch for orphans."""
        if isinstance(state, DispatcherState):  # a snapshot from before the decision log
            state = OrderSinkState(state)
        counts = state.dispatcher.counts()
        self.dispatcher.restore(state.dispatcher)
        if state.dispatcher:
            log.warning("order sink restored from its snapshot: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
            self._publish([], [Event(time.time_ns(), "ORDER_SINK_RESTORED", "", "WARNING", dict(counts))])
        known = _known_ids(state.dispatcher)
        self.orphans = OrphanWatch([*state.watched, *(logged or [])], known, state.changed)
        if logged is not None:
            detail = {"from_offset": state.decisions_from, "to_offset": logged_to, "decisions": len(logged),
                      "known_from_snapshot": self.orphans.known, "watched": len(self.orphans.watched()),
                      "watched_before": len(state.watched), "changed": len(state.changed)}
            log.warning("decision log read after the restart: %s", detail)
            self._publish([], [Event(time.time_ns(), "DECISION_LOG_READ", "", "INFO", detail)])

    def close(self) -> None:
        try:
            events: list[Event] = []
            if self.orphans:
                # The input ended: a logged decision not made again by now never will be.
                events += self._settle(self.orphans.finish())
                self.dispatcher.wait_idle(self.close_stall_s)
                records = self.dispatcher.drain()
                events += self._settle(self.orphans.on_records(records))
                self._publish(records, [])
            self.dispatcher.close(self.close_stall_s)
            self._publish(self.dispatcher.drain(), events + self._own_events())
            if self.writer is not None:
                self.writer.close()
            self.producer.flush(self.flush_timeout_s)
        finally:
            self.desk.client.close()
            if self.decision_log is not None:
                self.decision_log.close()

    def _publish(self, records: list[OrderRecord], events: list[Event], positions: list[PositionRow] | None = None,
                 reports: list[dict[str, Any]] | None = None, dead: list[DeadLetter] | None = None) -> None:
        topics = self.topics
        kafka: list[KafkaRecords] = []
        if records:
            kafka.append(KafkaRecords(topics.orders, [r.client_order_id for r in records],
                                      [encode_order_record(r) for r in records]))
            local = [report for report in map(local_report, records) if report is not None]
            if local:
                kafka.append(KafkaRecords(topics.execution_reports, [r["client_order_id"] for r in local],
                                          [orjson.dumps(r) for r in local]))
        if events:
            kafka.append(KafkaRecords(topics.events, [e.kind for e in events],
                                      [encode_event(e, self.source) for e in events]))
        if positions:
            kafka.append(KafkaRecords(topics.positions, [p.product for p in positions],
                                      [encode_position(p) for p in positions]))
        if dead:
            kafka.append(dead_letter_records(dead, topics.dlq))
        for batch in kafka:
            self.producer.produce_many(batch.topic, batch.keys, batch.values, batch.timestamps_ms)
        self.producer.poll(0)
        if self.writer is not None:
            rows: list[TableRows] = []
            if records:
                rows.append(order_rows(records))
            if events:
                rows.append(event_rows(events, self.source))
            if reports:
                rows.append(report_rows(reports))
            if positions:
                rows.append(position_rows(positions))
            if dead:
                rows.append(dead_letter_rows(dead))
            if rows:
                self.writer.write(rows)


class OrderSink(FixedPartitionedSink[EngineOutput, OrderSinkState]):
    """The engine's commands to the venue, off the flow's thread; records, events, positions to Kafka.

    ``OrderSink(venue, kafka, topics, *, questdb=None, source="execution", flush_timeout_s=60.0,
    producer_config=None)``: takes ``(PARTITION, EngineOutput)`` items (key the engine's outputs with
    ``op.key_on("key", outputs, lambda _: PARTITION)``). ``venue`` needs the trading key; its ``max_in_flight``
    bounds the requests in flight, ``timeout_s``, ``max_attempts``, ``breaker_failures`` and ``breaker_reset_s``
    tune the client. ``questdb`` (transitional, see the module docstring): also write the execution tables.
    ``producer_config`` overrides librdkafka settings of the sink's producer. Its state is what the dispatcher has
    not finished (see the module docstring), put back by :meth:`build_part`.
    """

    def __init__(self, venue: VenueSettings, kafka: KafkaSettings, topics: TopicSettings, *,
                 questdb: QuestDBSettings | None = None, source: str = "execution", flush_timeout_s: float = 60.0,
                 producer_config: dict[str, Any] | None = None, decision_log: bool = True,
                 cancel_orphans: bool = True) -> None:
        if venue.api_key is None:
            raise VenueError("no venue API key", hint="set WATTFLOW_VENUE_API_KEY (the key the venue was started with)")
        self.venue = venue
        self.kafka = kafka
        self.topics = topics
        self.questdb = questdb
        self.source = source
        self.flush_timeout_s = flush_timeout_s
        self.producer_config = dict(producer_config or {})
        self.decision_log = decision_log
        self.cancel_orphans = cancel_orphans

    def list_parts(self) -> list[str]:
        return [PARTITION]

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(self, step_id: str, for_part: str,
                   resume_state: OrderSinkState | DispatcherState | None) -> _OrderSinkPartition:
        venue = self.venue
        assert venue.api_key is not None
        client = VenueClient(venue.url, venue.api_key.get_secret_value(), timeout_s=venue.timeout_s,
                             max_attempts=venue.max_attempts, pool_size=venue.max_in_flight + 1,
                             breaker=CircuitBreaker(venue.breaker_failures, venue.breaker_reset_s))
        producer = CheckedProducer(self.kafka, **{"client.id": f"wattflow-{step_id}-{for_part}",
                                                  **self.producer_config})
        # Reconciled with the venue before anything goes out, at every start (after a crash the venue may hold
        # orders and have made fills the snapshot does not know of).
        dispatcher = Dispatcher(OrderDesk(client), max_in_flight=venue.max_in_flight, reconcile_first=True)
        # A command that makes no progress for this long is given up on at close: every attempt timed out, with
        # the longest backoff between them, and the breaker's reset on top.
        stall_s = venue.timeout_s * venue.max_attempts + client.max_backoff_s * venue.max_attempts \
            + venue.breaker_reset_s
        writer = RetryingWriter(self.questdb) if self.questdb is not None else None
        # After a restart: the decisions made since the snapshot (sent or not), read before anything goes out.
        logged: list[LoggedDecision] | None = None
        start: int | None = None
        if self.decision_log and isinstance(resume_state, OrderSinkState) and resume_state.decisions_from >= 0:
            logged, start = read_decisions(self.kafka, self.topics.decisions, resume_state.decisions_from)
        decision_log = DecisionLog(self.kafka, self.topics.decisions, dispatcher.confirm, start_offset=start) \
            if self.decision_log else None
        part = _OrderSinkPartition(dispatcher, producer, self.topics, source=self.source,
                                   flush_timeout_s=self.flush_timeout_s, close_stall_s=stall_s, writer=writer,
                                   decision_log=decision_log, cancel_orphans=self.cancel_orphans)
        if resume_state is not None:  # a snapshot before the state existed is None: nothing to restore
            part.restore(resume_state, logged, -1 if start is None else start)
        return part
