"""Book-imbalance momentum close to gate closure.

In the last ``active_minutes`` before gate closure, trading intensifies and a one-sided book tends to move
the price its way. With ``b`` the imbalance over the top levels, ``(bid depth - ask depth) / (bid + ask)``
in [-1, 1]: beyond ``threshold`` the model follows the heavier side, ``direction = sign(b)``,
``strength = (|b| - threshold) / (1 - threshold)``, halved when trading is slowing down (negative intensity
trend). Confidence grows with the depth near mid (``depth / 50 MW``, capped at 1); the horizon is 5 minutes.

**Market access**: the model reads the book, so a stale book misleads it most. Confidence is multiplied by the
book coverage ``a_b`` (``access.book_coverage``, in [0, 1], ``operators.access``) and strength (so the target) by
the feed access ``a = min(a_b, trade coverage)`` (``access.coverage``): an imbalance seen on a book that has not
moved for ten of its usual gaps is a tenth as believable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from operators.models import ModelSettings, to_signal
from wattflow.features import FeatureBatch
from wattflow.signals import MarketAccess, SignalBatch


@dataclass(frozen=True, slots=True)
class ImbalanceMomentum:
    settings: ModelSettings
    threshold: float = 0.3
    active_minutes: float = 120.0
    name: str = "imbalance_momentum"

    def signals(self, features: FeatureBatch, access: MarketAccess) -> SignalBatch:
        imbalance = features.column("imbalance")
        active = features.column("minutes_to_gate_closure") <= self.active_minutes
        direction = np.where(active & (np.abs(imbalance) > self.threshold), np.sign(imbalance), 0.0)
        slowing = features.column("intensity_trend_per_min2") < 0
        strength = (np.abs(imbalance) - self.threshold) / (1.0 - self.threshold) * np.where(slowing, 0.5, 1.0)
        depth = features.column("bid_depth_near_mid_mw") + features.column("ask_depth_near_mid_mw")
        strength = strength * np.asarray(access.coverage, dtype=np.float64)
        confidence = np.minimum(depth / 50.0, 1.0) * np.asarray(access.book_coverage, dtype=np.float64)
        horizon = np.full(len(features), 300.0)
        return to_signal(features, self.name, direction, strength, confidence=confidence, horizon_s=horizon,
                         settings=self.settings)


def build(settings: ModelSettings) -> ImbalanceMomentum:
    return ImbalanceMomentum(settings)
