"""The ``decisions`` topic's format: the order sink's write-ahead log of the engine's new orders, one JSON object
per decision (a :class:`~wattflow.orders.Submit`), produced before the order may go out and keyed by client order
id. A :class:`LoggedDecision` is what a resumed sink reads back: enough to tell the decision again (its id, its
product and the model and signal time that caused it) and to compare its terms with a new decision's."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from wattflow.orders import Submit

#: The record's status: decided and logged, not necessarily sent.
DECIDED = "DECIDED"


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    """One decision read back from the log (``offset``: where it is in the log, -1 if not read from it)."""

    client_order_id: str
    product: str
    model: str
    side: int
    price_eur_per_mwh: float
    quantity_mw: float
    tif: str
    display_quantity_mw: float | None
    signal_ts_ns: int
    ts_ns: int
    decided_wall_ns: int = 0
    offset: int = -1

    def terms(self) -> tuple[Any, ...]:
        """What the venue compares under one client order id (a different one is DUPLICATE_CLIENT_ORDER_ID)."""
        return terms_of(self.product, self.side, self.price_eur_per_mwh, self.quantity_mw, tif=self.tif,
                        display_quantity_mw=self.display_quantity_mw)


def terms_of(product: str, side: int, price_eur_per_mwh: float, quantity_mw: float, *, tif: str,
             display_quantity_mw: float | None) -> tuple[Any, ...]:
    display = None if display_quantity_mw is None or not math.isfinite(display_quantity_mw) else \
        round(display_quantity_mw, 6)
    return product, int(side), round(price_eur_per_mwh, 6), round(quantity_mw, 6), str(tif), display


def submit_terms(command: Submit) -> tuple[Any, ...]:
    plan = command.plan
    return terms_of(plan.product, int(plan.side), plan.price_eur_per_mwh, plan.quantity_mw, tif=str(plan.tif),
                    display_quantity_mw=plan.display_quantity_mw)


def encode_decision(command: Submit) -> bytes:
    plan = command.plan
    return orjson.dumps({
        "status": DECIDED, "client_order_id": plan.client_order_id, "product": plan.product, "model": plan.model,
        "side": int(plan.side), "price_eur_per_mwh": plan.price_eur_per_mwh, "quantity_mw": plan.quantity_mw,
        "tif": str(plan.tif), "display_quantity_mw": plan.display_quantity_mw, "signal_ts_ns": plan.signal_ts_ns,
        "ts_ns": command.ts_ns, "reduce_only": command.reduce_only, "decided_wall_ns": command.decided_wall_ns})


def decode_decision(value: bytes, offset: int = -1) -> LoggedDecision:
    """A decision back from its message; raises ``ValueError`` (or ``KeyError``) on a malformed one."""
    message = orjson.loads(value)
    if not isinstance(message, dict) or message.get("status") != DECIDED:
        raise ValueError("not a decision record")
    display = message.get("display_quantity_mw")
    return LoggedDecision(str(message["client_order_id"]), str(message["product"]), str(message["model"]),
                          int(message["side"]), float(message["price_eur_per_mwh"]), float(message["quantity_mw"]),
                          str(message["tif"]), None if display is None else float(display),
                          int(message["signal_ts_ns"]), int(message["ts_ns"]), int(message.get("decided_wall_ns") or 0),
                          offset)
