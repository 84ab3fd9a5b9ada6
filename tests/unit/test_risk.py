"""Pre-trade risk (reliability test R6): one test per check, each asserting the reason code and its numbers."""

from __future__ import annotations

import itertools
import math
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.risk import DenialReason, OpenOrder, OrderIntent, PreTradeRisk, RiskDecision, RiskLimits, RiskState
from wattflow.domain import NS_PER_MINUTE, NS_PER_SECOND, Side
from wattflow.enums import TradingState

HOURLY = "DE-LU:2018-10-28T10:00Z:PT60M"
QUARTER = "DE-LU:2018-10-28T10:15Z:PT15M"
OTHER = "DE-LU:2018-10-28T11:00Z:PT60M"
T0 = 1_540_713_600 * NS_PER_SECOND

_ids = itertools.count()


def intent(price: float = 50.0, quantity: float = 1.0, side: Side = Side.BUY, product: str = HOURLY,
           ts_ns: int = T0, *, reduce_only: bool = False, client_order_id: str | None = None) -> OrderIntent:
    return OrderIntent(client_order_id or f"cid-{next(_ids)}", product, side, price, quantity, ts_ns,
                       reduce_only=reduce_only)


def wide(**overrides: float) -> RiskLimits:
    """Limits that let everything through except the one under test."""
    values: dict[str, float] = {
        "collar_eur_per_mwh": 20_000.0, "max_order_volume_mw": 9999.9, "max_order_value_eur": 1e12,
        "max_product_position_mw": 1e6, "max_total_position_mw": 1e7, "max_orders_per_interval": 1_000_000,
    }
    values.update(overrides)
    return RiskLimits(**values)  # type: ignore[arg-type]


def denied(decision: RiskDecision, reason: str, *fragments: str) -> None:
    assert not decision.approved, decision
    assert decision.reason == reason, decision
    for fragment in fragments:
        assert fragment in decision.detail, (fragment, decision.detail)
    assert str(decision) == f"{reason}: {decision.detail}"


# -- one test per check ---------------------------------------------------------------------------------------


def test_trading_halted_denies() -> None:
    risk = PreTradeRisk(wide())
    risk.set_state(TradingState.HALTED)
    denied(risk.check(intent(), 50.0), "TRADING_HALTED", "state=HALTED")


def test_duplicate_client_order_id_is_denied_while_open() -> None:
    risk = PreTradeRisk(wide())
    assert risk.check(intent(client_order_id="a"), 50.0).approved
    denied(risk.check(intent(client_order_id="a"), 50.0), "DUPLICATE_CLIENT_ORDER_ID", "client_order_id=a")
    risk.on_order_closed("a")
    assert risk.check(intent(client_order_id="a"), 50.0).approved


@pytest.mark.parametrize("key", ["DE-LU:2018-10-28T10:00Z:PT45M", "XX:2018-10-28T10:00Z:PT60M", "nonsense"])
def test_unknown_product_is_denied(key: str) -> None:
    denied(PreTradeRisk(wide()).check(intent(product=key), 50.0), "UNKNOWN_PRODUCT", f"product={key!r}")


@pytest.mark.parametrize(("price", "shown"), [(-10_000.0, "-10000.00"), (9999.01, "9999.01"),
                                              (math.nan, "nan"), (math.inf, "inf")])
def test_price_outside_market_limits(price: float, shown: str) -> None:
    decision = PreTradeRisk(wide()).check(intent(price=price), 0.0)
    denied(decision, "PRICE_OUTSIDE_MARKET_LIMITS", f"price={shown} limits=[-9999.00, 9999.00]")


def test_market_limits_edges_are_allowed() -> None:
    risk = PreTradeRisk(wide())
    assert risk.check(intent(price=-9999.0), 0.0).approved
    assert risk.check(intent(price=9999.0), 0.0).approved


def test_price_not_on_tick() -> None:
    denied(PreTradeRisk(wide()).check(intent(price=-12.345), 0.0), "PRICE_NOT_ON_TICK", "price=-12.345 tick=0.01")
    assert PreTradeRisk(wide()).check(intent(price=-12.34), 0.0).approved


@pytest.mark.parametrize(("quantity", "shown"), [(0.0, "0.0"), (-1.0, "-1.0"), (math.nan, "nan"), (math.inf, "inf")])
def test_invalid_quantity(quantity: float, shown: str) -> None:
    denied(PreTradeRisk(wide()).check(intent(quantity=quantity), 50.0), "INVALID_QUANTITY", f"quantity={shown}")


