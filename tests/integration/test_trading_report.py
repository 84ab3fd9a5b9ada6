"""The trading day's summary and plots against the real QuestDB: a small hand-computed day, written with the
execution sink's own row builders, read back by ``reports.trading``.

The day (every product on a delivery day of its own test, so that the shared tables hold nothing else of it):

====  =======  ====  ====  =======  ==========  ============  =================================================
id    product  side  MW    limit    arrival mid  final status  fills (MW @ EUR/MWh)
====  =======  ====  ====  =======  ==========  ============  =================================================
o1    HOURLY   buy   3.0   50.00    49.50       ACKED         2.0 @ 49.70, 1.0 @ 50.00  (cost +0.20, +0.50)
o2    HOURLY   sell  2.0   56.00    55.50       ACKED         1.0 @ 56.00               (cost -0.50)
o3    QUARTER  sell  4.0   -20.00   -19.00      ACKED         4.0 @ -20.00              (cost +1.00)
o4    QUARTER  buy   1.0   -30.00   -19.50      REJECTED      -
o5    HOURLY   buy   2.0   51.00    50.50       UNKNOWN       -   (stays unknown)
o6    QUARTER  buy   1.0   -25.00   -24.50      UNKNOWN ->    1.0 @ -25.00              (cost -0.50)
                                                RESENT
o7    HOURLY   buy   1.0   51.50    51.00       UNKNOWN,      -   (the venue acked it: reconciled)
                                                then an ack
====  =======  ====  ====  =======  ==========  ============  =================================================

Realised slippage = (2 x 0.2 + 0.5 - 0.5 + 4 x 1.0 - 0.5) / 9 MW = 3.9 / 9; the estimates over the same fills
(0.5, 0.5, -0.5, 1.0, -0.5 EUR/MWh) give 4.5 / 9 = 0.5.
HOURLY: avg (2 x 49.7 + 50) / 3 = 49.8; sold 1 @ 56 realises 6.2; 2 MW marked at 55: +10.4; PnL 16.6.
QUARTER (0.25 h): short 4 @ -20, bought 1 @ -25 realises 1 x 5 x 0.25 = 1.25; -3 MW marked at -24: +3.0; PnL
4.25; its gate closes with -3 MW open (imbalance exposure).
"""

from __future__ import annotations

import io
import math
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from connectors.questdb.execution_rows import event_rows, order_rows, report_rows
from connectors.questdb.position_rows import position_rows
from connectors.questdb.sink import RetryingWriter, TableRows
from operators.positions import Positions
from reports.trading import print_trading_summary, trading_summary
from reports.trading_plots import trading_plots
from tests.helpers import wal_applied
from wattflow.domain import NS_PER_SECOND, Product, gate_closure_ns
from wattflow.events import Event
from wattflow.orders import OrderRecord
from wattflow.settings import Settings

pytestmark = pytest.mark.stack

S = NS_PER_SECOND
M = 60 * S


class Day:
    """The product keys and clock of one test's trading day."""

    def __init__(self, unique: str) -> None:
        # a delivery day no other test uses: tables are shared by the whole session
        self.day = date(2040, 1, 1) + timedelta(days=int(unique, 16) % 20_000)
        self.hourly = f"NL:{self.day}T10:00Z:PT60M"
        self.quarter = f"NL:{self.day}T10:15Z:PT15M"
        self.other = f"NL:{self.day}T12:00Z:PT60M"  # traded too, never asked for
        self.t0 = Product.parse(self.hourly).delivery_start_ns - 2 * 60 * M  # 08:00 UTC

    @property
    def products(self) -> list[str]:
        return [self.hourly, self.quarter]


def submit(day: Day, minute: int, cid: str, product: str, *, side: int, quantity_mw: float, price: float,
           mid: float, status: str) -> OrderRecord:
    estimated = price - mid if side > 0 else mid - price
    return OrderRecord(day.t0 + minute * M, product, cid, "SUBMIT", status, "net", side, price, quantity_mw, "GTC",
                       0.3, mid, estimated, day.t0 + minute * M - S, attempts=1, latency_ns=2_000_000)


