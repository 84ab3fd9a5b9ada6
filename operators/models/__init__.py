"""Quant models: pure functions from a product's features to trading signals.

A model is one module in this package that defines ``build(settings) -> Model``; it is switched on by
naming it in ``WATTFLOW_SIGNALS_MODELS`` (comma-separated). That is all adding a model takes.

Every model also receives :class:`MarketAccess`: what we know about the part of the market we do *not* see
(feed gaps, venue outages), built from the exceptional-events topic. A model should lower its confidence
when access is partial; until the events feed-back lands it reports full access.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from operators.features import FeatureBatch


@dataclass(frozen=True, slots=True)
class MarketAccess:
    """How much of the market we see for a product: 1.0 full view, 0.0 blind."""

    coverage: float = 1.0
    feed_gaps_last_hour: int = 0
    venue_outage: bool = False


FULL_ACCESS = MarketAccess()


#: The feature columns a signal carries as its ``market`` snapshot: what order sizing needs to know.
MARKET_COLUMNS: tuple[str, ...] = (
    "minutes_to_gate_closure", "best_bid_eur_per_mwh", "best_ask_eur_per_mwh", "mid_eur_per_mwh",
    "bid_depth_near_mid_mw", "ask_depth_near_mid_mw", "volume_mw")


@dataclass(frozen=True, slots=True)
class SignalBatch:
    """Signals of one model for one product, one per trade it looked at.

    ``direction`` +1 buy / -1 sell / 0 flat; ``strength`` and ``confidence`` in [0, 1];
    ``target_position_mw`` the position the model would like to hold; ``horizon_s`` how long it expects
    the signal to stay valid.
    """

    product: str
    model: str
    ts_ns: NDArray[np.int64]
    trade_id: NDArray[np.int64]
    direction: NDArray[np.int8]
    strength: NDArray[np.float64]
    target_position_mw: NDArray[np.float64]
    confidence: NDArray[np.float64]
    horizon_s: NDArray[np.float64]
    #: The market at each signal (``MARKET_COLUMNS``), so that execution can size without the features topic.
    market: dict[str, NDArray[np.float64]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ts_ns)


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
