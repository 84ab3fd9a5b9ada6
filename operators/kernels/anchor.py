"""Spread to the day-ahead anchor: how far intraday prices are from the day-ahead auction price.

``spread_to_day_ahead_eur_per_mwh = price_eur_per_mwh - day_ahead_eur_per_mwh`` (EUR/MWh), per event:
positive when intraday trades above the auction. ``price`` can be any intraday price series (trade prices,
VWAP, mid, EWMA); NaN in (an empty book's mid) gives NaN out, and so does a product without a known
day-ahead price (``day_ahead_eur_per_mwh`` NaN). The anchor of a quarter-hour product is the price of the
day-ahead period that covers it.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

F64 = NDArray[np.float64]


@njit(cache=True)
def spread_to_day_ahead_kernel(price_eur_per_mwh: F64, day_ahead_eur_per_mwh: float, out: F64) -> None:
    """``out[i] = price_eur_per_mwh[i] - day_ahead_eur_per_mwh`` (EUR/MWh)."""
    for i in range(price_eur_per_mwh.shape[0]):
        out[i] = price_eur_per_mwh[i] - day_ahead_eur_per_mwh


def spread_to_day_ahead(price_eur_per_mwh: F64, day_ahead_eur_per_mwh: float) -> F64:
    """Intraday price minus the product's day-ahead price, per event (module docstring)."""
    out = np.empty(len(price_eur_per_mwh))
    spread_to_day_ahead_kernel(price_eur_per_mwh, float(day_ahead_eur_per_mwh), out)
    return out
