"""Rolling mean, variance and z-score of trade prices over a time window, a count window, or both.

Per event ``i`` with window ``W(i)`` (``window.py``: the events of the last ``window_ns`` up to and
including ``i``, and at most the last ``max_count``), ``n = |W(i)|``:

* ``mean_eur_per_mwh = sum(p_j) / n`` (EUR/MWh)
* ``variance_eur2_per_mwh2 = sum((p_j - mean)^2) / n``, the population variance (ddof 0), so that a single
  tick has variance 0 rather than NaN ((EUR/MWh)^2)
* ``zscore = (p_i - mean) / sqrt(variance)``, 0 when the variance is 0 (dimensionless)

Prices may be negative or zero; nothing divides by a price. Sums are of ``d = p - s`` and ``d^2`` with the
shift ``s`` the newest price of the front, which is in the window whenever a window is summarised. Then
``sum(d^2) <= (n + 1) * sum((p - mean)^2)``: the cancellation in ``sum(d^2) - sum(d)^2 / n`` is bounded by
the window size whatever the price level, the variance is never negative, and a window of equal prices has
variance exactly 0 and z-score exactly 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np
from numba import njit
from numpy.typing import NDArray

from operators.kernels.window import (
    COUNT,
    FRONT,
    HEAD,
    LAST_TS,
    RingWindowState,
    count_limit,
    expired,
)

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

# Float slots of the state: the shift (newest front price), the back's sums of d and d^2.
_SHIFT, _BACK_SUM, _BACK_SUM_SQ = 0, 1, 2
# Rows of the float ring: price, and the front's suffix sums of d and d^2.
_PRICE, _SUM, _SUM_SQ = 0, 1, 2


@dataclass(slots=True)
class MomentsState(RingWindowState):
    """One product's rolling-moments state (see :class:`RingWindowState`).

    ``ring[0, slot]``: prices (EUR/MWh); ``ring[1|2, slot]``: suffix sums of ``d`` and ``d^2`` over the front
    events from ``slot`` to the newest front event; ``scalars``: [shift, back sum of d, back sum of d^2].
    """

    ROWS: ClassVar[int] = 3
    SCALARS: ClassVar[int] = 3


class Moments(NamedTuple):
    """Per-event outputs of :func:`rolling_moments`, one value per input event."""

    mean_eur_per_mwh: F64
    variance_eur2_per_mwh2: F64
    zscore: F64


@njit(cache=True)
def _rebuild_front(ring: F64, head: int, count: int) -> float:
    """Make every event in the ring a front event: suffix sums of d and d^2 from the newest event back to
    the oldest, with d relative to the newest price (which every suffix contains). Returns that shift."""
    capacity = ring.shape[1]
    slot = head + count - 1
    if slot >= capacity:
        slot -= capacity
    shift = ring[_PRICE, slot]
    sum_d = 0.0
    sum_d2 = 0.0
    for _ in range(count):
        d = ring[_PRICE, slot] - shift
        sum_d += d
        sum_d2 += d * d
        ring[_SUM, slot] = sum_d
        ring[_SUM_SQ, slot] = sum_d2
        slot = slot - 1 if slot > 0 else capacity - 1
    return shift


@njit(cache=True)
def rolling_moments_kernel(  # noqa: PLR0917 (a Numba kernel takes its arrays positionally)
    ts_ns: I64, price_eur_per_mwh: F64, window_ns: int, max_count: int, ring_ts_ns: I64, ring: F64, cursor: I64,
    scalars: F64, out: F64, start: int,
) -> int:
    """Process events ``start..`` of a batch: write per-event mean (EUR/MWh), variance ((EUR/MWh)^2) and
    z-score into ``out[0|1|2, i]`` and update the state arrays in place. Returns the index of the first
    event not processed: ``len(ts_ns)``, or less when the ring is full (grow it, call again from there)."""
    capacity = ring_ts_ns.shape[0]
    limit = count_limit(max_count, capacity)
    head, count, front, last_ts = cursor[HEAD], cursor[COUNT], cursor[FRONT], cursor[LAST_TS]
    shift, back_sum, back_sum_sq = scalars[_SHIFT], scalars[_BACK_SUM], scalars[_BACK_SUM_SQ]
    i = start
    n = ts_ns.shape[0]
    while i < n:
        now = max(ts_ns[i], last_ts)
        price = price_eur_per_mwh[i]
        while count > 0 and expired(now, ring_ts_ns[head], count, window_ns, limit):
            head = head + 1 if head + 1 < capacity else 0
            count -= 1
            front -= 1
        if count == capacity:
            break
        slot = head + count
        if slot >= capacity:
            slot -= capacity
        ring_ts_ns[slot] = now
        ring[_PRICE, slot] = price
        count += 1
        last_ts = now
        if front <= 0:  # the front ran out (evicted back events are dropped with the back sums)
            shift = _rebuild_front(ring, head, count)
            front, back_sum, back_sum_sq = count, 0.0, 0.0
        else:
            d = price - shift
            back_sum += d
            back_sum_sq += d * d
        sum_d = ring[_SUM, head] + back_sum
        sum_sq = ring[_SUM_SQ, head] + back_sum_sq
        reciprocal = 1.0 / count
        offset = sum_d * reciprocal
        variance = max(sum_sq - sum_d * offset, 0.0) * reciprocal
        out[0, i] = shift + offset
        out[1, i] = variance
        out[2, i] = ((price - shift) - offset) / math.sqrt(variance) if variance > 0.0 else 0.0
        i += 1
    cursor[HEAD], cursor[COUNT], cursor[FRONT], cursor[LAST_TS] = head, count, front, last_ts
    scalars[_SHIFT], scalars[_BACK_SUM], scalars[_BACK_SUM_SQ] = shift, back_sum, back_sum_sq
    return i


def rolling_moments(state: MomentsState, ts_ns: I64, price_eur_per_mwh: F64) -> Moments:
    """Rolling mean, variance and z-score of one product's trade prices (module docstring: formulas, units).

    ``ts_ns``: int64 event times (UTC ns); ``price_eur_per_mwh``: finite float64 prices; one per trade, in
    arrival order (other dtypes work, at the price of compiling another specialisation). Updates ``state`` in
    place; any split of a stream into batches gives bit-identical outputs.
    """
    n = len(ts_ns)
    out = np.empty((3, n))
    done = rolling_moments_kernel(ts_ns, price_eur_per_mwh, state.window_ns, state.max_count, state.ts_ns, state.ring,
                                  state.cursor, state.scalars, out, 0)
    while done < n:
        state.grow()
        done = rolling_moments_kernel(ts_ns, price_eur_per_mwh, state.window_ns, state.max_count, state.ts_ns,
                                      state.ring, state.cursor, state.scalars, out, done)
    return Moments(out[0], out[1], out[2])
