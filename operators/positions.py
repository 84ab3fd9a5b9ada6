"""Positions and PnL per product, marked to market: pure logic, no I/O, picklable.

``Positions`` takes fills (``on_fill``), mid prices (``mark``) and gate closures (``on_gate_closure``) and
answers with ``PositionRow`` s, one per product plus an account ``TOTAL``, the rows of QuestDB's ``positions``
table.

Units: positions and quantities MW (signed: buy +, sell -), prices EUR/MWh (negative prices are normal),
money EUR, times UTC ns. A product delivers ``position_mw x delivery_hours`` MWh, where the hours come from
the product key's duration (PT15M = 0.25 h, PT30M = 0.5 h, PT60M = 1 h).

Average-cost accounting, per product:

* A fill that opens or adds to a position moves the average price to the quantity-weighted mean of the
  old average and the fill price: ``avg = (position x avg + q x price) / (position + q)`` with ``q`` signed.
* A fill against the position realises ``closed_mw x sign(position) x (price - avg) x hours`` EUR for the
  part it closes (``closed_mw = min(|q|, |position|)``); the average of what remains does not change. If the
  fill goes through zero, the rest opens a new position at the fill price. A flat position has no average
  (NaN).
* ``unrealised = (mark - avg) x position_mw x hours``; ``pnl = realised + unrealised``. Every formula is on
  signed prices, so a long bought at -20 and marked at -5 earns 15 EUR/MWh.
* The mark is the latest finite mid given to ``mark``; before the first one, the price of the latest fill
  (so an unmarked position shows no unrealised PnL rather than a made-up one). NaN marks are ignored.
* ``traded_mw`` is the sum of ``|q|`` over the product's fills.

Hence, for any sequence of fills, ``pnl = cash + position_mw x mark x hours`` where
``cash = -sum(side x q x price x hours)``: once flat, the PnL is exactly the cash the trades moved.

At gate closure a product can no longer be traded; what is still open will be settled against the
imbalance price, so ``on_gate_closure`` flags it: ``imbalance_exposure_mw = position_mw`` (signed: long is a
surplus, short a shortfall) and ``gate_closed = True``. A fill that arrives after closure (a late report of
a trade made before it) still counts and updates the exposure.

The ``TOTAL`` row covers the whole account, whatever products ``rows`` was asked for: it sums realised,
unrealised and total PnL, ``traded_mw``, the **signed** positions (MW of different delivery periods added
up: a net figure for a glance, not a physical position) and the **absolute** imbalance exposures (a long in
one quarter hour does not offset a short in another: each settles on its own). Its average and mark are NaN;
its ``gate_closed`` is true when every product's gate has closed.

MW figures are rounded to 6 decimals so that sums of 0.1 MW steps do not drift (as in ``operators.risk``).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass

from wattflow.domain import Product
from wattflow.positions import TOTAL, PositionRow

#: Positions are rounded to this many decimals of a MW so that sums of 0.1 MW steps do not drift.
_MW_DECIMALS = 6


def _round_mw(value: float) -> float:
    return round(value, _MW_DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0


def _state(trading_state: str | enum.Enum) -> str:
    return str(trading_state.value) if isinstance(trading_state, enum.Enum) else str(trading_state)


def delivery_hours(product: str) -> float:
    """Hours of delivery of a product key (PT15M: 0.25); raises ValueError for a key that does not parse."""
    return Product.parse(product).duration_min / 60.0


@dataclass(slots=True)
class ProductPosition:
    """The book of one product: plain numbers, so it pickles as is."""

    hours: float
    position_mw: float = 0.0
    avg_price_eur_per_mwh: float = math.nan
    mark_eur_per_mwh: float = math.nan
    last_fill_price_eur_per_mwh: float = math.nan
    realised_pnl_eur: float = 0.0
    traded_mw: float = 0.0
    fills: int = 0
    gate_closed: bool = False

    @property
    def effective_mark_eur_per_mwh(self) -> float:
        return self.mark_eur_per_mwh if math.isfinite(self.mark_eur_per_mwh) else self.last_fill_price_eur_per_mwh

    @property
    def unrealised_pnl_eur(self) -> float:
        if self.position_mw == 0.0:
            return 0.0
        return (self.effective_mark_eur_per_mwh - self.avg_price_eur_per_mwh) * self.position_mw * self.hours

    @property
    def imbalance_exposure_mw(self) -> float:
        return self.position_mw if self.gate_closed else 0.0

    def fill(self, signed_mw: float, price_eur_per_mwh: float) -> None:
        position = self.position_mw
        if position == 0.0 or (position > 0) == (signed_mw > 0):
            new_position = _round_mw(position + signed_mw)
            avg = 0.0 if position == 0.0 else self.avg_price_eur_per_mwh
            self.avg_price_eur_per_mwh = (position * avg + signed_mw * price_eur_per_mwh) / (position + signed_mw)
        else:
            closed_mw = min(abs(signed_mw), abs(position))
            direction = 1.0 if position > 0 else -1.0
            self.realised_pnl_eur += closed_mw * direction * (price_eur_per_mwh - self.avg_price_eur_per_mwh) \
                * self.hours
            new_position = _round_mw(position + signed_mw)
            if new_position == 0.0:
                self.avg_price_eur_per_mwh = math.nan
            elif (new_position > 0) != (position > 0):  # through zero: the rest opens at the fill price
                self.avg_price_eur_per_mwh = price_eur_per_mwh
        self.position_mw = new_position
        self.traded_mw = _round_mw(self.traded_mw + abs(signed_mw))
        self.last_fill_price_eur_per_mwh = price_eur_per_mwh
        self.fills += 1

    def row(self, product: str, ts_ns: int, trading_state: str) -> PositionRow:
        unrealised = self.unrealised_pnl_eur
        return PositionRow(
            ts_ns=ts_ns, product=product, position_mw=self.position_mw,
            avg_price_eur_per_mwh=self.avg_price_eur_per_mwh, mark_eur_per_mwh=self.effective_mark_eur_per_mwh,
            realised_pnl_eur=self.realised_pnl_eur, unrealised_pnl_eur=unrealised,
            pnl_eur=self.realised_pnl_eur + unrealised, traded_mw=self.traded_mw,
            imbalance_exposure_mw=self.imbalance_exposure_mw, gate_closed=self.gate_closed,
            trading_state=trading_state,
        )


class Positions:
    """Signed positions, average prices, marks and PnL of every product the account traded."""

    def __init__(self) -> None:
        self.books: dict[str, ProductPosition] = {}
        #: Event time of the latest fill, mark or gate closure taken (UTC ns), 0 before any.
        self.last_ts_ns = 0

    def _book(self, product: str) -> ProductPosition:
        book = self.books.get(product)
        if book is None:
            book = self.books[product] = ProductPosition(hours=delivery_hours(product))
        return book

    def _seen(self, ts_ns: int) -> None:
        self.last_ts_ns = max(self.last_ts_ns, ts_ns)

    def on_fill(self, product: str, side: int, quantity_mw: float, price_eur_per_mwh: float, ts_ns: int) -> None:
        """Take a fill: ``side`` +1 buy / -1 sell, ``quantity_mw`` > 0, any finite price."""
        if side not in (1, -1):
            raise ValueError(f"fill on {product}: side={side!r}, expected +1 (buy) or -1 (sell)")
        if not (math.isfinite(quantity_mw) and quantity_mw > 0):
            raise ValueError(f"fill on {product}: quantity_mw={quantity_mw}, expected a finite value > 0")
        if not math.isfinite(price_eur_per_mwh):
            raise ValueError(f"fill on {product}: price_eur_per_mwh={price_eur_per_mwh}, expected a finite price")
        self._book(product).fill(int(side) * quantity_mw, price_eur_per_mwh)
        self._seen(ts_ns)

    def mark(self, product: str, mark_eur_per_mwh: float, ts_ns: int) -> None:
        """Mark a product at a mid price; a NaN or infinite mid (a one-sided or empty book) is ignored."""
        if not math.isfinite(mark_eur_per_mwh):
            return
        self._book(product).mark_eur_per_mwh = mark_eur_per_mwh
        self._seen(ts_ns)

    def on_gate_closure(self, product: str, ts_ns: int,
                        trading_state: str | enum.Enum = "ACTIVE") -> PositionRow | None:
        """Close a product's gate: what is still open becomes imbalance exposure; returns the product's row.

        None if the product was never traded (nothing to flag). Closing twice changes nothing.
        """
        book = self.books.get(product)
        if book is None or not book.fills:
            return None
        book.gate_closed = True
        self._seen(ts_ns)
        return book.row(product, ts_ns, _state(trading_state))

    def position_mw(self, product: str) -> float:
        book = self.books.get(product)
        return book.position_mw if book is not None else 0.0

    def traded_products(self) -> list[str]:
        """Products with at least one fill, in the order they were first traded or marked."""
        return [product for product, book in self.books.items() if book.fills]

    def rows(self, ts_ns: int, trading_state: str | enum.Enum = "ACTIVE",
             products: Iterable[str] | None = None) -> list[PositionRow]:
        """A row per traded product (every one, or those given that were traded), then the account TOTAL.

        ``trading_state`` is a string or a ``TradingState`` (its value is written).
        """
        state = _state(trading_state)
        traded = self.traded_products()
        wanted = traded if products is None else [p for p in dict.fromkeys(products) if p in self.books
                                                  and self.books[p].fills]
        out = [self.books[product].row(product, ts_ns, state) for product in wanted]
        out.append(self.total(ts_ns, state))
        return out

    def total(self, ts_ns: int, trading_state: str = "ACTIVE") -> PositionRow:
        books = [book for book in self.books.values() if book.fills]
        realised = sum(book.realised_pnl_eur for book in books)
        unrealised = sum(book.unrealised_pnl_eur for book in books)
        return PositionRow(
            ts_ns=ts_ns, product=TOTAL,
            position_mw=_round_mw(sum(book.position_mw for book in books)),
            avg_price_eur_per_mwh=math.nan, mark_eur_per_mwh=math.nan,
            realised_pnl_eur=realised, unrealised_pnl_eur=unrealised, pnl_eur=realised + unrealised,
            traded_mw=_round_mw(sum(book.traded_mw for book in books)),
            imbalance_exposure_mw=_round_mw(sum(abs(book.imbalance_exposure_mw) for book in books)),
            gate_closed=bool(books) and all(book.gate_closed for book in books),
            trading_state=trading_state,
        )
