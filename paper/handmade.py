"""Small hand-made feeds for tests and examples: a list of trades and book updates as a FeedFrame."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from connectors.feeds.files import BOOK, TRADE, FeedFrame
from wattflow.domain import Product, Side


@dataclass(frozen=True, slots=True)
class BookEvent:
    """Set level ``level`` of one side of a product's book (``quantity_mw`` 0 removes the level)."""

    ts_ns: int
    product: str
    side: Side
    level: int
    price_eur_per_mwh: float
    quantity_mw: float


@dataclass(frozen=True, slots=True)
class TradeEvent:
    """A market trade; ``side`` is the aggressor side."""

    ts_ns: int
    product: str
    side: Side
    price_eur_per_mwh: float
    quantity_mw: float


def handmade_feed(events: Sequence[BookEvent | TradeEvent], source: str = "handmade") -> FeedFrame:
    """A feed frame of the given events, in the given order (sort them by time yourself, or call
    :meth:`FeedFrame.sort_by_time`)."""
    keys: dict[str, int] = {}
    n = len(events)
    event_type = np.empty(n, np.int8)
    level = np.full(n, -1, np.int8)
    trade_id = np.full(n, -1, np.int64)
    for i, event in enumerate(events):
        if isinstance(event, BookEvent):
            event_type[i] = BOOK
            level[i] = event.level
        else:
            event_type[i] = TRADE
            trade_id[i] = i
    products = [Product.parse(e.product) for e in events]
    return FeedFrame(
        event_type=event_type,
        ts_ns=np.array([e.ts_ns for e in events], np.int64),
        key_code=np.array([keys.setdefault(e.product, len(keys)) for e in events], np.int32),
        keys=tuple(keys),
        side=np.array([int(e.side) for e in events], np.int8),
        level=level,
        price_eur_per_mwh=np.array([e.price_eur_per_mwh for e in events], np.float64),
        quantity_mw=np.array([e.quantity_mw for e in events], np.float64),
        trade_id=trade_id,
        delivery_start_ns=np.array([p.delivery_start_ns for p in products], np.int64),
        duration_min=np.array([p.duration_min for p in products], np.int16),
        source_code=np.zeros(n, np.int16),
        sources=(source,),
        seq=np.arange(n, dtype=np.int64),
    )
