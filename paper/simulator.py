"""A seeded, deterministic simulator of one area's continuous intraday market for one delivery day.

Real intraday order data is not public, so wattflow replays a simulation whose shape follows published
facts (``shared/design/market.md``): prices anchored on the real day-ahead price of each hour, trading
intensity rising roughly exponentially towards gate closure with a rush before the cross-border closure
(60 minutes before delivery), clustered arrivals, zero-heavy and fat-tailed price changes, a quarter-hour
sawtooth within the hour, and thin books with wide spreads far from closure.

Everything is generated per product as numpy arrays (no Python loop per event), so a whole area-day of
~10^5-10^6 events takes a second or two. The same seed gives the same feed: every product draws from its
own generator, seeded by the run seed and a checksum of its key, so products do not depend on each other.

Model of one product, on its own timeline of "rows" (one per trade or book event, row 0 the first book):

* a reference price that jumps at some rows: an AR(1) around a target (anchor + sawtooth + revealed
  generation surprise) with Student-t innovations, computed by convolution with the AR kernel;
* a spread, level gaps and a depth per side, piecewise constant, that narrow and fill up towards closure;
* the best quantity of a side, decreased by each trade that hits it and reset by book events;
* a trade takes the touch price of the book just before it (the aggressor's opposite side).

The book feed is the difference between consecutive rows' L2 states (one update per changed level).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from connectors.feeds.files import BOOK, TRADE, FeedFrame
from connectors.feeds.smard import DATA_DIR, day_ahead_anchor
from wattflow.domain import (
    AREAS,
    INTRADAY_PRICE_MAX_EUR_PER_MWH,
    INTRADAY_PRICE_MIN_EUR_PER_MWH,
    NS_PER_HOUR,
    NS_PER_MINUTE,
    NS_PER_SECOND,
    Product,
    area_rules,
    delivery_day_bounds_ns,
    products_of_day,
    trading_window,
)
from wattflow.errors import WattflowError

SAMPLE_GENERATION_FILE = DATA_DIR / "generation_DE_2018_sample.parquet"
GENERATION_COLUMNS = ("Wind Onshore", "Wind Offshore", "Solar")
SIM_SOURCE = "sim"

#: Expected trades of one product at scale 1 (before the hour-of-day profile), by duration in minutes.
TRADES_PER_PRODUCT = {15: 350.0, 30: 500.0, 60: 1100.0}
#: Book events (order entries, changes, deletions) per trade; a book event changes zero or more levels.
BOOK_EVENTS_PER_TRADE = 4.0
#: Hour-of-day (local) activity profile: busiest delivery hours 13-18.
HOURLY_ACTIVITY = np.array([0.6] * 6 + [0.9] * 2 + [1.1] * 5 + [1.35] * 6 + [1.0] * 3 + [0.8] * 2)
#: A GW more wind and solar than expected lowers the price by this much (merit-order slope).
GENERATION_SENSITIVITY_EUR_PER_MWH_PER_GW = 1.5
#: How far the quarter-hour sawtooth moves a product, per EUR/MWh/h of hourly price slope, and at most.
SAWTOOTH_EUR_PER_SLOPE = 2.0
SAWTOOTH_MAX_EUR_PER_MWH = 10.0
MAX_LEVELS = 5
TICKS_PER_EUR = 100  # 0.01 EUR/MWh
STEPS_PER_MW = 10  # 0.1 MW

_MIN_TICKS = round(INTRADAY_PRICE_MIN_EUR_PER_MWH * TICKS_PER_EUR)
_MAX_TICKS = round(INTRADAY_PRICE_MAX_EUR_PER_MWH * TICKS_PER_EUR)
_LEVEL_WEIGHTS = np.array([0.35, 0.25, 0.17, 0.13, 0.10])
_AR_COEFFICIENT = 0.97
_AR_KERNEL = _AR_COEFFICIENT ** np.arange(int(np.log(1e-7) / np.log(_AR_COEFFICIENT)) + 1)


@dataclass(frozen=True, slots=True)
class GenerationProfile:
    """Actual wind + solar generation, quarter-hourly: UTC start of each quarter hour and MW."""

    delivery_start_ns: NDArray[np.int64]
    wind_solar_mw: NDArray[np.float64]

    def surprise_mw(self) -> NDArray[np.float64]:
        """Generation minus its centred 4-hour mean: a proxy for the forecast error traders react to.

        The day-ahead price already reflects the forecast, which the data does not include; the short-term
        deviation from the smoothed profile stands in for it. Gaps between days are respected.
        """
        starts, values = self.delivery_start_ns, self.wind_solar_mw
        cumulative = np.concatenate([[0.0], np.cumsum(values)])
        left = np.searchsorted(starts, starts - 2 * NS_PER_HOUR, side="left")
        right = np.searchsorted(starts, starts + 2 * NS_PER_HOUR, side="right")
        return values - (cumulative[right] - cumulative[left]) / (right - left)


def read_generation(path: str | Path | None = None) -> GenerationProfile:
    """Wind onshore + offshore + solar from an ENTSO-E generation Parquet file (tz-aware index)."""
    source = Path(path) if path is not None else SAMPLE_GENERATION_FILE
    frame = pd.read_parquet(source, columns=list(GENERATION_COLUMNS))
    index = pd.DatetimeIndex(frame.index)
    if index.tz is None:
        raise WattflowError(f"{source}: the generation index has no time zone", hint="use a tz-aware index")
    starts = index.tz_convert("UTC").as_unit("ns").asi8
    order = np.argsort(starts, kind="stable")
    total = frame.to_numpy(dtype=np.float64).sum(axis=1)
    return GenerationProfile(starts[order].astype(np.int64), np.nan_to_num(total[order]))


def _product_seed(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def _trade_intensity(minutes_to_delivery: NDArray[np.float64]) -> NDArray[np.float64]:
    """Relative trade intensity by minutes before delivery start.

    Exponential rise towards the Germany-wide closure (30 min), a rush just before the cross-border
    closure (60 min), a small floor far from delivery, and little trading in the last 25 minutes when only
    the own control area is open. Roughly 25% of trades fall between 60 and 30 minutes before delivery.
    """
    tau = minutes_to_delivery
    rising = np.exp(-(np.maximum(tau, 30.0) - 30.0) / 80.0)
    cross_border_rush = 0.9 * np.exp(-0.5 * ((tau - 64.0) / 4.0) ** 2)
    return np.where(tau < 30.0, 0.12, 0.012 + rising + cross_border_rush)


def _arrivals(rng: np.random.Generator, grid_s: NDArray[np.float64], intensity: NDArray[np.float64],
              expected: float, cluster_mean: float) -> NDArray[np.float64]:
    """Sorted arrival times (seconds from the grid start) of an inhomogeneous Poisson process with clusters.

    Parents follow ``intensity`` by inverse transform sampling; each parent brings a Poisson number of
    followers (mean ``cluster_mean``) a few seconds later, a third of them in the same instant (an
    aggressive order sweeping several resting orders).
    """
    cumulative = np.concatenate([[0.0], np.cumsum((intensity[1:] + intensity[:-1]) * np.diff(grid_s))])
    parents = rng.poisson(expected / (1.0 + cluster_mean))
    times = np.interp(rng.uniform(0.0, cumulative[-1], parents), cumulative, grid_s)
    if cluster_mean > 0 and parents:
        followers = rng.poisson(cluster_mean, parents)
        origin = np.repeat(times, followers)
        delay = rng.exponential(2.0, len(origin)) * (rng.random(len(origin)) > 0.33)
        times = np.concatenate([times, origin + delay])
    times = times[times < grid_s[-1]]
    return np.sort(times)


def _forward_fill(values: NDArray[np.int64], is_set: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Each row's value is the one of the last row (this or earlier) where ``is_set``; row 0 must be set."""
    rows = np.arange(len(values)).reshape((-1,) + (1,) * (values.ndim - 1))
    last_set = np.maximum.accumulate(np.where(is_set, rows, 0), axis=0)
    return np.take_along_axis(values, last_set, axis=0)


