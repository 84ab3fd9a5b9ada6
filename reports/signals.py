"""Signals report: a summary per product and a plot of price, fair value and signals (PNG)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from connectors.questdb.sql import QuestDBClient
from wattflow.domain import ns_to_datetime


def area_and_span(area: str, between_ns: tuple[int, int] | None) -> str:
    """SQL condition: an area, and optionally an event-time span, both ends included (whole microseconds, so
    the span is widened to the microseconds around it), so that other days of the same area stay out."""
    where = f"area = '{area}'"
    if between_ns is not None:
        first = ns_to_datetime(between_ns[0]).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        last = ns_to_datetime(between_ns[1] + 999).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        where += f" AND ts >= '{first}' AND ts <= '{last}'"
    return where


def signals_digest(client: QuestDBClient, area: str, between_ns: tuple[int, int] | None = None) -> tuple[str, int]:
    """SHA-256 of an area's signals (in an event-time span) in a canonical order: equal for equal feeds (R8)."""
    rows = client.query(
        "SELECT product, model, ts, trade_id, direction, strength, target_position_mw, confidence FROM signals "
        f"WHERE {area_and_span(area, between_ns)} ORDER BY product, model, ts, trade_id")
    digest = hashlib.sha256()
    for row in rows:
        digest.update(repr(tuple(row.values())).encode())
    return digest.hexdigest(), len(rows)


def signals_by_product(client: QuestDBClient, area: str, limit: int = 12,
                       between_ns: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """Per product and model: signals given, how many said buy or sell, mean strength, last target."""
    return client.query(
        "SELECT product, model, count() signals, sum(CASE WHEN direction = 1 THEN 1 ELSE 0 END) buys, "
        "sum(CASE WHEN direction = -1 THEN 1 ELSE 0 END) sells, "
        "avg(CASE WHEN direction != 0 THEN strength END) mean_strength, last(target_position_mw) last_target_mw "
        f"FROM signals WHERE {area_and_span(area, between_ns)} GROUP BY product, model ORDER BY product, model "
        f"LIMIT {limit}")


def busiest_products(client: QuestDBClient, area: str, count: int = 3,
                     between_ns: tuple[int, int] | None = None) -> list[str]:
    rows = client.query(f"SELECT product, count() trades FROM ticks WHERE {area_and_span(area, between_ns)} "
                        f"AND product LIKE '%PT60M' ORDER BY trades DESC LIMIT {count}")
    return sorted(row["product"] for row in rows)


def plot_signals(client: QuestDBClient, products: list[str], path: Path) -> Path:
    """Price, fair value (day-ahead + slow EWMA), day-ahead anchor, and buy/sell signals per product."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(products), 1, figsize=(11, 3.4 * len(products)), squeeze=False)
    for axis, product in zip(axes[:, 0], products, strict=True):
        rows = client.query(
            "SELECT f.ts, f.price_eur_per_mwh, f.ewma_slow_eur_per_mwh, f.day_ahead_eur_per_mwh, s.direction "
            f"FROM features f JOIN signals s ON f.ts = s.ts AND f.trade_id = s.trade_id "
            f"WHERE f.product = '{product}' AND s.product = '{product}' AND s.model = 'mean_reversion' ORDER BY f.ts")
        if not rows:
            continue
        ts = np.array([np.datetime64(row["ts"].rstrip("Z")) for row in rows])
        price = np.array([row["price_eur_per_mwh"] for row in rows], dtype=float)
        slow = np.array([row["ewma_slow_eur_per_mwh"] for row in rows], dtype=float)
        anchor = np.array([row["day_ahead_eur_per_mwh"] for row in rows], dtype=float)
        direction = np.array([row["direction"] for row in rows])
        fair = np.where(np.isfinite(anchor), 0.5 * (anchor + slow), slow)
        axis.plot(ts, price, lw=0.6, color="0.45", label="trade price")
        axis.plot(ts, fair, lw=1.4, color="tab:blue", label="fair value (day-ahead + slow EWMA)")
        axis.plot(ts, anchor, lw=1.0, ls="--", color="tab:green", label="day-ahead price")
        buys, sells = direction == 1, direction == -1
        axis.scatter(ts[buys], price[buys], marker="^", s=18, color="tab:red", label="buy signal", zorder=3)
        axis.scatter(ts[sells], price[sells], marker="v", s=18, color="black", label="sell signal", zorder=3)
        axis.set_title(f"{product}  (mean reversion)", fontsize=10, loc="left")
        axis.set_ylabel("EUR/MWh")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="upper left", ncol=5)
    axes[-1, 0].set_xlabel("event time (UTC)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
