"""Per-product features: deterministic whatever the batching and the interleaving of the streams."""

from __future__ import annotations

import itertools
import pickle
import random
from datetime import date

import numpy as np
import pytest

from connectors.feeds.files import BOOK, TRADE, FeedFrame, json_lines
from connectors.wire.market import decode_batch
from operators.features import FeatureSettings, ProductEvents, ProductFeatures
from paper.simulator import simulate_day
from wattflow.batches import BookBatch, RawBatch, TickBatch
from wattflow.features import FEATURE_NAMES, FeatureBatch


@pytest.fixture(scope="module")
def one_product() -> tuple[str, TickBatch, BookBatch]:
    frame = simulate_day("DE-LU", date(2018, 10, 28), seed=11, scale=0.3, durations_min=(60,))
    key = frame.products()[12]
    rows = np.flatnonzero((frame.key_strings() == key) & np.isin(frame.event_type, [TRADE, BOOK]))
    mine: FeedFrame = frame.take(rows)
    values = json_lines(mine)
    batch = decode_batch(RawBatch("t", 0, values, np.arange(len(values), dtype=np.int64),
                                  np.zeros(len(values), dtype=np.int64)))
    return key, batch.ticks, batch.book


def _pieces(batch: TickBatch | BookBatch, rng: random.Random, count: int = 6) -> list:  # type: ignore[type-arg]
    cuts = sorted(rng.sample(range(1, len(batch)), k=min(count, len(batch) - 1)))
    bounds = [0, *cuts, len(batch)]
    return [batch.take(np.arange(a, b)) for a, b in itertools.pairwise(bounds)]


def _run(key: str, arrivals: list[ProductEvents], *, repickle: bool = False) -> FeatureBatch:
    state = ProductFeatures.new(key, FeatureSettings())
    outputs = []
    for events in arrivals:
        produced = state.on_events(events)
        if produced is not None:
            outputs.append(produced)
        if repickle:
            state = pickle.loads(pickle.dumps(state))
    final = state.on_end()
    if final is not None:
        outputs.append(final)
    return FeatureBatch(key, np.concatenate([o.ts_ns for o in outputs]),
                        np.concatenate([o.trade_id for o in outputs]), np.hstack([o.values for o in outputs]))


@pytest.mark.parametrize(("seed", "pieces"), [(1, 6), (2, 6), (3, 40), (4, 200)])
def test_features_do_not_depend_on_batching_or_interleaving(one_product: tuple[str, TickBatch, BookBatch],
                                                           seed: int, pieces: int) -> None:
    key, ticks, book = one_product
    whole = _run(key, [ProductEvents(key, day_ahead_eur_per_mwh=40.0), ProductEvents(key, book=book),
                       ProductEvents(key, ticks=ticks)])
    rng = random.Random(seed)
    tick_pieces, book_pieces = _pieces(ticks, rng, pieces), _pieces(book, rng, pieces)
    # A random interleaving of the two streams that keeps each stream's own order (as Kafka does per topic).
    kinds = ["t"] * len(tick_pieces) + ["b"] * len(book_pieces)
    rng.shuffle(kinds)
    tick_arrivals, book_arrivals = iter(tick_pieces), iter(book_pieces)
    ordered = [ProductEvents(key, ticks=next(tick_arrivals)) if kind == "t"
               else ProductEvents(key, book=next(book_arrivals)) for kind in kinds]
    # The anchor first (releases start at once, in many small steps) or at a random moment.
    ordered.insert(0 if pieces > 6 else rng.randrange(len(ordered)), ProductEvents(key, day_ahead_eur_per_mwh=40.0))
    split = _run(key, ordered, repickle=True)
    assert np.array_equal(whole.trade_id, ticks.trade_id)
    assert np.array_equal(split.trade_id, whole.trade_id)
    assert np.array_equal(split.values, whole.values, equal_nan=True)


def test_feature_values_are_sane(one_product: tuple[str, TickBatch, BookBatch]) -> None:
    key, ticks, book = one_product
    out = _run(key, [ProductEvents(key, day_ahead_eur_per_mwh=40.0), ProductEvents(key, book=book),
                     ProductEvents(key, ticks=ticks)])
    assert out.values.shape == (len(FEATURE_NAMES), len(ticks))
    assert np.array_equal(out.column("price_eur_per_mwh"), ticks.price_eur_per_mwh)
    assert np.allclose(out.column("spread_to_day_ahead_eur_per_mwh"), ticks.price_eur_per_mwh - 40.0)
    ttg = out.column("minutes_to_gate_closure")
    assert np.all(np.diff(ttg) <= 0) and ttg[-1] > -30  # falls towards (local) gate closure
    spread = out.column("spread_eur_per_mwh")
    assert np.nanmin(spread) >= 0
    imbalance = out.column("imbalance")
    assert np.all((imbalance[np.isfinite(imbalance)] >= -1) & (imbalance[np.isfinite(imbalance)] <= 1))
    # each trade happens at the touch of the book before it: buys lift the ask, sells hit the bid
    buys = ticks.side == 1
    best_ask = out.column("best_ask_eur_per_mwh")
    assert np.mean(np.isclose(ticks.price_eur_per_mwh[buys], best_ask[buys])) > 0.9


def test_nothing_is_released_before_the_day_ahead_anchor(one_product: tuple[str, TickBatch, BookBatch]) -> None:
    key, ticks, book = one_product
    state = ProductFeatures.new(key, FeatureSettings())
    assert state.on_events(ProductEvents(key, book=book)) is None
    assert state.on_events(ProductEvents(key, ticks=ticks)) is None
    released = state.on_events(ProductEvents(key, day_ahead_eur_per_mwh=-5.0))
    assert released is not None and len(released) > 0
    assert state.forced_releases == 0


def test_repeated_events_from_an_at_least_once_upstream_are_dropped(
        one_product: tuple[str, TickBatch, BookBatch]) -> None:
    key, ticks, book = one_product
    once = _run(key, [ProductEvents(key, day_ahead_eur_per_mwh=40.0), ProductEvents(key, book=book),
                      ProductEvents(key, ticks=ticks)])
    half_t, half_b = len(ticks) // 2, len(book) // 2
    arrivals = [
        ProductEvents(key, day_ahead_eur_per_mwh=40.0),
        ProductEvents(key, book=book.take(np.arange(half_b))), ProductEvents(key, ticks=ticks.take(np.arange(half_t))),
        # a resumed upstream sends a stretch again, then goes on
        ProductEvents(key, book=book), ProductEvents(key, ticks=ticks.take(np.arange(half_t // 2, len(ticks)))),
    ]
    twice = _run(key, arrivals)
    assert np.array_equal(twice.trade_id, once.trade_id)
    assert np.array_equal(twice.values, once.values, equal_nan=True)
