"""Quant models: pure functions from a product's features to trading signals.

A model is one module in this package that defines ``build(settings) -> Model``; it is switched on by
naming it in ``WATTFLOW_SIGNALS_MODELS`` (comma-separated). That is all adding a model takes.

Every model also receives :class:`MarketAccess`: how much of the product's market we saw at each trade, measured
from the feed itself (``operators.access``: book and trade coverage against the product's usual rhythm) and the
predicted chance of filling before gate closure (``operators.access_prediction``). A model scales its confidence
and its target by access and says how in its docstring; the order path (rejects, venue outages) is the engine's
to weigh (``operators.order_path``), since it depends on reports that are not part of the market-data log.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from wattflow.features import FeatureBatch
from wattflow.signals import MARKET_COLUMNS, MarketAccess, SignalBatch


@dataclass(frozen=True, slots=True)
class ModelSettings:
    max_position_mw: float = 10.0
    position_step_mw: float = 0.1


class Model(Protocol):
    name: str

    def signals(self, features: FeatureBatch, access: MarketAccess) -> SignalBatch: ...


def load_models(names: list[str], settings: ModelSettings) -> list[Model]:
    """Import ``operators.models.<name>`` for each name and build its model."""
    models = []
    for name in names:
        try:
            module = importlib.import_module(f"operators.models.{name}")
        except ModuleNotFoundError:
            raise ValueError(f"no model {name!r}: add operators/models/{name}.py with build(settings)") from None
        models.append(module.build(settings))
    return models


def to_signal(features: FeatureBatch, model: str, direction: NDArray[np.float64], strength: NDArray[np.float64], *,
              confidence: NDArray[np.float64], horizon_s: NDArray[np.float64], settings: ModelSettings) -> SignalBatch:
    """Clean up a model's raw arrays into a SignalBatch: NaN means no signal, positions on the 0.1 MW step."""
    direction = np.where(np.isfinite(direction) & np.isfinite(strength), np.sign(direction), 0.0)
    strength = np.where(direction != 0, np.clip(np.nan_to_num(strength), 0.0, 1.0), 0.0)
    step = settings.position_step_mw
    target = np.round(direction * strength * settings.max_position_mw / step) * step
    return SignalBatch(
        features.product, model, features.ts_ns, features.trade_id, direction.astype(np.int8), strength,
        target, np.clip(np.nan_to_num(confidence), 0.0, 1.0), np.nan_to_num(horizon_s),
        {name: features.column(name) for name in MARKET_COLUMNS},
    )
