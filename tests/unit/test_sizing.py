"""Order sizing and pricing: never more than a share of the book, urgency towards gate closure, stable ids."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.sizing import SizingSettings, client_order_id, plan_order, urgency
from wattflow.domain import Side
from wattflow.features import FEATURE_NAMES, FeatureBatch
from wattflow.signals import SignalBatch

PRODUCT = "DE-LU:2018-10-28T12:00Z:PT60M"


def _features(**values: float) -> FeatureBatch:
    defaults = {"minutes_to_gate_closure": 300.0, "best_bid_eur_per_mwh": 40.0, "best_ask_eur_per_mwh": 42.0,
                "mid_eur_per_mwh": 41.0, "bid_depth_near_mid_mw": 20.0, "ask_depth_near_mid_mw": 20.0,
                "volume_mw": 100.0}
    defaults.update(values)
    out = np.full((len(FEATURE_NAMES), 1), np.nan)
    for name, value in defaults.items():
        out[FEATURE_NAMES.index(name), 0] = value
    return FeatureBatch(PRODUCT, np.array([1_540_720_000_000_000_000]), np.array([77]), out)


def _signal(target_mw: float, model: str = "mean_reversion") -> SignalBatch:
    direction = np.array([np.sign(target_mw)], dtype=np.int8)
    return SignalBatch(PRODUCT, model, np.array([1_540_720_000_000_000_000]), np.array([77]), direction,
                       np.array([1.0]), np.array([target_mw]), np.array([1.0]), np.array([300.0]))


def test_far_from_closure_a_buy_joins_the_bid_passively_as_gtc() -> None:
    plan = plan_order(_signal(3.0), _features(), position_mw=0.0)
    assert plan is not None
    assert (plan.side, plan.price_eur_per_mwh, plan.quantity_mw, plan.tif) == (Side.BUY, 40.0, 3.0, "GTC")
    assert plan.urgency == 0.0 and plan.estimated_slippage_eur_per_mwh == pytest.approx(-1.0)


def test_at_closure_a_sell_crosses_to_the_bid_as_ioc() -> None:
    plan = plan_order(_signal(-3.0), _features(minutes_to_gate_closure=1.0), position_mw=0.0)
    assert plan is not None
    assert plan.side is Side.SELL and plan.tif == "IOC"
    # ask - 0.99 x spread, 0.5 further to reach a book that may have moved, rounded up to the tick
    assert plan.price_eur_per_mwh == pytest.approx(39.52)
    assert plan.estimated_slippage_eur_per_mwh == pytest.approx(41.0 - 39.52)


def test_size_never_exceeds_the_share_of_depth_volume_or_clip() -> None:
    tight = SizingSettings(depth_share=0.25, volume_share=0.1, max_clip_mw=50.0)
    plan = plan_order(_signal(10.0), _features(ask_depth_near_mid_mw=6.3, volume_mw=500.0), 0.0, tight)
    assert plan is not None and plan.quantity_mw == 1.5  # 0.25 x 6.3 = 1.575, rounded down to 0.1 MW
    plan = plan_order(_signal(10.0), _features(ask_depth_near_mid_mw=100.0, volume_mw=12.0), 0.0, tight)
    assert plan is not None and plan.quantity_mw == 1.2
    assert plan_order(_signal(10.0), _features(ask_depth_near_mid_mw=0.2), 0.0, tight) is None


def test_no_order_at_or_after_gate_closure_nor_for_a_tiny_delta() -> None:
    assert plan_order(_signal(3.0), _features(minutes_to_gate_closure=0.0), 0.0) is None
    assert plan_order(_signal(3.0), _features(minutes_to_gate_closure=-4.0), 0.0) is None
    assert plan_order(_signal(3.0), _features(), position_mw=2.95) is None


def test_negative_prices_round_to_the_tick_on_the_safe_side() -> None:
    book = {"best_bid_eur_per_mwh": -25.0, "best_ask_eur_per_mwh": -20.0, "mid_eur_per_mwh": -22.5}
    buy = plan_order(_signal(2.0), _features(minutes_to_gate_closure=37.0, **book), 0.0)
    sell = plan_order(_signal(-2.0), _features(minutes_to_gate_closure=37.0, **book), 0.0)
    assert buy is not None and sell is not None
    u = urgency(37.0, 120.0)
    assert buy.price_eur_per_mwh == math.floor((-25.0 + u * 5.0) * 100) / 100
    assert sell.price_eur_per_mwh == math.ceil((-20.0 - u * 5.0) * 100) / 100
    assert buy.price_eur_per_mwh <= sell.price_eur_per_mwh + 5.0


def test_one_sided_or_empty_books() -> None:
    only_asks = plan_order(_signal(2.0), _features(best_bid_eur_per_mwh=math.nan, mid_eur_per_mwh=math.nan), 0.0)
    assert only_asks is not None and only_asks.price_eur_per_mwh == 42.0
    empty = _features(best_bid_eur_per_mwh=math.nan, best_ask_eur_per_mwh=math.nan, mid_eur_per_mwh=math.nan)
    assert plan_order(_signal(2.0), empty, 0.0) is None


def test_client_order_ids_are_deterministic_and_distinct() -> None:
    first = plan_order(_signal(3.0), _features(), 0.0)
    again = plan_order(_signal(3.0), _features(), 0.0)
    other_model = plan_order(_signal(3.0, model="imbalance_momentum"), _features(), 0.0)
    assert first is not None and again is not None and other_model is not None
    assert first.client_order_id == again.client_order_id == client_order_id(PRODUCT, "mean_reversion",
                                                                             1_540_720_000_000_000_000, 77)
    assert other_model.client_order_id != first.client_order_id


@settings(max_examples=300, deadline=None)
@given(target=st.floats(-50, 50), position=st.floats(-50, 50), depth=st.floats(0, 100), volume=st.floats(0, 500),
       minutes=st.floats(-10, 600), bid=st.floats(-500, 500), spread=st.floats(0.01, 30))
def test_plans_respect_every_limit(target: float, position: float, depth: float, volume: float, *, minutes: float,
                                   bid: float, spread: float) -> None:
    limits = SizingSettings()
    features = _features(minutes_to_gate_closure=minutes, best_bid_eur_per_mwh=bid,
                         best_ask_eur_per_mwh=bid + spread, mid_eur_per_mwh=bid + spread / 2,
                         bid_depth_near_mid_mw=depth, ask_depth_near_mid_mw=depth, volume_mw=volume)
    plan = plan_order(_signal(target), features, position, limits)
    if plan is None:
        return
    assert minutes > 0
    assert plan.quantity_mw <= min(abs(target - position), limits.max_clip_mw, limits.depth_share * depth,
                                   limits.volume_share * volume) + 1e-9
    assert round(plan.quantity_mw * 10, 6) == round(plan.quantity_mw * 10)
    reach = limits.ioc_cross_eur_per_mwh if plan.tif == "IOC" else 0.0
    assert bid - reach - 0.01 <= plan.price_eur_per_mwh <= bid + spread + reach + 0.01
    assert (plan.side is Side.BUY) == (target > position)


def test_a_resting_clip_larger_than_the_display_is_an_iceberg() -> None:
    from operators.sizing import SizingSettings, plan_from_market
    from wattflow.signals import MarketSnapshot

    market = MarketSnapshot(180.0, 49.0, 51.0, 50.0, 40.0, 40.0, 200.0)
    settings = SizingSettings(iceberg_display_mw=1.0)
    plan = plan_from_market(PRODUCT, "m", 1, 1, 4.0, market=market, position_mw=0.0, settings=settings)
    assert plan is not None and plan.tif == "GTC" and plan.quantity_mw == 4.0 and plan.display_quantity_mw == 1.0
    small = plan_from_market(PRODUCT, "m", 1, 1, 0.8, market=market, position_mw=0.0, settings=settings)
    assert small is not None and small.display_quantity_mw is None
    urgent = MarketSnapshot(5.0, 49.0, 51.0, 50.0, 40.0, 40.0, 200.0)
    ioc = plan_from_market(PRODUCT, "m", 1, 1, 4.0, market=urgent, position_mw=0.0, settings=settings)
    assert ioc is not None and ioc.tif == "IOC" and ioc.display_quantity_mw is None