def report(day: Day, minute: float, cid: str, product: str, *, exec_id: int, kind: str, side: int,
           price: float | None = None, quantity_mw: float = 0.0) -> dict[str, object]:
    return {"ts_ns": day.t0 + int(minute * M), "product": product, "client_order_id": cid, "exec_id": exec_id,
            "kind": kind, "status": "PARTIALLY_FILLED" if kind == "fill" else "NEW", "side": side,
            "price_eur_per_mwh": price, "last_price_eur_per_mwh": price, "last_quantity_mw": quantity_mw,
            "liquidity": "TAKER" if kind == "fill" else None, "reason": "PRICE_OUT_OF_RANGE" if kind == "reject"
            else None}


def write_day(settings: Settings, day: Day) -> None:
    h, q, other, t0 = day.hourly, day.quarter, day.other, day.t0
    wall = 1_780_000_000 * S  # the sink stamps RESUBMIT rows and the client's events with wall time
    orders = [
        submit(day, 0, f"o1-{day.day}", h, side=1, quantity_mw=3.0, price=50.0, mid=49.5, status="ACKED"),
        submit(day, 10, f"o2-{day.day}", h, side=-1, quantity_mw=2.0, price=56.0, mid=55.5, status="ACKED"),
        OrderRecord(t0 + 20 * M, h, f"o2-{day.day}", "CANCEL", "CANCELLED", reason="STALE"),
        submit(day, 5, f"o3-{day.day}", q, side=-1, quantity_mw=4.0, price=-20.0, mid=-19.0, status="ACKED"),
        submit(day, 7, f"o4-{day.day}", q, side=1, quantity_mw=1.0, price=-30.0, mid=-19.5, status="REJECTED"),
        submit(day, 15, f"o5-{day.day}", h, side=1, quantity_mw=2.0, price=51.0, mid=50.5, status="UNKNOWN"),
        submit(day, 25, f"o6-{day.day}", q, side=1, quantity_mw=1.0, price=-25.0, mid=-24.5, status="UNKNOWN"),
        OrderRecord(0, q, f"o6-{day.day}", "RESUBMIT", "RESENT", attempts=1, answered_wall_ns=wall),
        submit(day, 30, f"o7-{day.day}", h, side=1, quantity_mw=1.0, price=51.5, mid=51.0, status="UNKNOWN"),
        submit(day, 50, f"o8-{day.day}", other, side=1, quantity_mw=5.0, price=40.0, mid=39.0, status="ACKED"),
    ]
    reports = [
        report(day, 0.1, f"o1-{day.day}", h, exec_id=1, kind="ack", side=1),
        report(day, 2, f"o1-{day.day}", h, exec_id=2, kind="fill", side=1, price=49.7, quantity_mw=2.0),
        report(day, 3, f"o1-{day.day}", h, exec_id=3, kind="fill", side=1, price=50.0, quantity_mw=1.0),
        report(day, 10.1, f"o2-{day.day}", h, exec_id=4, kind="ack", side=-1),
        report(day, 11, f"o2-{day.day}", h, exec_id=5, kind="fill", side=-1, price=56.0, quantity_mw=1.0),
        report(day, 20.1, f"o2-{day.day}", h, exec_id=6, kind="cancel", side=-1),
        report(day, 5.1, f"o3-{day.day}", q, exec_id=7, kind="ack", side=-1),
        report(day, 6, f"o3-{day.day}", q, exec_id=8, kind="fill", side=-1, price=-20.0, quantity_mw=4.0),
        report(day, 7.1, f"o4-{day.day}", q, exec_id=9, kind="reject", side=1),
        report(day, 26, f"o6-{day.day}", q, exec_id=10, kind="fill", side=1, price=-25.0, quantity_mw=1.0),
        report(day, 30.1, f"o7-{day.day}", h, exec_id=11, kind="ack", side=1),
        report(day, 51, f"o8-{day.day}", other, exec_id=12, kind="fill", side=1, price=40.0, quantity_mw=5.0),
    ]
    p = Positions()
    rows = []
    p.on_fill(h, 1, 2.0, 49.7, t0 + 2 * M)
    p.on_fill(h, 1, 1.0, 50.0, t0 + 3 * M)
    rows += p.rows(t0 + 3 * M, products=[h])
    p.on_fill(q, -1, 4.0, -20.0, t0 + 6 * M)
    rows += p.rows(t0 + 6 * M, products=[q])
    p.on_fill(h, -1, 1.0, 56.0, t0 + 11 * M)
    p.mark(h, 55.0, t0 + 11 * M)
    rows += p.rows(t0 + 11 * M, products=[h])
    p.on_fill(q, 1, 1.0, -25.0, t0 + 26 * M)
    p.mark(q, -24.0, t0 + 26 * M)
    rows += p.rows(t0 + 26 * M, products=[q])
    p.on_fill(other, 1, 5.0, 40.0, t0 + 51 * M)
    rows += p.rows(t0 + 51 * M, products=[other])  # its TOTAL row counts it: the summary must not
    closure = gate_closure_ns(q)
    closed = p.on_gate_closure(q, closure)
    assert closed is not None
    rows += [closed, p.total(closure)]
    events = [
        Event(t0 + 7 * M, "ORDER_REJECTED", q, "WARNING", {"client_order_id": f"o4-{day.day}"}),
        Event(t0 + 8 * M, "RISK_DENIED", q, "WARNING", {"reason": "PRICE_OUTSIDE_COLLAR"}),
        Event(t0 + 12 * M, "RISK_DENIED", h, "WARNING", {"reason": "MAX_PRODUCT_POSITION"}),
        Event(t0 + 13 * M, "RISK_DENIED", h, "WARNING", {"reason": "MAX_PRODUCT_POSITION"}),
        Event(t0 + 40 * M, "TRADING_STATE_CHANGED", "", "WARNING", {"from": "ACTIVE", "to": "REDUCING"}),
        Event(closure, "IMBALANCE_EXPOSURE", q, "WARNING", {"position_mw": -3.0}),
        Event(wall + 5 * S, "ORDER_UNKNOWN", "", "WARNING", {"client_order_id": f"o5-{day.day}"}),
        # not this day's: another product's denial, an account-wide event a day earlier, another order's event
        Event(t0 + 52 * M, "RISK_DENIED", other, "WARNING", {"reason": "MAX_PRODUCT_POSITION"}),
        Event(t0 - 24 * 60 * M, "BREAKER_OPEN", "", "WARNING", {"from": "CLOSED", "to": "OPEN"}),
        Event(wall + 6 * S, "ORDER_RECONCILED", "", "WARNING", {"client_order_id": f"o8-{day.day}"}),
    ]
    writer = RetryingWriter(settings.questdb)
    try:
        written = writer.write([order_rows(orders), report_rows(reports), position_rows(rows),
                                event_rows(events, "execution"), *market_rows(day)])
    finally:
        writer.close()
    assert written == len(orders) + len(reports) + len(rows) + len(events) + 8 + 6 + 24
    wal_applied(settings)


