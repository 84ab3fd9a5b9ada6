"""Bytewax operators of the signals flow: route market data to products, keep features per product, run models."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from bytewax import operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulLogic

from operators.anchors import DayAheadAnchors, covered_periods
from operators.features import FeatureSettings, ProductEvents, ProductFeatures
from operators.models import Model
from wattflow.batches import BookBatch, IngestBatch, TickBatch
from wattflow.domain import DURATIONS_MIN, NS_PER_MINUTE, Product
from wattflow.events import Event
from wattflow.features import FeatureBatch
from wattflow.signals import MarketAccess, SignalBatch, SignalRow


def by_product(batch: IngestBatch, durations_min: tuple[int, ...] = (15, 60)) -> list[tuple[str, ProductEvents]]:
    """Split a decoded batch into per-product pieces (keyed by product): first the day-ahead anchors, then one
    piece per product with its trades and book updates together (so that a product's events of one batch are
    taken in one step, in their log order).

    A day-ahead price of an hour goes to every product delivered within that hour (``durations_min``), so
    each product's features know their anchor.
    """
    out: list[tuple[str, ProductEvents]] = []
    prices = batch.dayahead
    for area, start_ns, duration_min, price in zip(prices.area.tolist(), prices.delivery_start_ns.tolist(),
                                                   prices.duration_min.tolist(), prices.price_eur_per_mwh.tolist(),
                                                   strict=True):
        for duration in durations_min:
            if duration > duration_min:
                continue
            for begin_ns in range(start_ns, start_ns + duration_min * NS_PER_MINUTE, duration * NS_PER_MINUTE):
                key = Product(area, begin_ns, duration).key
                out.append((key, ProductEvents(product=key, day_ahead_eur_per_mwh=price)))
    ticks = {key: batch.ticks.take(rows) for key, rows in _groups(batch.ticks.product)}
    book = {key: batch.book.take(rows) for key, rows in _groups(batch.book.product)}
    for key in dict.fromkeys([*ticks, *book]):
        out.append((key, ProductEvents(key, ticks=ticks.get(key), book=book.get(key))))
    return out


def _groups(products: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Rows of each product, in their order (stable)."""
    if not len(products):
        return []
    codes, uniques = pd.factorize(products)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return [(str(uniques[codes[rows[0]]]), rows) for rows in np.split(order, bounds)]


@dataclass(frozen=True, slots=True)
class PendingAnchor:
    """The snapshot of a product that has only its day-ahead anchor so far: a price, not a feature state."""

    product: str
    day_ahead_eur_per_mwh: float


class _FeatureLogic(StatefulLogic[ProductEvents, FeatureBatch, "ProductFeatures | PendingAnchor"]):
    """One product's features (the signals flow, keyed by product). A product that has received only its anchor
    keeps a :class:`PendingAnchor`: a feed's day-ahead prices reach every product of every hour, and most of those
    never trade (see :mod:`operators.anchors`)."""

    def __init__(self, state: ProductFeatures | PendingAnchor | None, settings: FeatureSettings) -> None:
        self.pending = state if isinstance(state, PendingAnchor) else None
        self.state = state if isinstance(state, ProductFeatures) else None
        self.settings = settings

    def on_item(self, value: ProductEvents) -> tuple[list[FeatureBatch], bool]:
        if self.state is None:
            if value.ticks is None and value.book is None and value.day_ahead_eur_per_mwh is not None:
                self.pending = PendingAnchor(value.product, value.day_ahead_eur_per_mwh)
                return [], False
            self.state = ProductFeatures.new(value.product, self.settings)
            if self.pending is not None:
                self.state.on_events(ProductEvents(value.product,
                                                   day_ahead_eur_per_mwh=self.pending.day_ahead_eur_per_mwh))
                self.pending = None
        produced = self.state.on_events(value)
        self.state.access_state().take_events()  # this flow has no events output: access events are the trading flow's
        return ([produced] if produced is not None else []), False

    def on_eof(self) -> tuple[list[FeatureBatch], bool]:
        if self.state is None:
            return [], False
        produced = self.state.on_end()
        return ([produced] if produced is not None else []), False

    def snapshot(self) -> ProductFeatures | PendingAnchor:
        if self.state is not None:
            return self.state
        assert self.pending is not None
        return self.pending


@operator
def product_features(step_id: str, up: Stream[tuple[str, ProductEvents]], *,
                     settings: FeatureSettings | None = None) -> Stream[FeatureBatch]:
    """Features per product (state keyed by product, snapshotted for recovery), in event-time order."""
    chosen = settings or FeatureSettings()
    keyed = op.stateful("keep", up, lambda resume: _FeatureLogic(resume, chosen))
    return op.map("unkey", keyed, lambda key_value: key_value[1])


@operator
def run_models(step_id: str, up: Stream[FeatureBatch], *, models: list[Model]) -> Stream[SignalBatch]:
    """Every model on every feature batch (models are pure functions of the features)."""
    return op.flat_map("signals", up, lambda features: [m.signals(features, MarketAccess.of(features))
                                                        for m in models])




@dataclass(frozen=True, slots=True)
class MarketStep:
    """What one raw batch of one partition gave: features and signals per product, and the signal rows for the
    engine in the log's order (across products)."""

    features: list[FeatureBatch]
    signals: list[SignalBatch]
    rows: list[SignalRow]
    #: Access events (feed gaps) the batch revealed, in the order the products' events were taken.
    events: list[Event] = field(default_factory=list)


