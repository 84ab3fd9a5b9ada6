"""Features: the per-product columns the models read, one row per trade (the ``features`` topic and table).

Units are in the names (``_eur_per_mwh``, ``_mw``, ``_per_min``); a NaN is "not known" (an empty book side,
no day-ahead price yet). ``operators.features`` computes them; the wire format is ``connectors.wire.features``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

#: The book kernel's output rows, in order (``operators.kernels.book``).
BOOK_FEATURES = ("best_bid_eur_per_mwh", "best_ask_eur_per_mwh", "mid_eur_per_mwh", "spread_eur_per_mwh",
                 "bid_depth_mw", "ask_depth_mw", "imbalance", "bid_depth_near_mid_mw", "ask_depth_near_mid_mw")

#: Market access (``operators.access``, ``operators.access_prediction``), each in [0, 1]: added after the first
#: version, so a message or row without them reads as NaN ("not measured"), which models and the engine take as 1.
ACCESS_FEATURES = ("book_coverage", "trade_coverage", "feed_access", "fill_probability")

#: Feature columns, in order, with their units in the names.
FEATURE_NAMES: tuple[str, ...] = (
    "price_eur_per_mwh", "quantity_mw", "side",
    "mean_eur_per_mwh", "zscore", "vwap_eur_per_mwh", "realised_volatility_eur_per_mwh", "volume_mw",
    "ewma_fast_eur_per_mwh", "ewma_slow_eur_per_mwh", "trades_per_min", "intensity_trend_per_min2",
    *BOOK_FEATURES,
    "day_ahead_eur_per_mwh", "spread_to_day_ahead_eur_per_mwh", "minutes_to_gate_closure",
    *ACCESS_FEATURES,
)


@dataclass(frozen=True, slots=True)
class FeatureBatch:
    """Features of one product at each of its trades: ``values[k]`` is column ``FEATURE_NAMES[k]``."""

    product: str
    ts_ns: I64
    trade_id: I64
    values: F64  # shape (len(FEATURE_NAMES), n)
    #: Where each trade sat in its partition's log (``operators.features.log_positions``), when it came from one
    #: (the trading flow orders signals across products by it); not part of the wire format.
    log_position: I64 | None = None

    def __len__(self) -> int:
        return len(self.ts_ns)

    def column(self, name: str) -> F64:
        return self.values[FEATURE_NAMES.index(name)]