def market_rows(day: Day) -> list[TableRows]:
    """8 trades and 6 signals of the hourly product, and the area's 24 day-ahead prices (10:00 UTC at 52.0)."""
    ts = day.t0 + np.arange(8, dtype=np.int64) * 5 * M
    ticks = pd.DataFrame({
        "ts": ts.view("datetime64[ns]"), "product": pd.Categorical([day.hourly] * 8),
        "area": pd.Categorical(["NL"] * 8),
        "price_eur_per_mwh": [49.0, 49.6, 50.2, 51.0, 55.2, 56.1, 55.0, 54.8], "quantity_mw": [1.0] * 8,
        "side": pd.Categorical(["BUY", "SELL"] * 4), "trade_id": np.arange(8, dtype=np.int64),
        "source": pd.Categorical(["test"] * 8), "seq": np.arange(8, dtype=np.int64),
        "recv_ts": ts.view("datetime64[ns]"),
    })
    signal_ts = ts[:6]
    signals = pd.DataFrame({
        "ts": signal_ts.view("datetime64[ns]"), "product": pd.Categorical([day.hourly] * 6),
        "area": pd.Categorical(["NL"] * 6), "model": pd.Categorical(["mean_reversion", "momentum"] * 3),
        "trade_id": np.arange(6, dtype=np.int64), "direction": np.array([1, 1, 1, 0, -1, -1], dtype=np.int32),
        "strength": [0.5] * 6, "target_position_mw": [3.0, 2.0, 3.0, 0.0, 2.0, 1.0], "confidence": [0.8] * 6,
        "horizon_s": [600.0] * 6,
    })
    midnight = Product.parse(day.hourly).delivery_start_ns - 10 * 60 * M
    hours = midnight + np.arange(24, dtype=np.int64) * 60 * M
    dayahead = pd.DataFrame({
        "ts": hours.view("datetime64[ns]"), "area": pd.Categorical(["NL"] * 24),
        "duration_min": np.full(24, 60, dtype=np.int32), "price_eur_per_mwh": 42.0 + np.arange(24, dtype=float),
        "source": pd.Categorical(["test"] * 24), "published_ts": np.full(24, midnight - 600 * M).view("datetime64[ns]"),
    })
    return [TableRows("ticks", ticks, ("product", "area", "side", "source")),
            TableRows("signals", signals, ("product", "area", "model")),
            TableRows("dayahead", dayahead, ("area", "source"))]


