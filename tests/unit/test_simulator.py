"""The intraday market simulator: deterministic, on the price and quantity grids, inside the trading
windows, shaped like the real market (intensity towards closure, thin books far out, negative prices)."""

from __future__ import annotations

import hashlib
import time
from datetime import date
from itertools import pairwise

import numpy as np
import pytest

from connectors.feeds.files import BOOK, TRADE, FeedFrame
from connectors.feeds.smard import day_ahead_anchor
from paper import simulator
from wattflow.domain import (
    INTRADAY_PRICE_MAX_EUR_PER_MWH,
    INTRADAY_PRICE_MIN_EUR_PER_MWH,
    NS_PER_HOUR,
    NS_PER_MINUTE,
    Product,
    trading_window,
)


def digest(frame: FeedFrame) -> str:
    sha = hashlib.sha256()
    for column in ("event_type", "ts_ns", "side", "level", "price_eur_per_mwh", "quantity_mw", "trade_id",
                   "delivery_start_ns", "duration_min", "seq"):
        sha.update(getattr(frame, column).tobytes())
    sha.update("\n".join(frame.key_strings().tolist()).encode())
    sha.update("\n".join(frame.source_strings().tolist()).encode())
    return sha.hexdigest()


@pytest.fixture(scope="module")
def day() -> FeedFrame:
    """DE-LU 2018-10-28 (25 hours), seed 7, scale 1: the reference day."""
    return simulator.simulate_day()


@pytest.fixture(scope="module")
def negative_day() -> FeedFrame:
    """DE-AT-LU 2018-01-01: day-ahead prices below zero for the first 14 hours."""
    return simulator.simulate_day("DE-AT-LU", date(2018, 1, 1), seed=3, scale=0.3)


def test_deterministic_for_a_seed(day: FeedFrame) -> None:
    again = simulator.simulate_day()
    assert digest(again) == digest(day)
    assert again == day
    assert digest(simulator.simulate_day(seed=8)) != digest(day)


def test_event_counts_in_the_expected_order_of_magnitude(day: FeedFrame) -> None:
    counts = day.counts_by_type()
    assert 40_000 <= counts["trade"] <= 100_000
    assert 300_000 <= counts["book"] <= 800_000
    assert counts["dayahead"] == 0
    assert len(day.products()) == 25 + 100  # the 25-hour day: hourly and quarter-hourly products


def test_feed_order_seq_and_trade_ids(day: FeedFrame) -> None:
    assert (np.diff(day.ts_ns) >= 0).all()
    np.testing.assert_array_equal(day.seq, np.arange(len(day)))
    trade_ids = day.trade_id[day.event_type == TRADE]
    assert len(np.unique(trade_ids)) == len(trade_ids)
    assert (trade_ids > 0).all()
    assert (day.trade_id[day.event_type != TRADE] == -1).all()
    assert day.sources == ("sim",)


def test_prices_on_the_tick_grid_and_within_limits(day: FeedFrame) -> None:
    cents = day.price_eur_per_mwh * 100
    np.testing.assert_allclose(cents, np.rint(cents), rtol=0, atol=1e-6)
    assert day.price_eur_per_mwh.min() >= INTRADAY_PRICE_MIN_EUR_PER_MWH
    assert day.price_eur_per_mwh.max() <= INTRADAY_PRICE_MAX_EUR_PER_MWH
    # Each price is exactly the float a cent count gives (so JSON carries at most two decimals).
    np.testing.assert_array_equal(day.price_eur_per_mwh, np.rint(cents) / 100)


