"""Signals: what the models say per product, and the market at each signal (the ``signals`` topic and table).

A model looks at a product's features at each trade and answers with a direction, a strength, a confidence
and the position it would like to hold. Each signal carries the market at that moment
(:data:`MARKET_COLUMNS`, a :class:`MarketSnapshot`), so that execution can size an order without the
features. :class:`MarketAccess` is what we know of the part of the market we do not see. The wire format
is ``connectors.wire.signals``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from wattflow.features import FeatureBatch


@dataclass(frozen=True, slots=True)
class MarketAccess:
    """How much of the market we see for a product at each of its trades (``operators.access``): 1.0 full view,
    0.0 blind. ``coverage`` is the measured feed access (``min(book_coverage, trade_coverage)``),
    ``book_coverage`` the book's alone, ``fill_probability`` the predicted chance that an order placed now is
    worked and filled before gate closure (``operators.access_prediction``); each a float (the same at every
    trade) or an array with one value per trade. Unmeasured (NaN, a row from before access was measured): 1.0."""

    coverage: float | NDArray[np.float64] = 1.0
    book_coverage: float | NDArray[np.float64] = 1.0
    fill_probability: float | NDArray[np.float64] = 1.0

    @classmethod
    def of(cls, features: FeatureBatch) -> MarketAccess:
        """The access measured at each trade of ``features``."""
        def column(name: str) -> NDArray[np.float64]:
            return np.nan_to_num(features.column(name), nan=1.0)

        return cls(column("feed_access"), column("book_coverage"), column("fill_probability"))


#: Full access: what a model is given when nothing was measured (a test of the model alone).
FULL_ACCESS = MarketAccess()


#: The feature columns a signal carries as its ``market`` snapshot: what order sizing needs to know.
MARKET_COLUMNS: tuple[str, ...] = (
    "minutes_to_gate_closure", "best_bid_eur_per_mwh", "best_ask_eur_per_mwh", "mid_eur_per_mwh",
    "bid_depth_near_mid_mw", "ask_depth_near_mid_mw", "volume_mw", "feed_access", "fill_probability")


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

    def rows(self) -> list[SignalRow]:
        """One :class:`SignalRow` per signal, as execution acts on them (what the ``signals`` topic decodes to)."""
        n = len(self)
        nan = np.full(n, np.nan)
        # Whole columns to Python floats at once, then one zip over the rows.
        market = zip(*(np.asarray(self.market.get(name, nan), dtype=np.float64).tolist() for name in MARKET_COLUMNS),
                     strict=True)
        return [SignalRow(self.product, self.model, ts, trade_id, target, MarketSnapshot(*values))
                for ts, trade_id, target, values in zip(self.ts_ns.tolist(), self.trade_id.tolist(),
                                                        self.target_position_mw.tolist(), market, strict=True)]


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """What sizing needs to know about a product's market at one moment (NaN: not known)."""

    minutes_to_gate_closure: float
    best_bid_eur_per_mwh: float
    best_ask_eur_per_mwh: float
    mid_eur_per_mwh: float
    bid_depth_near_mid_mw: float
    ask_depth_near_mid_mw: float
    volume_mw: float
    #: Measured feed access in [0, 1] and the predicted fill probability (NaN: not measured, e.g. an old row).
    feed_access: float = math.nan
    fill_probability: float = math.nan

    @classmethod
    def of(cls, features: FeatureBatch, row: int) -> MarketSnapshot:
        return cls(*(float(features.column(name)[row]) for name in MARKET_COLUMNS))


@dataclass(frozen=True, slots=True)
class SignalRow:
    """One model's signal for one product at one trade, with the market then."""

    product: str
    model: str
    ts_ns: int
    trade_id: int
    target_position_mw: float
    market: MarketSnapshot
