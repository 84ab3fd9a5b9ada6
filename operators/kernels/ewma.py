"""Exponentially weighted moving averages of trade prices over event time, at several half-lives at once.

For half-life ``h`` (ns), trade ``i`` at time ``t_i`` (``t = max(ts, latest ts seen)``) and price ``p_i``
(EUR/MWh), each earlier trade ``j`` weighs ``w_j = 2^(-(t_i - t_j) / h)``:

    ewma_i = sum_j w_j * p_j / sum_j w_j        (EUR/MWh)

computed recursively with ``decay = exp(-ln 2 * (t_i - t_{i-1}) / h)``:
``num = decay * num + p_i``, ``den = decay * den + 1``, ``ewma_i = num / den``. This is pandas'
``Series.ewm(halflife=h, times=...).mean()`` (``adjust=True``). Once ``den`` has settled it is the familiar
``ewma += alpha * (p - ewma)`` with ``alpha = 1 - exp(-ln 2 * dt / h)``; unlike that recursion started at
the first price, trades with the same timestamp weigh the same (with ``alpha`` the second would get weight
0 since ``dt = 0``), and the first trades are not dominated by whichever came first. The first trade's
EWMA is its price. After a gap of many half-lives ``decay`` underflows to 0 and the average restarts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numba import njit
from numpy.typing import NDArray

from operators.kernels.window import NO_TIME_NS

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass(slots=True)
class EwmaState:
    """One product's EWMA state, picklable: the half-lives (ns); ``sums[0, k]`` the weighted price sum and
    ``sums[1, k]`` the weight sum of half-life ``k``; the time of the last trade (``NO_TIME_NS`` before the
    first)."""

    half_life_ns: I64
    sums: F64
    last_ts_ns: I64 = field(default_factory=lambda: np.array([NO_TIME_NS], dtype=np.int64))

    @classmethod
    def new(cls, half_lives_ns: Sequence[int]) -> EwmaState:
        half_lives = np.asarray(half_lives_ns, dtype=np.int64)
        if half_lives.ndim != 1 or len(half_lives) == 0 or (half_lives <= 0).any():
            raise ValueError(f"half-lives {half_lives_ns!r} must be one or more positive ns")
        return cls(half_lives, np.zeros((2, len(half_lives))))


@njit(cache=True)
def ewma_kernel(  # noqa: PLR0917 (a Numba kernel takes its arrays positionally)
    ts_ns: I64, price_eur_per_mwh: F64, half_life_ns: I64, sums: F64, last_ts_ns: I64, out: F64,
) -> None:
    """Write ``out[k, i]``, the EWMA (EUR/MWh) of half-life ``half_life_ns[k]`` at trade ``i``, and update the
    state arrays in place (module docstring: formula)."""
    rates = np.log(2.0) / half_life_ns.astype(np.float64)
    last_ts = last_ts_ns[0]
    for i in range(ts_ns.shape[0]):
        now = max(ts_ns[i], last_ts)
        price = price_eur_per_mwh[i]
        elapsed = float(now - last_ts) if last_ts != NO_TIME_NS else 0.0
        for k in range(rates.shape[0]):
            decay = math.exp(-rates[k] * elapsed) if elapsed > 0.0 else 1.0
            sums[0, k] = decay * sums[0, k] + price
            sums[1, k] = decay * sums[1, k] + 1.0
            out[k, i] = sums[0, k] / sums[1, k]
        last_ts = now
    last_ts_ns[0] = last_ts


def ewma(state: EwmaState, ts_ns: I64, price_eur_per_mwh: F64) -> F64:
    """EWMAs of one product's trade prices, shape ``(len(half_lives), len(ts_ns))`` (EUR/MWh): row ``k`` for
    half-life ``k``. Updates ``state`` in place; any split into batches gives bit-identical outputs."""
    out = np.empty((len(state.half_life_ns), len(ts_ns)))
    ewma_kernel(ts_ns, price_eur_per_mwh, state.half_life_ns, state.sums, state.last_ts_ns, out)
    return out
