"""Rolling mean, variance and z-score of trade prices over a time window, a count window, or both.

Per event ``i`` with window ``W(i)`` (see ``window.py``: the events of the last ``window_ns`` up to and
including ``i``, and at most the last ``max_count``), ``n = |W(i)|``:

* ``mean_eur_per_mwh = sum(p_j) / n`` (EUR/MWh)
* ``variance_eur2_per_mwh2 = sum((p_j - mean)^2) / n``: the population variance (ddof 0), so that a single
  tick has variance 0 rather than NaN ((EUR/MWh)^2)
* ``zscore = (p_i - mean) / sqrt(variance)``, and 0 when the variance is 0 (dimensionless)

Prices may be negative or zero; nothing here divides by a price. The variance comes from Chan's combination
of two Welford-style summaries (front suffix and back), each a sum of squared deviations from one of its
own prices, so it is never negative and a window of equal prices has variance exactly 0 and z-score 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numba import njit
from numpy.typing import NDArray

from operators.kernels.window import (
    COUNT,
    FRONT,
    HEAD,
    LAST_TS,
    NO_TIME_LIMIT_NS,
    check_window,
    expired,
    initial_capacity,
    new_cursor,
    unrolled,
)

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

# Scalar slots (float64) of the state: shift of the front, shift of the back, back sums of d and d^2.
_FRONT_SHIFT, _BACK_SHIFT, _BACK_SUM, _BACK_SUM_SQ = 0, 1, 2, 3


@dataclass(slots=True)
class MomentsState:
    """One product's rolling-moments state: plain numpy arrays and ints, picklable.

    ``ts_ns``/``price_eur_per_mwh`` are the ring of the window's events; ``front_sums[0|1, slot]`` the
    suffix sums of ``d`` and ``d^2`` (``d = price - front shift``) of the front events; ``cursor`` is
    [head, count, front count, last ts]; ``scalars`` is [front shift, back shift, back sum d, back sum d^2].
    """

    window_ns: int
    max_count: int
    ts_ns: I64
    price_eur_per_mwh: F64
    front_sums: F64
    cursor: I64 = field(default_factory=new_cursor)
    scalars: F64 = field(default_factory=lambda: np.zeros(4))

    @classmethod
    def new(cls, window_ns: int = NO_TIME_LIMIT_NS, max_count: int = 0, capacity: int | None = None,
            ) -> MomentsState:
        """An empty state for a window of ``window_ns`` and/or the last ``max_count`` events."""
        check_window(window_ns, max_count)
        slots = initial_capacity(max_count, capacity)
        return cls(window_ns, max_count, np.zeros(slots, np.int64), np.zeros(slots), np.zeros((2, slots)))

    @property
    def count(self) -> int:
        """Events in the window now."""
        return int(self.cursor[COUNT])

    def grow(self) -> None:
        """Double the ring (a time window holding more events than it has slots)."""
        head, count, capacity = int(self.cursor[HEAD]), int(self.cursor[COUNT]), len(self.ts_ns)
        self.ts_ns = unrolled(self.ts_ns, head, count, 2 * capacity)
        self.price_eur_per_mwh = unrolled(self.price_eur_per_mwh, head, count, 2 * capacity)
        self.front_sums = unrolled(self.front_sums, head, count, 2 * capacity)
        self.cursor[HEAD] = 0


class Moments(NamedTuple):
    """Per-event outputs of :func:`rolling_moments`."""

    mean_eur_per_mwh: F64
    variance_eur2_per_mwh2: F64
    zscore: F64


@njit(cache=True)
def _rebuild_front(ring_price: F64, front_sums: F64, head: int, count: int) -> float:
    """Make every event of the ring a front event: suffix sums of d, d^2 from the newest back to the oldest,
    with d relative to the newest price (which every suffix contains). Returns that shift."""
    capacity = ring_price.shape[0]
    slot = head + count - 1
    if slot >= capacity:
        slot -= capacity
    shift = ring_price[slot]
    sum_d = 0.0
    sum_d2 = 0.0
    for _ in range(count):
        d = ring_price[slot] - shift
        sum_d += d
        sum_d2 += d * d
        front_sums[0, slot] = sum_d
        front_sums[1, slot] = sum_d2
        slot = slot - 1 if slot > 0 else capacity - 1
    return shift


@njit(cache=True)
def rolling_moments_kernel(ts_ns: I64, price_eur_per_mwh: F64, window_ns: int, max_count: int,
                           ring_ts_ns: I64, ring_price: F64, front_sums: F64, cursor: I64, scalars: F64,
                           out_mean: F64, out_variance: F64, out_zscore: F64, start: int) -> int:
    """Process events ``start..`` of a batch, writing per-event mean (EUR/MWh), variance ((EUR/MWh)^2) and
    z-score, and updating the state arrays in place. Returns the index of the first event not processed:
    ``len(ts_ns)``, or less when the ring is full (grow it and call again from there)."""
    capacity = ring_ts_ns.shape[0]
    head, count, front, last_ts = cursor[HEAD], cursor[COUNT], cursor[FRONT], cursor[LAST_TS]
    front_shift, back_shift = scalars[_FRONT_SHIFT], scalars[_BACK_SHIFT]
    back_sum, back_sum_sq = scalars[_BACK_SUM], scalars[_BACK_SUM_SQ]
    i = start
    n = ts_ns.shape[0]
    while i < n:
        now = max(ts_ns[i], last_ts)
        price = price_eur_per_mwh[i]
        while count > 0 and expired(now, ring_ts_ns[head], count, window_ns, max_count):
            if front == 0:
                front_shift = _rebuild_front(ring_price, front_sums, head, count)
                front, back_sum, back_sum_sq = count, 0.0, 0.0
            head = head + 1 if head + 1 < capacity else 0
            count -= 1
            front -= 1
        if count == capacity:
            break
        slot = head + count
        if slot >= capacity:
            slot -= capacity
        ring_ts_ns[slot] = now
        ring_price[slot] = price
        if count == front:
            back_shift = price
        d = price - back_shift
        back_sum += d
        back_sum_sq += d * d
        count += 1
        last_ts = now
        if front == 0:
            front_shift = _rebuild_front(ring_price, front_sums, head, count)
            front, back_sum, back_sum_sq = count, 0.0, 0.0
        # Front summary (offset of its mean from its shift, squared deviations), then Chan's merge with the back.
        offset = front_sums[0, head] / front
        m2 = max(front_sums[1, head] - front_sums[0, head] * offset, 0.0)
        back = count - front
        if back > 0:
            back_offset = back_sum / back
            back_m2 = max(back_sum_sq - back_sum * back_offset, 0.0)
            delta = (back_shift - front_shift) + (back_offset - offset)
            weight = back / count
            offset += delta * weight
            m2 += back_m2 + delta * delta * front * weight
        variance = m2 / count
        out_mean[i] = front_shift + offset
        out_variance[i] = variance
        out_zscore[i] = ((price - front_shift) - offset) / math.sqrt(variance) if variance > 0.0 else 0.0
        i += 1
    cursor[HEAD], cursor[COUNT], cursor[FRONT], cursor[LAST_TS] = head, count, front, last_ts
    scalars[_FRONT_SHIFT], scalars[_BACK_SHIFT] = front_shift, back_shift
    scalars[_BACK_SUM], scalars[_BACK_SUM_SQ] = back_sum, back_sum_sq
    return i


def rolling_moments(state: MomentsState, ts_ns: I64, price_eur_per_mwh: F64) -> Moments:
    """Rolling mean, variance and z-score of one product's trade prices (module docstring: formulas, units).

    ``ts_ns`` int64 event times (UTC ns), ``price_eur_per_mwh`` finite float64 prices, one per trade, in
    arrival order. Updates ``state`` in place; any split of a stream into batches gives bit-identical outputs.
    """
    ts = np.ascontiguousarray(ts_ns, dtype=np.int64)
    price = np.ascontiguousarray(price_eur_per_mwh, dtype=np.float64)
    out = np.empty((3, len(ts)))
    done = 0
    while True:
        done = rolling_moments_kernel(ts, price, state.window_ns, state.max_count, state.ts_ns,
                                      state.price_eur_per_mwh, state.front_sums, state.cursor, state.scalars,
                                      out[0], out[1], out[2], done)
        if done == len(ts):
            return Moments(out[0], out[1], out[2])
        state.grow()