@dataclass(frozen=True, slots=True)
class _ProductEvents:
    """One product's events in its own order; ``row`` orders trades and book updates together."""

    trade_ns: NDArray[np.int64]
    trade_row: NDArray[np.int64]
    trade_price_ticks: NDArray[np.int64]
    trade_quantity_steps: NDArray[np.int64]
    trade_side: NDArray[np.int8]
    book_ns: NDArray[np.int64]
    book_row: NDArray[np.int64]
    book_side: NDArray[np.int8]
    book_level: NDArray[np.int8]
    book_price_ticks: NDArray[np.int64]
    book_quantity_steps: NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class _Timeline:
    """The rows of one product: an opening book, then trades and book events in time order."""

    times_s: NDArray[np.float64]  # seconds after the trading window opens
    minutes_before: NDArray[np.float64]  # minutes before delivery start
    near: NDArray[np.float64]  # 0 far from delivery .. 1 at the Germany-wide closure
    trade_rows: NDArray[np.int64]
    book_rows: NDArray[np.int64]  # book events after the opening row

    @property
    def rows(self) -> int:
        return len(self.times_s)


def _timeline(rng: np.random.Generator, product: Product, span_s: float, activity: float) -> _Timeline:
    grid_s = np.linspace(0.0, span_s, max(int(span_s / 10.0), 2))
    open_minutes_before = (product.delivery_start_ns - trading_window(product).open_ns) / NS_PER_MINUTE
    trade_intensity = _trade_intensity(open_minutes_before - grid_s / 60.0)
    # Order messages are spread more evenly than trades: books exist long before anyone trades.
    book_intensity = 0.6 * trade_intensity + 0.4 * trade_intensity.mean()
    expected_trades = TRADES_PER_PRODUCT[product.duration_min] * activity
    trade_s = _arrivals(rng, grid_s, trade_intensity, expected_trades, cluster_mean=0.6)
    book_s = _arrivals(rng, grid_s, book_intensity, expected_trades * BOOK_EVENTS_PER_TRADE, cluster_mean=0.0)
    times_s = np.concatenate([[0.0], trade_s, book_s])
    is_trade = np.concatenate([[False], np.ones(len(trade_s), bool), np.zeros(len(book_s), bool)])
    order = np.argsort(times_s, kind="stable")  # the opening row first, a trade before a book event on a tie
    times_s, is_trade = times_s[order], is_trade[order]
    minutes_before = open_minutes_before - times_s / 60.0
    return _Timeline(times_s, minutes_before, np.exp(-np.maximum(minutes_before - 30.0, 0.0) / 180.0),
                     np.flatnonzero(is_trade), np.flatnonzero(~is_trade)[1:])


