"""The L2 book kernel against a list-of-levels reference, and against the simulator's feed.

The reference keeps each side as a Python list of (price, quantity) and applies the documented convention
(replace a level, append at the end, delete and move deeper levels up). The simulator check is end to end:
rebuilt from the simulator's book updates, the book must never cross, and every simulated trade must be
priced at the touch the rebuilt book shows just before it.
"""

from __future__ import annotations

import math
import pickle
from itertools import pairwise
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from connectors.feeds.files import BOOK, TRADE
from operators.kernels import BookState, update_book
from paper.simulator import simulate_day
from wattflow.features import BOOK_FEATURES

MAX_LEVELS = 10
NAN = float("nan")

updates = st.lists(st.tuples(
    st.sampled_from([1, -1, 1, -1, 0]),  # 0: not a side, ignored
    st.integers(0, MAX_LEVELS + 2),  # levels past the last kept one are ignored too
    st.integers(-2000, 2000).map(lambda cents: cents / 100),
    st.one_of(st.just(0.0), st.integers(1, 500).map(lambda steps: steps / 10)),
), max_size=120)


class ReferenceBook:
    def __init__(self, max_levels: int = MAX_LEVELS) -> None:
        self.max_levels = max_levels
        self.sides: dict[int, list[tuple[float, float]]] = {1: [], -1: []}

    def apply(self, side: int, level: int, price: float, quantity: float) -> None:
        if side not in self.sides or not 0 <= level < self.max_levels:
            return
        levels = self.sides[side]
        if quantity > 0:
            if level < len(levels):
                levels[level] = (price, quantity)
            else:
                levels.append((price, quantity))
        elif level < len(levels):
            del levels[level]

    def features(self, depth_levels: int, band: float) -> tuple[float, ...]:
        bids, asks = self.sides[1], self.sides[-1]
        best_bid = bids[0][0] if bids else NAN
        best_ask = asks[0][0] if asks else NAN
        mid = (best_bid + best_ask) / 2
        bid_depth = math.fsum(q for _, q in bids[:depth_levels])
        ask_depth = math.fsum(q for _, q in asks[:depth_levels])
        total = bid_depth + ask_depth
        imbalance = (bid_depth - ask_depth) / total if total > 0 else 0.0
        if bids and asks:
            bid_near = math.fsum(q for p, q in bids if p >= mid - band)
            ask_near = math.fsum(q for p, q in asks if p <= mid + band)
        else:
            bid_near = ask_near = NAN
        return (best_bid, best_ask, mid, best_ask - best_bid, bid_depth, ask_depth, imbalance, bid_near, ask_near)


def columns(rows: list[tuple[int, int, float, float]]) -> tuple[NDArray[Any], ...]:
    side, level, price, quantity = zip(*rows, strict=True) if rows else ((), (), (), ())
    return (np.array(side, dtype=np.int8), np.array(level, dtype=np.int64), np.array(price, dtype=np.float64),
            np.array(quantity, dtype=np.float64))


@settings(max_examples=300, deadline=None)
@given(rows=updates, depth_levels=st.integers(1, 12), band=st.sampled_from([0.0, 0.5, 5.0, 1e6]))
def test_book_matches_reference(rows: list[tuple[int, int, float, float]], depth_levels: int, band: float) -> None:
    state = BookState.new(MAX_LEVELS)
    got = np.array(update_book(state, *columns(rows), depth_levels=depth_levels, band_eur_per_mwh=band))
    reference = ReferenceBook()
    for i, update in enumerate(rows):
        reference.apply(*update)
        np.testing.assert_allclose(got[:, i], reference.features(depth_levels, band), rtol=1e-12, atol=1e-12,
                                   err_msg=f"after update {i} {update}")
    for row, side in ((0, 1), (1, -1)):
        levels = reference.sides[side]
        assert state.levels[row] == len(levels)
        np.testing.assert_array_equal(state.price_eur_per_mwh[row, : len(levels)], [p for p, _ in levels])
        np.testing.assert_array_equal(state.quantity_mw[row, : len(levels)], [q for _, q in levels])
        assert np.isnan(state.price_eur_per_mwh[row, len(levels):]).all()
        assert (state.quantity_mw[row, len(levels):] == 0).all()


