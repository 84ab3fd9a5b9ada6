"""The rolling feature kernels against plain-Python references, as property tests.

Each reference is the definition computed the slow, obvious way per event: the window's members by their
timestamps, then exact sums over them (``fractions.Fraction`` or ``math.fsum``). Streams come with empty input,
single ticks, duplicate timestamps, late (out-of-order) events, gaps longer than the window, repeated and
negative prices; every kernel must also give bit-identical outputs for any split of a stream into batches,
through ring growth and a pickle round trip of its state (Bytewax recovery) at every split.

Tolerances: 1e-9 relative, plus for a mean-like output (mean, VWAP, EWMA) 1e-12 of the window's largest
absolute price: no floating-point algorithm gets a mean near zero of prices near 9999 to 1e-9 relative.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from fractions import Fraction
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from operators.kernels import (
    NO_TIME_LIMIT_NS,
    EwmaState,
    IntensityState,
    MomentsState,
    TradeWindowState,
    ewma,
    rolling_moments,
    rolling_trades,
    spread_to_day_ahead,
    time_to_gate_closure_min,
    trade_intensity,
    trades_per_minute,
)
from wattflow.domain import NS_PER_MINUTE, NS_PER_SECOND, gate_closure_ns

START_NS = 1_540_680_000_000_000_000
RTOL = 1e-9
MEAN_ATOL = 1e-12

# --- streams ------------------------------------------------------------------------------------------

grid_prices = st.integers(-999_900, 999_900).map(lambda cents: cents / 100)
prices = st.one_of(grid_prices, st.sampled_from([0.0, -0.01, 0.01, -9999.0, 9999.0, 45.5]),
                   # Any float of a realistic size: squares of 1e-162 underflow, which says nothing about a kernel.
                   st.floats(-9999.0, 9999.0, allow_nan=False).map(lambda x: x if abs(x) >= 1e-9 else 0.0))
gaps_ns = st.one_of(
    st.just(0),  # several fills at the same instant
    st.integers(1, 2 * NS_PER_SECOND),
    st.integers(2 * NS_PER_SECOND, 200 * NS_PER_SECOND),  # longer than most windows below
    st.integers(-5 * NS_PER_SECOND, -1),  # a late event
)
windows = st.tuples(st.sampled_from([1, NS_PER_SECOND, 10 * NS_PER_SECOND, 60 * NS_PER_SECOND, NO_TIME_LIMIT_NS]),
                    st.sampled_from([0, 1, 2, 3, 7, 40])).filter(lambda w: w != (NO_TIME_LIMIT_NS, 0))


@st.composite
def streams(draw: st.DrawFn, max_size: int = 80) -> tuple[NDArray[np.int64], NDArray[np.float64],
                                                         NDArray[np.float64]]:
    """(ts_ns, price, quantity) of one product; prices often repeat (many trades do not move the price)."""
    n = draw(st.integers(0, max_size))
    pool = draw(st.lists(prices, min_size=1, max_size=3))
    price = [draw(st.one_of(st.sampled_from(pool), prices)) for _ in range(n)]
    ts = START_NS + np.cumsum(np.array([draw(gaps_ns) for _ in range(n)], dtype=np.int64))
    quantity = [draw(st.integers(1, 99_999)) / 10 for _ in range(n)]
    return ts.astype(np.int64), np.array(price, dtype=np.float64), np.array(quantity, dtype=np.float64)


def windows_of(ts_ns: NDArray[np.int64], window_ns: int, max_count: int) -> list[range]:
    """Per event, the indices of its window, by the definition (in Python integers: no overflow)."""
    effective = np.maximum.accumulate(ts_ns).tolist() if len(ts_ns) else []
    members = []
    for i, now in enumerate(effective):
        first = i
        while first > 0 and now - effective[first - 1] < window_ns and (max_count == 0 or i - first + 1 < max_count):
            first -= 1
        members.append(range(first, i + 1))
    return members


def assert_close(actual: NDArray[Any], expected: NDArray[Any], atol: NDArray[Any] | float = 0.0,
                 rtol: float = RTOL, what: str = "") -> None:
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, what
    both_nan = np.isnan(actual) & np.isnan(expected)
    bad = ~both_nan & ~(np.abs(actual - expected) <= rtol * np.abs(expected) + atol)
    assert not bad.any(), (f"{what}: first mismatch at {np.flatnonzero(bad)[0]}: {actual[bad][:3]} != "
                           f"{expected[bad][:3]}")


def split_runs(run: Callable[[Any, slice], tuple[NDArray[Any], ...]], make_state: Callable[[], Any], n: int,
               cuts: list[int]) -> list[NDArray[Any]]:
    """Outputs of ``run(state, rows)`` over the batches between ``cuts``, pickling the state at every cut."""
    state = make_state()
    bounds = [0, *sorted({min(c, n) for c in cuts}), n]
    pieces: list[tuple[NDArray[Any], ...]] = []
    for lo, hi in pairwise(bounds):
        pieces.append(run(state, slice(lo, hi)))
        state = pickle.loads(pickle.dumps(state))
    return [np.concatenate([piece[k] for piece in pieces]) for k in range(len(pieces[0]))] if pieces else []


# --- references ---------------------------------------------------------------------------------------


def reference_moments(ts_ns: NDArray[np.int64], price: NDArray[np.float64], window_ns: int,
                      max_count: int) -> tuple[NDArray[np.float64], ...]:
    """Exact rational arithmetic, rounded once: the mean, variance and deviation are correctly rounded."""
    mean, variance, zscore, scale = [], [], [], []
    for i, members in enumerate(windows_of(ts_ns, window_ns, max_count)):
        values = [Fraction(float(price[j])) for j in members]
        m = sum(values, Fraction(0)) / len(values)
        v = float(sum(((x - m) ** 2 for x in values), Fraction(0)) / len(values))
        mean.append(float(m))
        variance.append(v)
        zscore.append(float(Fraction(float(price[i])) - m) / math.sqrt(v) if v > 0 else 0.0)
        scale.append(float(max(abs(x) for x in values)))
    return tuple(np.array(column, dtype=np.float64) for column in (mean, variance, zscore, scale))


def reference_trades(ts_ns: NDArray[np.int64], price: NDArray[np.float64], quantity: NDArray[np.float64],
                     window_ns: int, max_count: int) -> tuple[NDArray[np.float64], ...]:
    count, volume, vwap, volatility, scale = [], [], [], [], []
    for members in windows_of(ts_ns, window_ns, max_count):
        q = [float(quantity[j]) for j in members]
        p = [float(price[j]) for j in members]
        count.append(len(members))
        volume.append(math.fsum(q))
        vwap.append(math.fsum(a * b for a, b in zip(q, p, strict=True)) / math.fsum(q))
        volatility.append(math.sqrt(math.fsum((b - a) ** 2 for a, b in pairwise(p))))
        scale.append(max(abs(x) for x in p))
    return tuple(np.array(column, dtype=np.float64) for column in (count, volume, vwap, volatility, scale))


def reference_ewma(ts_ns: NDArray[np.int64], price: NDArray[np.float64], half_life_ns: int) -> NDArray[np.float64]:
    effective = np.maximum.accumulate(ts_ns).tolist() if len(ts_ns) else []
    out = []
    for i, now in enumerate(effective):
        weights = [2.0 ** (-(now - effective[j]) / half_life_ns) for j in range(i + 1)]
        out.append(math.fsum(w * float(price[j]) for j, w in enumerate(weights)) / math.fsum(weights))
    return np.array(out, dtype=np.float64)


def reference_intensity(ts_ns: NDArray[np.int64], window_ns: int) -> tuple[NDArray[np.float64], ...]:
    effective = np.maximum.accumulate(ts_ns).tolist() if len(ts_ns) else []
    minutes = window_ns / NS_PER_MINUTE
    intensity, trend = [], []
    for i, now in enumerate(effective):
        recent = sum(1 for t in effective[: i + 1] if now - t < window_ns)
        previous = sum(1 for t in effective[: i + 1] if window_ns <= now - t < 2 * window_ns)
        intensity.append(recent / minutes)
        trend.append((recent - previous) / minutes / minutes)
    return np.array(intensity, dtype=np.float64), np.array(trend, dtype=np.float64)


# --- rolling moments ----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(stream=streams(), window=windows)
def test_moments_match_reference(stream: tuple[NDArray[Any], ...], window: tuple[int, int]) -> None:
    ts, price, _ = stream
    window_ns, max_count = window
    got = rolling_moments(MomentsState.new(window_ns, max_count, capacity=1), ts, price)
    mean, variance, zscore, scale = reference_moments(ts, price, window_ns, max_count)
    assert_close(got.mean_eur_per_mwh, mean, MEAN_ATOL * scale, what="mean")
    assert_close(got.variance_eur2_per_mwh2, variance, what="variance")
    assert (got.variance_eur2_per_mwh2[variance == 0] == 0).all()
    sd = np.sqrt(variance)
    zscore_atol = np.divide(MEAN_ATOL * scale, sd, out=np.zeros_like(sd), where=sd > 0)
    assert_close(got.zscore, zscore, zscore_atol, what="zscore")


@settings(max_examples=150, deadline=None)
@given(stream=streams(), window=windows, cuts=st.lists(st.integers(0, 80), max_size=6))
def test_moments_do_not_depend_on_batch_splits(stream: tuple[NDArray[Any], ...], window: tuple[int, int],
                                               cuts: list[int]) -> None:
    ts, price, _ = stream
    whole = rolling_moments(MomentsState.new(*window, capacity=256), ts, price)
    split = split_runs(lambda state, rows: rolling_moments(state, ts[rows], price[rows]),
                       lambda: MomentsState.new(*window, capacity=1), len(ts), cuts)
    for k, column in enumerate(whole):
        np.testing.assert_array_equal(split[k] if split else column[:0], column)


def test_moments_single_tick_empty_batch_and_equal_prices() -> None:
    state = MomentsState.new(60 * NS_PER_SECOND)
    empty = rolling_moments(state, np.empty(0, np.int64), np.empty(0))
    assert all(len(column) == 0 for column in empty)
    one = rolling_moments(state, np.array([START_NS]), np.array([-12.5]))
    assert (one.mean_eur_per_mwh[0], one.variance_eur2_per_mwh2[0], one.zscore[0]) == (-12.5, 0.0, 0.0)
    flat = rolling_moments(state, START_NS + np.arange(1, 50), np.full(49, -12.5))
    assert (flat.mean_eur_per_mwh == -12.5).all() and (flat.variance_eur2_per_mwh2 == 0).all()
    assert (flat.zscore == 0).all()


def test_moments_recover_after_a_spike_leaves_the_window() -> None:
    """Running sums with add and subtract would keep the rounding of a 9999 spike long after it left."""
    ts = START_NS + np.arange(2000, dtype=np.int64) * NS_PER_SECOND
    price = 40.0 + np.round(np.sin(np.arange(2000)) * 0.02, 2)
    price[100::300] = 9999.0
    price[250::300] = -9999.0
    got = rolling_moments(MomentsState.new(30 * NS_PER_SECOND), ts, price)
    _, variance, _, _ = reference_moments(ts, price, 30 * NS_PER_SECOND, 0)
    assert_close(got.variance_eur2_per_mwh2, variance, what="variance")


def test_moments_match_pandas_rolling_on_a_time_window() -> None:
    rng = np.random.default_rng(3)
    ts = START_NS + np.cumsum(rng.exponential(2.0, 5000) * NS_PER_SECOND).astype(np.int64)
    price = np.round(rng.normal(30, 40, 5000), 2)
    got = rolling_moments(MomentsState.new(60 * NS_PER_SECOND), ts, price)
    rolling = pd.Series(price, index=pd.to_datetime(ts)).rolling("60s")
    np.testing.assert_allclose(got.mean_eur_per_mwh, rolling.mean().to_numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got.variance_eur2_per_mwh2, rolling.var(ddof=0).to_numpy(), rtol=1e-7, atol=1e-7)


def test_count_window_matches_pandas() -> None:
    rng = np.random.default_rng(4)
    price = np.round(rng.normal(-5, 20, 3000), 2)
    ts = START_NS + np.arange(3000, dtype=np.int64)
    got = rolling_moments(MomentsState.new(max_count=25), ts, price)
    rolling = pd.Series(price).rolling(25, min_periods=1)
    np.testing.assert_allclose(got.mean_eur_per_mwh, rolling.mean().to_numpy(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("window_ns", "max_count"), [(0, 0), (-1, 5), (NO_TIME_LIMIT_NS, 0), (10, -1)])
def test_bad_windows_are_refused(window_ns: int, max_count: int) -> None:
    with pytest.raises(ValueError, match=r"window|max_count"):
        MomentsState.new(window_ns, max_count)


# --- trade statistics ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(stream=streams(), window=windows)
def test_trade_stats_match_reference(stream: tuple[NDArray[Any], ...], window: tuple[int, int]) -> None:
    ts, price, quantity = stream
    window_ns, max_count = window
    got = rolling_trades(TradeWindowState.new(window_ns, max_count, capacity=1), ts, price, quantity)
    count, volume, vwap, volatility, scale = reference_trades(ts, price, quantity, window_ns, max_count)
    np.testing.assert_array_equal(got.trade_count, count.astype(np.int64))
    assert_close(got.volume_mw, volume, what="volume")
    assert_close(got.vwap_eur_per_mwh, vwap, MEAN_ATOL * scale, what="vwap")
    assert_close(got.realised_volatility_eur_per_mwh, volatility, what="realised volatility")


@settings(max_examples=150, deadline=None)
@given(stream=streams(), window=windows, cuts=st.lists(st.integers(0, 80), max_size=6))
def test_trade_stats_do_not_depend_on_batch_splits(stream: tuple[NDArray[Any], ...], window: tuple[int, int],
                                                   cuts: list[int]) -> None:
    ts, price, quantity = stream
    whole = rolling_trades(TradeWindowState.new(*window, capacity=256), ts, price, quantity)
    split = split_runs(lambda state, rows: rolling_trades(state, ts[rows], price[rows], quantity[rows]),
                       lambda: TradeWindowState.new(*window, capacity=1), len(ts), cuts)
    for k, column in enumerate(whole):
        np.testing.assert_array_equal(split[k] if split else column[:0], column)


def test_realised_volatility_uses_price_changes_and_forgets_gaps() -> None:
    ts = START_NS + np.array([0, 1, 2, 500, 501], dtype=np.int64) * NS_PER_SECOND
    price = np.array([-10.0, -7.0, -11.0, 5.0, 5.0])
    got = rolling_trades(TradeWindowState.new(60 * NS_PER_SECOND), ts, price, np.ones(5))
    np.testing.assert_allclose(got.realised_volatility_eur_per_mwh, [0.0, 3.0, 5.0, 0.0, 0.0])
    np.testing.assert_array_equal(got.trade_count, [1, 2, 3, 1, 2])
    np.testing.assert_allclose(trades_per_minute(got.trade_count, 60 * NS_PER_SECOND), [1, 2, 3, 1, 2])


# --- intensity ----------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(stream=streams(), window_ns=st.sampled_from([NS_PER_SECOND, 10 * NS_PER_SECOND, 60 * NS_PER_SECOND]),
       cuts=st.lists(st.integers(0, 80), max_size=4))
def test_intensity_matches_reference_in_any_batches(stream: tuple[NDArray[Any], ...], window_ns: int,
                                                    cuts: list[int]) -> None:
    ts = stream[0]
    got = split_runs(lambda state, rows: trade_intensity(state, ts[rows]),
                     lambda: IntensityState.new(window_ns, capacity=1), len(ts), cuts)
    intensity, trend = reference_intensity(ts, window_ns)
    assert_close(got[0] if got else intensity, intensity, rtol=1e-12, what="intensity")
    assert_close(got[1] if got else trend, trend, rtol=1e-12, what="trend")


def test_intensity_rises_towards_closure() -> None:
    # Gaps shrink from 60 s to 1 s: trading accelerates.
    ts = START_NS + np.cumsum(np.linspace(60, 1, 300) * NS_PER_SECOND).astype(np.int64)
    got = trade_intensity(IntensityState.new(10 * NS_PER_MINUTE), ts)
    assert got.trades_per_min[-1] > got.trades_per_min[100] > 0
    assert (got.trend_trades_per_min_per_min[150:] > 0).all()


# --- EWMA ---------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(stream=streams(max_size=50),
       half_lives=st.lists(st.integers(1, 300 * NS_PER_SECOND), min_size=1, max_size=3),
       cuts=st.lists(st.integers(0, 50), max_size=4))
def test_ewma_matches_reference_in_any_batches(stream: tuple[NDArray[Any], ...], half_lives: list[int],
                                               cuts: list[int]) -> None:
    ts, price, _ = stream
    whole = ewma(EwmaState.new(half_lives), ts, price)
    split = split_runs(lambda state, rows: tuple(ewma(state, ts[rows], price[rows])),
                       lambda: EwmaState.new(half_lives), len(ts), cuts)
    scale = np.maximum.accumulate(np.abs(price)) if len(price) else price
    for k, half_life in enumerate(half_lives):
        np.testing.assert_array_equal(split[k] if split else whole[k], whole[k])
        assert_close(whole[k], reference_ewma(ts, price, half_life), MEAN_ATOL * scale, what=f"ewma {half_life}")


def test_ewma_matches_pandas_and_weighs_simultaneous_trades_equally() -> None:
    rng = np.random.default_rng(5)
    ts = START_NS + np.cumsum(rng.choice([0, 1, 7, 90], 400) * NS_PER_SECOND).astype(np.int64)
    price = np.round(rng.normal(10, 30, 400), 2)
    got = ewma(EwmaState.new([30 * NS_PER_SECOND]), ts, price)[0]
    # pandas-stubs type halflife as a float only; with times, pandas takes a Timedelta.
    expected = pd.Series(price).ewm(halflife=pd.Timedelta(seconds=30),  # type: ignore[arg-type]
                                    times=ts.astype("datetime64[ns]")).mean()
    np.testing.assert_allclose(got, expected.to_numpy(), rtol=1e-9, atol=1e-9)
    both = ewma(EwmaState.new([NS_PER_SECOND]), np.array([START_NS, START_NS]), np.array([10.0, 20.0]))
    assert both[0, 1] == 15.0


# --- clock and anchor ---------------------------------------------------------------------------------


def test_time_to_gate_closure() -> None:
    key = "DE-LU:2018-10-28T12:00Z:PT15M"
    delivery_ns = 1_540_728_000_000_000_000
    assert gate_closure_ns(key, "area") == delivery_ns - 30 * NS_PER_MINUTE
    assert gate_closure_ns(key, "cross_border") == delivery_ns - 60 * NS_PER_MINUTE
    assert gate_closure_ns(key, "local") == delivery_ns - 5 * NS_PER_MINUTE
    gate = gate_closure_ns(key)
    ts = np.array([gate - 90 * NS_PER_MINUTE, gate - NS_PER_SECOND, gate, gate + NS_PER_MINUTE], dtype=np.int64)
    np.testing.assert_allclose(time_to_gate_closure_min(ts, gate), [90.0, 1 / 60, 0.0, -1.0], rtol=1e-15)
    assert len(time_to_gate_closure_min(np.empty(0, np.int64), gate)) == 0


def test_spread_to_day_ahead() -> None:
    got = spread_to_day_ahead(np.array([-20.0, 0.0, np.nan, 105.25]), -12.5)
    np.testing.assert_array_equal(got, [-7.5, 12.5, np.nan, 117.75])
    assert np.isnan(spread_to_day_ahead(np.array([40.0]), float("nan"))).all()
