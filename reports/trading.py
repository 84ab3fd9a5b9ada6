"""The trading day in figures and plots, read back from QuestDB: orders, fills, slippage, PnL, risk denials.

What the figures mean (every one restricted to ``products`` when given, since runs share the tables):

* **orders** are distinct client order ids with a ``SUBMIT`` row; an order's **final status** is that of its
  latest ``SUBMIT`` row (by decision time, then answer time: every outcome of a command is a row), or of its
  ``RESUBMIT`` row when the sink sent it again. ``acked`` counts ACKED, REPLAYED and RESENT; an order left
  UNKNOWN that the venue reported on (an ack or a fill: reconciliation found it) counts as acked too.
  ``unknown`` is what stayed unknown. BLOCKED or RATE_LIMITED orders that were never sent count in ``orders``
  only.
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
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd

from connectors.questdb.sql import QuestDBClient
from reports.fit import fit_columns
from wattflow.errors import QuestDBError
from wattflow.positions import TOTAL
from wattflow.settings import Settings

if TYPE_CHECKING:
    from rich.console import Console

#: Submit outcomes that mean the venue has the order.
ACKED_STATUSES = frozenset({"ACKED", "REPLAYED", "RESENT"})
#: Product keys go into SQL literals: only the characters a key can hold.
SAFE_NAME = re.compile(r"^[A-Za-z0-9:\-_.]+$")

_ORDER_COLUMNS = ["ts", "product", "client_order_id", "action", "status", "model", "side", "price_eur_per_mwh",
                  "quantity_mw", "arrival_mid_eur_per_mwh", "estimated_slippage_eur_per_mwh"]
_REPORT_COLUMNS = ["ts", "product", "client_order_id", "kind", "side", "last_price_eur_per_mwh", "last_quantity_mw"]
POSITION_COLUMNS = ["ts", "product", "position_mw", "realised_pnl_eur", "unrealised_pnl_eur", "pnl_eur",
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

    @property
    def denials(self) -> int:
        return sum(self.denials_by_reason.values())

    @property
    def denial_share(self) -> float:
        """Risk denials per decision, a decision being an order put to pre-trade risk (``orders + denials``): the
        engine plans within its limits, so a denial is the safety net at work (NaN without decisions)."""
        return _ratio(self.denials, self.orders + self.denials)


# --- reading the day ----------------------------------------------------------------------------------------


@dataclass
class DayFrames:
    """What the summary and the plots need, as frames (``ts`` as naive UTC datetimes)."""

    orders: pd.DataFrame  # one row per client order id, with its final status
    fills: pd.DataFrame  # one row per fill, with its order's arrival mid, estimate and cost
    positions: pd.DataFrame  # the latest row per product
    events: pd.DataFrame


def in_products(products: list[str] | None) -> str:
    """A SQL condition on ``product``: the given keys, or any product but the account TOTAL."""
    if products is None:
        return f"product != '{TOTAL}'"
    for key in products:
        if not SAFE_NAME.match(key):
            raise QuestDBError(f"product key {key!r} holds characters no product key has")
    return "product IN (" + ", ".join(f"'{key}'" for key in products) + ")" if products else "1 = 0"


def read_frame(client: QuestDBClient, table: str, columns: list[str], where: str, tail: str = "") -> pd.DataFrame:
    """Rows as a frame with exactly ``columns`` (empty when the table does not exist yet)."""
    rows = client.query(f"SELECT {', '.join(columns)} FROM {table} WHERE {where} {tail}") \
        if client.table_exists(table) else []
    frame = pd.DataFrame(rows, columns=columns)
    if "ts" in frame:
        frame["ts"] = to_times(frame["ts"])
    return frame


def to_times(values: pd.Series) -> pd.Series:
    # QuestDB answers TIMESTAMP_NS as 2018-10-28T10:00:00.000000000Z; naive UTC plots without tz surprises
    return pd.to_datetime(values, utc=True, format="ISO8601").dt.tz_localize(None)


def event_detail(text: Any) -> dict[str, Any]:
    try:
        value = orjson.loads(text) if text else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def read_day(client: QuestDBClient, products: list[str] | None) -> DayFrames:
    where = in_products(products)
    # Every outcome of a command is a row (BLOCKED, then ACKED, at the same decision time): in answer order.
    rows = read_frame(client, "orders", _ORDER_COLUMNS, f"{where} AND action IN ('SUBMIT', 'RESUBMIT')",
                      "ORDER BY ts, answered_ts")
    reports = read_frame(client, "execution_reports", _REPORT_COLUMNS, f"{where} AND kind IN ('ack', 'fill')",
                     "ORDER BY ts")
    positions = read_frame(client, "positions", POSITION_COLUMNS, where, "LATEST ON ts PARTITION BY product")
    orders = _orders(rows, reports)
    fills = _fills(reports[reports["kind"] == "fill"], orders)
    # RESUBMIT rows carry wall time, not market time: they would stretch the day's window over years
    events = _events(client, products, where, orders, [rows[rows["action"] == "SUBMIT"], reports, positions])
    return DayFrames(orders, fills, positions, events)


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
        return read_frame(client, "events", _EVENT_COLUMNS, "1 = 1")
    events = read_frame(client, "events", _EVENT_COLUMNS, where)
    account = read_frame(client, "events", _EVENT_COLUMNS, "product IS NULL OR product = ''")
    if account.empty:
        return events
    named = account["detail"].map(lambda text: event_detail(text).get("client_order_id"))
    about_orders = named.isin(orders.index)
    stamps = [frame["ts"] for frame in [*frames, events] if not frame.empty]
    if stamps:
        first, last = min(ts.min() for ts in stamps), max(ts.max() for ts in stamps)
        within = account["ts"].between(first, last) & named.isna()
    else:
        within = pd.Series(False, index=account.index)
    return pd.concat([events, account[about_orders | within]], ignore_index=True)


# --- the summary --------------------------------------------------------------------------------------------


def weighted_mean(values: pd.Series, weights: pd.Series) -> float:
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
        "mean_slippage_eur_per_mwh": weighted_mean(fills["slippage_eur_per_mwh"], fills["last_quantity_mw"]),
        "mean_estimated_slippage_eur_per_mwh": weighted_mean(
            pd.to_numeric(fills["estimated_slippage_eur_per_mwh"]).astype(float), fills["last_quantity_mw"]),
    }


def summarise(day: DayFrames) -> TradingSummary:
    denials = day.events[day.events["kind"] == "RISK_DENIED"]
    reasons = denials["detail"].map(lambda text: str(event_detail(text).get("reason") or "UNKNOWN_REASON"))
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
    return summarise(read_day(QuestDBClient(settings.questdb), products))


# --- printing -----------------------------------------------------------------------------------------------


def number(value: float, digits: int = 2, *, signed: bool = False) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:{'+' if signed else ''},.{digits}f}"


def percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0%}"


def print_trading_summary(summary: TradingSummary, console: Console, *, limit: int = 12) -> None:
    """The summary as a few lines and a table of the ``limit`` busiest products."""
    from rich.table import Table

    s = summary
    if not s.orders:
        console.print("[bold]trading[/]: no orders (no signal led to an order, or the execution flow did not run)")
    else:
        console.print(f"[bold]trading[/]: {s.orders} orders ({s.acked} acked, {s.rejected} rejected, "
                      f"{s.unknown} unknown), {s.fills} fills, {number(s.filled_mw, 1)} of {number(s.ordered_mw, 1)} "
                      f"MW filled ({percent(s.fill_ratio)})")
        console.print(f"  slippage against the arrival mid (a cost when positive): realised "
                      f"{number(s.mean_slippage_eur_per_mwh, signed=True)} EUR/MWh, estimated "
                      f"{number(s.mean_estimated_slippage_eur_per_mwh, signed=True)} EUR/MWh")
    exposure = f"[bold red]{number(s.imbalance_exposure_mw, 1)} MW[/]" if s.imbalance_exposure_mw else "0.0 MW"
    console.print(f"  PnL {number(s.pnl_eur, signed=True)} EUR (realised {number(s.realised_pnl_eur, signed=True)}, "
                  f"unrealised {number(s.unrealised_pnl_eur, signed=True)}); imbalance exposure {exposure}")
    denials = ", ".join(f"{reason} {count}" for reason, count in s.denials_by_reason.items()) or "none"
    console.print(f"  risk denials: {denials}")
    share = "-" if math.isnan(s.denial_share) else f"{s.denial_share:.2%}"
    console.print(f"  decisions: {s.orders + s.denials:,} put to pre-trade risk ({s.orders:,} orders, {s.denials:,} "
                  f"risk denials): denial share {share}")
    events = ", ".join(f"{kind} {count}" for kind, count in s.events_by_kind.items()) or "none"
    console.print(f"  events: {events}")
    if not s.products:
        return
    shown = min(limit, len(s.products))
    title = f"the {shown} busiest of {len(s.products)} products" if shown < len(s.products) \
        else f"{len(s.products)} product(s), busiest first"
    headers = ("product", "orders", "fills", "filled\nMW", "ordered\nMW", "fill\nratio", "slippage\nEUR/MWh",
               "denials", "position\nMW", "PnL\nEUR", "imbalance\nMW")
    cells = [[row["product"], str(row["orders"]), str(row["fills"]), number(row["filled_mw"], 1),
              number(row["ordered_mw"], 1), percent(row["fill_ratio"]),
              number(row["mean_slippage_eur_per_mwh"], signed=True), str(row["denials"]),
              number(row["position_mw"], 1, signed=True), number(row["pnl_eur"], signed=True),
              number(row["imbalance_exposure_mw"], 1, signed=True) if row["imbalance_exposure_mw"] else "0.0"]
             for row in s.products[:limit]]
    keep, left_out = fit_columns(headers, cells, console.width, ("ordered\nMW", "denials", "fills",
                                                                  "slippage\nEUR/MWh", "imbalance\nMW",
                                                                  "fill\nratio", "orders"))
    caption = f"left out to fit: {', '.join(left_out)}" if left_out else None
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for c in keep:
        table.add_column(headers[c], justify="left" if c == 0 else "right", no_wrap=True)
    for row_cells in cells:
        table.add_row(*[row_cells[c] for c in keep])
    console.print(table)


# --- plots --------------------------------------------------------------------------------------------------
