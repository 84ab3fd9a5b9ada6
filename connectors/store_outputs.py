"""What the store writes for each batch it reads: the raw path's validated batches, and each derived topic's
messages as rows of its table.

* **Raw path** (:func:`raw_outputs`): a validated :class:`~wattflow.batches.IngestBatch` -> rows of ``ticks``,
  ``book``, ``dayahead`` and ``dlq``; packed messages for the clean topics ``md.ticks``, ``md.book``,
  ``md.dayahead``; its dead letters on the ``dlq`` topic.
* **Derived topics** (:func:`derived_outputs`): a batch of one of ``features``, ``signals``, ``orders``,
  ``execution.reports``, ``events``, ``positions`` or ``dlq`` -> each message decoded by its wire module
  (strictly) and turned into the rows its table has always had, one frame per batch. A message that does not
  decode (or could not be stored: a time before 1970) is a dead letter ``BAD_<KIND>_MESSAGE`` with its origin
  ``topic[partition]@offset``, never a crash and never dropped.

**Dead letters reach the ``dlq`` table once.** The table's dedup keys are ``ts, origin`` (the Kafka time and
position of the message that failed), so whichever flow dead-letters a message, and however often it is written,
it is one row. The store writes the dead letters it makes itself in the same request as the batch's other rows
(so a ``--no-tail`` run stores them too) and publishes them on ``dlq`` for the people who follow that topic; it
also writes every dead letter it reads on ``dlq`` (those of the other flows, and its own coming back: the row
built from the message is identical to the one already written, so the upsert leaves one). A message on ``dlq``
that does not decode is written to the table only, never published: a dead letter about a ``dlq`` message on
``dlq`` would be read again by the store (a loop).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from connectors.kafka.sink import KafkaRecords
from connectors.questdb.execution_rows import event_rows, order_rows, report_rows
from connectors.questdb.position_rows import position_rows
from connectors.questdb.rows import (
    book_rows,
    dayahead_rows,
    dead_letter_rows,
    feature_rows,
    signal_rows,
    tick_rows,
)
from connectors.questdb.sink import TableRows
from connectors.store_and_publish import Outputs
from connectors.wire.dead_letters import dead_letter_records, decode_dead_letter_record
from connectors.wire.events import decode_event
from connectors.wire.features import decode_features
from connectors.wire.orders import decode_order_record
from connectors.wire.packed import packed_records
from connectors.wire.positions import decode_position
from connectors.wire.reports import check_report
from connectors.wire.signals import decode_signals
from wattflow.batches import DeadLetter, IngestBatch, RawBatch
from wattflow.errors import Origin
from wattflow.settings import TopicSettings

#: The most of a payload a dead letter keeps (as the raw decoder does).
MAX_PAYLOAD_BYTES = 65_536


# --- the raw path -----------------------------------------------------------------------------------------------


def to_table_rows(batch: IngestBatch) -> list[TableRows]:
    """A validated raw batch as rows of ``ticks``, ``book``, ``dayahead`` and ``dlq``."""
    rows = []
    if len(batch.ticks):
        rows.append(tick_rows(batch.ticks))
    if len(batch.book):
        rows.append(book_rows(batch.book))
    if len(batch.dayahead):
        rows.append(dayahead_rows(batch.dayahead))
    if batch.dead:
        rows.append(dead_letter_rows(batch.dead))
    return rows


def to_kafka_records(batch: IngestBatch, topics: TopicSettings) -> list[KafkaRecords]:
    """A validated raw batch as packed messages for the clean topics, and its dead letters for ``dlq``."""
    records = []
    if len(batch.ticks):
        records.append(packed_records(batch.ticks.product, batch.ticks.wire, batch.ticks.recv_ns, topics.ticks))
    if len(batch.book):
        records.append(packed_records(batch.book.product, batch.book.wire, batch.book.recv_ns, topics.book))
    if len(batch.dayahead):
        prices = batch.dayahead
        records.append(packed_records(prices.area, prices.wire, prices.recv_ns, topics.dayahead, "area"))
    if batch.dead:
        records.append(dead_letter_records(batch.dead, topics.dlq))
    return records


def raw_outputs(batch: IngestBatch, topics: TopicSettings) -> Outputs:
    return Outputs(to_table_rows(batch), to_kafka_records(batch, topics))


# --- the derived topics -----------------------------------------------------------------------------------------


def derived_topics(topics: TopicSettings) -> dict[str, str]:
    """The derived topics the store reads: topic name -> kind (the kinds of :data:`KINDS`)."""
    return {topics.features: "features", topics.signals: "signals", topics.orders: "orders",
            topics.execution_reports: "reports", topics.events: "events", topics.positions: "positions",
            topics.dlq: "dlq"}


@dataclass(frozen=True, slots=True)
class Kind:
    """How one derived topic's messages become rows: decode one message, the designated timestamps (ns) of what
    it decoded to, and the rows of many decoded messages (one frame)."""

    table: str
    decode: Callable[[bytes], Any]
    timestamps: Callable[[Any], Iterable[int]]
    rows: Callable[[list[Any]], TableRows]


def _report(value: bytes) -> dict[str, Any]:
    message = orjson.loads(value)
    if not isinstance(message, dict):
        raise ValueError("an execution report is a JSON object")
    return check_report(message)


#: The derived topics' kinds, by the name :func:`derived_topics` gives them.
KINDS: dict[str, Kind] = {
    "features": Kind("features", decode_features, lambda b: b.ts_ns.tolist(), feature_rows),
    "signals": Kind("signals", decode_signals, lambda b: b.ts_ns.tolist(), signal_rows),
    "orders": Kind("orders", decode_order_record, lambda r: [r.ts_ns or r.answered_wall_ns], order_rows),
    "reports": Kind("execution_reports", _report, lambda r: [r["ts_ns"]], report_rows),
    "events": Kind("events", decode_event, lambda e: [e[0].ts_ns],
                   lambda items: event_rows([e for e, _ in items], [s for _, s in items])),
    "positions": Kind("positions", decode_position, lambda r: [r.ts_ns], position_rows),
    "dlq": Kind("dlq", decode_dead_letter_record, lambda d: [d.ts_ns], dead_letter_rows),
}

#: What a message that does not decode can raise (msgspec's errors are ValueErrors; orjson's too).
_UNDECODABLE = (ValueError, KeyError, TypeError, IndexError, AttributeError, OverflowError, UnicodeDecodeError)


def reason_of(kind: str) -> str:
    """The dead-letter reason of a message of ``kind`` that does not decode: ``BAD_<KIND>_MESSAGE``."""
    return f"BAD_{kind.upper()}_MESSAGE"


def decode_derived(batch: RawBatch, kind: str) -> tuple[list[Any], list[DeadLetter]]:
    """Decode every message of a batch of one derived topic; what does not decode is a dead letter with its
    origin. Decoded + dead letters = messages, always."""
    spec = KINDS[kind]
    decoded: list[Any] = []
    dead: list[DeadLetter] = []
    for value, offset, ts_ns in zip(batch.values, batch.offsets.tolist(), batch.timestamps_ns.tolist(), strict=True):
        try:
            if not value:
                raise ValueError("empty message")
            item = spec.decode(value)
            early = [ts for ts in spec.timestamps(item) if ts < 0]
            if early:
                raise ValueError(f"ts_ns={early[0]} is before 1970: {spec.table} cannot store it")
        except _UNDECODABLE as error:
            dead.append(DeadLetter(int(ts_ns), Origin(batch.topic, batch.partition, int(offset)), reason_of(kind),
                                   f"{type(error).__name__}: {error}", (value or b"")[:MAX_PAYLOAD_BYTES]))
            continue
        decoded.append(item)
    return decoded, dead


def derived_outputs(batch: RawBatch, kinds: dict[str, str], dlq_topic: str) -> Outputs:
    """A batch of one derived topic as rows of its table (one frame), and its dead letters: in the ``dlq`` table,
    and on the ``dlq`` topic unless the batch came from it (no loop)."""
    kind = kinds[batch.topic]
    decoded, dead = decode_derived(batch, kind)
    rows = [KINDS[kind].rows(decoded)] if decoded else []
    records: list[KafkaRecords] = []
    if dead:
        rows.append(dead_letter_rows(dead))
        if batch.topic != dlq_topic:
            records.append(dead_letter_records(dead, dlq_topic))
    return Outputs(rows, records)
