"""The ingest flow: raw feed messages from Kafka -> validated ticks, book updates and day-ahead prices in
QuestDB and on the clean topics; every rejected message to the dead-letter topic and table.

    python -m bytewax.run "flows.ingest:get_flow()" -w 1
    wattflow run ingest [--workers N] [--processes P] [--recovery DIR] [--no-tail]

Batched from end to end: the source hands over whole polls, decoding fills numpy columns, validation is
vectorised, QuestDB gets one ILP/HTTP request per batch and Kafka one checked flush. Delivery is at least
once: after a crash the flow resumes from its last snapshot and writes some rows again, which the tables'
dedup keys absorb (see the README's reliability section).
"""

from __future__ import annotations

from bytewax import operators as op
from bytewax.dataflow import Dataflow

from connectors.kafka.sink import KafkaRecords
from connectors.kafka.source import KafkaBatchSource
from connectors.questdb.rows import book_rows, dayahead_rows, dead_letter_rows, tick_rows
from connectors.questdb.sink import TableRows
from connectors.store_and_publish import Outputs, StoreAndPublishSink
from connectors.wire.dead_letters import dead_letter_records
from connectors.wire.market import decode_batch
from connectors.wire.packed import packed_records
from operators.validate import validate
from wattflow.batches import IngestBatch
from wattflow.settings import Settings, TopicSettings


def to_table_rows(batch: IngestBatch) -> list[TableRows]:
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


def get_flow(settings: Settings | None = None, *, tail: bool = True, batch_size: int = 20_000,
             raw_topics: list[str] | None = None) -> Dataflow:
    """Build the ingest dataflow. ``tail=False`` stops at the end of the raw topics (replays, tests)."""
    settings = settings or Settings.load()
    topics = settings.topics
    flow = Dataflow("ingest")
    raw = op.input("raw", flow, KafkaBatchSource(settings.kafka, raw_topics or [topics.raw], tail=tail,
                                                 batch_size=batch_size))
    decoded = op.map("decode", raw, decode_batch)
    checked = validate("validate", decoded)
    outputs = op.map("outputs", checked, lambda b: Outputs(to_table_rows(b), to_kafka_records(b, topics)))
    op.output("store_and_publish", outputs, StoreAndPublishSink(settings.questdb, settings.kafka))
    return flow
