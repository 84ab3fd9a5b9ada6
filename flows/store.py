"""The store flow: every raw-validated tick and every derived topic into QuestDB, in large batches, beside the
trading path and never in front of it.

    python -m bytewax.run "flows.store:get_flow()" -w 1
    wattflow run store [--workers N] [--processes P] [--recovery DIR] [--no-tail]

Two inputs, Kafka partitions the unit of parallelism (``connectors.kafka.source``):

* **raw** (``topics.raw``): decoded and validated exactly as the ingest flow does (``connectors.wire.market``,
  ``operators.validate``) -> ``ticks``, ``book``, ``dayahead``; the clean topics ``md.ticks``, ``md.book``,
  ``md.dayahead``; dead letters to the ``dlq`` topic and table.
* **derived** (``features``, ``signals``, ``orders``, ``execution.reports``, ``events``, ``positions``, ``dlq``):
  each message decoded by its wire module into the rows of its table; what does not decode is a dead letter
  with its origin (``connectors.store_outputs``).

Each worker writes what it read in one ILP/HTTP request per batch (every table of the batch in it) and checks
the Kafka flush, then reads on. QuestDB slow or down only delays it: the writer retries the same rows with
backoff (up to ``max_retry_s``, then the flow stops loudly and resumes from its last snapshot when restarted).
Delivery is at least once; the tables' dedup keys make a replay write nothing new.
"""

from __future__ import annotations

from bytewax import operators as op
from bytewax.dataflow import Dataflow, Stream

from connectors.kafka.source import KafkaBatchSource
from connectors.store_and_publish import Outputs, StoreAndPublishSink
from connectors.store_outputs import derived_outputs, derived_topics, raw_outputs
from connectors.wire.market import decode_batch
from operators.validate import validate
from wattflow.logs import log_kafka_clients
from wattflow.settings import Settings

#: Consumer settings of the derived topics: 7 topics x N partitions are as many consumers, so each prefetches
#: less than the default 256 MB (a store that lags behind a QuestDB outage must not fill the memory).
DERIVED_CONSUMER_CONFIG = {"queued.max.messages.kbytes": 32_768, "max.partition.fetch.bytes": 4_194_304}


def raw_path(flow: Dataflow, settings: Settings, *, tail: bool, batch_size: int,
             raw_topics: list[str] | None = None) -> Stream[Outputs]:
    """Raw messages -> decode -> validate -> rows of ``ticks``/``book``/``dayahead``/``dlq``, packed messages for
    the clean topics, dead letters for ``dlq`` (the ingest flow is this and its sink)."""
    topics = settings.topics
    raw = op.input("raw", flow, KafkaBatchSource(settings.kafka, raw_topics or [topics.raw], tail=tail,
                                                 batch_size=batch_size))
    decoded = op.map("decode", raw, decode_batch)
    checked = validate("validate", decoded)
    return op.map("outputs", checked, lambda batch: raw_outputs(batch, topics))


def get_flow(settings: Settings | None = None, *, tail: bool = True, batch_size: int = 20_000,
             max_retry_s: float = 300.0) -> Dataflow:
    """Build the store dataflow. ``tail=False`` stops at the end of every input topic (replays, tests);
    ``batch_size`` is the most messages per poll of one partition; ``max_retry_s`` how long a write to QuestDB
    is retried before the flow gives up (and must be restarted, with ``--recovery`` to resume)."""
    settings = settings or Settings.load()
    log_kafka_clients(settings.state_dir)
    topics = settings.topics
    kinds = derived_topics(topics)
    flow = Dataflow("store")
    raw = raw_path(flow, settings, tail=tail, batch_size=batch_size)
    derived = op.input("derived", flow, KafkaBatchSource(settings.kafka, list(kinds), tail=tail, batch_size=batch_size,
                                                         consumer_config=DERIVED_CONSUMER_CONFIG))
    stored = op.map("derived_outputs", derived, lambda batch: derived_outputs(batch, kinds, topics.dlq))
    outputs = op.merge("merge", raw, stored)
    op.output("store", outputs, StoreAndPublishSink(settings.questdb, settings.kafka, max_retry_s=max_retry_s))
    return flow
