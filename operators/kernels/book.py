"""One product's L2 order book as fixed-size numpy arrays, and the features of the book after each update.

An update is (side, level, price, quantity): side +1 bid, -1 ask; level 0 the best price of that side.
``quantity > 0`` sets the level to (price, quantity): a level inside the book is replaced, a level at or
beyond the end is appended as the new last level (a book never has gaps). ``quantity == 0`` deletes the
level and moves every deeper level up by one; deleting a level the book does not have changes nothing.
Levels at or beyond ``max_levels`` are not kept. This is the convention of the simulator's feed
(``paper/simulator.py``: one update per changed level, deletions deepest first), which rebuilds
its L2 states exactly. Crossed books are not repaired: the spread is then negative.

After each update (prices EUR/MWh, quantities MW):

* ``best_bid``, ``best_ask``: the level-0 prices, NaN for an empty side
* ``mid = (best_bid + best_ask) / 2`` and ``spread = best_ask - best_bid``: NaN if either side is empty
* ``bid_depth_mw``, ``ask_depth_mw``: the quantity in the best ``depth_levels`` levels of each side
* ``imbalance = (bid_depth - ask_depth) / (bid_depth + ask_depth)`` over those levels, in [-1, 1]; 0 when
  both sides are empty (dimensionless)
* ``bid_depth_near_mid_mw``/``ask_depth_near_mid_mw``: the quantity at bid prices ``>= mid - band`` and ask
  prices ``<= mid + band`` (``band_eur_per_mwh``): the liquidity near the touch; NaN when the mid is NaN
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit
from numpy.typing import NDArray

from wattflow.features import BOOK_FEATURES

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
I8 = NDArray[np.int8]

#: Levels kept per side unless told otherwise.
DEFAULT_MAX_LEVELS = 10
#: Rows of the kernel's output matrix, in the order of :class:`BookFeatures` (the vocabulary's list).
_BID, _ASK = 0, 1


@dataclass(slots=True)
class BookState:
    """One product's L2 book, picklable: ``price_eur_per_mwh[side, level]`` and ``quantity_mw[side, level]``
    with side row 0 the bids and row 1 the asks (levels beyond ``levels[side]`` hold NaN and 0), and
    ``levels[side]`` how many levels each side has."""

    price_eur_per_mwh: F64
    quantity_mw: F64
    levels: I64

    @classmethod
    def new(cls, max_levels: int = DEFAULT_MAX_LEVELS) -> BookState:
        if max_levels < 1:
            raise ValueError(f"max_levels {max_levels} must be >= 1")
        return cls(np.full((2, max_levels), np.nan), np.zeros((2, max_levels)), np.zeros(2, np.int64))

    @property
    def max_levels(self) -> int:
        return int(self.price_eur_per_mwh.shape[1])


class BookFeatures(NamedTuple):
    """Per-update outputs of :func:`update_book` (module docstring: formulas and units)."""

    best_bid_eur_per_mwh: F64
    best_ask_eur_per_mwh: F64
    mid_eur_per_mwh: F64
    spread_eur_per_mwh: F64
    bid_depth_mw: F64
    ask_depth_mw: F64
    imbalance: F64
    bid_depth_near_mid_mw: F64
    ask_depth_near_mid_mw: F64


@njit(cache=True, inline="always")
def _apply(  # noqa: PLR0917 (a Numba kernel takes its arrays positionally)
    price_book: F64, quantity_book: F64, levels: I64, row: int, level: int, price: float, quantity: float,
) -> None:
    """Apply one L2 update to one side (module docstring: the convention)."""
    max_levels = price_book.shape[1]
    present = levels[row]
    if level < 0 or level >= max_levels:
        return
    if quantity > 0.0:
        at = level if level < present else present
        price_book[row, at] = price
        quantity_book[row, at] = quantity
        if at == present:
            levels[row] = present + 1
    elif level < present:
        for deeper in range(level, present - 1):
            price_book[row, deeper] = price_book[row, deeper + 1]
            quantity_book[row, deeper] = quantity_book[row, deeper + 1]
        price_book[row, present - 1] = np.nan
        quantity_book[row, present - 1] = 0.0
        levels[row] = present - 1


@njit(cache=True)
def update_book_kernel(  # noqa: PLR0917 (a Numba kernel takes its arrays positionally)
    side: I8, level: I64, price_eur_per_mwh: F64, quantity_mw: F64, price_book: F64, quantity_book: F64,
    levels: I64, depth_levels: int, band_eur_per_mwh: float, out: F64,
) -> None:
    """Apply updates one by one to the book arrays (in place) and write the book's features after each into
    ``out[k, i]`` (rows in the order of ``BOOK_FEATURES``). Updates with a side other than +1/-1 are
    ignored (the features are still written)."""
    max_levels = price_book.shape[1]
    top = min(depth_levels, max_levels)
    for i in range(side.shape[0]):
        if side[i] == 1 or side[i] == -1:
            _apply(price_book, quantity_book, levels, _BID if side[i] == 1 else _ASK, level[i],
                   price_eur_per_mwh[i], quantity_mw[i])
        # Levels past a side's end hold NaN and 0 (kept so by _apply), so the loops need no bounds and no
        # branches: an empty side's best price is NaN, and a NaN mid compares false against every price.
        best_bid = price_book[_BID, 0]
        best_ask = price_book[_ASK, 0]
        mid = 0.5 * (best_bid + best_ask)
        bid_depth = 0.0
        ask_depth = 0.0
        for k in range(top):
            bid_depth += quantity_book[_BID, k]
            ask_depth += quantity_book[_ASK, k]
        total = bid_depth + ask_depth
        lowest = mid - band_eur_per_mwh
        highest = mid + band_eur_per_mwh
        bid_near = 0.0
        ask_near = 0.0
        for k in range(max_levels):
            bid_near += quantity_book[_BID, k] * (price_book[_BID, k] >= lowest)
            ask_near += quantity_book[_ASK, k] * (price_book[_ASK, k] <= highest)
        out[0, i] = best_bid
        out[1, i] = best_ask
        out[2, i] = mid
        out[3, i] = best_ask - best_bid
        out[4, i] = bid_depth
        out[5, i] = ask_depth
        out[6, i] = (bid_depth - ask_depth) / total if total > 0.0 else 0.0
        out[7, i] = bid_near if not math.isnan(mid) else np.nan
        out[8, i] = ask_near if not math.isnan(mid) else np.nan


def update_book(state: BookState, side: I8, level: I64, price_eur_per_mwh: F64, quantity_mw: F64, *,
                depth_levels: int = 5, band_eur_per_mwh: float = 5.0) -> BookFeatures:
    """Apply one product's L2 updates in order and return the book's features after each (module docstring).
    Updates ``state`` in place; any split of a stream into batches gives identical outputs."""
    if depth_levels < 1 or not band_eur_per_mwh >= 0.0:
        raise ValueError(f"depth_levels {depth_levels} must be >= 1 and band {band_eur_per_mwh} >= 0")
    out = np.empty((len(BOOK_FEATURES), len(side)))
    update_book_kernel(side, level, price_eur_per_mwh, quantity_mw, state.price_eur_per_mwh, state.quantity_mw,
                       state.levels, depth_levels, float(band_eur_per_mwh), out)
    return BookFeatures(*out)
