"""The ingest flow: raw feed messages from Kafka -> validated ticks, book updates and day-ahead prices in
QuestDB and on the clean topics; every rejected message to the dead-letter topic and table.

    python -m bytewax.run "flows.ingest:get_flow()" -w 1
    wattflow run ingest [--workers N] [--processes P] [--recovery DIR] [--no-tail]

The raw path of the store flow (``flows.store.raw_path``) and its sink, nothing else: the store flow does all
of this and also stores the derived topics. Batched from end to end: the source hands over whole polls,
decoding fills numpy columns, validation is vectorised, QuestDB gets one ILP/HTTP request per batch and Kafka
one checked flush. Delivery is at least once: after a crash the flow resumes from its last snapshot and writes
some rows again, which the tables' dedup keys absorb (see the README's reliability section).
"""

from __future__ import annotations

from bytewax import operators as op
from bytewax.dataflow import Dataflow

from connectors.store_and_publish import StoreAndPublishSink
from flows.store import raw_path
from wattflow.logs import log_kafka_clients
from wattflow.settings import Settings


def get_flow(settings: Settings | None = None, *, tail: bool = True, batch_size: int = 20_000,
             raw_topics: list[str] | None = None) -> Dataflow:
    """Build the ingest dataflow. ``tail=False`` stops at the end of the raw topics (replays, tests)."""
    settings = settings or Settings.load()
    log_kafka_clients(settings.state_dir)
    flow = Dataflow("ingest")
    outputs = raw_path(flow, settings, tail=tail, batch_size=batch_size, raw_topics=raw_topics)
    op.output("store_and_publish", outputs, StoreAndPublishSink(settings.questdb, settings.kafka))
    return flow
