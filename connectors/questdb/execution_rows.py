"""Rows of the execution tables: ``orders`` (one per command and outcome), ``execution_reports`` and
``events``.

The same record gives the same row whether a flow writes it directly or the store flow writes it from its topic
(a message decoded back), so that the tables' dedup keys fold the two into one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import pandas as pd

from connectors.questdb.sink import TableRows
from wattflow.domain import product_area
from wattflow.events import Event
from wattflow.orders import OrderRecord

_ORDER_COLUMNS = ("ts", "product", "area", "client_order_id", "action", "status", "model", "side",
                  "price_eur_per_mwh", "quantity_mw", "tif", "urgency", "arrival_mid_eur_per_mwh",
                  "estimated_slippage_eur_per_mwh", "signal_ts", "attempts", "latency_ns", "reason", "answered_ts")


def _ts(values: list[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).view("datetime64[ns]")


def _answered(records: list[OrderRecord]) -> np.ndarray:
    """When the venue answered, on the order sink's wall clock; NULL (NaT) for an outcome without an answer (an
    order never sent)."""
    answered = _ts([r.answered_wall_ns for r in records])
    return np.where(answered == np.datetime64(0, "ns"), np.datetime64("NaT", "ns"), answered)


def order_rows(records: list[OrderRecord]) -> TableRows:
    """One row per command and outcome. ``ts`` is the decision's event time (the answer's wall time for a resend,
    which has none); ``answered_ts`` tells two outcomes of one command apart (dedup keys ``ts, client_order_id,
    action, status, answered_ts``)."""
    wall = [r.ts_ns or r.answered_wall_ns for r in records]
    frame = pd.DataFrame({
        "ts": _ts(wall), "product": [r.product for r in records], "area": [product_area(r.product) for r in records],
        "client_order_id": [r.client_order_id for r in records], "action": [r.action for r in records],
        "status": [r.status for r in records], "model": [r.model for r in records],
        "side": np.asarray([r.side for r in records], dtype=np.int32),
        "price_eur_per_mwh": [r.price_eur_per_mwh for r in records],
        "quantity_mw": [r.quantity_mw for r in records], "tif": [r.tif for r in records],
        "urgency": [r.urgency for r in records],
        "arrival_mid_eur_per_mwh": [r.arrival_mid_eur_per_mwh for r in records],
        "estimated_slippage_eur_per_mwh": [r.estimated_slippage_eur_per_mwh for r in records],
        "signal_ts": _ts([r.signal_ts_ns for r in records]),
        "attempts": np.asarray([r.attempts for r in records], dtype=np.int32),
        "latency_ns": np.asarray([r.latency_ns for r in records], dtype=np.int64),
        "reason": [str(r.reason) for r in records], "answered_ts": _answered(records),
    }, columns=list(_ORDER_COLUMNS))
    return TableRows("orders", frame, ("product", "area", "action", "status", "model", "tif"))


def report_rows(reports: list[dict[str, Any]]) -> TableRows:
    def column(name: str, default: Any = float("nan")) -> list[Any]:
        return [default if r.get(name) is None else r[name] for r in reports]

    def floats(name: str, default: float = float("nan")) -> np.ndarray:
        # DOUBLE columns as float64, whatever JSON number a report carried (45 and 45.0 are one price).
        return np.asarray(column(name, default), dtype=np.float64)

    products = [str(r["product"]) for r in reports]
    frame = pd.DataFrame({
        "ts": _ts([int(r["ts_ns"]) for r in reports]), "product": products, "area": [product_area(p) for p in products],
        "client_order_id": [str(r["client_order_id"]) for r in reports],
        "exec_id": np.asarray(column("exec_id", 0), dtype=np.int64), "kind": column("kind", ""),
        "status": column("status", ""), "side": np.asarray(column("side", 0), dtype=np.int32),
        "price_eur_per_mwh": floats("price_eur_per_mwh"), "last_price_eur_per_mwh": floats("last_price_eur_per_mwh"),
        "last_quantity_mw": floats("last_quantity_mw", 0.0), "cum_quantity_mw": floats("cum_quantity_mw", 0.0),
        "leaves_quantity_mw": floats("leaves_quantity_mw", 0.0), "liquidity": column("liquidity", ""),
        "reason": column("reason", ""), "source": column("source", "venue"),
    })
    return TableRows("execution_reports", frame, ("product", "area", "kind", "status", "liquidity", "reason",
                                                  "source"))


def event_id(kind: str, product: str, detail: str) -> int:
    """A stable 63-bit id of an event's content: two events at the same time are two rows, and the same event
    written again (a replay) is one."""
    digest = hashlib.blake2b(f"{kind}|{product}|{detail}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def event_rows(events: list[Event], source: str | Sequence[str]) -> TableRows:
    """Events as rows; ``source`` is the component that recorded them (one for all, or one per event)."""
    sources = [source] * len(events) if isinstance(source, str) else [str(s) for s in source]
    if len(sources) != len(events):
        raise ValueError(f"{len(events)} events but {len(sources)} sources")
    details = [orjson.dumps(e.detail, default=str, option=orjson.OPT_SORT_KEYS).decode() for e in events]
    frame = pd.DataFrame({
        "ts": _ts([e.ts_ns for e in events]), "kind": [e.kind for e in events], "source": sources,
        "product": [e.product for e in events], "severity": [e.severity for e in events], "detail": details,
        "event_id": np.asarray([event_id(e.kind, e.product, d) for e, d in zip(events, details, strict=True)],
                               dtype=np.int64),
    })
    return TableRows("events", frame, ("kind", "source", "product", "severity"))