def _aggressor_sides(rng: np.random.Generator, trades: int) -> NDArray[np.int8]:
    """Aggressor sides in runs (buying or selling persists): the side switches with probability 0.3."""
    switches = rng.random(trades) < 0.3
    first_side = 1 if rng.random() < 0.5 else -1
    return (first_side * np.where(np.cumsum(switches) % 2 == 0, 1, -1)).astype(np.int8)


def _price_ladder(rng: np.random.Generator, line: _Timeline, trade_side: NDArray[np.int8], *,
                  anchor_eur_per_mwh: float, target_offset_eur_per_mwh: float,
                  shift_eur_per_mwh: float) -> NDArray[np.int64]:
    """Prices in ticks of every row, side (0 bids, 1 asks) and level, from a jumping reference price.

    The reference jumps at a third of the trades and a few book events; between jumps it stays put, so
    many trade-to-trade changes are exactly zero. At jumps it follows an AR(1) around the target with
    Student-t innovations, pushed by the aggressor, with one larger move when cross-border trading closes.
    """
    jumps = np.zeros(line.rows, bool)
    jumps[0] = True
    jumps[line.trade_rows] = rng.random(len(line.trade_rows)) < 0.35
    jumps[line.book_rows] = rng.random(len(line.book_rows)) < 0.06
    jump_rows = np.flatnonzero(jumps)
    near = line.near[jump_rows]
    # Volatility and spreads grow with distance from "normal" prices: the merit order is steep at scarcity
    # and at negative prices.
    regime = float(np.clip(0.7 + 0.02 * abs(anchor_eur_per_mwh - 40.0), 0.7, 4.0))
    step_eur = regime * (0.35 + 0.35 * near)
    innovation = step_eur * np.clip(rng.standard_t(3.0, len(jump_rows)), -40.0, 40.0) * 0.6
    side_at_row = np.zeros(line.rows, np.int8)
    side_at_row[line.trade_rows] = trade_side
    innovation += 0.3 * step_eur * side_at_row[jump_rows]  # buyers lift the price, sellers press it
    after_cross_border = np.flatnonzero(line.minutes_before[jump_rows] < 60.0)
    if len(after_cross_border):
        innovation[after_cross_border[0]] *= 4.0
    deviation = np.convolve(innovation, _AR_KERNEL)[: len(jump_rows)]
    reference = anchor_eur_per_mwh + target_offset_eur_per_mwh + shift_eur_per_mwh * near + deviation
    spread_eur = regime * (0.6 + 9.4 * (1.0 - near)) * rng.lognormal(0.0, 0.35, len(jump_rows))
    gap_eur = (0.05 + 1.2 * (1.0 - near))[:, None, None] * rng.lognormal(0.0, 0.6, (len(jump_rows), 2, 4))

    jump_index = np.cumsum(jumps) - 1
    bid = np.floor((reference - spread_eur / 2) * TICKS_PER_EUR).astype(np.int64)[jump_index]
    ask = np.ceil((reference + spread_eur / 2) * TICKS_PER_EUR).astype(np.int64)[jump_index]
    ask = np.maximum(ask, bid + 1)
    gaps = np.maximum(np.rint(gap_eur * TICKS_PER_EUR), 1).astype(np.int64)[jump_index]
    prices = np.empty((line.rows, 2, MAX_LEVELS), np.int64)
    prices[:, 0, 0], prices[:, 1, 0] = bid, ask
    prices[:, 0, 1:] = bid[:, None] - np.cumsum(gaps[:, 0], axis=1)
    prices[:, 1, 1:] = ask[:, None] + np.cumsum(gaps[:, 1], axis=1)
    return np.clip(prices, _MIN_TICKS, _MAX_TICKS)


