"""Positions and PnL (average cost, marked to market): hand-worked examples and properties against references."""

from __future__ import annotations

import math
import pickle
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.positions import Positions, delivery_hours
from wattflow.enums import TradingState
from wattflow.positions import TOTAL, PositionRow

HOURLY = "DE-LU:2018-10-28T10:00Z:PT60M"
HALF = "DE-LU:2018-10-28T10:30Z:PT30M"
QUARTER = "DE-LU:2018-10-28T10:15Z:PT15M"
FRENCH = "FR:2018-10-28T11:00Z:PT60M"
T0 = 1_540_720_800_000_000_000
BUY, SELL = 1, -1


def row_of(positions: Positions, product: str, ts_ns: int = T0) -> PositionRow:
    rows = positions.rows(ts_ns, products=[product])
    assert [r.product for r in rows] == [product, TOTAL]
    return rows[0]


def test_delivery_hours_follow_the_product_duration() -> None:
    assert delivery_hours(HOURLY) == 1.0
    assert delivery_hours(HALF) == 0.5
    assert delivery_hours(QUARTER) == 0.25


def test_buy_then_sell_at_a_profit_realises_it_and_goes_flat() -> None:
    p = Positions()
    p.on_fill(HOURLY, BUY, 2.0, 50.0, T0)
    p.on_fill(HOURLY, SELL, 2.0, 60.0, T0 + 1)
    row = row_of(p, HOURLY)
    assert row.position_mw == 0.0
    assert math.isnan(row.avg_price_eur_per_mwh)  # a flat position has no average
    assert row.realised_pnl_eur == pytest.approx(20.0)  # 2 MW x 1 h x (60 - 50)
    assert row.unrealised_pnl_eur == 0.0
    assert row.pnl_eur == pytest.approx(20.0)
    assert row.traded_mw == 4.0
    assert (row.imbalance_exposure_mw, row.gate_closed) == (0.0, False)


def test_adding_averages_the_price_and_a_mark_gives_unrealised_pnl() -> None:
    p = Positions()
    p.on_fill(HOURLY, BUY, 1.0, 40.0, T0)
    p.on_fill(HOURLY, BUY, 3.0, 60.0, T0 + 1)
    p.mark(HOURLY, 57.0, T0 + 2)
    row = row_of(p, HOURLY)
    assert row.position_mw == 4.0
    assert row.avg_price_eur_per_mwh == pytest.approx(55.0)  # (1 x 40 + 3 x 60) / 4
    assert row.mark_eur_per_mwh == 57.0
    assert row.unrealised_pnl_eur == pytest.approx(8.0)  # (57 - 55) x 4 MW x 1 h
    assert row.realised_pnl_eur == 0.0
    # a partial reduction realises against the average and leaves the average of the rest alone
    p.on_fill(HOURLY, SELL, 1.0, 58.0, T0 + 3)
    row = row_of(p, HOURLY)
    assert row.realised_pnl_eur == pytest.approx(3.0)  # 1 MW x (58 - 55)
    assert row.avg_price_eur_per_mwh == pytest.approx(55.0)
    assert row.unrealised_pnl_eur == pytest.approx(6.0)  # (57 - 55) x 3 MW


def test_a_fill_through_zero_realises_the_closed_part_and_opens_the_rest_at_its_price() -> None:
    p = Positions()
    p.on_fill(HOURLY, BUY, 2.0, 50.0, T0)
    p.on_fill(HOURLY, SELL, 5.0, 60.0, T0 + 1)
    p.mark(HOURLY, 55.0, T0 + 2)
    row = row_of(p, HOURLY)
    assert row.position_mw == -3.0
    assert row.avg_price_eur_per_mwh == 60.0
    assert row.realised_pnl_eur == pytest.approx(20.0)  # only the 2 MW closed: 2 x (60 - 50)
    assert row.unrealised_pnl_eur == pytest.approx(15.0)  # short 3 MW sold at 60, marked 55
    # the identity: pnl = cash + position x mark x hours = (-100 + 300) + (-3 x 55)
    assert row.pnl_eur == pytest.approx(35.0)
    assert p.position_mw(HOURLY) == -3.0


