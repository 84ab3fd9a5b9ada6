"""Feature kernels: Numba functions over numpy arrays, one product at a time, streaming in batches.

Each kernel comes as a plain ``@njit(cache=True)`` function over arrays (``*_kernel``) and a typed Python
function that takes a per-product state and a batch's columns and returns one output per event. A state is
a small dataclass of numpy arrays and ints (picklable: Bytewax snapshots it for recovery) that the kernel
updates in place, so that any split of a product's stream into batches gives bit-identical outputs.

| module | state | outputs per event |
|---|---|---|
| ``moments`` | :class:`MomentsState` | rolling mean, variance, z-score of price (time and/or count window) |
| ``trades`` | :class:`TradeWindowState` | trade count, volume, VWAP, realised volatility (time and/or count) |
| ``intensity`` | :class:`IntensityState` | trades per minute and its trend (time window) |
| ``ewma`` | :class:`EwmaState` | EWMA of price at several half-lives (event time) |
| ``book`` | :class:`BookState` | best bid/ask, mid, spread, depth and imbalance over N levels, depth near mid |
| ``clock`` | (none) | minutes to gate closure |
| ``anchor`` | (none) | spread to the day-ahead price |

Times are int64 UTC ns, prices float64 EUR/MWh, quantities float64 MW, as numpy arrays (a batch's columns;
other dtypes work at the price of compiling another specialisation, so the wrappers do not copy). Within a
product, event time must not run backwards: a late event counts as if it happened at the latest time seen.
A call costs about 1 us whatever the batch size: call once per product per batch, never per event.
"""

from operators.kernels.anchor import spread_to_day_ahead
from operators.kernels.book import BookFeatures, BookState, update_book
from operators.kernels.clock import time_to_gate_closure_min
from operators.kernels.ewma import EwmaState, ewma
from operators.kernels.intensity import Intensity, IntensityState, trade_intensity
from operators.kernels.moments import Moments, MomentsState, rolling_moments
from operators.kernels.trades import TradeStats, TradeWindowState, rolling_trades, trades_per_minute
from operators.kernels.window import NO_TIME_LIMIT_NS
from wattflow.domain import gate_closure_ns

__all__ = [
    "NO_TIME_LIMIT_NS",
    "BookFeatures",
    "BookState",
    "EwmaState",
    "Intensity",
    "IntensityState",
    "Moments",
    "MomentsState",
    "TradeStats",
    "TradeWindowState",
    "ewma",
    "gate_closure_ns",
    "rolling_moments",
    "rolling_trades",
    "spread_to_day_ahead",
    "time_to_gate_closure_min",
    "trade_intensity",
    "trades_per_minute",
    "update_book",
]