def test_quantity_not_on_step() -> None:
    denied(PreTradeRisk(wide()).check(intent(quantity=1.25), 50.0), "QUANTITY_NOT_ON_STEP",
           "quantity=1.25 step=0.1")
    assert PreTradeRisk(wide()).check(intent(quantity=0.3), 50.0).approved  # 0.3 / 0.1 = 2.9999999999999996


@pytest.mark.parametrize("reference", [None, math.nan, math.inf])
def test_no_reference_price_fails_closed(reference: float | None) -> None:
    denied(PreTradeRisk(wide()).check(intent(), reference), "NO_REFERENCE_PRICE", f"reference={reference!r}")


def test_price_outside_collar_reads_like_the_style_guide() -> None:
    risk = PreTradeRisk(wide(collar_eur_per_mwh=2250.0))
    denied(risk.check(intent(price=-612.0), 1750.0), "PRICE_OUTSIDE_COLLAR",
           "price=-612.00 collar=[-500.00, 4000.00] reference=1750.00 band=2250.00")


@pytest.mark.parametrize(("price", "approved"), [
    (-160.0, False), (60.0, False), (-150.01, False), (50.01, False),
    (-149.99, True), (49.99, True), (-150.0, True), (50.0, True), (0.0, True), (-50.0, True),
])
def test_collar_around_a_negative_reference(price: float, approved: bool) -> None:
    decision = PreTradeRisk(wide(collar_eur_per_mwh=100.0)).check(intent(price=price), -50.0)
    if approved:
        assert decision.approved, decision
    else:
        denied(decision, "PRICE_OUTSIDE_COLLAR", f"price={price:.2f} collar=[-150.00, 50.00]",
               "reference=-50.00 band=100.00")


@pytest.mark.parametrize(("price", "approved"), [
    (-10.01, False), (50.01, False), (-25.0, False), (80.0, False),
    (-10.0, True), (-0.01, True), (0.0, True), (20.0, True), (50.0, True),
])
def test_collar_crossing_zero(price: float, approved: bool) -> None:
    decision = PreTradeRisk(wide(collar_eur_per_mwh=30.0)).check(intent(price=price), 20.0)
    if approved:
        assert decision.approved, decision
    else:
        denied(decision, "PRICE_OUTSIDE_COLLAR", f"price={price:.2f} collar=[-10.00, 50.00]",
               "reference=20.00 band=30.00")


def test_max_order_volume() -> None:
    risk = PreTradeRisk(wide(max_order_volume_mw=25.0))
    denied(risk.check(intent(quantity=25.1), 50.0), "MAX_ORDER_VOLUME", "quantity=25.1 limit=25.0")
    assert risk.check(intent(quantity=25.0), 50.0).approved


def test_max_order_value_uses_absolute_price_and_delivery_hours() -> None:
    risk = PreTradeRisk(wide(max_order_value_eur=10_000.0))
    # 800 EUR/MWh x 40 MW x 0.25 h = 8000 EUR: a quarter hour fits ...
    assert risk.check(intent(price=-800.0, quantity=40.0, product=QUARTER), -800.0).approved
    # ... the same order on an hourly product is 32000 EUR; a negative price counts by its size.
    denied(risk.check(intent(price=-800.0, quantity=40.0, product=HOURLY), -800.0), "MAX_ORDER_VALUE",
           "value=32000.00 limit=10000.00", "|price|=800.00 x quantity=40.0 x hours=1.00")


def test_reduce_only_in_reducing_state() -> None:
    risk = PreTradeRisk(wide())
    risk.on_fill(HOURLY, Side.BUY, 5.0)
    risk.set_state(TradingState.REDUCING)
    denied(risk.check(intent(side=Side.BUY, quantity=1.0), 50.0), "REDUCE_ONLY",
           "side=BUY quantity=1.0 position=5.0 reducible=0.0 state=REDUCING")
    denied(risk.check(intent(side=Side.SELL, quantity=6.0), 50.0), "REDUCE_ONLY",
           "side=SELL quantity=6.0 position=5.0 reducible=5.0")
    denied(risk.check(intent(side=Side.SELL, quantity=1.0, product=OTHER), 50.0), "REDUCE_ONLY",
           "position=0.0 reducible=0.0")
    assert risk.check(intent(side=Side.SELL, quantity=3.0), 50.0).approved
    # The resting 3 MW sell counts: only 2 MW are left to reduce.
    denied(risk.check(intent(side=Side.SELL, quantity=2.1), 50.0), "REDUCE_ONLY", "position=5.0 reducible=2.0")
    assert risk.check(intent(side=Side.SELL, quantity=2.0), 50.0).approved