def test_quantities_are_positive_multiples_of_a_tenth(day: FeedFrame) -> None:
    tenths = day.quantity_mw * 10
    np.testing.assert_allclose(tenths, np.rint(tenths), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(day.quantity_mw, np.rint(tenths) / 10)
    assert (day.quantity_mw[day.event_type == TRADE] >= 0.1).all()
    book_quantity = day.quantity_mw[day.event_type == BOOK]
    assert (book_quantity >= 0).all()
    assert (book_quantity == 0).any(), "some levels are deleted"
    levels = day.level[day.event_type == BOOK]
    assert levels.min() == 0 and levels.max() == simulator.MAX_LEVELS - 1


def test_every_event_inside_its_trading_window(day: FeedFrame) -> None:
    for code, key in enumerate(day.keys):
        window = trading_window(Product.parse(key))
        times = day.ts_ns[day.key_code == code]
        assert len(times)
        assert times.min() >= window.open_ns, key
        assert times.max() < window.local_close_ns, key


def test_intensity_rises_towards_closure_with_a_cross_border_rush(day: FeedFrame) -> None:
    is_trade = day.event_type == TRADE
    opens = {code: trading_window(Product.parse(key)).open_ns for code, key in enumerate(day.keys)}
    open_ns = np.array([opens[int(c)] for c in range(len(day.keys))])[day.key_code[is_trade]]
    minutes_before = (day.delivery_start_ns[is_trade] - day.ts_ns[is_trade]) / NS_PER_MINUTE
    since_open = (day.ts_ns[is_trade] - open_ns) / NS_PER_HOUR
    last_two_hours = int(((minutes_before >= 5) & (minutes_before < 125)).sum())
    first_two_hours = int((since_open < 2).sum())
    assert last_two_hours > 10 * first_two_hours
    rush = int(((minutes_before >= 60) & (minutes_before < 70)).sum())
    before_rush = int(((minutes_before >= 80) & (minutes_before < 90)).sum())
    assert rush > 1.5 * before_rush
    share_60_to_30 = float(((minutes_before >= 30) & (minutes_before < 60)).mean())
    assert 0.15 < share_60_to_30 < 0.35  # about 23% in real 2019 data


def _replay(frame: FeedFrame, key: str) -> tuple[list[tuple[float, float]], int]:
    """Apply one product's updates in order; check the book at every trade. Returns (minutes, spread)."""
    code = frame.keys.index(key)
    rows = np.flatnonzero(frame.key_code == code)
    books: dict[int, dict[int, tuple[float, float]]] = {1: {}, -1: {}}
    spreads: list[tuple[float, float]] = []
    trades = 0
    for row in rows:
        side = int(frame.side[row])
        price, quantity = float(frame.price_eur_per_mwh[row]), float(frame.quantity_mw[row])
        if frame.event_type[row] == BOOK:
            level = int(frame.level[row])
            if quantity == 0:
                assert level in books[side]
                del books[side][level]
            else:
                books[side][level] = (price, quantity)
        else:
            trades += 1
            touch = books[-side].get(0)
            assert touch is not None, "a trade needs a resting order on the other side"
            assert price == touch[0], "a trade happens at the touch"
            assert quantity <= touch[1] + 1e-9
        bids, asks = books[1], books[-1]
        for levels, direction in ((bids, -1), (asks, 1)):
            assert sorted(levels) == list(range(len(levels))), "levels are contiguous from 0"
            if row == rows[-1] or frame.ts_ns[rows[np.searchsorted(rows, row) + 1]] != frame.ts_ns[row]:
                ladder = [levels[i][0] for i in range(len(levels))]  # once all updates of an instant are in
                assert all(direction * (b - a) > 0 for a, b in pairwise(ladder))
        if 0 in bids and 0 in asks:
            assert bids[0][0] < asks[0][0], "never a crossed book"
            minutes = (frame.delivery_start_ns[row] - frame.ts_ns[row]) / NS_PER_MINUTE
            spreads.append((minutes, asks[0][0] - bids[0][0]))
    return spreads, trades


def test_books_are_consistent_and_narrow_towards_closure(day: FeedFrame) -> None:
    near_spreads: list[float] = []
    far_spreads: list[float] = []
    for key in ("DE-LU:2018-10-28T11:00Z:PT60M", "DE-LU:2018-10-28T05:15Z:PT15M", "DE-LU:2018-10-28T01:00Z:PT15M"):
        spreads, trades = _replay(day, key)
        assert trades > 50
        near_spreads += [s for minutes, s in spreads if minutes < 90]
        far_spreads += [s for minutes, s in spreads if minutes > 6 * 60]
    assert np.median(near_spreads) < 3.0
    assert np.median(far_spreads) > 2 * np.median(near_spreads)


def test_thin_and_sometimes_empty_books_far_from_closure(day: FeedFrame) -> None:
    is_book = day.event_type == BOOK
    minutes = (day.delivery_start_ns - day.ts_ns) / NS_PER_MINUTE
    deletes_of_best = is_book & (day.level == 0) & (day.quantity_mw == 0)
    assert (deletes_of_best & (minutes > 6 * 60)).sum() > 100, "sides empty out far from closure"
    deep = is_book & (day.level == 4) & (day.quantity_mw > 0)
    share_deep_far = (deep & (minutes > 6 * 60)).sum() / max((is_book & (minutes > 6 * 60)).sum(), 1)
    share_deep_near = (deep & (minutes < 90)).sum() / (is_book & (minutes < 90)).sum()
    assert share_deep_near > 2 * share_deep_far


def test_prices_follow_the_anchor_with_zero_heavy_fat_tailed_changes(day: FeedFrame) -> None:
    anchor = day_ahead_anchor(None, "DE-LU", date(2018, 10, 28))
    is_trade = day.event_type == TRADE
    first_ns = int(day.delivery_start_ns.min())
    zero_shares, changes = [], []
    for code, key in enumerate(day.keys):
        mine = is_trade & (day.key_code == code)
        prices = day.price_eur_per_mwh[mine]
        hour = (Product.parse(key).delivery_start_ns - first_ns) // NS_PER_HOUR
        assert abs(np.median(prices) - anchor[hour]) < 15, key
        steps = np.diff(prices)
        zero_shares.append(float((steps == 0).mean()))
        changes.append(steps[steps != 0])
    assert 0.2 < np.mean(zero_shares) < 0.7
    nonzero = np.concatenate(changes)
    kurtosis = float(np.mean((nonzero - nonzero.mean()) ** 4) / np.var(nonzero) ** 2)
    assert kurtosis > 4, "price changes are fat-tailed"


def test_negative_anchor_gives_negative_prices(negative_day: FeedFrame) -> None:
    anchor = day_ahead_anchor(None, "DE-AT-LU", date(2018, 1, 1))
    is_trade = negative_day.event_type == TRADE
    first_ns = int(negative_day.delivery_start_ns.min())
    hour = (negative_day.delivery_start_ns - first_ns) // NS_PER_HOUR
    deeply_negative = is_trade & (anchor[hour] < -40)
    assert deeply_negative.sum() > 1000
    assert (negative_day.price_eur_per_mwh[deeply_negative] < 0).mean() > 0.97
    positive = is_trade & (anchor[hour] > 15)
    assert (negative_day.price_eur_per_mwh[positive] > 0).mean() > 0.97


def test_quarter_hour_sawtooth_on_a_steep_ramp() -> None:
    rising = np.linspace(20.0, 112.0, 24)  # +4 EUR/MWh per hour all day
    frame = simulator.simulate_day(day=date(2018, 6, 1), anchor=rising, durations_min=(15,), scale=0.5)
    is_trade = frame.event_type == TRADE
    quarter = (frame.delivery_start_ns % NS_PER_HOUR) // (15 * NS_PER_MINUTE)
    hour = (frame.delivery_start_ns - int(frame.delivery_start_ns.min())) // NS_PER_HOUR
    above_anchor = frame.price_eur_per_mwh - rising[hour]
    first = np.median(above_anchor[is_trade & (quarter == 0)])
    last = np.median(above_anchor[is_trade & (quarter == 3)])
    assert first > last + 3, "on a rising hour the first quarter is dearest"


def test_scale_multiplies_intensity() -> None:
    small = simulator.simulate_day(day=date(2018, 6, 1), scale=0.2).counts_by_type()
    large = simulator.simulate_day(day=date(2018, 6, 1), scale=0.4).counts_by_type()
    assert 1.7 < large["trade"] / small["trade"] < 2.3
    assert 1.7 < large["book"] / small["book"] < 2.3


def test_generation_surprise_shifts_prices_not_times() -> None:
    generation = simulator.read_generation()
    assert generation.wind_solar_mw.min() >= 0
    surprise = generation.surprise_mw()
    assert abs(float(surprise.mean())) < 200 and float(np.abs(surprise).max()) > 500
    plain = simulator.simulate_day(scale=0.2)
    shifted = simulator.simulate_day(scale=0.2, generation=generation)
    is_trade = plain.event_type == TRADE
    np.testing.assert_array_equal(plain.ts_ns[is_trade], shifted.ts_ns[shifted.event_type == TRADE])
    assert not np.array_equal(plain.price_eur_per_mwh[is_trade],
                              shifted.price_eur_per_mwh[shifted.event_type == TRADE])


def test_dst_days_half_hours_and_other_areas() -> None:
    spring = simulator.simulate_day("FR", date(2018, 3, 25), durations_min=(15, 30, 60), scale=0.1)
    assert len(spring.products()) == 23 * (4 + 2 + 1)
    with pytest.raises(ValueError, match="anchor must hold 24"):
        simulator.simulate_day(day=date(2018, 6, 1), anchor=np.zeros(25))


def test_a_whole_day_takes_seconds(day: FeedFrame) -> None:
    started = time.perf_counter()
    simulator.simulate_day(seed=11)
    assert time.perf_counter() - started < 10.0  # ~0.6 s measured; generous for a loaded CI machine
