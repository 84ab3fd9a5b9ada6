"""Position rows: a product's position, average price, mark and PnL at a moment (the ``positions`` topic and
table). ``operators.positions`` keeps the books that produce them."""

from __future__ import annotations

from dataclasses import dataclass

#: The product column of the account total row.
TOTAL = "TOTAL"


@dataclass(frozen=True, slots=True)
class PositionRow:
    """One row of the QuestDB ``positions`` table (``product`` is ``TOTAL`` for the account total)."""

    ts_ns: int
    product: str
    position_mw: float
    avg_price_eur_per_mwh: float
    mark_eur_per_mwh: float
    realised_pnl_eur: float
    unrealised_pnl_eur: float
    pnl_eur: float
    traded_mw: float
    imbalance_exposure_mw: float
    gate_closed: bool
    trading_state: str