def test_reduce_only_flag_in_active_state_and_short_position() -> None:
    risk = PreTradeRisk(wide())
    risk.on_fill(HOURLY, Side.SELL, 4.0)
    denied(risk.check(intent(side=Side.SELL, quantity=1.0, reduce_only=True), 50.0), "REDUCE_ONLY",
           "side=SELL quantity=1.0 position=-4.0 reducible=0.0 state=ACTIVE reduce_only=True")
    assert risk.check(intent(side=Side.BUY, quantity=4.0, reduce_only=True), 50.0).approved


def test_max_product_position_counts_position_and_open_orders() -> None:
    risk = PreTradeRisk(wide(max_product_position_mw=10.0))
    risk.on_fill(HOURLY, Side.BUY, 6.0)
    assert risk.check(intent(side=Side.BUY, quantity=3.0), 50.0).approved  # open: worst case 9 MW long
    denied(risk.check(intent(side=Side.BUY, quantity=1.1), 50.0), "MAX_PRODUCT_POSITION",
           "exposure=10.1 limit=10.0 position=6.0 open_buy=3.0 open_sell=0.0 side=BUY quantity=1.1")
    assert risk.check(intent(side=Side.BUY, quantity=1.0), 50.0).approved
    # Selling 16 MW would leave 10 MW short in the worst case: allowed; 16.1 MW is not.
    denied(risk.check(intent(side=Side.SELL, quantity=16.1), 50.0), "MAX_PRODUCT_POSITION",
           "exposure=10.1 limit=10.0 position=6.0 open_buy=4.0 open_sell=0.0 side=SELL quantity=16.1")
    assert risk.check(intent(side=Side.SELL, quantity=16.0), 50.0).approved


def test_an_order_that_lowers_exposure_passes_even_above_the_limit() -> None:
    risk = PreTradeRisk(wide(max_product_position_mw=100.0))
    risk.on_fill(HOURLY, Side.BUY, 50.0)
    risk.limits = wide(max_product_position_mw=10.0)  # limits tightened below the position
    denied(risk.check(intent(side=Side.BUY, quantity=0.1), 50.0), "MAX_PRODUCT_POSITION", "exposure=50.1")
    assert risk.check(intent(side=Side.SELL, quantity=20.0), 50.0).approved


def test_max_total_position_sums_absolute_exposures() -> None:
    risk = PreTradeRisk(wide(max_product_position_mw=50.0, max_total_position_mw=60.0))
    risk.on_fill(HOURLY, Side.BUY, 40.0)
    risk.on_fill(QUARTER, Side.SELL, 15.0)  # a short counts by its size: total 55 MW
    denied(risk.check(intent(side=Side.SELL, quantity=5.1, product=OTHER), 50.0), "MAX_TOTAL_POSITION",
           "exposure=60.1 limit=60.0 before=55.0 side=SELL quantity=5.1")
    assert risk.check(intent(side=Side.BUY, quantity=5.0, product=OTHER), 50.0).approved
    assert risk.total_exposure_mw() == pytest.approx(60.0)
    # Reducing the short quarter hour lowers the total, so it passes at the limit.
    assert risk.check(intent(side=Side.BUY, quantity=10.0, product=QUARTER), 50.0).approved


def test_order_rate_throttle_denies_and_recovers_after_the_window() -> None:
    risk = PreTradeRisk(wide(max_orders_per_interval=3, order_interval_ns=NS_PER_SECOND))
    for step in range(3):
        assert risk.check(intent(ts_ns=T0 + step * 100_000_000), 50.0).approved
    denied(risk.check(intent(ts_ns=T0 + 999_999_999), 50.0), "ORDER_RATE_EXCEEDED",
           "orders=3 per 1.000s limit=3 per 1.000s")
    # One second after the first order, it has left the window (window is (ts - 1 s, ts]).
    assert risk.check(intent(ts_ns=T0 + NS_PER_SECOND), 50.0).approved
    denied(risk.check(intent(ts_ns=T0 + NS_PER_SECOND + 1), 50.0), "ORDER_RATE_EXCEEDED", "orders=3")
    # Long after: a full budget again.
    later = T0 + 10 * NS_PER_MINUTE
    for step in range(3):
        assert risk.check(intent(ts_ns=later + step), 50.0).approved


