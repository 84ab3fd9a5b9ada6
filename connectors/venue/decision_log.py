"""The order sink's write-ahead decision log: every new order is on Kafka, confirmed by the broker, before it may
go out to the venue; and, after a restart, the decisions made since the last snapshot read back.

**Why a log, and why Kafka.** The engine's and the sink's snapshots cover every decision up to the snapshot. A
decision made after it lives only in memory until the next one: after a SIGKILL the resumed engine decides again
from its snapshot, and nothing guarantees it decides the same (its decisions depend on how execution reports and
control messages interleave with the signals, which is wall-clock timing). An order sent in that window and not
decided again would stay at the venue unknown to the engine. So before an order is sent its decision (client
order id, product, side, price, quantity, the model and signal time that caused it) is appended to the
``decisions`` topic (one partition: the account's decisions in their order), and the sink sends it only once the
broker confirmed it (``acks=all``, idempotent producer). Kafka is the log of record of the system already; a
local file would not survive the loss of the host and would need its own fsync discipline.

**Never blocking the flow.** :meth:`DecisionLog.append` queues the records and returns; a thread of the log's own
polls the producer, so that a confirmation reaches the dispatcher within a broker round trip (polled from the
sink's drain instead, it would wait up to a batch or the engine's 250 ms heartbeat). Until confirmed, an order
waits in the dispatcher's queue like one held by the breaker, and is in the sink's snapshot. A record the broker
did not confirm (broker down past ``message.timeout.ms``) is produced again, for ever: the order waits, durable
first; :meth:`DecisionLog.events` says so (``DECISION_LOG_WAITING`` once a decision has waited
``waiting_event_after_s``, ``DECISION_LOG_FAILED`` per failed delivery, ``DECISION_LOG_CONFIRMED`` when the
wait is over, with how long and how many).

**The snapshot mark.** :meth:`DecisionLog.mark` is the offset from which every decision not yet confirmed, and
every later one, will be in the log: the topic's end when the log started, then one past the highest offset the
broker confirmed. A snapshot carries it; :func:`read_decisions` reads the log from there to its end after a
restart (a decision confirmed after the mark but decided before the snapshot is also in the snapshot's state;
the caller tells those apart).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka import KafkaError as _RdKafkaError

from connectors.wire.decisions import LoggedDecision, decode_decision, encode_decision
from wattflow.errors import KafkaError
from wattflow.events import Event
from wattflow.orders import Submit
from wattflow.settings import KafkaSettings

log = logging.getLogger(__name__)

#: The log's one partition.
PARTITION = 0

#: A decision is confirmed within a broker round trip: no linger; every replica in sync must have it.
LOG_PRODUCER_CONFIG: dict[str, Any] = {
    "enable.idempotence": True, "acks": "all", "linger.ms": 0, "message.timeout.ms": 30_000,
    "delivery.report.only.error": False,
}


class DecisionLog:
    """Append decisions, learn (on ``on_confirmed``, from the log's own thread) which the broker confirmed."""

    def __init__(self, kafka: KafkaSettings, topic: str, on_confirmed: Callable[[list[str]], None], *,
                 start_offset: int | None = None, waiting_event_after_s: float = 1.0,
                 producer_config: dict[str, Any] | None = None,
                 wall_clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.topic = topic
        self.on_confirmed = on_confirmed
        self.waiting_event_after_s = waiting_event_after_s
        self._wall_clock_ns = wall_clock_ns
        self._producer = Producer({**kafka.client_config(), **LOG_PRODUCER_CONFIG, **(producer_config or {})})
        self._lock = threading.Lock()
        self._mark = end_offset(kafka, topic) if start_offset is None else start_offset
        self._waiting: dict[str, int] = {}  # client order id -> wall time it was appended (unconfirmed)
        self._events: list[Event] = []
        self._stalled_since_ns = 0  # a DECISION_LOG_WAITING event was made at this time, until all is confirmed
        self._failed_since_stall = 0
        self.appended = 0
        self.confirmed = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="decision-log", daemon=True)
        self._thread.start()

    def append(self, commands: list[Submit]) -> None:
        """Queue the decisions (returns at once; confirmed later, see ``on_confirmed``)."""
        now = self._wall_clock_ns()
        with self._lock:
            for command in commands:
                self._waiting.setdefault(command.client_order_id, now)
        for command in commands:
            self._produce(command.client_order_id, encode_decision(command))
        self.appended += len(commands)

    def mark(self) -> int:
        """The offset from which every decision not confirmed yet, and every later one, is in the log."""
        with self._lock:
            return self._mark

    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)

    def events(self) -> list[Event]:
        """``DECISION_LOG_*`` events since the last call (see the module docstring)."""
        now = self._wall_clock_ns()
        with self._lock:
            if self._waiting and not self._stalled_since_ns:
                oldest = min(self._waiting.values())
                if now - oldest >= self.waiting_event_after_s * 1e9:
                    self._stalled_since_ns = oldest
                    self._events.append(Event(now, "DECISION_LOG_WAITING", "", "WARNING", {
                        "topic": self.topic, "decisions_waiting": len(self._waiting),
                        "oldest_waiting_s": (now - oldest) / 1e9, "failed_deliveries": self.failed}))
                    log.warning("the broker has not confirmed %d decisions (the oldest for %.1f s): their orders "
                                "wait", len(self._waiting), (now - oldest) / 1e9)
            events, self._events = self._events, []
        return events

    def close(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)
        self._producer.flush(timeout_s)

    # --- the log's thread ---------------------------------------------------------------------------

    def _produce(self, client_order_id: str, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(self.topic, value, client_order_id.encode(), partition=PARTITION,
                                       on_delivery=self._on_delivery)
                return
            except BufferError:
                self._producer.poll(0.05)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def _on_delivery(self, error: _RdKafkaError | None, message: Message) -> None:
        cid = (message.key() or b"").decode()
        if error is not None:
            # Not stored: produced again (the order waits, durable first); the idempotent producer keeps one copy.
            with self._lock:
                self.failed += 1
                self._failed_since_stall += 1
                self._events.append(Event(self._wall_clock_ns(), "DECISION_LOG_FAILED", "", "WARNING", {
                    "topic": self.topic, "client_order_id": cid, "error": f"{error.name()}: {error.str()}",
                    "decisions_waiting": len(self._waiting)}))
            log.warning("decision %s not confirmed by the broker (%s): produced again", cid, error.str())
            value = message.value()
            if value is not None and not self._stop.is_set():
                self._produce(cid, value)
            return
        now = self._wall_clock_ns()
        with self._lock:
            self._mark = max(self._mark, int(message.offset() or 0) + 1)
            self._waiting.pop(cid, None)
            self.confirmed += 1
            if self._stalled_since_ns and not self._waiting:
                self._events.append(Event(now, "DECISION_LOG_CONFIRMED", "", "INFO", {
                    "topic": self.topic, "waited_s": (now - self._stalled_since_ns) / 1e9,
                    "failed_deliveries": self._failed_since_stall}))
                self._stalled_since_ns = 0
                self._failed_since_stall = 0
        self.on_confirmed([cid])


def _consumer(kafka: KafkaSettings) -> Consumer:
    return Consumer({**kafka.client_config(), "group.id": "wattflow-decision-log", "enable.auto.commit": False,
                     "enable.partition.eof": True})


def _high_watermark(consumer: Consumer, topic: str, timeout_s: float) -> int:
    """The log's end now; a topic created a moment ago may not be in the client's metadata yet: asked again
    until ``timeout_s``. Raises KafkaError if the broker does not say."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, PARTITION), timeout=max(
                deadline - time.monotonic(), 1.0))
            return int(high)
        except Exception as error:
            if time.monotonic() >= deadline:
                raise KafkaError(f"the decision log {topic} cannot be read: {error}",
                                 hint="the order sink needs it (`wattflow stack init` creates it)") from error
            time.sleep(0.2)


def end_offset(kafka: KafkaSettings, topic: str, timeout_s: float = 10.0) -> int:
    """The log's end (its high watermark) now; raises KafkaError if the broker does not say."""
    consumer = _consumer(kafka)
    try:
        return _high_watermark(consumer, topic, timeout_s)
    finally:
        consumer.close()


def read_decisions(kafka: KafkaSettings, topic: str, from_offset: int, *,
                   timeout_s: float = 30.0) -> tuple[list[LoggedDecision], int]:
    """The decisions in the log from ``from_offset`` to its end now, in log order, and that end; raises KafkaError
    if the log cannot be read to its end within ``timeout_s`` (the sink must not start without it)."""
    consumer = _consumer(kafka)
    try:
        high = _high_watermark(consumer, topic, timeout_s)
        decisions: list[LoggedDecision] = []
        if from_offset >= high:
            return decisions, high
        consumer.assign([TopicPartition(topic, PARTITION, max(from_offset, 0))])
        deadline = time.monotonic() + timeout_s
        position = from_offset
        while position < high:
            if time.monotonic() > deadline:
                raise KafkaError(f"the decision log {topic} was not read to its end ({position} of {high}) within "
                                 f"{timeout_s:.0f} s")
            message = consumer.poll(0.5)
            if message is None:
                continue
            failure = message.error()
            if failure is not None:
                if failure.code() == _RdKafkaError._PARTITION_EOF:
                    break
                raise KafkaError(f"the decision log {topic} cannot be read: {failure}")
            offset = int(message.offset() or 0)
            position = offset + 1
            value = message.value()
            try:
                decisions.append(decode_decision(value or b"", offset))
            except (ValueError, KeyError, TypeError):
                log.warning("decision log %s@%d: not a decision record, skipped", topic, offset)
        return decisions, high
    finally:
        consumer.close()
