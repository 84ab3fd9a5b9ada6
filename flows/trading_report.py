"""The trading day in figures and plots, read back from QuestDB: orders, fills, slippage, PnL, risk denials.

What the figures mean (every one restricted to ``products`` when given, since runs share the tables):

* **orders** are distinct client order ids with a ``SUBMIT`` row; an order's **final status** is that of its
  latest ``SUBMIT`` row, or of its ``RESUBMIT`` row when the sink sent it again. ``acked`` counts ACKED,
  REPLAYED and RESENT; an order left UNKNOWN that the venue reported on (an ack or a fill: reconciliation found
  it) counts as acked too. ``unknown`` is what stayed unknown. BLOCKED or RATE_LIMITED orders that were never
  sent count in ``orders`` only.
* **ordered_mw** sums the orders' quantities, **filled_mw** the fills' ``last_quantity_mw``; ``fill_ratio`` is
  filled / ordered MW (NaN without orders).
* **slippage** is a cost against the order's arrival mid, EUR/MWh: ``fill - mid`` for a buy, ``mid - fill`` for
  a sell, quantity-weighted over the fills whose order has an arrival mid. The *estimated* mean uses the
  orders' ``estimated_slippage_eur_per_mwh`` with the very same weights (the filled MW), so the two compare
  like for like: a fill at the limit price realises exactly the estimate.
* **PnL** and **imbalance exposure** come from each product's latest ``positions`` row: realised, unrealised
  and total PnL summed, exposure summed in absolute MW (as the account ``TOTAL`` row does; the TOTAL row itself
  is not used because it covers whatever else the account traded).
* **events** count by kind the events of the products, plus account-wide ones (no product): those naming one
  of the orders (``ORDER_UNKNOWN``, ``ORDER_RECONCILED``) and the others (trading state changes, breaker)
  that fall within the products' first and last record. ``denials_by_reason`` counts ``RISK_DENIED`` events by
  the ``reason`` of their detail.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd

from connectors.questdb.sql import QuestDBClient
from wattflow.domain import Product, gate_closure_ns
from wattflow.errors import QuestDBError
from wattflow.positions import TOTAL
from wattflow.settings import Settings

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from rich.console import Console

#: Submit outcomes that mean the venue has the order.
ACKED_STATUSES = frozenset({"ACKED", "REPLAYED", "RESENT"})
#: Product keys go into SQL literals: only the characters a key can hold.
_SAFE = re.compile(r"^[A-Za-z0-9:\-_.]+$")

_ORDER_COLUMNS = ["ts", "product", "client_order_id", "action", "status", "model", "side", "price_eur_per_mwh",
                  "quantity_mw", "arrival_mid_eur_per_mwh", "estimated_slippage_eur_per_mwh"]
_REPORT_COLUMNS = ["ts", "product", "client_order_id", "kind", "side", "last_price_eur_per_mwh", "last_quantity_mw"]
_POSITION_COLUMNS = ["ts", "product", "position_mw", "realised_pnl_eur", "unrealised_pnl_eur", "pnl_eur",
                     "imbalance_exposure_mw", "gate_closed"]
_EVENT_COLUMNS = ["ts", "kind", "product", "detail"]


@dataclass
class TradingSummary:
    orders: int
    acked: int
    rejected: int
    unknown: int  # SUBMIT orders by final status
    fills: int
    filled_mw: float
    ordered_mw: float
    fill_ratio: float  # filled / ordered MW
    mean_slippage_eur_per_mwh: float  # realised, a cost against the arrival mid, quantity-weighted
    mean_estimated_slippage_eur_per_mwh: float  # the estimate, with the same weights
    pnl_eur: float
    realised_pnl_eur: float
    unrealised_pnl_eur: float
    imbalance_exposure_mw: float  # absolute MW left open at gate closure
    denials_by_reason: dict[str, int] = field(default_factory=dict)
    events_by_kind: dict[str, int] = field(default_factory=dict)
    #: busiest first (filled MW, then orders): product, orders, acked, rejected, fills, ordered_mw, filled_mw,
    #: fill_ratio, mean_slippage_eur_per_mwh, mean_estimated_slippage_eur_per_mwh, denials, position_mw,
    #: realised_pnl_eur, unrealised_pnl_eur, pnl_eur, imbalance_exposure_mw (signed), gate_closed
    products: list[dict[str, Any]] = field(default_factory=list)


# --- reading the day ----------------------------------------------------------------------------------------


@dataclass
class _Day:
    """What the summary and the plots need, as frames (``ts`` as naive UTC datetimes)."""

    orders: pd.DataFrame  # one row per client order id, with its final status
    fills: pd.DataFrame  # one row per fill, with its order's arrival mid, estimate and cost
    positions: pd.DataFrame  # the latest row per product
    events: pd.DataFrame


def _in_products(products: list[str] | None) -> str:
    """A SQL condition on ``product``: the given keys, or any product but the account TOTAL."""
    if products is None:
        return f"product != '{TOTAL}'"
    for key in products:
        if not _SAFE.match(key):
            raise QuestDBError(f"product key {key!r} holds characters no product key has")
    return "product IN (" + ", ".join(f"'{key}'" for key in products) + ")" if products else "1 = 0"


def _frame(client: QuestDBClient, table: str, columns: list[str], where: str, tail: str = "") -> pd.DataFrame:
    """Rows as a frame with exactly ``columns`` (empty when the table does not exist yet)."""
    rows = client.query(f"SELECT {', '.join(columns)} FROM {table} WHERE {where} {tail}") \
        if client.table_exists(table) else []
    frame = pd.DataFrame(rows, columns=columns)
    if "ts" in frame:
        frame["ts"] = _times(frame["ts"])
    return frame


def _times(values: pd.Series) -> pd.Series:
    # QuestDB answers TIMESTAMP_NS as 2018-10-28T10:00:00.000000000Z; naive UTC plots without tz surprises
    return pd.to_datetime(values, utc=True, format="ISO8601").dt.tz_localize(None)


def _detail(text: Any) -> dict[str, Any]:
    try:
        value = orjson.loads(text) if text else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _read_day(client: QuestDBClient, products: list[str] | None) -> _Day:
    where = _in_products(products)
    rows = _frame(client, "orders", _ORDER_COLUMNS, f"{where} AND action IN ('SUBMIT', 'RESUBMIT')", "ORDER BY ts")
    reports = _frame(client, "execution_reports", _REPORT_COLUMNS, f"{where} AND kind IN ('ack', 'fill')",
                     "ORDER BY ts")
    positions = _frame(client, "positions", _POSITION_COLUMNS, where, "LATEST ON ts PARTITION BY product")
    orders = _orders(rows, reports)
    fills = _fills(reports[reports["kind"] == "fill"], orders)
    # RESUBMIT rows carry wall time, not market time: they would stretch the day's window over years
    events = _events(client, products, where, orders, [rows[rows["action"] == "SUBMIT"], reports, positions])
    return _Day(orders, fills, positions, events)


def _orders(rows: pd.DataFrame, reports: pd.DataFrame) -> pd.DataFrame:
    submits = rows[rows["action"] == "SUBMIT"]
    if submits.empty:
        return pd.DataFrame(columns=[*_ORDER_COLUMNS, "final_status"]).set_index("client_order_id")
    grouped = submits.groupby("client_order_id", sort=False)
    orders = grouped.first()  # the plan: the same on every row of an order
    orders["ts"] = grouped["ts"].min()
    orders["final_status"] = grouped["status"].last()
    resubmits = rows[rows["action"] == "RESUBMIT"].groupby("client_order_id")["status"].last()
    orders.loc[orders.index.intersection(resubmits.index), "final_status"] = resubmits
    heard_of = orders.index.isin(reports["client_order_id"])
    orders.loc[(orders["final_status"] == "UNKNOWN") & heard_of, "final_status"] = "ACKED"
    return orders


def _fills(fills: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
    plans = orders[["side", "arrival_mid_eur_per_mwh", "estimated_slippage_eur_per_mwh"]].rename(
        columns={"side": "order_side"})
    joined = fills.join(plans, on="client_order_id")
    side = pd.to_numeric(joined["side"]).where(joined["side"].fillna(0) != 0, joined["order_side"])
    joined["side"] = side.astype(float)
    price = pd.to_numeric(joined["last_price_eur_per_mwh"]).astype(float)
    mid = pd.to_numeric(joined["arrival_mid_eur_per_mwh"]).astype(float)
    joined["slippage_eur_per_mwh"] = joined["side"] * (price - mid)
    joined["last_quantity_mw"] = pd.to_numeric(joined["last_quantity_mw"]).astype(float)
    return joined.reset_index(drop=True)


def _events(client: QuestDBClient, products: list[str] | None, where: str, orders: pd.DataFrame,
            frames: list[pd.DataFrame]) -> pd.DataFrame:
    if products is None:
        return _frame(client, "events", _EVENT_COLUMNS, "1 = 1")
    events = _frame(client, "events", _EVENT_COLUMNS, where)
    account = _frame(client, "events", _EVENT_COLUMNS, "product IS NULL OR product = ''")
    if account.empty:
        return events
    named = account["detail"].map(lambda text: _detail(text).get("client_order_id"))
    about_orders = named.isin(orders.index)
    stamps = [frame["ts"] for frame in [*frames, events] if not frame.empty]
    if stamps:
        first, last = min(ts.min() for ts in stamps), max(ts.max() for ts in stamps)
        within = account["ts"].between(first, last) & named.isna()
    else:
        within = pd.Series(False, index=account.index)
    return pd.concat([events, account[about_orders | within]], ignore_index=True)


# --- the summary --------------------------------------------------------------------------------------------


def _weighted(values: pd.Series, weights: pd.Series) -> float:
    known = values.notna() & weights.notna()
    total = float(weights[known].sum())
    return float((values[known] * weights[known]).sum() / total) if total > 0 else math.nan


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def _figures(orders: pd.DataFrame, fills: pd.DataFrame) -> dict[str, Any]:
    status = orders["final_status"]
    ordered = float(pd.to_numeric(orders["quantity_mw"]).sum())
    filled = float(fills["last_quantity_mw"].sum())
    return {
        "orders": len(orders), "acked": int(status.isin(ACKED_STATUSES).sum()),
        "rejected": int((status == "REJECTED").sum()), "unknown": int((status == "UNKNOWN").sum()),
        "fills": len(fills), "ordered_mw": round(ordered, 6), "filled_mw": round(filled, 6),
        "fill_ratio": _ratio(filled, ordered),
        "mean_slippage_eur_per_mwh": _weighted(fills["slippage_eur_per_mwh"], fills["last_quantity_mw"]),
        "mean_estimated_slippage_eur_per_mwh": _weighted(
            pd.to_numeric(fills["estimated_slippage_eur_per_mwh"]).astype(float), fills["last_quantity_mw"]),
    }


def _summarise(day: _Day) -> TradingSummary:
    denials = day.events[day.events["kind"] == "RISK_DENIED"]
    reasons = denials["detail"].map(lambda text: str(_detail(text).get("reason") or "UNKNOWN_REASON"))
    positions = day.positions.set_index("product")
    money = {name: float(pd.to_numeric(positions[name]).fillna(0.0).sum())
             for name in ("pnl_eur", "realised_pnl_eur", "unrealised_pnl_eur")}
    exposure = float(pd.to_numeric(positions["imbalance_exposure_mw"]).fillna(0.0).abs().sum())
    per_product = []
    keys = set(day.orders["product"]) | set(day.fills["product"]) | set(positions.index)
    for product in keys:
        row: dict[str, Any] = {"product": product, **_figures(day.orders[day.orders["product"] == product],
                                                              day.fills[day.fills["product"] == product])}
        row["denials"] = int((denials["product"] == product).sum())
        latest = positions.loc[product] if product in positions.index else None
        for name in ("position_mw", "realised_pnl_eur", "unrealised_pnl_eur", "pnl_eur", "imbalance_exposure_mw"):
            value = None if latest is None else latest[name]
            row[name] = 0.0 if value is None or pd.isna(value) else float(value)
        row["gate_closed"] = bool(latest is not None and latest["gate_closed"])
        per_product.append(row)
    per_product.sort(key=lambda r: (-r["filled_mw"], -r["orders"], r["product"]))
    return TradingSummary(
        **_figures(day.orders, day.fills), pnl_eur=round(money["pnl_eur"], 6),
        realised_pnl_eur=round(money["realised_pnl_eur"], 6),
        unrealised_pnl_eur=round(money["unrealised_pnl_eur"], 6), imbalance_exposure_mw=round(exposure, 6),
        denials_by_reason={str(k): int(v) for k, v in sorted(reasons.value_counts().to_dict().items())},
        events_by_kind={str(k): int(v) for k, v in sorted(day.events["kind"].value_counts().to_dict().items())},
        products=per_product)


def trading_summary(settings: Settings, *, products: list[str] | None = None) -> TradingSummary:
    """The day's figures from QuestDB's orders, execution_reports, positions and events tables."""
    return _summarise(_read_day(QuestDBClient(settings.questdb), products))


# --- printing -----------------------------------------------------------------------------------------------


def _num(value: float, digits: int = 2, *, signed: bool = False) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:{'+' if signed else ''},.{digits}f}"


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0%}"


def print_trading_summary(summary: TradingSummary, console: Console, *, limit: int = 12) -> None:
    """The summary as a few lines and a table of the ``limit`` busiest products."""
    from rich.table import Table

    s = summary
    if not s.orders:
        console.print("[bold]trading[/]: no orders (no signal led to an order, or the execution flow did not run)")
    else:
        console.print(f"[bold]trading[/]: {s.orders} orders ({s.acked} acked, {s.rejected} rejected, "
                      f"{s.unknown} unknown), {s.fills} fills, {_num(s.filled_mw, 1)} of {_num(s.ordered_mw, 1)} "
                      f"MW filled ({_percent(s.fill_ratio)})")
        console.print(f"  slippage against the arrival mid (a cost when positive): realised "
                      f"{_num(s.mean_slippage_eur_per_mwh, signed=True)} EUR/MWh, estimated "
                      f"{_num(s.mean_estimated_slippage_eur_per_mwh, signed=True)} EUR/MWh")
    exposure = f"[bold red]{_num(s.imbalance_exposure_mw, 1)} MW[/]" if s.imbalance_exposure_mw else "0.0 MW"
    console.print(f"  PnL {_num(s.pnl_eur, signed=True)} EUR (realised {_num(s.realised_pnl_eur, signed=True)}, "
                  f"unrealised {_num(s.unrealised_pnl_eur, signed=True)}); imbalance exposure {exposure}")
    denials = ", ".join(f"{reason} {count}" for reason, count in s.denials_by_reason.items()) or "none"
    console.print(f"  risk denials: {denials}")
    events = ", ".join(f"{kind} {count}" for kind, count in s.events_by_kind.items()) or "none"
    console.print(f"  events: {events}")
    if not s.products:
        return
    shown = min(limit, len(s.products))
    title = f"the {shown} busiest of {len(s.products)} products" if shown < len(s.products) \
        else f"{len(s.products)} product(s), busiest first"
    table = Table(title=title, title_justify="left")
    for header in ("product", "orders", "fills", "filled\nMW", "ordered\nMW", "fill\nratio", "slippage\nEUR/MWh",
                   "denials", "position\nMW", "PnL\nEUR", "imbalance\nMW"):
        table.add_column(header, justify="left" if header == "product" else "right", no_wrap=True)
    for row in s.products[:limit]:
        table.add_row(row["product"], str(row["orders"]), str(row["fills"]), _num(row["filled_mw"], 1),
                      _num(row["ordered_mw"], 1), _percent(row["fill_ratio"]),
                      _num(row["mean_slippage_eur_per_mwh"], signed=True), str(row["denials"]),
                      _num(row["position_mw"], 1, signed=True), _num(row["pnl_eur"], signed=True),
                      _num(row["imbalance_exposure_mw"], 1, signed=True) if row["imbalance_exposure_mw"] else "0.0")
    console.print(table)


# --- plots --------------------------------------------------------------------------------------------------


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
    fill_axis.set_title(f"fill ratio by product (overall {_percent(summary.fill_ratio)})", fontsize=10, loc="left")
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
    headline = (f"{summary.orders} orders, {_num(summary.filled_mw, 1)} of {_num(summary.ordered_mw, 1)} MW filled, "
                f"PnL {_num(summary.pnl_eur, signed=True)} EUR, imbalance exposure "
                f"{_num(summary.imbalance_exposure_mw, 1)} MW") if summary.orders else "no orders"
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
    prices = _frame(client, "dayahead", ["ts", "duration_min", "price_eur_per_mwh"], window)
    if prices.empty:
        return math.nan
    begins = prices["ts"].astype("int64").to_numpy()
    ends = begins + prices["duration_min"].astype("int64").to_numpy() * 60 * 10**9
    overlap = np.clip(np.minimum(ends, end_ns) - np.maximum(begins, start_ns), 0, None)
    return _weighted(prices["price_eur_per_mwh"].astype(float), pd.Series(overlap, index=prices.index, dtype=float))


def _product_figure(client: QuestDBClient, day: _Day, row: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt

    product = row["product"]
    where = f"product = '{product}'"
    trades = _frame(client, "ticks", ["ts", "price_eur_per_mwh"], where, "ORDER BY ts")
    targets = _frame(client, "signals", ["ts", "model", "target_position_mw"], where, "ORDER BY ts")
    history = _frame(client, "positions", _POSITION_COLUMNS, where, "ORDER BY ts")
    orders = day.orders[day.orders["product"] == product]
    fills = day.fills[day.fills["product"] == product]
    day_ahead = _day_ahead_price(client, product)

    figure, (price_axis, position_axis) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True,
                                                       gridspec_kw={"height_ratios": [2, 1]})
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
        f"{product}: {row['orders']} orders, {_num(row['filled_mw'], 1)} of {_num(row['ordered_mw'], 1)} MW filled, "
        f"slippage {_num(row['mean_slippage_eur_per_mwh'], signed=True)} EUR/MWh", fontsize=10, loc="left")

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
    for axis in (price_axis, position_axis):
        axis.axvline(closure, color="black", lw=0.8, ls=":", label="gate closure" if axis is position_axis else None)
    position_axis.axhline(0.0, color="0.6", lw=0.6)
    position_axis.set_ylabel("position (MW)")
    position_axis.set_xlabel("time (UTC)")
    position_axis.grid(alpha=0.3)
    _legend(position_axis, pnl_axis)
    position_axis.set_title(f"position {_num(row['position_mw'], 1, signed=True)} MW, PnL "
                            f"{_num(row['pnl_eur'], signed=True)} EUR, imbalance exposure "
                            f"{_num(row['imbalance_exposure_mw'], 1, signed=True)} MW", fontsize=10, loc="left")
    _time_axis(position_axis)
    return _save(figure, path)


def trading_plots(settings: Settings, out_dir: Path, *, products: list[str] | None = None,
                  top: int = 4) -> list[Path]:
    """PNGs into ``out_dir``: an overview (PnL over time, fill ratio and slippage by product, risk denials by
    reason), then one figure for each of the ``top`` most traded products (by filled MW, then orders)."""
    import matplotlib

    matplotlib.use("Agg")
    client = QuestDBClient(settings.questdb)
    day = _read_day(client, products)
    summary = _summarise(day)
    history = _frame(client, "positions", _POSITION_COLUMNS, _in_products(products), "ORDER BY ts")
    paths = [_overview(summary, history, out_dir / "trading_overview.png")]
    busiest = [row for row in summary.products if row["orders"] or row["fills"]][:max(0, top)]
    paths += [_product_figure(client, day, row, out_dir / _file_name(row["product"])) for row in busiest]
    return paths