def test_denied_orders_do_not_consume_the_rate_budget() -> None:
    risk = PreTradeRisk(wide(max_orders_per_interval=2, collar_eur_per_mwh=10.0))
    for _ in range(20):
        denied(risk.check(intent(price=500.0), 50.0), "PRICE_OUTSIDE_COLLAR")
        denied(risk.check(intent(quantity=0.05), 50.0), "QUANTITY_NOT_ON_STEP")
    assert risk.check(intent(), 50.0).approved
    assert risk.check(intent(), 50.0).approved
    denied(risk.check(intent(), 50.0), "ORDER_RATE_EXCEEDED", "orders=2 per 1.000s limit=2 per 1.000s")
    for _ in range(5):  # a throttled order does not take from the budget either
        denied(risk.check(intent(), 50.0), "ORDER_RATE_EXCEEDED", "orders=2 per")


# -- the kill switch, fills, pickling -------------------------------------------------------------------------


def test_kill_switch_halted_reducing_active() -> None:
    risk = PreTradeRisk(wide())
    risk.on_fill(HOURLY, Side.BUY, 5.0)
    assert risk.set_state(TradingState.HALTED) is TradingState.ACTIVE
    for side, quantity in ((Side.SELL, 1.0), (Side.BUY, 1.0), (Side.SELL, 5.0)):
        denied(risk.check(intent(side=side, quantity=quantity), 50.0), "TRADING_HALTED", "state=HALTED")
    risk.set_state(TradingState.REDUCING)
    denied(risk.check(intent(side=Side.BUY, quantity=1.0), 50.0), "REDUCE_ONLY")  # increasing
    denied(risk.check(intent(side=Side.SELL, quantity=7.0), 50.0), "REDUCE_ONLY")  # flipping to 2 MW short
    assert risk.check(intent(side=Side.SELL, quantity=2.0), 50.0).approved  # reducing
    assert risk.trading_state is TradingState.REDUCING
    risk.set_state(TradingState.ACTIVE)
    assert risk.check(intent(side=Side.BUY, quantity=1.0), 50.0).approved
    assert len(risk.open_order_ids()) == 2  # what a cancel-all would cancel


def test_fills_update_positions_and_release_open_orders() -> None:
    risk = PreTradeRisk(wide(max_product_position_mw=10.0))
    first = intent(side=Side.BUY, quantity=8.0)
    assert risk.check(first, 50.0).approved
    assert risk.exposure_mw(HOURLY) == pytest.approx(8.0)
    risk.on_fill(HOURLY, Side.BUY, 0.3, first.client_order_id)
    risk.on_fill(HOURLY, Side.BUY, 4.7, first.client_order_id)
    assert risk.position_mw(HOURLY) == 5.0  # no float drift: positions are rounded
    assert risk.exposure_mw(HOURLY) == pytest.approx(8.0)
    denied(risk.check(intent(side=Side.BUY, quantity=2.1), 50.0), "MAX_PRODUCT_POSITION",
           "exposure=10.1 limit=10.0 position=5.0 open_buy=3.0")
    assert risk.on_order_closed(first.client_order_id) == pytest.approx(3.0)
    assert risk.on_order_closed(first.client_order_id) == 0.0
    assert risk.open_order_ids() == []
    assert risk.check(intent(side=Side.BUY, quantity=5.0), 50.0).approved
    risk.on_fill(OTHER, Side.SELL, 2.0)  # a fill with no known order still moves the position
    assert risk.position_mw(OTHER) == -2.0
    with pytest.raises(ValueError, match="fill quantity"):
        risk.on_fill(HOURLY, Side.BUY, -1.0)


