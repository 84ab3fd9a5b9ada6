"""Day-ahead anchors kept by delivery period: a product gets the same features whether its anchor arrived
before or after its first trade, and no state is made for a product that never trades."""

from __future__ import annotations

import pickle
from datetime import date

import numpy as np

from connectors.feeds.files import FeedFrame, day_ahead_feed, json_lines
from connectors.feeds.smard import day_ahead_day
from connectors.wire.market import decode_batch
from operators.anchors import DayAheadAnchors, covered_periods
from operators.features import FeatureSettings
from operators.models import ModelSettings, load_models
from operators.signals import _PartitionLogic
from paper.simulator import simulate_day
from wattflow.batches import IngestBatch, RawBatch
from wattflow.domain import NS_PER_MINUTE, Product


def _decoded(frame: FeedFrame) -> IngestBatch:
    values = json_lines(frame)
    return decode_batch(RawBatch("raw", 0, values, np.arange(len(values), dtype=np.int64),
                                 np.zeros(len(values), dtype=np.int64)))


def _features(batches: list[IngestBatch]) -> tuple[dict[tuple[str, int], bytes], int]:
    logic = _PartitionLogic(None, FeatureSettings(in_log_order=True),
                            load_models(["mean_reversion"], ModelSettings()), (15, 60))
    out: dict[tuple[str, int], bytes] = {}
    for batch in batches:
        steps, _ = logic.on_item(batch)
        for step in steps:
            for features in step.features:
                for i, trade_id in enumerate(features.trade_id.tolist()):
                    key = (features.product, trade_id)
                    assert key not in out, f"{key} released twice"
                    out[key] = features.values[:, i].tobytes()
        logic = _PartitionLogic(pickle.loads(pickle.dumps(logic.snapshot())), logic.settings, logic.models,
                                (15, 60))
    return out, len(logic.state.products)


def test_the_anchor_before_or_after_the_first_trade_gives_the_same_features_and_untraded_products_get_no_state(
        ) -> None:
    day = date(2018, 10, 28)
    market = simulate_day("DE-LU", day, seed=3, scale=0.05, durations_min=(15, 60)).sort_by_time()
    prices = FeedFrame.concat([day_ahead_feed(day_ahead_day(None, "DE-LU", day)),
                               day_ahead_feed(day_ahead_day(None, "FR", day))])  # FR: nobody trades it
    first, mid = _decoded(prices), len(market) // 3
    early, _ = _features([first, _decoded(market)])
    late, states = _features([_decoded(market.take(np.arange(mid))), first,
                              _decoded(market.take(np.arange(mid, len(market))))])
    assert len(early) > 100
    missing, extra = sorted(set(early) - set(late)), sorted(set(late) - set(early))
    changed = sorted(k for k in set(early) & set(late) if early[k] != late[k])
    assert (missing[:3], extra[:3], changed[:3]) == ([], [], [])
    assert states == len(market.products())  # one per traded product; none for FR's prices


def test_the_latest_covering_price_wins_and_periods_align_in_utc() -> None:
    anchors = DayAheadAnchors()
    hour = Product.parse("DE-LU:2018-10-28T12:00Z:PT60M").delivery_start_ns
    anchors.add("DE-LU", hour, 60, 40.0)
    quarter = Product("DE-LU", hour + 30 * NS_PER_MINUTE, 15)
    assert anchors.price_of(quarter) == 40.0
    anchors.add("DE-LU", hour + 30 * NS_PER_MINUTE, 15, 55.0)  # a finer, later price of that quarter
    assert anchors.price_of(quarter) == 55.0
    assert anchors.price_of(Product("DE-LU", hour, 60)) == 40.0
    assert anchors.price_of(Product("FR", hour, 60)) is None
    assert covered_periods(hour, 60, (15, 30, 60)) == [
        (hour, 15), (hour + 15 * NS_PER_MINUTE, 15), (hour + 30 * NS_PER_MINUTE, 15), (hour + 45 * NS_PER_MINUTE, 15),
        (hour, 30), (hour + 30 * NS_PER_MINUTE, 30), (hour, 60)]
