"""Mean reversion of the intraday price to a fair value.

Fair value ``f = (d + e) / 2``: the day-ahead price ``d`` of the delivery hour (the market's last consensus,
EUR/MWh) and the slow EWMA ``e`` of traded prices (which carries what the market learnt since, e.g. the wind
and solar forecast error). Without a day-ahead price, ``f = e``. The deviation is scaled by the realised
volatility of the window (floored at 1 EUR/MWh): ``z = (p - f) / max(sigma, 1)``. Beyond ``entry_z`` the
model leans against the deviation: ``direction = -sign(z)``, ``strength = min((|z| - entry_z) / entry_z, 1)``.
Confidence grows with trading activity (``trades_per_min / 2``, capped at 1); the horizon is the time left to
gate closure, at most 30 minutes.

**Market access** (``access.coverage`` = measured feed access ``a`` in [0, 1] at each trade, ``operators.access``):
confidence and strength (so the target, ``strength * max_position_mw``) are both multiplied by ``a``: a fair value
and a deviation read off a feed we see a tenth of are worth a tenth of the conviction, and the model asks for a
tenth of the position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from operators.models import ModelSettings, to_signal
from wattflow.features import FeatureBatch
from wattflow.signals import MarketAccess, SignalBatch


@dataclass(frozen=True, slots=True)
class MeanReversion:
    settings: ModelSettings
    entry_z: float = 1.5
    name: str = "mean_reversion"

    def fair_value(self, features: FeatureBatch) -> np.ndarray:
        anchor = features.column("day_ahead_eur_per_mwh")
        slow = features.column("ewma_slow_eur_per_mwh")
        return np.where(np.isfinite(anchor), 0.5 * (anchor + slow), slow)

    def signals(self, features: FeatureBatch, access: MarketAccess) -> SignalBatch:
        price = features.column("price_eur_per_mwh")
        sigma = np.fmax(features.column("realised_volatility_eur_per_mwh"), 1.0)
        z = (price - self.fair_value(features)) / sigma
        direction = np.where(np.abs(z) > self.entry_z, -np.sign(z), 0.0)
        strength = np.minimum((np.abs(z) - self.entry_z) / self.entry_z, 1.0)
        coverage = np.asarray(access.coverage, dtype=np.float64)
        strength = strength * coverage
        confidence = np.minimum(features.column("trades_per_min") / 2.0, 1.0) * coverage
        horizon = np.clip(features.column("minutes_to_gate_closure") * 60.0, 0.0, 1800.0)
        return to_signal(features, self.name, direction, strength, confidence=confidence, horizon_s=horizon,
                         settings=self.settings)


def build(settings: ModelSettings) -> MeanReversion:
    return MeanReversion(settings)