@settings(max_examples=100, deadline=None)
@given(rows=updates, cuts=st.lists(st.integers(0, 120), max_size=5))
def test_book_does_not_depend_on_batch_splits(rows: list[tuple[int, int, float, float]], cuts: list[int]) -> None:
    side, level, price, quantity = columns(rows)
    whole = np.array(update_book(BookState.new(), side, level, price, quantity))
    state = BookState.new()
    bounds = [0, *sorted({min(c, len(rows)) for c in cuts}), len(rows)]
    pieces = []
    for lo, hi in pairwise(bounds):
        pieces.append(np.array(update_book(state, side[lo:hi], level[lo:hi], price[lo:hi], quantity[lo:hi])))
        state = pickle.loads(pickle.dumps(state))
    np.testing.assert_array_equal(np.concatenate(pieces, axis=1), whole)


def test_empty_and_one_sided_books() -> None:
    state = BookState.new()
    got = update_book(state, np.array([1, 1, -1, -1, 1], np.int8), np.array([0, 0, 0, 0, 0]),
                      np.array([-3.5, -3.5, -1.0, -1.0, 9.0]), np.array([2.0, 0.0, 1.5, 0.0, 0.0]))
    # bid only; deleted (empty); ask only; deleted (empty); deleting a missing level changes nothing
    np.testing.assert_array_equal(got.imbalance, [1.0, 0.0, -1.0, 0.0, 0.0])
    assert np.isnan(got.mid_eur_per_mwh).all() and np.isnan(got.spread_eur_per_mwh).all()
    assert np.isnan(got.bid_depth_near_mid_mw).all() and np.isnan(got.ask_depth_near_mid_mw).all()
    np.testing.assert_array_equal(got.best_bid_eur_per_mwh[[0, 2]], [-3.5, NAN])
    assert len(update_book(state, *columns([]))[0]) == 0
    assert list(BOOK_FEATURES) == list(got._fields)


def test_a_delete_moves_deeper_levels_up_and_depth_near_mid() -> None:
    state = BookState.new(4)
    side = np.array([1, 1, 1, -1, -1, 1], np.int8)
    level = np.array([0, 1, 2, 0, 1, 0])
    price = np.array([50.0, 49.0, 40.0, 51.0, 58.0, 50.0])
    quantity = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 0.0])
    got = update_book(state, side, level, price, quantity, depth_levels=2, band_eur_per_mwh=3.0)
    np.testing.assert_array_equal(state.price_eur_per_mwh[0, :2], [49.0, 40.0])
    assert state.levels.tolist() == [2, 2]
    # before the delete: mid 50.5, band [47.5, 53.5]: bids 50 and 49, ask 51
    assert (got.bid_depth_near_mid_mw[4], got.ask_depth_near_mid_mw[4]) == (3.0, 8.0)
    assert got.imbalance[4] == pytest.approx((3.0 - 24.0) / 27.0)
    # after: best bid 49, mid 50, band [47, 53]
    assert (got.mid_eur_per_mwh[5], got.spread_eur_per_mwh[5], got.bid_depth_near_mid_mw[5]) == (50.0, 2.0, 2.0)


@pytest.fixture(scope="module")
def simulated() -> Any:
    return simulate_day(scale=0.05)


def test_the_simulators_book_rebuilds_exactly(simulated: Any) -> None:
    frame = simulated
    checked = 0
    for code in np.unique(frame.key_code):
        rows = np.flatnonzero(frame.key_code == code)
        book_rows = rows[frame.event_type[rows] == BOOK]
        trade_rows = rows[frame.event_type[rows] == TRADE]
        got = update_book(BookState.new(), frame.side[book_rows], frame.level[book_rows],
                          frame.price_eur_per_mwh[book_rows], frame.quantity_mw[book_rows])
        both = ~np.isnan(got.spread_eur_per_mwh)
        assert (got.spread_eur_per_mwh[both] > 0).all(), "the rebuilt book crossed"
        # The touch a trade took: the book after the last update before the trade.
        before = np.searchsorted(book_rows, trade_rows) - 1
        has_book = before >= 0
        touch = np.where(frame.side[trade_rows] == 1, got.best_ask_eur_per_mwh[before],
                         got.best_bid_eur_per_mwh[before])
        np.testing.assert_allclose(touch[has_book], frame.price_eur_per_mwh[trade_rows][has_book], atol=1e-9)
        checked += int(has_book.sum())
    assert checked > 500