def test_negative_prices_keep_their_sign_everywhere() -> None:
    p = Positions()
    p.on_fill(HOURLY, BUY, 1.0, -20.0, T0)  # paid -20: received 20 EUR to take the power
    p.mark(HOURLY, -5.0, T0 + 1)
    assert row_of(p, HOURLY).unrealised_pnl_eur == pytest.approx(15.0)
    p.on_fill(HOURLY, SELL, 1.0, -30.0, T0 + 2)  # paid 30 EUR to get rid of it: a 10 EUR loss
    assert row_of(p, HOURLY).realised_pnl_eur == pytest.approx(-10.0)

    short = Positions()
    short.on_fill(HOURLY, SELL, 2.0, -10.0, T0)  # paid 20 EUR to sell
    short.on_fill(HOURLY, BUY, 2.0, -50.0, T0 + 1)  # received 100 EUR to buy back
    row = row_of(short, HOURLY)
    assert row.realised_pnl_eur == pytest.approx(80.0)
    assert row.position_mw == 0.0

    marked = Positions()
    marked.on_fill(HOURLY, SELL, 1.0, 5.0, T0)
    marked.mark(HOURLY, -40.0, T0 + 1)  # a short gains when the price falls below zero
    assert row_of(marked, HOURLY).unrealised_pnl_eur == pytest.approx(45.0)


def test_quarter_and_half_hours_scale_energy_and_money() -> None:
    p = Positions()
    p.on_fill(QUARTER, BUY, 4.0, 100.0, T0)
    p.on_fill(QUARTER, SELL, 4.0, 120.0, T0 + 1)
    assert row_of(p, QUARTER).realised_pnl_eur == pytest.approx(20.0)  # 4 MW x 0.25 h x 20
    p.on_fill(HALF, SELL, 2.0, 80.0, T0 + 2)
    p.mark(HALF, 70.0, T0 + 3)
    half = row_of(p, HALF)
    assert half.unrealised_pnl_eur == pytest.approx(10.0)  # 2 MW x 0.5 h x 10
    assert half.traded_mw == 2.0  # MW, not MWh
    total = p.rows(T0)[-1]
    assert total.pnl_eur == pytest.approx(30.0)


def test_tenths_of_a_megawatt_add_up_without_drift() -> None:
    p = Positions()
    for k in range(10):
        p.on_fill(HOURLY, BUY, 0.1, 50.0 + k, T0 + k)
    assert p.position_mw(HOURLY) == 1.0
    p.on_fill(HOURLY, SELL, 0.3, 60.0, T0 + 20)
    p.on_fill(HOURLY, SELL, 0.7, 60.0, T0 + 21)
    row = row_of(p, HOURLY)
    assert row.position_mw == 0.0 and math.copysign(1.0, row.position_mw) == 1.0  # no -0.0
    assert math.isnan(row.avg_price_eur_per_mwh)
    assert row.traded_mw == 2.0
    assert row.realised_pnl_eur == pytest.approx(1.0 * (60.0 - 54.5))


def test_the_mark_is_the_latest_finite_mid_and_the_last_fill_price_before_any() -> None:
    p = Positions()
    p.on_fill(HOURLY, BUY, 1.0, 50.0, T0)
    row = row_of(p, HOURLY)
    assert row.mark_eur_per_mwh == 50.0 and row.unrealised_pnl_eur == 0.0  # unmarked: no made-up PnL
    p.mark(HOURLY, 52.0, T0 + 1)
    p.mark(HOURLY, math.nan, T0 + 2)  # a one-sided book: ignored
    p.mark(HOURLY, math.inf, T0 + 3)
    row = row_of(p, HOURLY)
    assert row.mark_eur_per_mwh == 52.0 and row.unrealised_pnl_eur == pytest.approx(2.0)
    p.on_fill(HOURLY, BUY, 1.0, 58.0, T0 + 4)  # a fill does not override a mid
    assert row_of(p, HOURLY).mark_eur_per_mwh == 52.0


def test_gate_closure_flags_what_is_still_open_as_imbalance_exposure() -> None:
    p = Positions()
    p.on_fill(HOURLY, BUY, 3.0, 50.0, T0)
    p.on_fill(HOURLY, SELL, 1.0, 51.0, T0 + 1)
    p.on_fill(QUARTER, SELL, 1.0, 45.0, T0 + 2)
    p.on_fill(FRENCH, BUY, 1.0, 30.0, T0 + 3)
    p.on_fill(FRENCH, SELL, 1.0, 31.0, T0 + 4)

    closed = p.on_gate_closure(HOURLY, T0 + 10)
    assert closed is not None
    assert (closed.product, closed.ts_ns, closed.position_mw) == (HOURLY, T0 + 10, 2.0)
    assert closed.imbalance_exposure_mw == 2.0 and closed.gate_closed
    short = p.on_gate_closure(QUARTER, T0 + 11, TradingState.REDUCING)
    assert short is not None
    assert short.imbalance_exposure_mw == -1.0 and short.trading_state == "REDUCING"
    assert p.on_gate_closure("DE-LU:2018-10-28T20:00Z:PT60M", T0 + 12) is None  # never traded
    p.mark("NL:2018-10-28T20:00Z:PT60M", 40.0, T0)
    assert p.on_gate_closure("NL:2018-10-28T20:00Z:PT60M", T0 + 12) is None  # marked, never traded

    rows = {r.product: r for r in p.rows(T0 + 20)}
    assert list(rows) == [HOURLY, QUARTER, FRENCH, TOTAL]
    assert rows[FRENCH].imbalance_exposure_mw == 0.0 and not rows[FRENCH].gate_closed
    total = rows[TOTAL]
    assert total.imbalance_exposure_mw == 3.0  # |2| + |-1|: periods settle on their own, they do not net
    assert total.position_mw == 1.0  # the signed sum of MW
    assert not total.gate_closed  # FR is still open
    flat = p.on_gate_closure(FRENCH, T0 + 21)
    assert flat is not None and flat.imbalance_exposure_mw == 0.0 and flat.gate_closed
    assert p.rows(T0 + 22)[-1].gate_closed

    p.on_fill(HOURLY, SELL, 0.5, 52.0, T0 + 30)  # a late report of a trade made before closure
    assert row_of(p, HOURLY).imbalance_exposure_mw == 1.5


