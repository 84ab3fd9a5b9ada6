"""The trading flow, the hot path: raw market data -> validation -> features -> models -> the execution engine
(sizing, pre-trade risk, kill switch) -> the order sink -> the venue, in one dataflow.

    python -m bytewax.run "flows.trading:get_flow()" -w 1
    wattflow run trading [--recovery DIR] [--no-tail]

Reads the raw topic (the feed adapter's or a replay's ``md.raw.<source>``, each product on one partition in
its feed order), the venue's execution reports and the kill switch's ``control`` topic. Nothing between a
tick and its order waits on QuestDB or on a Kafka round trip: a trade's features and signals are computed
when it is read (``operators.features``, in log order) and the engine acts on them in the same step batch.
What the flow derives (features with the measured market access, signals, the feed-gap events of
``operators.access``; orders, their outcomes, events and positions from the order sink)
goes to Kafka without waiting per batch; delivery is confirmed before each snapshot commits. The store flow
(``flows.store``) writes raw-validated ticks and every derived topic to QuestDB, beside this flow.

Malformed raw messages are dead-lettered by the store flow, which validates the same raw topic with the same
operators (this flow skips them and counts them); malformed reports and control messages are dead-lettered
here, with their origin.
"""

from __future__ import annotations

from bytewax import operators as op
from bytewax.dataflow import Dataflow

from connectors.kafka.admin import topic_partitions
from connectors.kafka.publish import PART, PublishSink
from connectors.kafka.sink import KafkaRecords
from connectors.kafka.source import KafkaBatchSource
from connectors.venue.adapter import venue_settings_with_key
from connectors.venue.order_sink import PARTITION, OrderSink
from connectors.wire.events import encode_event
from connectors.wire.execution_inputs import decode_inputs
from connectors.wire.features import feature_records
from connectors.wire.market import decode_batch
from connectors.wire.signals import signal_records
from operators.engine_step import execute
from operators.execution import EngineSettings
from operators.features import FeatureSettings
from operators.models import ModelSettings, load_models
from operators.signals import MarketStep, partition_signals
from operators.validate import validate
from wattflow.execution import ExecutionInput
from wattflow.logs import log_kafka_clients
from wattflow.settings import Settings


def get_flow(settings: Settings | None = None, *, tail: bool = True, batch_size: int = 5_000) -> Dataflow:
    """Build the trading flow. ``tail=False`` stops at the end of the input topics (replays, tests)."""
    settings = settings or Settings.load()
    log_kafka_clients(settings.state_dir)
    topics = settings.topics
    signal_settings = settings.signals
    models = load_models(signal_settings.model_names(), ModelSettings(max_position_mw=signal_settings.max_position_mw))
    kinds = {topics.execution_reports: "reports", topics.control: "control"}
    flow = Dataflow("trading")
    inputs = op.input("inputs", flow, KafkaBatchSource(settings.kafka, [topics.raw, *kinds], tail=tail,
                                                       batch_size=batch_size))
    split = op.branch("split", inputs, lambda batch: batch.topic == topics.raw)
    market = validate("validate", op.map("decode", split.trues, decode_batch))
    steps = partition_signals("signals", market, models=models, settings=FeatureSettings(in_log_order=True),
                              durations_min=signal_settings.durations(),
                              partitions=topic_partitions(settings.kafka, topics.raw))
    decisions = op.merge(
        "inputs_of_engine",
        op.map("signal_rows", steps, lambda step: ExecutionInput(step.rows, [], [], [])),
        op.map("decode_reports_control", split.falses, lambda batch: decode_inputs(batch, kinds)))
    outputs = execute("execute", decisions, settings=EngineSettings.from_settings(settings.execution))
    keyed = op.key_on("to_sink", outputs, lambda _: PARTITION)  # the order sink has one partition
    op.output("orders", keyed, OrderSink(venue_settings_with_key(settings), settings.kafka, topics))

    def derived(step: MarketStep) -> tuple[str, list[KafkaRecords]]:
        events = [KafkaRecords(topics.events, [e.kind for e in step.events],
                               [encode_event(e, "trading") for e in step.events])] if step.events else []
        return PART, [*(feature_records(batch, topics.features) for batch in step.features),
                      *(signal_records(batch, topics.signals) for batch in step.signals), *events]

    op.output("publish", op.map("derived", steps, derived), PublishSink(settings.kafka))
    return flow
