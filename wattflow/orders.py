"""Order commands: what the execution engine asks of the venue, and the plan behind each order.

The engine (``operators.execution``) decides; the order sink (``connectors.venue.order_sink``) carries the
commands out. An order's client order id is deterministic (derived from the signal that caused it), so a
retried or replayed command is recognised by the venue instead of trading twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from wattflow.domain import Side
from wattflow.enums import CancelReason, OrderAction, TimeInForce


@dataclass(frozen=True, slots=True)
class OrderPlan:
    """A limit order to place, with why and what it is expected to cost."""

    client_order_id: str
    product: str
    model: str
    side: Side
    price_eur_per_mwh: float
    quantity_mw: float
    tif: TimeInForce
    urgency: float
    arrival_mid_eur_per_mwh: float
    estimated_slippage_eur_per_mwh: float
    signal_ts_ns: int
    display_quantity_mw: float | None = None  # an iceberg's visible clip


@dataclass(frozen=True, slots=True)
class Submit:
    """Send this order to the venue (the sink retries it under the same client order id)."""

    plan: OrderPlan
    ts_ns: int  # event time of the decision
    reduce_only: bool = False
    decided_wall_ns: int = 0  # wall clock when the engine decided (for latency figures only)

    @property
    def client_order_id(self) -> str:
        return self.plan.client_order_id

    @property
    def product(self) -> str:
        return self.plan.product


@dataclass(frozen=True, slots=True)
class Cancel:
    client_order_id: str
    product: str
    reason: CancelReason
    ts_ns: int


@dataclass(frozen=True, slots=True)
class CancelAll:
    product: str | None  # None: every product
    reason: CancelReason  # HALTED or REDUCING
    ts_ns: int


Command = Submit | Cancel | CancelAll


@dataclass(slots=True)
class OrderRecord:
    """One command and what came of it (a row of ``orders``, a message on the ``orders`` topic)."""

    ts_ns: int
    product: str
    client_order_id: str
    action: OrderAction
    status: str  # ACKED, REPLAYED, REJECTED, UNKNOWN, BLOCKED, RESENT, CANCELLED, CANCELLED_UNSENT, ...
    model: str = ""
    side: int = 0
    price_eur_per_mwh: float = float("nan")
    quantity_mw: float = float("nan")
    tif: str = ""
    urgency: float = float("nan")
    arrival_mid_eur_per_mwh: float = float("nan")
    estimated_slippage_eur_per_mwh: float = float("nan")
    signal_ts_ns: int = 0
    attempts: int = 0
    latency_ns: int = 0
    reason: str = ""
    decided_wall_ns: int = 0   # wall clock when the engine decided (Submit only)
    answered_wall_ns: int = 0  # wall clock when the venue's answer arrived (0: no answer, e.g. never sent)
    display_quantity_mw: float | None = None
    sent_wall_ns: int = 0      # wall clock when the request was handed to the HTTP client (0: never sent)
