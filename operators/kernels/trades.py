"""Rolling trade statistics: trade count, traded volume, VWAP and realised volatility over a window.

Per trade ``i`` with window ``W(i)`` (``window.py``: the trades of the last ``window_ns`` up to and
including ``i``, and at most the last ``max_count``), prices ``p`` (EUR/MWh) and quantities ``q`` (MW):

* ``trade_count = |W(i)|`` (trades); trades per minute is ``trade_count / (window_ns / 60e9)``
* ``volume_mw = sum(q_j)`` (MW traded in the window: liquidity over the last minutes)
* ``vwap_eur_per_mwh = sum(q_j * p_j) / sum(q_j)`` (EUR/MWh; NaN if the window's quantity is 0)
* ``realised_volatility_eur_per_mwh = sqrt(sum((p_j - p_{j-1})^2))`` over the consecutive pairs of trades
  that are both in the window (EUR/MWh; 0 for a single trade). Power prices can be zero or negative, so
  this uses price *differences*, not log returns; it is not annualised or scaled by time.

VWAP sums ``q * (p - s)`` with the shift ``s`` a price in the window (see ``moments.py``), so prices near
zero of both signs lose no precision to large opposite terms.
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

# Slots of the back sums (and, two rows on, of the front's suffix sums in the ring): quantity, quantity *
# (price - shift), squared price change from the previous trade. The float state has the shift after them.
_QTY, _QTY_DEV, _DIFF_SQ, _SHIFT = 0, 1, 2, 3
# Rows of the float ring: price, quantity, then the front's suffix sums in the order above.
_PRICE, _QUANTITY, _FRONT = 0, 1, 2


@dataclass(slots=True)
class TradeWindowState(RingWindowState):
    """One product's rolling trade-statistics state (see :class:`RingWindowState`).

    ``ring[0|1, slot]``: prices (EUR/MWh) and quantities (MW); ``ring[2|3|4, slot]``: suffix sums of quantity,
    quantity * (price - shift) and squared price change over the front trades from ``slot`` to the newest
    front trade; ``scalars``: [the three back sums, shift].
    """

    ROWS: ClassVar[int] = 5
    SCALARS: ClassVar[int] = 4


class TradeStats(NamedTuple):
    """Per-trade outputs of :func:`rolling_trades`, one value per input trade."""

    trade_count: I64
    volume_mw: F64
    vwap_eur_per_mwh: F64
    realised_volatility_eur_per_mwh: F64


@njit(cache=True)
def _rebuild_front(ring: F64, head: int, count: int) -> float:
    """Make every trade in the ring a front trade: suffix sums from the newest back to the oldest, with the
    shift the newest price. The oldest trade's squared change is 0: its predecessor is out of the window."""
    capacity = ring.shape[1]
    slot = head + count - 1
    if slot >= capacity:
        slot -= capacity
    shift = ring[_PRICE, slot]
    quantity = 0.0
    quantity_dev = 0.0
    diff_sq = 0.0
    for remaining in range(count - 1, -1, -1):
        previous = slot - 1 if slot > 0 else capacity - 1
        price = ring[_PRICE, slot]
        if remaining > 0:
            change = price - ring[_PRICE, previous]
            diff_sq += change * change
        quantity += ring[_QUANTITY, slot]
        quantity_dev += ring[_QUANTITY, slot] * (price - shift)
        ring[_FRONT + _QTY, slot] = quantity
        ring[_FRONT + _QTY_DEV, slot] = quantity_dev
        ring[_FRONT + _DIFF_SQ, slot] = diff_sq
        slot = previous
    return shift


