"""The trading day's plots: an overview (PnL over the day, fill ratio and slippage per product, denials by
reason) and one figure per busy product (trades, day-ahead price, our orders and fills, targets; position and
PnL; the gate closure; its market access over the day with the feed gaps and access events marked)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from connectors.questdb.sql import QuestDBClient
from reports.trading import (
    POSITION_COLUMNS,
    DayFrames,
    TradingSummary,
    event_detail,
    in_products,
    number,
    percent,
    read_day,
    read_frame,
    summarise,
    weighted_mean,
)
from wattflow.domain import Product, gate_closure_ns
from wattflow.settings import Settings

if TYPE_CHECKING:
    from matplotlib.axes import Axes

def _file_name(product: str) -> str:
    return "trading_" + re.sub(r"[^A-Za-z0-9\-]+", "_", product).strip("_") + ".png"


def _labels(products: list[str]) -> list[str]:
    """``DE-LU:2018-10-28T10:00Z:PT60M`` -> ``10:00 PT60M`` when every product is of one area and day."""
    parts = [product.split(":") for product in products]
    if any(len(p) != 4 for p in parts) or len({p[1][:10] for p in parts}) > 1 or len({p[0] for p in parts}) > 1:
        return products
    return [f"{p[1][-2:]}:{p[2][:2]} {p[3]}" for p in parts]


def _empty(axis: Axes, text: str) -> None:
    axis.text(0.5, 0.5, text, ha="center", va="center", transform=axis.transAxes, fontsize=11, color="0.4")
    axis.set_xticks([])
    axis.set_yticks([])


def _time_axis(axis: Axes) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    axis.xaxis.set_major_locator(locator)
    axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _legend(axis: Axes, twin: Axes | None = None) -> None:
    handles, labels = axis.get_legend_handles_labels()
    if twin is not None:
        more = twin.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    if handles:
        axis.legend(handles, labels, fontsize=7, loc="best", ncol=3, framealpha=0.7)


def _total_pnl(history: pd.DataFrame) -> pd.DataFrame:
    """The selected products' PnL over time: each product's latest row carried forward, summed."""
    columns = ["pnl_eur", "realised_pnl_eur"]
    ordered = history.sort_values("ts", kind="stable")
    values = ordered[columns].apply(pd.to_numeric).fillna(0.0)
    # each row moves the total by what it changed in its product
    steps = values.groupby(ordered["product"]).diff().fillna(values)
    return steps.groupby(ordered["ts"]).sum().cumsum()


def _overview(summary: TradingSummary, history: pd.DataFrame, path: Path) -> Path:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(2, 2, figsize=(13, 8))
    pnl_axis, fill_axis, slip_axis, deny_axis = axes.flat
    if history.empty:
        _empty(pnl_axis, "no positions")
    else:
        total = _total_pnl(history)
        pnl_axis.step(total.index, total["pnl_eur"], where="post", color="tab:green", label="PnL (marked to market)")
        pnl_axis.step(total.index, total["realised_pnl_eur"], where="post", color="tab:green", ls="--", lw=0.9,
                      label="realised PnL")
        pnl_axis.axhline(0.0, color="0.6", lw=0.6)
        pnl_axis.set_ylabel("EUR")
        pnl_axis.set_xlabel("time (UTC)")
        _time_axis(pnl_axis)
        _legend(pnl_axis)
    pnl_axis.set_title("PnL over time (the products traded, summed)", fontsize=10, loc="left")
    traded = [row for row in summary.products if row["orders"]][:20]
    labels = _labels([row["product"] for row in traded])
    positions = np.arange(len(traded))
    if not traded:
        _empty(fill_axis, "no orders")
    else:
        fill_axis.bar(positions, [100 * np.nan_to_num(row["fill_ratio"]) for row in traded], color="tab:blue")
        fill_axis.set_xticks(positions, labels, rotation=60, ha="right", fontsize=7)
        fill_axis.set_ylabel("filled / ordered MW (%)")
        fill_axis.set_ylim(0, 105)
    fill_axis.set_title(f"fill ratio by product (overall {percent(summary.fill_ratio)})", fontsize=10, loc="left")
    filled = [row for row in traded if row["fills"]]
    if not filled:
        _empty(slip_axis, "no orders" if not traded else "no fills")
    else:
        where = np.arange(len(filled))
        slip_axis.bar(where - 0.2, [row["mean_slippage_eur_per_mwh"] for row in filled], width=0.4,
                      color="tab:red", label="realised")
        slip_axis.bar(where + 0.2, [row["mean_estimated_slippage_eur_per_mwh"] for row in filled], width=0.4,
                      color="0.6", label="estimated")
        slip_axis.axhline(0.0, color="0.3", lw=0.6)
        slip_axis.set_xticks(where, _labels([row["product"] for row in filled]), rotation=60, ha="right", fontsize=7)
        slip_axis.set_ylabel("slippage vs arrival mid (EUR/MWh, + = cost)")
        _legend(slip_axis)
    slip_axis.set_title("slippage by product (quantity-weighted over fills)", fontsize=10, loc="left")
    if not summary.denials_by_reason:
        _empty(deny_axis, "no risk denials")
    else:
        reasons = sorted(summary.denials_by_reason.items(), key=lambda item: item[1])
        deny_axis.barh([reason for reason, _ in reasons], [count for _, count in reasons], color="tab:orange")
        deny_axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        deny_axis.set_xlabel("denied orders (count)")
        deny_axis.tick_params(axis="y", labelsize=8)
    deny_axis.set_title("risk denials by reason", fontsize=10, loc="left")
    headline = (f"{summary.orders} orders, {number(summary.filled_mw, 1)} of {number(summary.ordered_mw, 1)} MW "
                f"filled, "
                f"PnL {number(summary.pnl_eur, signed=True)} EUR, imbalance exposure "
                f"{number(summary.imbalance_exposure_mw, 1)} MW") if summary.orders else "no orders"
    figure.suptitle(f"trading day: {headline}", fontsize=11)
    return _save(figure, path)


def _save(figure: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _day_ahead_price(client: QuestDBClient, product: str) -> float:
    """The day-ahead price of the product's delivery period, averaged over its overlap with the auction's periods."""
    parsed = Product.parse(product)
    start_ns, end_ns = parsed.delivery_start_ns, parsed.delivery_end_ns
    earliest = pd.Timestamp(start_ns - 3_600 * 10**9, unit="ns").isoformat()
    window = f"area = '{parsed.area}' AND ts >= '{earliest}Z' AND ts < '{pd.Timestamp(end_ns, unit='ns').isoformat()}Z'"
    prices = read_frame(client, "dayahead", ["ts", "duration_min", "price_eur_per_mwh"], window)
    if prices.empty:
        return math.nan
    begins = prices["ts"].astype("int64").to_numpy()
    ends = begins + prices["duration_min"].astype("int64").to_numpy() * 60 * 10**9
    overlap = np.clip(np.minimum(ends, end_ns) - np.maximum(begins, start_ns), 0, None)
    return weighted_mean(prices["price_eur_per_mwh"].astype(float), pd.Series(overlap, index=prices.index, dtype=float))


def _product_figure(client: QuestDBClient, day: DayFrames, row: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt

    product = row["product"]
    where = f"product = '{product}'"
    trades = read_frame(client, "ticks", ["ts", "price_eur_per_mwh"], where, "ORDER BY ts")
    targets = read_frame(client, "signals", ["ts", "model", "target_position_mw"], where, "ORDER BY ts")
    history = read_frame(client, "positions", POSITION_COLUMNS, where, "ORDER BY ts")
    orders = day.orders[day.orders["product"] == product]
    fills = day.fills[day.fills["product"] == product]
    day_ahead = _day_ahead_price(client, product)

    figure, (price_axis, position_axis, access_axis) = plt.subplots(
        3, 1, figsize=(11, 8.5), sharex=True, gridspec_kw={"height_ratios": [2, 1, 0.9]})
    if not trades.empty:
        price_axis.plot(trades["ts"], trades["price_eur_per_mwh"], lw=0.6, color="0.55", label="trade price")
    if math.isfinite(day_ahead):
        price_axis.axhline(day_ahead, ls="--", lw=1.0, color="tab:green", label="day-ahead price")
    for side, marker, color, name in ((1, "^", "tab:blue", "buy"), (-1, "v", "tab:red", "sell")):
        ours = orders[pd.to_numeric(orders["side"]) == side]
        if not ours.empty:
            price_axis.scatter(ours["ts"], ours["price_eur_per_mwh"], marker=marker, s=40, facecolors="none",
                               edgecolors=color, label=f"{name} order (limit)", zorder=3)
        done = fills[fills["side"] == side]
        if not done.empty:
            price_axis.scatter(done["ts"], done["last_price_eur_per_mwh"], marker=marker, color=color,
                               s=20 + 30 * done["last_quantity_mw"], label=f"{name} fill (size ~ MW)", zorder=4)
    refused = orders[orders["final_status"] == "REJECTED"]
    if not refused.empty:
        price_axis.scatter(refused["ts"], refused["price_eur_per_mwh"], marker="x", s=50, color="black",
                           label="rejected order", zorder=5)
    price_axis.set_ylabel("EUR/MWh")
    target_axis = None
    if not targets.empty:
        target_axis = price_axis.twinx()
        for model, rows in targets.groupby("model"):
            target_axis.step(rows["ts"], rows["target_position_mw"], where="post", lw=0.9, alpha=0.6,
                             label=f"signal target ({model})")
        target_axis.set_ylabel("signal target (MW)")
    if trades.empty and orders.empty and fills.empty:
        price_axis.text(0.5, 0.5, "no trades and no orders", ha="center", va="center", transform=price_axis.transAxes)
    _legend(price_axis, target_axis)
    price_axis.grid(alpha=0.3)
    price_axis.set_title(
        f"{product}: {row['orders']} orders, {number(row['filled_mw'], 1)} of {number(row['ordered_mw'], 1)} MW "
        "filled, "
        f"slippage {number(row['mean_slippage_eur_per_mwh'], signed=True)} EUR/MWh", fontsize=10, loc="left")

    closure = pd.Timestamp(gate_closure_ns(product), unit="ns")
    pnl_axis = None
    if not history.empty:  # the last row holds until the right edge of the plot
        edge = max([closure, history["ts"].max(), *([trades["ts"].max()] if not trades.empty else [])])
        history = pd.concat([history, history.tail(1).assign(ts=edge)], ignore_index=True)
    if history.empty:
        position_axis.text(0.5, 0.5, "no positions", ha="center", va="center", transform=position_axis.transAxes)
    else:
        position_axis.fill_between(history["ts"], history["position_mw"].astype(float), step="post", alpha=0.3,
                                   color="tab:purple")
        position_axis.step(history["ts"], history["position_mw"].astype(float), where="post", color="tab:purple",
                           label="position")
        pnl_axis = position_axis.twinx()
        pnl_axis.step(history["ts"], history["pnl_eur"].astype(float), where="post", color="tab:green",
                      label="PnL (cumulative, marked)")
        pnl_axis.set_ylabel("PnL (EUR)")
    market_close = pd.Timestamp(gate_closure_ns(product, "local"), unit="ns")
    for axis in (price_axis, position_axis, access_axis):
        axis.axvline(closure, color="black", lw=0.8, ls=":",
                     label="our gate closure (area)" if axis is position_axis else None)
        axis.axvline(market_close, color="0.5", lw=0.8, ls="--",
                     label="market closes (control area)" if axis is position_axis else None)
    late = fills[fills["ts"] > closure] if not fills.empty else fills
    if not late.empty:  # say why a fill or a position change shows after our gate closed
        position_axis.annotate(
            f"{len(late)} fill(s) after our gate closure: orders resting when it closed, filled by the market "
            "(open until its own closure) before their cancel arrived", xy=(closure, 0),
            xycoords=("data", "axes fraction"), xytext=(-4, 4), textcoords="offset points", ha="right", va="bottom",
            fontsize=7, color="0.3")
    position_axis.axhline(0.0, color="0.6", lw=0.6)
    position_axis.set_ylabel("position (MW)")
    position_axis.grid(alpha=0.3)
    _legend(position_axis, pnl_axis)
    position_axis.set_title(f"position {number(row['position_mw'], 1, signed=True)} MW, PnL "
                            f"{number(row['pnl_eur'], signed=True)} EUR, imbalance exposure "
                            f"{number(row['imbalance_exposure_mw'], 1, signed=True)} MW", fontsize=10, loc="left")
    _access_panel(access_axis, client, day, product)
    _time_axis(access_axis)
    return _save(figure, path)


def _access_panel(axis: Axes, client: QuestDBClient, day: DayFrames, product: str) -> None:
    """The product's market access over the day: feed access and book coverage at each trade (the features
    table), the feed gaps shaded (``FEED_GAP_ENDED``: from the last update before the silence to the first after
    it), the engine's ``ACCESS_LOST`` / ``ACCESS_RESTORED`` (market access = feed access x order-path
    availability, at each) and the venue-wide ``ORDER_PATH_DEGRADED`` marked."""
    import matplotlib.dates as mdates

    try:
        access = read_frame(client, "features", ["ts", "feed_access", "book_coverage"], f"product = '{product}'",
                            "ORDER BY ts")
    except Exception:  # a features table from before the access columns: nothing to show
        access = pd.DataFrame(columns=["ts", "feed_access", "book_coverage"])
    events = day.events
    mine = events[events["product"] == product] if not events.empty else events
    if not access.empty:
        axis.step(access["ts"], pd.to_numeric(access["book_coverage"]).astype(float), where="post", lw=0.7,
                  color="0.6", label="book coverage")
        axis.step(access["ts"], pd.to_numeric(access["feed_access"]).astype(float), where="post", lw=1.0,
                  color="tab:blue", label="feed access")
    gaps = mine[mine["kind"] == "FEED_GAP_ENDED"] if not mine.empty else mine
    for k, (_, gap) in enumerate(gaps.iterrows()):
        numbers = event_detail(gap["detail"])
        if "start_ns" in numbers and "end_ns" in numbers:
            begin, end = (float(mdates.date2num(pd.Timestamp(int(numbers[k]), unit="ns"))) for k in ("start_ns",
                                                                                                       "end_ns"))
            axis.axvspan(begin, end, color="tab:red", alpha=0.12,
                         label=None if k else f"feed gap ({numbers.get('stream', '')}, FEED_GAP_ENDED)")
    for kind, color, marker in (("ACCESS_LOST", "tab:red", "v"), ("ACCESS_RESTORED", "tab:green", "^")):
        rows = mine[mine["kind"] == kind] if not mine.empty else mine
        if not rows.empty:
            values = [float(event_detail(text).get("access", float("nan"))) for text in rows["detail"]]
            axis.scatter(rows["ts"], values, marker=marker, color=color, s=30, zorder=4,
                         label=f"{kind} (market access)")
    degraded = events[events["kind"] == "ORDER_PATH_DEGRADED"] if not events.empty else events
    if not degraded.empty:
        values = [float(event_detail(text).get("order_path_availability", float("nan"))) for text in degraded["detail"]]
        axis.scatter(degraded["ts"], values, marker="x", color="tab:orange", s=30, zorder=4,
                     label="ORDER_PATH_DEGRADED (venue-wide)")
    if access.empty and mine.empty:
        axis.text(0.5, 0.5, "no access measured", ha="center", va="center", transform=axis.transAxes)
    axis.axhline(0.5, color="0.4", lw=0.6, ls="--")
    axis.set_ylim(-0.05, 1.1)
    axis.set_ylabel("access (0-1)")
    axis.set_xlabel("time (UTC)")
    axis.grid(alpha=0.3)
    _legend(axis)
    lost = int((mine["kind"] == "ACCESS_LOST").sum()) if not mine.empty else 0
    axis.set_title(f"market access: {len(gaps)} feed gap(s), access lost {lost} time(s) (dashed: the engine's "
                   "gate, min access 0.5)", fontsize=10, loc="left")


def trading_plots(settings: Settings, out_dir: Path, *, products: list[str] | None = None,
                  top: int = 4, figures: list[str] | None = None) -> list[Path]:
    """PNGs into ``out_dir``: an overview (PnL over time, fill ratio and slippage by product, risk denials by
    reason), then one figure for each of the ``top`` most traded products (by filled MW, then orders), or for each
    product of ``figures`` (in that order) when given."""
    import matplotlib

    matplotlib.use("Agg")
    client = QuestDBClient(settings.questdb)
    day = read_day(client, products)
    summary = summarise(day)
    history = read_frame(client, "positions", POSITION_COLUMNS, in_products(products), "ORDER BY ts")
    paths = [_overview(summary, history, out_dir / "trading_overview.png")]
    if figures is not None:
        by_product = {row["product"]: row for row in summary.products}
        busiest = [by_product[p] for p in figures if p in by_product]
    else:
        busiest = [row for row in summary.products if row["orders"] or row["fills"]][:max(0, top)]
    paths += [_product_figure(client, day, row, out_dir / _file_name(row["product"])) for row in busiest]
    return paths