def test_pickle_round_trip_keeps_behaviour() -> None:
    risk = PreTradeRisk(wide(max_product_position_mw=10.0, max_orders_per_interval=2))
    risk.on_fill(HOURLY, Side.BUY, 6.0)
    assert risk.check(intent(side=Side.BUY, quantity=3.0, client_order_id="open"), 50.0).approved
    risk.set_state(TradingState.REDUCING)

    for restored in (pickle.loads(pickle.dumps(risk)),
                     PreTradeRisk(risk.limits, pickle.loads(pickle.dumps(risk.snapshot())))):
        assert isinstance(restored.snapshot(), RiskState)
        assert restored.trading_state is TradingState.REDUCING
        assert restored.position_mw(HOURLY) == 6.0
        assert restored.open_order_ids() == ["open"]
        denied(restored.check(intent(side=Side.BUY, quantity=1.0), 50.0), "REDUCE_ONLY")
        assert restored.check(intent(side=Side.SELL, quantity=1.0), 50.0).approved
        denied(restored.check(intent(side=Side.SELL, quantity=1.0), 50.0), "ORDER_RATE_EXCEEDED", "orders=2")
    assert risk.position_mw(HOURLY) == 6.0 and len(risk.open_order_ids()) == 1  # the original is untouched


def test_limits_are_validated_and_reasons_are_strings() -> None:
    with pytest.raises(ValueError, match="collar_eur_per_mwh"):
        RiskLimits(collar_eur_per_mwh=0.0)
    with pytest.raises(ValueError, match="max_order_volume_mw"):
        RiskLimits(max_order_volume_mw=10_000.0)
    with pytest.raises(ValueError, match="market limits"):
        RiskLimits(market_min_eur_per_mwh=10.0, market_max_eur_per_mwh=-10.0)
    assert DenialReason.PRICE_OUTSIDE_COLLAR == "PRICE_OUTSIDE_COLLAR"
    assert str(PreTradeRisk().check(intent(), 50.0)) == "APPROVED"
    assert {reason.value for reason in DenialReason} >= {
        "TRADING_HALTED", "REDUCE_ONLY", "PRICE_OUTSIDE_COLLAR", "PRICE_OUTSIDE_MARKET_LIMITS", "PRICE_NOT_ON_TICK",
        "QUANTITY_NOT_ON_STEP", "MAX_ORDER_VOLUME", "MAX_ORDER_VALUE", "MAX_PRODUCT_POSITION", "MAX_TOTAL_POSITION",
        "ORDER_RATE_EXCEEDED"}


# -- property: no approved order can break a position limit, whatever fills ----------------------------------

_PRODUCTS = (HOURLY, QUARTER, OTHER)
_PRODUCT_LIMIT_MW = 12.0
_TOTAL_LIMIT_MW = 20.0

_order = st.tuples(st.just("order"), st.sampled_from(_PRODUCTS), st.sampled_from([Side.BUY, Side.SELL]),
                   st.integers(1, 150), st.sampled_from([False, False, False, True]))
_fill = st.tuples(st.just("fill"), st.integers(0, 50), st.integers(1, 150))
_actions = st.lists(st.one_of(
    _order, _order, _order, _fill, _fill,
    st.tuples(st.just("close"), st.integers(0, 50)),
    st.tuples(st.just("state"), st.sampled_from([TradingState.ACTIVE, TradingState.ACTIVE, TradingState.REDUCING,
                                                 TradingState.HALTED])),
), min_size=1, max_size=80)