def _depths(rng: np.random.Generator, line: _Timeline, hit_side: NDArray[np.int64]) -> NDArray[np.int64]:
    """Levels shown per row and side: thin, often empty far from delivery, full near closure.

    Redrawn at a quarter of the book events; the side a trade hits shows at least one level just before
    and after it.
    """
    fill_probability = 0.3 + 0.68 * line.near
    drawn = rng.binomial(MAX_LEVELS, np.repeat(fill_probability[:, None], 2, axis=1))
    redrawn = np.zeros((line.rows, 2), bool)
    redrawn[0] = True
    redrawn[line.book_rows, rng.integers(0, 2, len(line.book_rows))] = rng.random(len(line.book_rows)) < 0.25
    depth = _forward_fill(drawn, redrawn)
    for rows in (line.trade_rows - 1, line.trade_rows):
        depth[rows, hit_side] = np.maximum(depth[rows, hit_side], 1)
    return depth


def _quantities(rng: np.random.Generator, line: _Timeline, hit_side: NDArray[np.int64],
                trade_steps: NDArray[np.int64]) -> NDArray[np.int64]:
    """Quantity in 0.1 MW steps per row, side and level.

    Each book event redraws one level of one side (mostly near the top). Trades eat the best level of
    the side they hit: each redraw of that level starts a segment in which trades decrease what is shown,
    and the redrawn quantity is raised to cover the segment's trades, so that no trade overdraws the book.
    """
    drawn = np.maximum(np.rint(rng.lognormal(np.log(8.0), 0.8, (line.rows, 2, MAX_LEVELS)) * STEPS_PER_MW), 1)
    redrawn = np.zeros((line.rows, 2, MAX_LEVELS), bool)
    redrawn[0] = True
    redrawn[line.book_rows, rng.integers(0, 2, len(line.book_rows)),
            rng.choice(MAX_LEVELS, len(line.book_rows), p=_LEVEL_WEIGHTS)] = True
    quantity = _forward_fill(drawn.astype(np.int64), redrawn)
    for side in (0, 1):
        segment = np.cumsum(redrawn[:, side, 0]) - 1
        mine = hit_side == side
        eaten = np.zeros(line.rows, np.int64)
        eaten[line.trade_rows[mine]] = trade_steps[mine]
        eaten_cumulative = np.cumsum(eaten)
        eaten_before_segment = (eaten_cumulative - eaten)[np.flatnonzero(redrawn[:, side, 0])]
        segment_total = np.bincount(segment, weights=eaten, minlength=segment[-1] + 1).astype(np.int64)
        start_quantity = np.maximum(quantity[:, side, 0], segment_total[segment] + 1)
        quantity[:, side, 0] = start_quantity - (eaten_cumulative - eaten_before_segment[segment])
    return quantity