def test_rows_for_some_products_still_carry_the_account_total() -> None:
    p = Positions()
    p.on_fill(HOURLY, BUY, 1.0, 50.0, T0)
    p.on_fill(QUARTER, BUY, 2.0, 40.0, T0)
    p.mark(HOURLY, 55.0, T0)
    p.mark(QUARTER, 44.0, T0)
    rows = p.rows(T0 + 5, TradingState.HALTED, products=[QUARTER, "FR:2018-10-28T11:00Z:PT60M", QUARTER])
    assert [r.product for r in rows] == [QUARTER, TOTAL]
    assert all(r.ts_ns == T0 + 5 and r.trading_state == "HALTED" for r in rows)
    total = rows[-1]
    assert total.unrealised_pnl_eur == pytest.approx(5.0 + 2.0)  # 1 x 1 h x 5 + 2 x 0.25 h x 4
    assert total.traded_mw == 3.0 and total.position_mw == 3.0
    assert math.isnan(total.avg_price_eur_per_mwh) and math.isnan(total.mark_eur_per_mwh)
    empty = Positions().rows(T0)
    assert len(empty) == 1 and empty[0].product == TOTAL and empty[0].pnl_eur == 0.0 and not empty[0].gate_closed


def test_bad_fills_are_refused_with_the_numbers() -> None:
    p = Positions()
    with pytest.raises(ValueError, match="side=0"):
        p.on_fill(HOURLY, 0, 1.0, 50.0, T0)
    with pytest.raises(ValueError, match=r"quantity_mw=-1\.0"):
        p.on_fill(HOURLY, BUY, -1.0, 50.0, T0)
    with pytest.raises(ValueError, match="price_eur_per_mwh=nan"):
        p.on_fill(HOURLY, BUY, 1.0, math.nan, T0)
    with pytest.raises(ValueError, match="bad product key"):
        p.on_fill("DE-LU:tomorrow", BUY, 1.0, 50.0, T0)
    assert p.rows(T0) == [Positions().total(T0)]


def test_state_pickles_and_carries_on_where_it_was() -> None:
    p = Positions()
    p.on_fill(HOURLY, BUY, 2.0, 50.0, T0)
    p.mark(HOURLY, 51.0, T0 + 1)
    p.on_gate_closure(HOURLY, T0 + 2)
    copy = pickle.loads(pickle.dumps(p))
    assert copy.rows(T0 + 3) == p.rows(T0 + 3)
    copy.on_fill(HOURLY, SELL, 2.0, 53.0, T0 + 4)
    assert copy.rows(T0 + 5)[0].realised_pnl_eur == pytest.approx(6.0)
    assert p.position_mw(HOURLY) == 2.0 and copy.last_ts_ns == T0 + 4


# --- properties ---------------------------------------------------------------------------------------------

PRODUCTS = (HOURLY, HALF, QUARTER)
fills = st.lists(
    st.tuples(st.sampled_from(PRODUCTS), st.sampled_from((BUY, SELL)), st.integers(1, 200),  # tenths of a MW
              st.integers(-50_000, 50_000)),  # cents of EUR/MWh
    min_size=1, max_size=60,
)
marks = st.fixed_dictionaries({product: st.integers(-50_000, 50_000) for product in PRODUCTS})


class ProRataReference:
    """Average cost done differently: open lots in exact arithmetic, a reduction closes every lot pro rata."""

    def __init__(self, hours: Fraction) -> None:
        self.hours = hours
        self.lots: list[tuple[Fraction, Fraction]] = []  # (signed MW, price)
        self.realised = Fraction(0)

    def position(self) -> Fraction:
        return sum((q for q, _ in self.lots), Fraction(0))

    def fill(self, signed_mw: Fraction, price: Fraction) -> None:
        position = self.position()
        if position == 0 or (position > 0) == (signed_mw > 0):
            self.lots.append((signed_mw, price))
            return
        share = min(abs(signed_mw) / abs(position), Fraction(1))
        self.realised += sum((q * share * (price - p) for q, p in self.lots), Fraction(0)) * self.hours
        self.lots = [(q * (1 - share), p) for q, p in self.lots if share < 1]
        rest = signed_mw + position * share
        if rest:
            self.lots = [(rest, price)]

    def unrealised(self, mark: Fraction) -> Fraction:
        return sum((q * (mark - p) for q, p in self.lots), Fraction(0)) * self.hours


