"""What the paper exchange answers: order statuses, execution types, reject and cancel reasons, execution
reports, fills, order reports and book snapshots (its own vocabulary: the venue is the outside world)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class OrderStatus(enum.StrEnum):
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"


class ExecType(enum.StrEnum):
    ACK = "ack"
    FILL = "fill"
    CANCEL = "cancel"
    REJECT = "reject"


class Reason(enum.StrEnum):
    """Why an order was rejected or cancelled."""

    INVALID_CLIENT_ORDER_ID = "INVALID_CLIENT_ORDER_ID"
    DUPLICATE_CLIENT_ORDER_ID = "DUPLICATE_CLIENT_ORDER_ID"
    UNKNOWN_PRODUCT = "UNKNOWN_PRODUCT"
    INVALID_SIDE = "INVALID_SIDE"
    INVALID_TIF = "INVALID_TIF"
    INVALID_PRICE = "INVALID_PRICE"
    INVALID_PRICE_TICK = "INVALID_PRICE_TICK"
    PRICE_OUT_OF_RANGE = "PRICE_OUT_OF_RANGE"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    INVALID_QUANTITY_STEP = "INVALID_QUANTITY_STEP"
    INVALID_DISPLAY_QUANTITY = "INVALID_DISPLAY_QUANTITY"
    INVALID_DISPLAY_QUANTITY_STEP = "INVALID_DISPLAY_QUANTITY_STEP"
    DISPLAY_QUANTITY_NOT_GTC = "DISPLAY_QUANTITY_NOT_GTC"
    NOT_OPEN = "NOT_OPEN"
    GATE_CLOSED = "GATE_CLOSED"
    IOC_REMAINDER = "IOC_REMAINDER"
    FOK_NOT_FILLED = "FOK_NOT_FILLED"
    CANCELLED_BY_CLIENT = "CANCELLED_BY_CLIENT"


class Liquidity(enum.StrEnum):
    TAKER = "TAKER"
    MAKER = "MAKER"


class UnknownOrderError(KeyError):
    """No order was ever submitted under this client order id."""


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """One event of one order: ack, fill (with ``exec_id`` and last price/quantity), cancel or reject."""

    exec_id: int
    kind: ExecType
    ts_ns: int
    client_order_id: str
    order_id: int
    product: str
    side: int
    price_eur_per_mwh: float
    status: OrderStatus
    last_price_eur_per_mwh: float | None = None
    last_quantity_mw: float = 0.0
    cum_quantity_mw: float = 0.0
    leaves_quantity_mw: float = 0.0
    liquidity: Liquidity | None = None
    reason: Reason | None = None


@dataclass(frozen=True, slots=True)
class Fill:
    exec_id: int
    ts_ns: int
    client_order_id: str
    order_id: int
    product: str
    side: int
    price_eur_per_mwh: float
    quantity_mw: float
    liquidity: Liquidity


@dataclass(frozen=True, slots=True)
class OrderReport:
    """The state of one order, plus the execution reports the call that returned it produced."""

    client_order_id: str
    order_id: int
    product: str
    side: int
    price_eur_per_mwh: float
    quantity_mw: float
    tif: str
    status: OrderStatus
    filled_quantity_mw: float
    leaves_quantity_mw: float
    avg_price_eur_per_mwh: float | None
    reason: Reason | None
    replayed: bool = False
    executions: tuple[ExecutionReport, ...] = ()
    display_quantity_mw: float | None = None  # an iceberg's visible clip; None for a plain order

    @property
    def is_open(self) -> bool:
        return self.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """The played book of one product: (price, quantity) per level, best first."""

    product: str
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]