def _book_updates(prices: NDArray[np.int64], depth: NDArray[np.int64], quantity: NDArray[np.int64],
                  ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64],
                             NDArray[np.int64]]:
    """L2 updates (row, side, level, price ticks, quantity steps): the changes between consecutive rows.

    A level that disappears is sent with quantity 0 and its last price. Within a row the side that moves
    away goes first (the asks when the new best bid reaches the old best ask), and within a side deletions
    come first, deepest first, so that a consumer applying the updates one by one never sees a crossed book
    or a gap between levels.
    """
    present = np.arange(MAX_LEVELS)[None, None, :] < depth[:, :, None]
    shown_price = np.where(present, prices, 0)
    shown_quantity = np.where(present, quantity, 0)
    changed = np.empty_like(present)
    changed[0] = present[0]
    changed[1:] = (present[1:] != present[:-1]) | (
        present[1:] & ((shown_price[1:] != shown_price[:-1]) | (shown_quantity[1:] != shown_quantity[:-1])))
    row, side, level = np.nonzero(changed)
    old_best_ask_shown = np.r_[False, present[:-1, 1, 0]]
    old_best_ask = np.r_[0, prices[:-1, 1, 0]]
    asks_first = present[:, 0, 0] & old_best_ask_shown & (prices[:, 0, 0] >= old_best_ask)
    deleted = ~present[row, side, level]
    emit = np.lexsort((np.where(deleted, -level, level), ~deleted, side ^ asks_first[row], row))
    row, side, level = row[emit], side[emit], level[emit]
    price = np.where(present[row, side, level], prices[row, side, level],
                     prices[np.maximum(row - 1, 0), side, level])
    return row, side, level, price, shown_quantity[row, side, level]


