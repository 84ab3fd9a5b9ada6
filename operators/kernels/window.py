"""What the rolling kernels share: the window rule, the ring buffer, and how a state grows.

A rolling kernel keeps the events of one product's current window in a ring buffer of fixed capacity
(numpy arrays, so the state pickles for Bytewax recovery) and aggregates it with the *two-stacks* scheme:
the ring is split into a **front** (the older events, each holding the aggregate of itself and every newer
front event: a suffix sum) and a **back** (the newer events, summed into a few scalars as they arrive).
Evicting the oldest event just moves the head; when the front runs empty the whole ring becomes the front
and its suffix sums are rebuilt (each event is rebuilt at most once: O(1) amortised). A window's aggregate
is one front suffix combined with the back scalars.

Why not running sums with add and subtract: subtracting what was added makes the error of a large value
that has left the window (a -500 EUR/MWh spike among 40 EUR/MWh trades) stay in the sum, and drift never
resets while trading is busy. Here nothing is ever subtracted, so every output is as accurate as a fresh
sum over its window. Sums of prices are taken relative to a shift, the newest front price, which is in the
window whenever one is summarised (the front is rebuilt when it runs empty): that bounds the cancellation
of variance-like formulas by the window size whatever the price level or sign.

The window of an event at time ``t`` holds the events with ``t - window_ns < ts <= t`` (pandas'
``rolling('60s')``, ``closed='right'``), including the event itself and earlier events with the same
timestamp, never later ones; ``max_count > 0`` also keeps at most the last ``max_count`` events (a count
window is ``window_ns = NO_TIME_LIMIT_NS`` with ``max_count = K``). Event time must not run backwards within
a product: a late event is counted as if it happened at the latest time seen (``t = max(ts, last_ts)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
from numba import njit
from numpy.typing import NDArray

#: ``window_ns`` of a pure count window.
NO_TIME_LIMIT_NS = int(np.iinfo(np.int64).max)
#: ``last_ts`` of a state that has seen no event yet.
NO_TIME_NS = int(np.iinfo(np.int64).min)
#: Capacity a time window's ring starts with; it doubles whenever a window holds more events.
DEFAULT_CAPACITY = 64

# Cursor slots (int64) shared by the ring states.
HEAD, COUNT, FRONT, LAST_TS = 0, 1, 2, 3
CURSOR_SIZE = 4


def new_cursor() -> NDArray[np.int64]:
    """[head, count, front count, last ts]: an empty ring that has seen no event."""
    return np.array([0, 0, 0, NO_TIME_NS], dtype=np.int64)


def check_window(window_ns: int, max_count: int) -> None:
    if window_ns <= 0:
        raise ValueError(f"window_ns {window_ns} must be positive (NO_TIME_LIMIT_NS for a count window)")
    if max_count < 0:
        raise ValueError(f"max_count {max_count} must be >= 0 (0: no count limit)")
    if window_ns == NO_TIME_LIMIT_NS and max_count == 0:
        raise ValueError("a window needs a time limit, a count limit or both")


def initial_capacity(max_count: int, capacity: int | None) -> int:
    """A count window never needs more than ``max_count`` slots; a time window grows from a small ring."""
    if capacity is not None:
        if capacity < 1:
            raise ValueError(f"capacity {capacity} must be >= 1")
        return capacity
    return max_count if max_count > 0 else DEFAULT_CAPACITY


def unrolled(array: NDArray[Any], head: int, count: int, capacity: int) -> NDArray[Any]:
    """A copy of a ring (along its last axis) with its ``count`` live slots first, oldest at 0, in a ring of
    ``capacity`` slots. Values are copied, never recomputed, so a grown state gives bit-identical outputs."""
    old_capacity = array.shape[-1]
    grown = np.zeros((*array.shape[:-1], capacity), dtype=array.dtype)
    order = (head + np.arange(count)) % old_capacity
    grown[..., :count] = array[..., order]
    return grown


@njit(cache=True, inline="always")
def count_limit(max_count: int, capacity: int) -> int:
    """The count at which the oldest event must leave: ``max_count``, or never (more than the ring holds)."""
    return max_count if max_count > 0 else capacity + 1


@njit(cache=True, inline="always")
def expired(now_ns: int, oldest_ns: int, count: int, window_ns: int, limit: int) -> bool:
    """Whether the oldest of ``count`` events leaves the window before an event at ``now_ns`` joins it
    (``limit`` from :func:`count_limit`). The differences never overflow: event times are clamped to be
    non-decreasing, so ``now_ns - oldest_ns >= 0``."""
    return (now_ns - oldest_ns >= window_ns) | (count >= limit)


@dataclass(slots=True)
class RingWindowState:
    """A product's window state shared by the ring-buffer kernels: numpy arrays and ints, picklable.

    ``ts_ns``: the ring of the window's event times; ``ring[row, slot]``: the kernel's per-event rows
    (``ROWS`` of them); ``cursor``: [head, count, front count, last ts]; ``scalars``: the kernel's running
    values (``SCALARS`` of them). Few arrays, because each array argument costs ~0.1 us per kernel call.
    """

    ROWS: ClassVar[int] = 1
    SCALARS: ClassVar[int] = 1

    window_ns: int
    max_count: int
    ts_ns: NDArray[np.int64]
    ring: NDArray[np.float64]
    cursor: NDArray[np.int64]
    scalars: NDArray[np.float64]

    @classmethod
    def new(cls, window_ns: int = NO_TIME_LIMIT_NS, max_count: int = 0, capacity: int | None = None) -> Self:
        """An empty state for a window of the last ``window_ns`` and/or the last ``max_count`` events."""
        check_window(window_ns, max_count)
        slots = initial_capacity(max_count, capacity)
        return cls(window_ns, max_count, np.zeros(slots, np.int64), np.zeros((cls.ROWS, slots)), new_cursor(),
                   np.zeros(cls.SCALARS))

    @property
    def count(self) -> int:
        """Events in the window now."""
        return int(self.cursor[COUNT])

    def grow(self) -> None:
        """Double the ring (a time window that holds more events than the ring has slots)."""
        head, count, capacity = int(self.cursor[HEAD]), int(self.cursor[COUNT]), len(self.ts_ns)
        self.ts_ns = unrolled(self.ts_ns, head, count, 2 * capacity)
        self.ring = unrolled(self.ring, head, count, 2 * capacity)
        self.cursor[HEAD] = 0