@pytest.fixture
def day(settings: Settings, unique: str) -> Day:
    written = Day(unique)
    write_day(settings, written)
    return written


def test_every_figure_of_a_hand_computed_day(settings: Settings, day: Day) -> None:
    summary = trading_summary(settings, products=day.products)
    assert (summary.orders, summary.acked, summary.rejected, summary.unknown) == (7, 5, 1, 1)
    assert (summary.fills, summary.filled_mw, summary.ordered_mw) == (5, 9.0, 14.0)
    assert summary.fill_ratio == pytest.approx(9 / 14)
    assert summary.mean_slippage_eur_per_mwh == pytest.approx(3.9 / 9)
    assert summary.mean_estimated_slippage_eur_per_mwh == pytest.approx(0.5)
    assert summary.realised_pnl_eur == pytest.approx(6.2 + 1.25)
    assert summary.unrealised_pnl_eur == pytest.approx(10.4 + 3.0)
    assert summary.pnl_eur == pytest.approx(16.6 + 4.25)
    assert summary.imbalance_exposure_mw == pytest.approx(3.0)
    assert summary.denials_by_reason == {"MAX_PRODUCT_POSITION": 2, "PRICE_OUTSIDE_COLLAR": 1}
    assert summary.events_by_kind == {"IMBALANCE_EXPOSURE": 1, "ORDER_REJECTED": 1, "ORDER_UNKNOWN": 1,
                                      "RISK_DENIED": 3, "TRADING_STATE_CHANGED": 1}

    quarter, hourly = summary.products  # busiest (filled MW) first
    assert quarter == pytest.approx({
        "product": day.quarter, "orders": 3, "acked": 2, "rejected": 1, "unknown": 0, "fills": 2,
        "ordered_mw": 6.0, "filled_mw": 5.0, "fill_ratio": 5 / 6, "mean_slippage_eur_per_mwh": 3.5 / 5,
        "mean_estimated_slippage_eur_per_mwh": 3.5 / 5, "denials": 1, "position_mw": -3.0,
        "realised_pnl_eur": 1.25, "unrealised_pnl_eur": 3.0, "pnl_eur": 4.25, "imbalance_exposure_mw": -3.0,
        "gate_closed": True})
    assert hourly == pytest.approx({
        "product": day.hourly, "orders": 4, "acked": 3, "rejected": 0, "unknown": 1, "fills": 3,
        "ordered_mw": 8.0, "filled_mw": 4.0, "fill_ratio": 0.5, "mean_slippage_eur_per_mwh": 0.4 / 4,
        "mean_estimated_slippage_eur_per_mwh": 1.0 / 4, "denials": 2, "position_mw": 2.0,
        "realised_pnl_eur": 6.2, "unrealised_pnl_eur": 10.4, "pnl_eur": 16.6, "imbalance_exposure_mw": 0.0,
        "gate_closed": False})