@dataclass
class PartitionFeatures:
    """The feature states of every product of one raw-topic partition that traded or showed a book, and the
    day-ahead anchors by delivery period (picklable: the snapshot)."""

    products: dict[str, ProductFeatures] = field(default_factory=dict)
    anchors: DayAheadAnchors = field(default_factory=DayAheadAnchors)
    #: ``(area, delivery_start_ns, duration_min)`` -> product key, of the products in ``products``
    periods: dict[tuple[str, int, int], str] = field(default_factory=dict)


class _PartitionLogic(StatefulLogic[IngestBatch, MarketStep, PartitionFeatures]):
    def __init__(self, state: PartitionFeatures | None, settings: FeatureSettings, models: list[Model],
                 durations_min: tuple[int, ...]) -> None:
        self.state = state or PartitionFeatures()
        if not hasattr(self.state, "anchors"):  # a snapshot from before anchors were kept by period
            self.state.anchors = DayAheadAnchors()
            self.state.periods = {}
            for key in self.state.products:
                product = Product.parse(key)
                self.state.periods[(product.area, product.delivery_start_ns, product.duration_min)] = key
        self.settings = settings
        self.models = models
        self.durations_min = durations_min

    def on_item(self, value: IngestBatch) -> tuple[list[MarketStep], bool]:
        products, anchors, periods = self.state.products, self.state.anchors, self.state.periods
        features: list[FeatureBatch] = []
        events: list[Event] = []

        def take(state: ProductFeatures, arrived: ProductEvents) -> None:
            nonlocal events
            produced = state.on_events(arrived)
            events += state.access_state().take_events()
            if produced is not None:
                features.append(produced)

        prices = value.dayahead
        for area, start_ns, duration_min, price in zip(prices.area.tolist(), prices.delivery_start_ns.tolist(),
                                                       prices.duration_min.tolist(),
                                                       prices.price_eur_per_mwh.tolist(), strict=True):
            anchors.add(area, start_ns, duration_min, price)
            for begin_ns, duration in covered_periods(start_ns, duration_min, DURATIONS_MIN):
                key = periods.get((area, begin_ns, duration))
                if key is not None:  # only products already made; the others take it when they first trade
                    take(products[key], ProductEvents(product=key, day_ahead_eur_per_mwh=price))
        for key, arrived in by_product(value.without_day_ahead(), self.durations_min):
            state = products.get(key)
            if state is None:
                state = products[key] = ProductFeatures.new(key, self.settings)
                product = Product.parse(key)
                periods[(product.area, product.delivery_start_ns, product.duration_min)] = key
                anchor = anchors.price_of(product)
                if anchor is not None:
                    take(state, ProductEvents(product=key, day_ahead_eur_per_mwh=anchor))
            take(state, arrived)
        if not features and not events:
            return [], StatefulLogic.RETAIN
        step = market_step(features, self.models)
        step.events.extend(events)
        return [step], StatefulLogic.RETAIN

    def snapshot(self) -> PartitionFeatures:
        return self.state


def market_step(features: list[FeatureBatch], models: list[Model]) -> MarketStep:
    """Run every model on every product's features; order the signal rows as their trades sat in the log (ties:
    the models' order), so that the engine acts on them in the order the market happened."""
    signals: list[SignalBatch] = []
    keyed: list[tuple[int, int, SignalRow]] = []
    for batch in features:
        positions = batch.log_position.tolist() if batch.log_position is not None else [0] * len(batch)
        for rank, model in enumerate(models):
            produced = model.signals(batch, MarketAccess.of(batch))
            signals.append(produced)
            keyed += [(position, rank, row) for position, row in zip(positions, produced.rows(), strict=True)]
    keyed.sort(key=lambda item: (item[0], item[1]))
    return MarketStep(features, signals, [row for _, _, row in keyed])


def to_partitions(batch: IngestBatch, partitions: int) -> list[tuple[str, IngestBatch]]:
    """A raw batch to the state of its own partition, and its day-ahead prices to every other partition's too.

    Day-ahead prices are keyed by area, so they sit on another partition than most of the products they anchor;
    every partition's features need them (a product's events wait for its anchor, so the anchor never depends
    on how partitions interleave)."""
    out = [(partition_key(batch.topic, batch.partition), batch)]
    if len(batch.dayahead):
        prices = IngestBatch(TickBatch.empty(), BookBatch.empty(), batch.dayahead, [], batch.topic, batch.partition)
        out += [(partition_key(batch.topic, other), prices) for other in range(partitions) if other != batch.partition]
    return out


def partition_key(topic: str, partition: int) -> str:
    return f"{topic}[{partition}]"


@operator
def partition_signals(step_id: str, up: Stream[IngestBatch], *, models: list[Model], settings: FeatureSettings,
                      durations_min: tuple[int, ...], partitions: int) -> Stream[MarketStep]:
    """Features and signals per raw-topic partition, in the partition's log order (the trading flow).

    Keyed by partition, not by product: a partition holds whole products in their feed order, so one step sees
    a batch's products together and can hand the engine their signals in the order of the log, whatever the
    batching. Partitions are the unit of parallelism, as in Kafka. ``partitions``: how many the raw topic has
    (day-ahead prices go to each, see :func:`to_partitions`).
    """
    keyed = op.flat_map("to_partitions", up, lambda batch: to_partitions(batch, partitions))
    stepped = op.stateful("features_and_models", keyed,
                          lambda resume: _PartitionLogic(resume, settings, models, durations_min))
    return op.map("unkey", stepped, lambda key_value: key_value[1])