def _simulate_product(rng: np.random.Generator, product: Product, *, anchor_eur_per_mwh: float,
                      sawtooth_eur_per_mwh: float, shift_eur_per_mwh: float, activity: float,
                      ) -> _ProductEvents:
    window = trading_window(product)
    open_ns, close_ns = window.open_ns, window.local_close_ns
    line = _timeline(rng, product, (close_ns - open_ns) / NS_PER_SECOND, activity)
    trade_side = _aggressor_sides(rng, len(line.trade_rows))
    hit_side = np.where(trade_side == 1, 1, 0)  # a buyer lifts the asks (side 1), a seller hits the bids
    prices = _price_ladder(rng, line, trade_side, anchor_eur_per_mwh=anchor_eur_per_mwh,
                           target_offset_eur_per_mwh=sawtooth_eur_per_mwh, shift_eur_per_mwh=shift_eur_per_mwh)
    depth = _depths(rng, line, hit_side)
    trade_steps = np.maximum(np.rint(rng.lognormal(np.log(1.5), 0.9, len(line.trade_rows)) * STEPS_PER_MW), 1)
    trade_steps = trade_steps.astype(np.int64)
    quantity = _quantities(rng, line, hit_side, trade_steps)
    row, side, level, price, quantity_steps = _book_updates(prices, depth, quantity)
    row_ns = np.clip(open_ns + (line.times_s * NS_PER_SECOND).astype(np.int64), open_ns, close_ns - 1)
    return _ProductEvents(
        trade_ns=row_ns[line.trade_rows], trade_row=line.trade_rows,
        trade_price_ticks=prices[line.trade_rows - 1, hit_side, 0],  # the touch just before the trade
        trade_quantity_steps=trade_steps, trade_side=trade_side,
        book_ns=row_ns[row], book_row=row.astype(np.int64),
        book_side=np.where(side == 0, 1, -1).astype(np.int8), book_level=level.astype(np.int8),
        book_price_ticks=price, book_quantity_steps=quantity_steps,
    )


def _hourly_slopes(anchor: NDArray[np.float64]) -> NDArray[np.float64]:
    """Price slope of each hour (EUR/MWh per hour), centred, one-sided at the ends of the day."""
    return np.gradient(anchor) if len(anchor) > 1 else np.zeros_like(anchor)