def test_products_restrict_every_figure(settings: Settings, day: Day) -> None:
    other = trading_summary(settings, products=[day.other])
    assert (other.orders, other.acked, other.fills, other.filled_mw, other.fill_ratio) == (1, 1, 1, 5.0, 1.0)
    assert other.mean_slippage_eur_per_mwh == pytest.approx(1.0)  # bought at 40 against a mid of 39
    assert other.pnl_eur == 0.0 and other.imbalance_exposure_mw == 0.0  # marked at its own fill price
    assert other.denials_by_reason == {"MAX_PRODUCT_POSITION": 1}
    # account-wide: its order's reconciliation (by order id); not o5's, nor the state change at 08:40 (before
    # its first record at 08:50)
    assert other.events_by_kind == {"ORDER_RECONCILED": 1, "RISK_DENIED": 1}
    assert [row["product"] for row in other.products] == [day.other]

    everything = trading_summary(settings)  # every product of every test in the shared tables
    assert everything.orders >= 8 and everything.filled_mw >= 14.0
    assert {day.hourly, day.quarter, day.other} <= {row["product"] for row in everything.products}
    assert "TOTAL" not in {row["product"] for row in everything.products}


def test_plots_are_written_for_the_busiest_products(settings: Settings, day: Day, tmp_path: Path) -> None:
    paths = trading_plots(settings, tmp_path / "reports", products=[*day.products, day.other], top=2)
    assert [path.name for path in paths] == [
        # 5 MW filled each: the one with more orders first
        "trading_overview.png", f"trading_NL_{day.day}T10_15Z_PT15M.png", f"trading_NL_{day.day}T12_00Z_PT60M.png"]
    for path in paths:
        assert path.parent == tmp_path / "reports"
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 20_000, f"{path.name} is {len(data)} bytes: an empty figure?"
    everything = trading_plots(settings, tmp_path / "all", products=day.products)
    assert [path.name for path in everything] == [
        "trading_overview.png", f"trading_NL_{day.day}T10_15Z_PT15M.png", f"trading_NL_{day.day}T10_00Z_PT60M.png"]


def test_a_day_without_orders_says_so(settings: Settings, unique: str, tmp_path: Path) -> None:
    nothing = Day(unique)
    summary = trading_summary(settings, products=nothing.products)
    assert (summary.orders, summary.acked, summary.rejected, summary.unknown, summary.fills) == (0, 0, 0, 0, 0)
    assert (summary.filled_mw, summary.ordered_mw, summary.pnl_eur, summary.imbalance_exposure_mw) == (0, 0, 0, 0)
    assert math.isnan(summary.fill_ratio) and math.isnan(summary.mean_slippage_eur_per_mwh)
    assert summary.products == [] and summary.denials_by_reason == {} and summary.events_by_kind == {}
    assert trading_summary(settings, products=[]).orders == 0

    paths = trading_plots(settings, tmp_path, products=nothing.products)
    assert [path.name for path in paths] == ["trading_overview.png"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[0].stat().st_size > 10_000

    out = io.StringIO()
    print_trading_summary(summary, Console(file=out, width=200, highlight=False))
    text = out.getvalue()
    assert "no orders" in text and "risk denials: none" in text and "PnL +0.00 EUR" in text


def test_the_printed_summary(settings: Settings, day: Day) -> None:
    summary = trading_summary(settings, products=day.products)
    out = io.StringIO()
    print_trading_summary(summary, Console(file=out, width=200, highlight=False))
    text = out.getvalue()
    assert "7 orders (5 acked, 1 rejected, 1 unknown), 5 fills, 9.0 of 14.0 MW filled (64%)" in text
    assert "realised +0.43 EUR/MWh, estimated +0.50 EUR/MWh" in text
    assert "PnL +20.85 EUR (realised +7.45, unrealised +13.40); imbalance exposure 3.0 MW" in text
    assert "risk denials: MAX_PRODUCT_POSITION 2, PRICE_OUTSIDE_COLLAR 1" in text
    assert "RISK_DENIED 3" in text and "TRADING_STATE_CHANGED 1" in text
    quarter = next(line for line in text.splitlines() if day.quarter in line)
    assert [cell.strip() for cell in quarter.strip().strip("│").split("│")] == [
        day.quarter, "3", "2", "5.0", "6.0", "83%", "+0.70", "1", "-3.0", "+4.25", "-3.0"]