@settings(max_examples=300, deadline=None)
@given(_actions)
def test_no_approved_order_lets_a_position_exceed_the_limits(actions: list[tuple[Any, ...]]) -> None:
    risk = PreTradeRisk(wide(max_product_position_mw=_PRODUCT_LIMIT_MW, max_total_position_mw=_TOTAL_LIMIT_MW))
    approved: list[OrderIntent] = []
    remaining: dict[str, float] = {}
    for step, action in enumerate(actions):
        if action[0] == "order":
            _, product, side, tenths, reduce_only = action
            order = intent(side=side, quantity=tenths / 10, product=product, ts_ns=T0 + step,
                           reduce_only=reduce_only)
            if risk.check(order, 50.0).approved:
                approved.append(order)
                remaining[order.client_order_id] = order.quantity_mw
        elif action[0] == "fill" and approved:
            order = approved[action[1] % len(approved)]
            quantity = min(action[2] / 10, remaining[order.client_order_id])
            if quantity > 0:
                risk.on_fill(order.product, order.side, quantity, order.client_order_id)
                remaining[order.client_order_id] = round(remaining[order.client_order_id] - quantity, 6)
        elif action[0] == "close" and approved:
            order = approved[action[1] % len(approved)]
            risk.on_order_closed(order.client_order_id)
            remaining[order.client_order_id] = 0.0
        elif action[0] == "state":
            risk.set_state(action[1])

        positions = {product: risk.position_mw(product) for product in _PRODUCTS}
        assert all(abs(position) <= _PRODUCT_LIMIT_MW + 1e-9 for position in positions.values()), positions
        assert sum(abs(position) for position in positions.values()) <= _TOTAL_LIMIT_MW + 1e-9, positions
        # And if every open order filled now (worked out here, not by the engine), the limits would still hold.
        worst = {}
        for product, position in positions.items():
            mine = [order for order in approved if order.product == product]
            buys = sum(remaining[order.client_order_id] for order in mine if order.side is Side.BUY)
            sells = sum(remaining[order.client_order_id] for order in mine if order.side is Side.SELL)
            worst[product] = max(abs(position + buys), abs(position - sells))
            assert risk.exposure_mw(product) == pytest.approx(worst[product], abs=1e-6)
        assert all(exposure <= _PRODUCT_LIMIT_MW + 1e-6 for exposure in worst.values()), worst
        assert sum(worst.values()) <= _TOTAL_LIMIT_MW + 1e-6, worst


# -- headroom: what the engine plans within is exactly what the checks approve ------------------------------------

_POSITION_REASONS = {"REDUCE_ONLY", "MAX_PRODUCT_POSITION", "MAX_TOTAL_POSITION"}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([HOURLY, QUARTER, OTHER]), st.sampled_from([Side.BUY, Side.SELL]),
                          st.integers(1, 80), st.booleans()), max_size=12),
       st.tuples(st.sampled_from([HOURLY, QUARTER, OTHER]), st.sampled_from([Side.BUY, Side.SELL]), st.booleans()),
       st.integers(5, 60), st.integers(10, 120))
def test_headroom_is_the_largest_quantity_the_position_checks_approve(
        book: list[tuple[str, Side, int, bool]], order: tuple[str, Side, bool], product_limit_steps: int,
        total_limit_steps: int) -> None:
    product, side, reduce_only = order
    # A book of fills and open orders, some of them beyond the limits (limits lowered after they were taken).
    risk = PreTradeRisk(wide(max_product_position_mw=product_limit_steps / 10,
                             max_total_position_mw=total_limit_steps / 10))
    for key, order_side, steps, filled in book:
        if filled:
            risk.on_fill(key, order_side, steps / 10)
        else:
            risk.state.open_orders[f"open-{len(risk.state.open_orders)}"] = OpenOrder(key, order_side, steps / 10)
            risk._add_open(key, order_side, steps / 10)
    headroom = risk.headroom_mw(product, side, reduce_only=reduce_only)
    steps = math.floor(headroom * 10 + 1e-6)
    if steps > 0:  # the whole headroom passes ...
        snapshot = pickle.loads(pickle.dumps(risk.state))
        assert PreTradeRisk(risk.limits, snapshot).check(
            intent(quantity=steps / 10, side=side, product=product, reduce_only=reduce_only), 50.0).approved
    # ... and one step more is denied by a position check
    decision = risk.check(intent(quantity=(steps + 1) / 10, side=side, product=product, reduce_only=reduce_only),
                          50.0)
    assert not decision.approved and decision.reason in _POSITION_REASONS, (headroom, decision)


def test_orders_left_counts_the_rate_window_as_the_check_does() -> None:
    risk = PreTradeRisk(wide(max_orders_per_interval=3))
    assert risk.orders_left(T0) == 3
    for k in range(3):
        assert risk.check(intent(ts_ns=T0 + k), 50.0).approved
        assert risk.orders_left(T0 + k) == 2 - k
    denied(risk.check(intent(ts_ns=T0 + 3), 50.0), "ORDER_RATE_EXCEEDED")
    assert risk.orders_left(T0 + NS_PER_SECOND) == 1  # the first left the window (ts - 1 s, ts]
    # An older event time counts the later entries too, as the check does: conservative, never more budget.
    assert risk.orders_left(T0 - NS_PER_SECOND // 2) == 0
    assert risk.check(intent(ts_ns=T0 + NS_PER_SECOND), 50.0).approved
    assert risk.orders_left(T0 + NS_PER_SECOND) == 0