def simulate_day(  # noqa: PLR0917 (the documented call is positional, like the CLI options)
    area: str = "DE-LU",
    day: date = date(2018, 10, 28),
    seed: int = 7,
    scale: float = 1.0,
    durations_min: tuple[int, ...] = (15, 60),
    anchor: NDArray[np.float64] | None = None,
    generation: GenerationProfile | None = None,
    *,
    prices_file: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FeedFrame:
    """Simulate the intraday trades and L2 book updates of every product of one area's delivery day.

    ``anchor`` is the day's hourly day-ahead prices in UTC order (default: from ``prices_file``, itself
    defaulting to the shipped SMARD sample). ``generation`` shifts each product's price by the wind +
    solar surprise of its delivery period, revealed as closure nears; without it there is no shift.
    ``scale`` multiplies every intensity (load tests). ``progress(done, total)`` is called per product.
    """
    rules = area_rules(area)
    if scale <= 0:
        raise ValueError(f"scale {scale} must be positive")
    first_ns, end_ns = delivery_day_bounds_ns(area, day)
    hours = (end_ns - first_ns) // NS_PER_HOUR
    anchor_prices = np.asarray(anchor if anchor is not None else day_ahead_anchor(prices_file, area, day),
                               dtype=np.float64)
    if anchor_prices.shape != (hours,) or not np.isfinite(anchor_prices).all():
        raise ValueError(f"anchor must hold {hours} finite hourly prices for {area} {day}, "
                         f"got shape {anchor_prices.shape}")
    slopes = _hourly_slopes(anchor_prices)
    surprise_starts = generation.delivery_start_ns if generation is not None else np.empty(0, np.int64)
    surprise_mw = generation.surprise_mw() if generation is not None else np.empty(0)
    zone = ZoneInfo(rules.timezone)
    products = products_of_day(area, day, durations_min)
    parts: list[_ProductEvents] = []
    for number, product in enumerate(products):
        hour = (product.delivery_start_ns - first_ns) // NS_PER_HOUR
        local_hour = datetime.fromtimestamp(product.delivery_start_ns / NS_PER_SECOND, zone).hour
        rng = _product_seed(seed, product.key)
        centre_in_hour = ((product.delivery_start_ns - first_ns) % NS_PER_HOUR / NS_PER_MINUTE
                          + product.duration_min / 2) / 60.0 - 0.5
        covered = (surprise_starts >= product.delivery_start_ns) & (surprise_starts < product.delivery_end_ns)
        shift = (-GENERATION_SENSITIVITY_EUR_PER_MWH_PER_GW * float(surprise_mw[covered].mean()) / 1000.0
                 if covered.any() else 0.0)
        activity = float(HOURLY_ACTIVITY[local_hour]) * float(rng.lognormal(0.0, 0.2)) * scale
        # Sawtooth: on a rising hour the first quarter is dearest and the last cheapest; reversed when falling.
        sawtooth = float(np.clip(-SAWTOOTH_EUR_PER_SLOPE * slopes[hour] * centre_in_hour,
                                 -SAWTOOTH_MAX_EUR_PER_MWH, SAWTOOTH_MAX_EUR_PER_MWH))
        parts.append(_simulate_product(rng, product, anchor_eur_per_mwh=float(anchor_prices[hour]),
                                       sawtooth_eur_per_mwh=sawtooth, shift_eur_per_mwh=shift, activity=activity))
        if progress is not None:
            progress(number + 1, len(products))
    return _assemble(parts, products, area, day)


def _assemble(parts: list[_ProductEvents], products: list[Product], area: str, day: date) -> FeedFrame:
    """All products' events in one frame, stably sorted by time, with seq and trade ids."""
    counts = [len(p.trade_ns) + len(p.book_ns) for p in parts]
    product_code = np.repeat(np.arange(len(parts), dtype=np.int32), counts)
    is_trade = np.concatenate([np.r_[np.ones(len(p.trade_ns), bool), np.zeros(len(p.book_ns), bool)]
                               for p in parts]) if parts else np.empty(0, bool)

    def column(trade_part: str | None, book_part: str | None, fill: int,
               dtype: type[np.generic]) -> NDArray[Any]:
        pieces: list[NDArray[Any]] = []
        for part in parts:
            for name, length in ((trade_part, len(part.trade_ns)), (book_part, len(part.book_ns))):
                pieces.append(np.asarray(getattr(part, name), dtype) if name else np.full(length, fill, dtype))
        return np.concatenate(pieces) if pieces else np.empty(0, dtype)

    ts_ns = column("trade_ns", "book_ns", 0, np.int64)
    row = column("trade_row", "book_row", 0, np.int64)
    # Within a product: by row, a trade before the book updates of its row; across products: by time.
    within = np.lexsort((~is_trade, row, product_code))
    order = within[np.argsort(ts_ns[within], kind="stable")]
    price = column("trade_price_ticks", "book_price_ticks", 0, np.int64)[order] / TICKS_PER_EUR
    quantity = column("trade_quantity_steps", "book_quantity_steps", 0, np.int64)[order] / STEPS_PER_MW
    is_trade = is_trade[order]
    trade_id = np.full(len(order), -1, np.int64)
    trade_base = (int(day.strftime("%Y%m%d")) * 100 + list(AREAS).index(area)) * 10**8
    trade_id[is_trade] = trade_base + np.arange(int(is_trade.sum()), dtype=np.int64)
    starts = np.array([p.delivery_start_ns for p in products], np.int64)
    durations = np.array([p.duration_min for p in products], np.int16)
    codes = product_code[order]
    return FeedFrame(
        event_type=np.where(is_trade, TRADE, BOOK).astype(np.int8),
        ts_ns=ts_ns[order], key_code=codes, keys=tuple(p.key for p in products),
        side=column("trade_side", "book_side", 0, np.int8)[order],
        level=column(None, "book_level", -1, np.int8)[order],
        price_eur_per_mwh=price, quantity_mw=quantity, trade_id=trade_id,
        delivery_start_ns=starts[codes], duration_min=durations[codes],
        source_code=np.zeros(len(order), np.int16), sources=(SIM_SOURCE,),
        seq=np.arange(len(order), dtype=np.int64),
    )

