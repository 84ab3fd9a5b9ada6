"""The signals flow: clean market data -> per-product features (Numba kernels) -> model signals.

    python -m bytewax.run "flows.signals:get_flow()" -w 1
    wattflow run signals [--workers N] [--processes P] [--recovery DIR] [--no-tail]

Reads ``md.ticks``, ``md.book`` and ``md.dayahead`` (packed per product by the ingest flow), keys
everything by product, keeps each product's feature state (numpy arrays, snapshotted for recovery) and
merges its streams in event time so that the same feed always gives the same features and signals.
Features and signals go to the ``features`` and ``signals`` topics and QuestDB tables (dedup keys).
"""

from __future__ import annotations

from bytewax import operators as op
from bytewax.dataflow import Dataflow

from connectors.kafka.source import KafkaBatchSource
from connectors.questdb.rows import dead_letter_rows, feature_rows, signal_rows
from connectors.store_and_publish import Outputs, StoreAndPublishSink
from connectors.wire.dead_letters import dead_letter_records
from connectors.wire.features import feature_records
from connectors.wire.market import decode_batch
from connectors.wire.signals import signal_records
from operators.features import FeatureSettings
from operators.models import ModelSettings, load_models
from operators.signals import by_product, product_features, run_models
from wattflow.batches import DeadLetter
from wattflow.features import FeatureBatch
from wattflow.logs import log_kafka_clients
from wattflow.settings import Settings
from wattflow.signals import SignalBatch


def get_flow(settings: Settings | None = None, *, tail: bool = True, batch_size: int = 20_000) -> Dataflow:
    settings = settings or Settings.load()
    log_kafka_clients(settings.state_dir)
    topics = settings.topics
    signal_settings = settings.signals
    models = load_models(signal_settings.model_names(), ModelSettings(max_position_mw=signal_settings.max_position_mw))
    flow = Dataflow("signals")
    market = op.input("market", flow, KafkaBatchSource(settings.kafka, [topics.ticks, topics.book, topics.dayahead],
                                                       tail=tail, batch_size=batch_size))
    decoded = op.map("decode", market, decode_batch)
    dead = op.flat_map("dead", decoded, lambda batch: batch.dead)
    keyed = op.flat_map("by_product", decoded, lambda batch: by_product(batch, signal_settings.durations()))
    features = product_features("features", keyed, settings=FeatureSettings())
    signals = run_models("models", features, models=models)

    def feature_outputs(batch: FeatureBatch) -> Outputs:
        return Outputs([feature_rows(batch)], [feature_records(batch, topics.features)])

    def signal_outputs(batch: SignalBatch) -> Outputs:
        return Outputs([signal_rows(batch)], [signal_records(batch, topics.signals)])

    def dead_outputs(letter: DeadLetter) -> Outputs:
        return Outputs([dead_letter_rows([letter])], [dead_letter_records([letter], topics.dlq)])

    outputs = op.merge("outputs", op.map("feature_out", features, feature_outputs),
                       op.map("signal_out", signals, signal_outputs), op.map("dead_out", dead, dead_outputs))
    op.output("store_and_publish", outputs, StoreAndPublishSink(settings.questdb, settings.kafka))
    return flow