@settings(max_examples=300, deadline=None)
@given(fills=fills, marks=marks)
def test_pnl_matches_an_exact_pro_rata_reference_and_the_cash_identity(
        fills: list[tuple[str, int, int, int]], marks: dict[str, int]) -> None:
    p = Positions()
    references = {product: ProRataReference(Fraction(delivery_hours(product)).limit_denominator())
                  for product in PRODUCTS}
    cash = dict.fromkeys(PRODUCTS, Fraction(0))
    for k, (product, side, tenths, cents) in enumerate(fills):
        quantity, price = Fraction(tenths, 10), Fraction(cents, 100)
        p.on_fill(product, side, float(quantity), float(price), T0 + k)
        references[product].fill(side * quantity, price)
        cash[product] -= side * quantity * price * references[product].hours
    for product, cents in marks.items():
        p.mark(product, cents / 100, T0 + 100)

    rows = {r.product: r for r in p.rows(T0 + 101)}
    for product in {f[0] for f in fills}:
        row, reference = rows[product], references[product]
        mark = Fraction(marks[product], 100)
        assert row.position_mw == float(reference.position())
        assert row.realised_pnl_eur == pytest.approx(float(reference.realised), abs=1e-6)
        assert row.unrealised_pnl_eur == pytest.approx(float(reference.unrealised(mark)), abs=1e-6)
        assert row.pnl_eur == pytest.approx(float(cash[product] + reference.position() * mark * reference.hours),
                                            abs=1e-6)
    total = rows[TOTAL]
    assert total.pnl_eur == pytest.approx(sum(rows[k].pnl_eur for k in rows if k != TOTAL), abs=1e-6)
    assert total.traded_mw == pytest.approx(sum(f[2] for f in fills) / 10, abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(fills=fills, close_cents=st.integers(-50_000, 50_000), marks=marks)
def test_once_flat_the_pnl_is_the_cash_the_trades_moved_whatever_the_marks(
        fills: list[tuple[str, int, int, int]], close_cents: int, marks: dict[str, int]) -> None:
    p = Positions()
    cash = Fraction(0)
    for k, (product, side, tenths, cents) in enumerate(fills):
        p.on_fill(product, side, tenths / 10, cents / 100, T0 + k)
        cash -= side * Fraction(tenths, 10) * Fraction(cents, 100) * Fraction(delivery_hours(product))
    for product in PRODUCTS:
        position = p.position_mw(product)
        if position:
            p.on_fill(product, -1 if position > 0 else 1, abs(position), close_cents / 100, T0 + 1000)
            cash -= Fraction(position) * -1 * Fraction(close_cents, 100) * Fraction(delivery_hours(product))
        p.mark(product, marks[product] / 100, T0 + 1001)
    rows = p.rows(T0 + 1002)
    assert all(r.position_mw == 0.0 and r.unrealised_pnl_eur == 0.0 for r in rows)
    assert rows[-1].pnl_eur == pytest.approx(float(cash), abs=1e-6)
    assert rows[-1].realised_pnl_eur == rows[-1].pnl_eur


def test_rows_for_questdb_have_the_positions_table_columns_and_types() -> None:
    import re

    from connectors.questdb.position_rows import position_rows
    from connectors.questdb.tables import TABLES

    p = Positions()
    p.on_fill(QUARTER, SELL, 1.5, -3.25, T0)
    p.on_gate_closure(QUARTER, T0 + 1)
    rows = position_rows(p.rows(T0 + 2, TradingState.REDUCING))
    columns = re.findall(r"(\w+) (?:TIMESTAMP_NS|SYMBOL|DOUBLE|BOOLEAN)", TABLES["positions"])
    assert rows.table == "positions" and list(rows.frame.columns) == columns
    assert set(rows.symbols) == {"product", "area", "trading_state"}
    frame = rows.frame
    assert frame["area"].tolist() == ["DE-LU", "ALL"] and frame["product"].tolist() == [QUARTER, TOTAL]
    assert frame["ts"].tolist()[0].value == T0 + 2
    assert frame["gate_closed"].dtype == bool and frame["gate_closed"].tolist() == [True, True]
    assert frame["imbalance_exposure_mw"].tolist() == [-1.5, 1.5]
    assert frame["trading_state"].tolist() == ["REDUCING", "REDUCING"]
