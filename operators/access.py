"""Market access, measured from the data stream itself: how much of a product's usual book and trade flow we saw.

Per product, at each trade ``i`` at market time ``t_i`` (event time, UTC ns; never the wall clock), two coverages
in [0, 1] (dimensionless) and their minimum:

* **book coverage**: ``s_b`` = ``t_i`` minus the time of the last book update before the trade in the log (ns),
  ``tau_b = max(k * r_b, tau_b_min)`` with ``r_b`` the book's rhythm (``operators.kernels.rhythm``: a robust EWMA
  of the gaps between its updates, ns) after that update; ``book_coverage = 1`` if ``s_b <= tau_b``, else
  ``tau_b / s_b``. A book silent for ``n`` tolerances shows ``1/n`` of the flow we expected to see. Before the
  book has a rhythm (fewer than two updates) there is nothing to miss: 1.
* **trade coverage**: ``g_t`` = the gap since the product's previous trade (ns), ``tau_t = max(k * r_t, tau_t_min)``
  with ``r_t`` the trade rhythm before this trade; ``trade_coverage = min(1, tau_t / g_t)``. The first trade
  after a silent trade stream shows it; the next one on rhythm recovers.
* **feed_access** = ``min(book_coverage, trade_coverage)``: what the models and the engine use.

A book gap (``s_b > tau_b``) is an exceptional event: ``FEED_GAP`` when a trade first sees it open (start = the
last update before the silence), ``FEED_GAP_ENDED`` when the next book update ends it (start, end, duration, the
rhythm and tolerance it broke). A trade-stream gap is only seen when it ends: ``FEED_GAP_ENDED`` with
``stream: "trades"``. Deterministic: outputs depend on the product's events in log order only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from operators.kernels.rhythm import RhythmState, stream_rhythm
from wattflow.domain import NS_PER_SECOND
from wattflow.events import Event

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
_NO_GAP = -1


@dataclass(frozen=True, slots=True)
class AccessSettings:
    """``rhythm_weight`` a (per event), ``tolerance_factor`` k, the tolerance floors (ns; see the module docstring)."""

    rhythm_weight: float = 0.05
    tolerance_factor: float = 6.0
    min_book_tolerance_ns: int = 120 * NS_PER_SECOND
    min_trade_tolerance_ns: int = 900 * NS_PER_SECOND


def tolerance_ns(rhythm_ns: F64, factor: float, floor_ns: float) -> F64:
    """``max(k * r, floor)`` (ns); NaN where the rhythm is not known yet."""
    rhythm = np.asarray(rhythm_ns, dtype=np.float64)
    return np.where(np.isnan(rhythm), np.nan, np.fmax(factor * rhythm, floor_ns))


def coverage(silence_ns: F64, tolerance: F64) -> F64:
    """``1`` if ``silence <= tolerance`` (or the tolerance is unknown, NaN), else ``tolerance / silence``; in [0, 1]."""
    silence = np.asarray(silence_ns, dtype=np.float64)
    tol = np.asarray(tolerance, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(silence > tol, tol / silence, 1.0)
    return np.clip(np.where(np.isnan(tol) | np.isnan(silence), 1.0, ratio), 0.0, 1.0)


@dataclass
class AccessState:
    """One product's access measure (picklable): the two rhythms, the open book gap, events not yet taken."""

    product: str
    settings: AccessSettings = field(default_factory=AccessSettings)
    book: RhythmState = field(default_factory=RhythmState)
    trades: RhythmState = field(default_factory=RhythmState)
    book_tolerance_ns: float = np.nan  # after the last book update
    open_gap_start_ns: int = _NO_GAP
    events: list[Event] = field(default_factory=list)
    ended: list[tuple[int, int, float]] = field(default_factory=list)  # book gaps ended in this release
    opened: list[int] = field(default_factory=list)  # book gaps seen open in this release (their starts)

    def take_events(self) -> list[Event]:
        events, self.events = self.events, []
        return events

    def on_book(self, ts_ns: I64) -> tuple[F64, float, int | None]:
        """Fold book updates in; returns (tolerance after each update, ns), and the tolerance and last update time
        before them (for trades that see none of these updates). Ends the open gap when an update comes after one."""
        before_tolerance, before_last = self.book_tolerance_ns, self.book.last
        if not len(ts_ns):
            return np.empty(0), before_tolerance, before_last
        s = self.settings
        rhythm = stream_rhythm(self.book, ts_ns, weight=s.rhythm_weight, cap_factor=s.tolerance_factor)
        tolerance = tolerance_ns(rhythm, s.tolerance_factor, s.min_book_tolerance_ns)
        previous = np.concatenate([[before_last if before_last is not None else ts_ns[0]], ts_ns[:-1]])
        tolerance_before = np.concatenate([[before_tolerance], tolerance[:-1]])
        gaps = ts_ns - previous
        for i in np.flatnonzero(gaps > tolerance_before).tolist():
            # Recorded when the release is finished (:meth:`finish`): trades earlier in the log than this update
            # may still be taken in this release, and may be the ones that saw the gap open.
            self.ended.append((int(previous[i]), int(ts_ns[i]), float(tolerance_before[i])))
        self.book_tolerance_ns = float(tolerance[-1])
        return tolerance, before_tolerance, before_last

    def on_trades(self, ts_ns: I64, last_book_ns: I64, book_tolerance: F64) -> tuple[F64, F64]:
        """(book coverage, trade coverage) at each trade, given the time of the last book update before it in the
        log (int64 min: none) and the book tolerance after that update (NaN: no rhythm yet)."""
        s = self.settings
        before_last, before_rhythm = self.trades.last, self.trades.rhythm
        rhythm = stream_rhythm(self.trades, ts_ns, weight=s.rhythm_weight, cap_factor=s.tolerance_factor)
        rhythm_before = np.concatenate([[before_rhythm], rhythm[:-1]])
        previous = np.concatenate([[before_last if before_last is not None else ts_ns[0]], ts_ns[:-1]])
        trade_gap = (ts_ns - previous).astype(np.float64)
        trade_tolerance = tolerance_ns(rhythm_before, s.tolerance_factor, s.min_trade_tolerance_ns)
        trade_cov = coverage(trade_gap, trade_tolerance)
        for i in np.flatnonzero(trade_cov < 1.0).tolist():
            start, end = int(previous[i]), int(ts_ns[i])
            self.events.append(Event(end, "FEED_GAP_ENDED", self.product, "INFO", {
                "stream": "trades", "start_ns": start, "end_ns": end, "silent_s": (end - start) / NS_PER_SECOND,
                "rhythm_s": float(rhythm_before[i]) / NS_PER_SECOND,
                "tolerance_s": float(trade_tolerance[i]) / NS_PER_SECOND, "seen_open": False}))
        seen = last_book_ns != np.iinfo(np.int64).min
        silence = np.where(seen, ts_ns - last_book_ns, 0).astype(np.float64)
        book_cov = coverage(silence, np.where(seen, book_tolerance, np.nan))
        for i in np.flatnonzero(book_cov < 1.0).tolist():
            start = int(last_book_ns[i])
            if start != self.open_gap_start_ns:
                self.open_gap_start_ns = start
                self.opened.append(start)
                self.events.append(Event(int(ts_ns[i]), "FEED_GAP", self.product, "WARNING", {
                    "stream": "book", "start_ns": start, "silent_s": silence[i] / NS_PER_SECOND,
                    "tolerance_s": float(book_tolerance[i]) / NS_PER_SECOND,
                    "book_coverage": float(book_cov[i])}))
        return book_cov, trade_cov

    def finish(self) -> None:
        """End of one release (its book updates and trades taken): record the book gaps it ended, then put this
        release's events in market-time order."""
        s = self.settings
        for start, end, tolerance in self.ended:
            self.events.append(Event(end, "FEED_GAP_ENDED", self.product, "INFO", {
                "stream": "book", "start_ns": start, "end_ns": end, "silent_s": (end - start) / NS_PER_SECOND,
                "rhythm_s": tolerance / s.tolerance_factor / NS_PER_SECOND, "tolerance_s": tolerance / NS_PER_SECOND,
                "seen_open": start == self.open_gap_start_ns or start in self.opened}))
            if start == self.open_gap_start_ns:
                self.open_gap_start_ns = _NO_GAP
        self.ended, self.opened = [], []
        self.events.sort(key=lambda event: event.ts_ns)
