"""Trade intensity (trades per minute) and its trend, over two adjacent event-time windows.

Per trade at time ``t`` (``t = max(ts, latest ts seen)``), with ``w = window_ns / 60e9`` minutes:

* ``recent`` = trades with ``t - window_ns < ts <= t`` (this one included), ``previous`` = trades with
  ``t - 2 * window_ns < ts <= t - window_ns``
* ``trades_per_min = recent / w`` (trades/min)
* ``trend_trades_per_min_per_min = (recent - previous) / w / w`` (trades/min per minute): the change of the
  intensity from the previous window to this one. Time to gate closure falls one minute per minute, so this
  is minus the slope of intensity against minutes to gate closure, a two-point difference rather than a
  least-squares fit: positive when trading accelerates towards closure, as it usually does in the last hours.

Counts are integers, so the outputs are exact and do not depend on how the stream is split into batches.
Shortly after trading opens the previous window is partly before the opening, which makes the trend high.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numba import njit
from numpy.typing import NDArray

from operators.kernels.window import COUNT, HEAD, LAST_TS, NO_TIME_LIMIT_NS, new_cursor, unrolled

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
NS_PER_MINUTE = 60_000_000_000
#: The slot of the cursor that holds how many of the ring's oldest trades are in the previous window.
_PREVIOUS = 2


@dataclass(slots=True)
class IntensityState:
    """One product's intensity state: the ring of trade times of the last two windows, picklable.
    ``cursor``: [head, count, trades in the previous window, last ts]."""

    window_ns: int
    ts_ns: I64
    cursor: I64 = field(default_factory=new_cursor)

    @classmethod
    def new(cls, window_ns: int, capacity: int = 64) -> IntensityState:
        if not 0 < window_ns <= NO_TIME_LIMIT_NS // 2:
            raise ValueError(f"window_ns {window_ns} must be positive and finite")
        if capacity < 1:
            raise ValueError(f"capacity {capacity} must be >= 1")
        return cls(window_ns, np.zeros(capacity, np.int64))

    def grow(self) -> None:
        head, count, capacity = int(self.cursor[HEAD]), int(self.cursor[COUNT]), len(self.ts_ns)
        self.ts_ns = unrolled(self.ts_ns, head, count, 2 * capacity)
        self.cursor[HEAD] = 0


class Intensity(NamedTuple):
    """Per-trade outputs of :func:`trade_intensity`."""

    trades_per_min: F64
    trend_trades_per_min_per_min: F64


@njit(cache=True)
def trade_intensity_kernel(  # noqa: PLR0917 (a Numba kernel takes its arrays positionally)
    ts_ns: I64, window_ns: int, ring_ts_ns: I64, cursor: I64, out: F64, start: int,
) -> int:
    """Process trades ``start..``: write intensity (trades/min) into ``out[0, i]`` and its trend (trades/min
    per minute) into ``out[1, i]``, update the state in place. Returns the index of the first trade not
    processed (less than ``len(ts_ns)`` when the ring is full: grow it and call again from there)."""
    capacity = ring_ts_ns.shape[0]
    minutes = window_ns / NS_PER_MINUTE
    per_minute = 1.0 / minutes
    per_minute_sq = per_minute / minutes
    head, count, previous, last_ts = cursor[HEAD], cursor[COUNT], cursor[_PREVIOUS], cursor[LAST_TS]
    i = start
    n = ts_ns.shape[0]
    while i < n:
        now = max(ts_ns[i], last_ts)
        while previous < count:  # trades that have aged from the recent window into the previous one
            slot = head + previous
            if slot >= capacity:
                slot -= capacity
            if now - ring_ts_ns[slot] < window_ns:
                break
            previous += 1
        while count > 0 and now - ring_ts_ns[head] >= 2 * window_ns:
            head = head + 1 if head + 1 < capacity else 0
            count -= 1
            previous -= 1
        if count == capacity:
            break
        slot = head + count
        if slot >= capacity:
            slot -= capacity
        ring_ts_ns[slot] = now
        count += 1
        last_ts = now
        recent = count - previous
        out[0, i] = recent * per_minute
        out[1, i] = (recent - previous) * per_minute_sq
        i += 1
    cursor[HEAD], cursor[COUNT], cursor[_PREVIOUS], cursor[LAST_TS] = head, count, previous, last_ts
    return i


def trade_intensity(state: IntensityState, ts_ns: I64) -> Intensity:
    """Trades per minute over the last window and its trend (module docstring), one value per trade."""
    out = np.empty((2, len(ts_ns)))
    done = 0
    while True:
        done = trade_intensity_kernel(ts_ns, state.window_ns, state.ts_ns, state.cursor, out, done)
        if done == len(ts_ns):
            return Intensity(out[0], out[1])
        state.grow()
