"""A stream's usual rhythm: a robust EWMA of the time between its events (event time), per event.

For events at ``t_1 <= t_2 <= ...`` of one stream (a product's book updates, or its trades), with ``g_i = t_i -
t_{i-1}`` (ns) and the rhythm ``r`` (ns) before event ``i``:

* a gap of 0 (several events at one instant) is not folded in;
* the first gap sets the rhythm: ``r = g_2``;
* after that ``r <- (1 - a) * r + a * min(g_i, k * r)`` with ``a`` the weight of one gap (``weight``) and ``k``
  the winsorising factor (``cap_factor``): a long silence (an outage, the very thing measured against the rhythm)
  moves the rhythm by at most ``a * (k - 1)`` of itself, so the rhythm does not learn the outage.

``rhythm_after[i]`` is ``r`` once event ``i`` is folded in (NaN while fewer than two events were seen). Integer
times in, float64 ns out; the state is two small arrays updated in place, so any split of the stream into batches
gives bit-identical outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
_NONE = np.iinfo(np.int64).min


@dataclass(slots=True)
class RhythmState:
    """One stream's rhythm: ``last_ns[0]`` its last event time (int64 min: none yet), ``rhythm_ns[0]`` (NaN: not
    known yet). Picklable."""

    last_ns: I64 = field(default_factory=lambda: np.full(1, _NONE, np.int64))
    rhythm_ns: F64 = field(default_factory=lambda: np.full(1, np.nan))

    @property
    def last(self) -> int | None:
        value = int(self.last_ns[0])
        return None if value == _NONE else value

    @property
    def rhythm(self) -> float:
        return float(self.rhythm_ns[0])


@njit(cache=True)
def rhythm_kernel(ts_ns: I64, last_ns: I64, rhythm_ns: F64, weight: float, cap_factor: float,  # noqa: PLR0917
                  out: F64) -> None:
    """``out[i]``: the rhythm (ns) after event ``i`` (see the module docstring); ``last_ns``/``rhythm_ns`` updated."""
    last = last_ns[0]
    rhythm = rhythm_ns[0]
    none = np.iinfo(np.int64).min
    for i in range(ts_ns.shape[0]):
        t = ts_ns[i]
        if last != none:
            t = max(t, last)  # a late event counts as if it happened at the latest time seen
            gap = float(t - last)
            # A gap of 0 (one message's levels, the same instant) is not a gap of the stream: not folded in.
            if gap > 0.0 and np.isnan(rhythm):
                rhythm = gap
            elif gap > 0.0:
                rhythm = (1.0 - weight) * rhythm + weight * min(gap, cap_factor * rhythm)
        last = t
        out[i] = rhythm
    last_ns[0] = last
    rhythm_ns[0] = rhythm


def stream_rhythm(state: RhythmState, ts_ns: I64, *, weight: float, cap_factor: float) -> F64:
    """The rhythm (ns) after each event of ``ts_ns`` (see the module docstring); ``state`` moves on."""
    out = np.empty(len(ts_ns), np.float64)
    if len(ts_ns):
        rhythm_kernel(np.ascontiguousarray(ts_ns, dtype=np.int64), state.last_ns, state.rhythm_ns, weight, cap_factor,
                      out)
    return out