@njit(cache=True)
def rolling_trades_kernel(  # noqa: PLR0917 (a Numba kernel takes its arrays positionally)
    ts_ns: I64, price_eur_per_mwh: F64, quantity_mw: F64, window_ns: int, max_count: int, ring_ts_ns: I64,
    ring: F64, cursor: I64, scalars: F64, out_count: I64, out: F64, start: int,
) -> int:
    """Process trades ``start..`` of a batch: write per-trade count into ``out_count`` and volume (MW), VWAP
    (EUR/MWh) and realised volatility (EUR/MWh) into ``out[0|1|2, i]``, and update the state arrays in place.
    Returns the index of the first trade not processed: ``len(ts_ns)``, or less when the ring is full (grow
    it, call again from there)."""
    capacity = ring_ts_ns.shape[0]
    limit = count_limit(max_count, capacity)
    head, count, front, last_ts = cursor[HEAD], cursor[COUNT], cursor[FRONT], cursor[LAST_TS]
    back_qty, back_qty_dev, back_diff_sq = scalars[_QTY], scalars[_QTY_DEV], scalars[_DIFF_SQ]
    shift = scalars[_SHIFT]
    i = start
    n = ts_ns.shape[0]
    while i < n:
        now = max(ts_ns[i], last_ts)
        price = price_eur_per_mwh[i]
        quantity = quantity_mw[i]
        while count > 0 and expired(now, ring_ts_ns[head], count, window_ns, limit):
            head = head + 1 if head + 1 < capacity else 0
            count -= 1
            front -= 1
        if count == capacity:
            break
        slot = head + count
        if slot >= capacity:
            slot -= capacity
        previous = slot - 1 if slot > 0 else capacity - 1
        change = price - ring[_PRICE, previous] if count > 0 else 0.0
        ring_ts_ns[slot] = now
        ring[_PRICE, slot] = price
        ring[_QUANTITY, slot] = quantity
        count += 1
        last_ts = now
        if front <= 0:
            shift = _rebuild_front(ring, head, count)
            front, back_qty, back_qty_dev, back_diff_sq = count, 0.0, 0.0, 0.0
        else:
            back_qty += quantity
            back_qty_dev += quantity * (price - shift)
            back_diff_sq += change * change
        second = head + 1 if head + 1 < capacity else 0
        volume = ring[_FRONT + _QTY, head] + back_qty
        out_count[i] = count
        out[0, i] = volume
        out[1, i] = shift + (ring[_FRONT + _QTY_DEV, head] + back_qty_dev) / volume if volume > 0.0 else np.nan
        # Squared changes of every trade but the oldest (whose predecessor has left the window).
        diff_sq = (ring[_FRONT + _DIFF_SQ, second] if front > 1 else 0.0) + back_diff_sq
        out[2, i] = math.sqrt(diff_sq)
        i += 1
    cursor[HEAD], cursor[COUNT], cursor[FRONT], cursor[LAST_TS] = head, count, front, last_ts
    scalars[_QTY], scalars[_QTY_DEV], scalars[_DIFF_SQ], scalars[_SHIFT] = (
        back_qty, back_qty_dev, back_diff_sq, shift)
    return i


def rolling_trades(state: TradeWindowState, ts_ns: I64, price_eur_per_mwh: F64, quantity_mw: F64) -> TradeStats:
    """Rolling trade count, volume, VWAP and realised volatility of one product (module docstring: formulas).

    One value per trade, in arrival order: int64 times (UTC ns), finite float64 prices (EUR/MWh), positive
    float64 quantities (MW). Updates ``state`` in place; any split of a stream into batches gives
    bit-identical outputs.
    """
    n = len(ts_ns)
    count = np.empty(n, dtype=np.int64)
    out = np.empty((3, n))
    done = 0
    while True:
        done = rolling_trades_kernel(ts_ns, price_eur_per_mwh, quantity_mw, state.window_ns, state.max_count,
                                     state.ts_ns, state.ring, state.cursor, state.scalars, count, out, done)
        if done == n:
            return TradeStats(count, out[0], out[1], out[2])
        state.grow()


def trades_per_minute(trade_count: I64, window_ns: int) -> F64:
    """Trade intensity from a window's trade count: ``trade_count / (window_ns / 60e9)`` (trades/min)."""
    return np.asarray(trade_count, dtype=np.float64) * (60e9 / window_ns)
