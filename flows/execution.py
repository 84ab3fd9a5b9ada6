"""The execution flow: signals (with the market at each) -> sizing -> pre-trade risk -> the venue.

    python -m bytewax.run "flows.execution:get_flow()" -w 1
    wattflow run execution [--recovery DIR] [--no-tail]

Reads three topics: ``signals`` (from the signals flow; each record carries the sizing inputs, so no join
with ``features`` is needed), ``execution.reports`` (the venue's execution reports, published by
``wattflow adapter``) and ``control`` (the kill switch, written by ``wattflow kill``). One engine
(``operators.execution``) trades the whole account, so everything is keyed to the account: position limits
span products. Its state (risk, positions, working orders) is snapshotted for recovery; after a crash the
replayed signals give the same client order ids, which the venue answers as replays, never as new orders.

The order sink (``connectors.venue.order_sink``) carries out the engine's commands at the venue off the flow's
thread (several requests in flight over keep-alive connections; retries, UNKNOWN outcomes reconciled, circuit
breaker) and publishes orders, events, its own execution reports and positions to Kafka. Until the store flow
writes the execution tables from those topics, this flow has the sink write them to QuestDB as well (its
transitional ``questdb`` argument). A malformed input message becomes a dead letter (``dlq``), never a crash.
"""

from __future__ import annotations

from bytewax import operators as op
from bytewax.dataflow import Dataflow

from connectors.kafka.source import KafkaBatchSource
from connectors.venue.adapter import venue_settings_with_key
from connectors.venue.order_sink import PARTITION, OrderSink
from connectors.wire.execution_inputs import decode_inputs
from operators.engine_step import execute
from operators.execution import EngineSettings
from wattflow.logs import log_kafka_clients
from wattflow.settings import Settings


def get_flow(settings: Settings | None = None, *, tail: bool = True, batch_size: int = 5_000) -> Dataflow:
    settings = settings or Settings.load()
    log_kafka_clients(settings.state_dir)
    topics = settings.topics
    kinds = {topics.signals: "signals", topics.execution_reports: "reports", topics.control: "control"}
    flow = Dataflow("execution")
    raw = op.input("inputs", flow, KafkaBatchSource(settings.kafka, list(kinds), tail=tail, batch_size=batch_size))
    decoded = op.map("decode", raw, lambda batch: decode_inputs(batch, kinds))
    outputs = execute("execute", decoded, settings=EngineSettings.from_settings(settings.execution))
    keyed = op.key_on("to_sink", outputs, lambda _: PARTITION)  # the order sink has one partition
    op.output("orders", keyed, OrderSink(venue_settings_with_key(settings), settings.kafka, topics,
                                         questdb=settings.questdb))
    return flow
