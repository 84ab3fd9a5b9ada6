"""Bytewax operators of the signals flow: route market data to products, keep features per product, run models."""

from __future__ import annotations

import numpy as np
import pandas as pd
from bytewax import operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulLogic

from operators.features import FeatureSettings, ProductEvents, ProductFeatures
from operators.models import Model
from wattflow.batches import IngestBatch
from wattflow.domain import NS_PER_MINUTE, Product
from wattflow.features import FeatureBatch
from wattflow.signals import FULL_ACCESS, SignalBatch


def by_product(batch: IngestBatch, durations_min: tuple[int, ...] = (15, 60)) -> list[tuple[str, ProductEvents]]:
    """Split a decoded batch into per-product pieces (keyed by product).

    A day-ahead price of an hour goes to every product delivered within that hour (``durations_min``), so
    each product's features know their anchor.
    """
    out: list[tuple[str, ProductEvents]] = []
    for key, rows in _groups(batch.ticks.product):
        out.append((key, ProductEvents(key, ticks=batch.ticks.take(rows))))
    for key, rows in _groups(batch.book.product):
        out.append((key, ProductEvents(key, book=batch.book.take(rows))))
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
    return out


def _groups(products: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Rows of each product, in their order (stable)."""
    if not len(products):
        return []
    codes, uniques = pd.factorize(products)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return [(str(uniques[codes[rows[0]]]), rows) for rows in np.split(order, bounds)]


class _FeatureLogic(StatefulLogic[ProductEvents, FeatureBatch, ProductFeatures]):
    def __init__(self, state: ProductFeatures | None, settings: FeatureSettings) -> None:
        self.state = state
        self.settings = settings

    def on_item(self, value: ProductEvents) -> tuple[list[FeatureBatch], bool]:
        if self.state is None:
            self.state = ProductFeatures.new(value.product, self.settings)
        produced = self.state.on_events(value)
        return ([produced] if produced is not None else []), False

    def on_eof(self) -> tuple[list[FeatureBatch], bool]:
        if self.state is None:
            return [], False
        produced = self.state.on_end()
        return ([produced] if produced is not None else []), False

    def snapshot(self) -> ProductFeatures:
        assert self.state is not None
        return self.state


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
    return op.flat_map("signals", up, lambda features: [m.signals(features, FULL_ACCESS) for m in models])


