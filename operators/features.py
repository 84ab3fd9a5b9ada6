"""Per-product features: trades and L2 book updates, through the Numba kernels, in log order or in event time.

One :class:`ProductFeatures` object per delivery product holds the kernels' states (numpy arrays and plain
dataclasses: Bytewax pickles it into its recovery snapshots).

**In log order** (``FeatureSettings.in_log_order``, the trading flow): the raw topic keeps each product on one
partition, so its partition order *is* the order of its events. Each trade's features are computed when it
is read, with the book as the updates before it in the log left it; nothing waits for a later event. The one
wait is for a slow input: until the product's day-ahead anchor is known (it arrives the day before trading
opens, keyed by area, possibly on another partition), its events are held, so that the anchor column never
depends on how partitions interleaved. The same log therefore gives the same features whatever the batching.

**In event time** (the signals flow, which reads trades and book from separate topics): batches of a
product's trades, book updates and its day-ahead anchor arrive in an order that depends on timing; to make the
features **deterministic** (the same feed gives the same features, however it was batched or interleaved),
events are held back and released in event-time order up to a watermark: everything strictly before the
smallest last-seen event time of the two streams, and nothing before the day-ahead anchor is known. End of
input releases everything.
A hold-back past ``max_held_events`` (a stream that went silent) releases anyway and counts it in
``forced_releases``: determinism holds only while that count is zero. Upstream delivery is at least once (a
resumed ingest flow republishes some ticks), so events at or before the last (time, id) taken are dropped
as repeats and counted in ``repeats_dropped``.

At each trade, the features are the trade-window statistics up to and including that trade and the book as
it stood before it: after the last book update strictly earlier than the trade (what a trader saw), earlier
in the log or in event time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from operators.access import AccessSettings, AccessState
from operators.access_prediction import fill_probability
from operators.kernels import (
    BookState,
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
    update_book,
)
from wattflow.batches import BookBatch, TickBatch
from wattflow.domain import NS_PER_MINUTE, gate_closure_ns
from wattflow.features import BOOK_FEATURES, FEATURE_NAMES, FeatureBatch

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

_COLUMN = {name: k for k, name in enumerate(FEATURE_NAMES)}
_BOOK_COLUMNS = slice(FEATURE_NAMES.index(BOOK_FEATURES[0]), FEATURE_NAMES.index(BOOK_FEATURES[-1]) + 1)


@dataclass(frozen=True, slots=True)
class FeatureSettings:
    """Windows and bands of the features (event time)."""

    window_ns: int = 15 * NS_PER_MINUTE
    intensity_window_ns: int = 5 * NS_PER_MINUTE
    ewma_half_lives_ns: tuple[int, int] = (1 * NS_PER_MINUTE, 30 * NS_PER_MINUTE)
    depth_levels: int = 5
    band_eur_per_mwh: float = 5.0
    max_held_events: int = 250_000
    #: Release each event when it is read, in the order of the log (the trading flow), instead of holding it
    #: back until both streams passed its event time (the signals flow's merge of separate topics).
    in_log_order: bool = False
    #: How feed coverage is measured (``operators.access``).
    access: AccessSettings = field(default_factory=AccessSettings)


@dataclass(frozen=True, slots=True)
class ProductEvents:
    """What arrived for one product: some trades, some book updates, or its day-ahead anchor."""

    product: str
    ticks: TickBatch | None = None
    book: BookBatch | None = None
    day_ahead_eur_per_mwh: float | None = None


_NO_TS = -(2**63)
_END = 2**63 - 1


@dataclass
class ProductFeatures:
    """The feature state of one product (picklable; see the module docstring for the release rule)."""

    product: str
    settings: FeatureSettings
    gate_closure_ns: int
    moments: MomentsState
    trades: TradeWindowState
    intensity: IntensityState
    averages: EwmaState
    book: BookState
    last_book: F64
    day_ahead_eur_per_mwh: float = math.nan
    held_ticks: list[TickBatch] = field(default_factory=list)
    held_book: list[BookBatch] = field(default_factory=list)
    last_tick_ns: int = _NO_TS
    last_book_ns: int = _NO_TS
    last_trade_id: int = _NO_TS
    last_book_seq: int = _NO_TS
    forced_releases: int = 0
    repeats_dropped: int = 0
    access: AccessState | None = None  # None in a snapshot from before access was measured

    def access_state(self) -> AccessState:
        if self.access is None:
            self.access = AccessState(self.product, self.settings.access)
        return self.access

    @classmethod
    def new(cls, product: str, settings: FeatureSettings) -> ProductFeatures:
        return cls(
            product, settings, gate_closure_ns(product),
            MomentsState.new(settings.window_ns), TradeWindowState.new(settings.window_ns),
            IntensityState.new(settings.intensity_window_ns), EwmaState.new(list(settings.ewma_half_lives_ns)),
            BookState.new(), np.full(len(BOOK_FEATURES), np.nan),
        )

    def held(self) -> int:
        return sum(len(b) for b in self.held_ticks) + sum(len(b) for b in self.held_book)

    def on_events(self, events: ProductEvents) -> FeatureBatch | None:
        """Take what arrived; return the features of the trades this releases (None if none)."""
        if events.day_ahead_eur_per_mwh is not None:
            self.day_ahead_eur_per_mwh = events.day_ahead_eur_per_mwh
        if events.ticks is not None and len(events.ticks):
            ticks = self._fresh(events.ticks, events.ticks.trade_id, self.last_tick_ns, self.last_trade_id)
            if len(ticks):
                self.held_ticks.append(ticks)
                self.last_tick_ns, self.last_trade_id = int(ticks.ts_ns[-1]), int(ticks.trade_id[-1])
        if events.book is not None and len(events.book):
            book = self._fresh(events.book, events.book.seq, self.last_book_ns, self.last_book_seq)
            if len(book):
                self.held_book.append(book)
                self.last_book_ns, self.last_book_seq = int(book.ts_ns[-1]), int(book.seq[-1])
        watermark = _END if self.settings.in_log_order else min(self.last_tick_ns, self.last_book_ns)
        if math.isnan(self.day_ahead_eur_per_mwh):
            watermark = _NO_TS
        if self.held() > self.settings.max_held_events:
            self.forced_releases += 1
            watermark = max(self.last_tick_ns, self.last_book_ns)
        return self._release(watermark)

    def _fresh(self, batch: Any, ids: I64, last_ns: int, last_id: int) -> Any:
        """Drop what was seen already: upstream delivery is at least once, and a stream is in (time, id) order,
        so a repeat is anything at or before the last (time, id) taken."""
        fresh = (batch.ts_ns > last_ns) | ((batch.ts_ns == last_ns) & (ids > last_id))
        if fresh.all():
            return batch
        self.repeats_dropped += int((~fresh).sum())
        return batch.take(np.flatnonzero(fresh))

    def on_end(self) -> FeatureBatch | None:
        """End of input: release everything held."""
        return self._release(_END)

    def _release(self, watermark_ns: int) -> FeatureBatch | None:
        if watermark_ns == _NO_TS:
            return None
        book = _split(self.held_book, watermark_ns, BookBatch)
        ticks = _split(self.held_ticks, watermark_ns, TickBatch)
        self.held_book = [book[1]] if len(book[1]) else []
        self.held_ticks = [ticks[1]] if len(ticks[1]) else []
        released_book, released_ticks = book[0], ticks[0]
        book_values = self._apply_book(released_book)
        book_tolerance = self.access_state().on_book(released_book.ts_ns)
        book_before = self.last_book
        if book_values.shape[1]:
            # Kept even when no trade is released now: a later trade sees the book as these updates left it.
            self.last_book = book_values[:, -1].copy()
        features = None
        if len(released_ticks):
            features = self._features(released_ticks, released_book, book_values, book_before, book_tolerance)
        self.access_state().finish()
        return features

    def _apply_book(self, book: BookBatch) -> F64:
        if not len(book):
            return np.empty((len(BOOK_FEATURES), 0))
        features = update_book(self.book, book.side, book.level, book.price_eur_per_mwh, book.quantity_mw,
                               depth_levels=self.settings.depth_levels,
                               band_eur_per_mwh=self.settings.band_eur_per_mwh)
        return np.vstack(features)

    def _features(self, ticks: TickBatch, book: BookBatch, book_values: F64, book_before: F64,
                  book_tolerance: tuple[F64, float, int | None]) -> FeatureBatch:
        ts, price, quantity = ticks.ts_ns, ticks.price_eur_per_mwh, ticks.quantity_mw
        n = len(ts)
        out = np.empty((len(FEATURE_NAMES), n))
        moments = rolling_moments(self.moments, ts, price)
        stats = rolling_trades(self.trades, ts, price, quantity)
        intensity = trade_intensity(self.intensity, ts)
        averages = ewma(self.averages, ts, price)
        out[0], out[1], out[2] = price, quantity, ticks.side
        out[3], out[4] = moments.mean_eur_per_mwh, moments.zscore
        out[5], out[6], out[7] = stats.vwap_eur_per_mwh, stats.realised_volatility_eur_per_mwh, stats.volume_mw
        out[8], out[9] = averages[0], averages[1]
        out[10], out[11] = intensity.trades_per_min, intensity.trend_trades_per_min_per_min
        # The book as it stood before each trade: after the last update strictly earlier than the trade, in the
        # log (in log order) or in event time.
        if not len(book):
            position = np.full(n, -1)
        elif self.settings.in_log_order and (book.offset >= 0).all() and (ticks.offset >= 0).all():
            position = np.searchsorted(log_positions(book), log_positions(ticks), side="left") - 1
        else:
            position = np.searchsorted(book.ts_ns, ts, side="left") - 1
        out[_BOOK_COLUMNS] = book_before[:, None]
        seen = position >= 0
        if seen.any():
            out[_BOOK_COLUMNS, seen] = book_values[:, position[seen]]
        anchor = self.day_ahead_eur_per_mwh
        out[_COLUMN["day_ahead_eur_per_mwh"]] = anchor
        out[_COLUMN["spread_to_day_ahead_eur_per_mwh"]] = spread_to_day_ahead(price, anchor)
        minutes = out[_COLUMN["minutes_to_gate_closure"]] = time_to_gate_closure_min(ts, self.gate_closure_ns)
        # Access: the last book update before each trade (as for the book columns) and its tolerance.
        tolerances, tolerance_before, last_before = book_tolerance
        last_book_ns = np.full(n, _NO_TS if last_before is None else last_before, dtype=np.int64)
        book_tolerance_ns = np.full(n, tolerance_before)
        if seen.any():
            last_book_ns[seen] = book.ts_ns[position[seen]]
            book_tolerance_ns[seen] = tolerances[position[seen]]
        book_cov, trade_cov = self.access_state().on_trades(ts, last_book_ns, book_tolerance_ns)
        access = np.minimum(book_cov, trade_cov)
        out[_COLUMN["book_coverage"]], out[_COLUMN["trade_coverage"]] = book_cov, trade_cov
        out[_COLUMN["feed_access"]] = access
        out[_COLUMN["fill_probability"]] = fill_probability(
            access, minutes, out[_COLUMN["bid_depth_near_mid_mw"]] + out[_COLUMN["ask_depth_near_mid_mw"]],
            out[_COLUMN["trades_per_min"]])
        return FeatureBatch(self.product, ts.copy(), ticks.trade_id.copy(), out, log_positions(ticks))


#: Events one packed message can hold, at most (its ``index`` column), for :func:`log_positions`.
_INDEX_SPAN = 1 << 22


def log_positions(batch: Any) -> I64:
    """Where each row sits in its partition's log: Kafka offset, then its place in a packed message."""
    return batch.offset * _INDEX_SPAN + (batch.index + 1)


def _split(batches: list[Any], watermark_ns: int, kind: Any) -> tuple[Any, Any]:
    """(rows before the watermark, the rest), in arrival order (each stream is in time order)."""
    if not batches:
        return kind.empty(), kind.empty()
    whole = batches[0] if len(batches) == 1 else kind.concat(batches)
    # Strictly before the watermark: more events with exactly the watermark's time may still come.
    cut = int(np.searchsorted(whole.ts_ns, watermark_ns, side="left"))
    if cut == len(whole):
        return whole, kind.empty()
    return whole.take(np.arange(cut)), whole.take(np.arange(cut, len(whole)))
