"""Position rows as QuestDB rows: the column layout of the ``positions`` table (``connectors.questdb.tables``).

``area`` is the area part of the product key, ``ALL`` for the account ``TOTAL`` row. A NaN average or mark
(a flat position, the total) is stored as NULL.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from connectors.questdb.sink import TableRows
from wattflow.domain import product_area
from wattflow.positions import TOTAL, PositionRow

#: The area column of the account total row.
ALL_AREAS = "ALL"


def _area(product: str) -> str:
    return ALL_AREAS if product == TOTAL else product_area(product)


def position_rows(rows: list[PositionRow], table: str = "positions") -> TableRows:
    frame = pd.DataFrame({
        "ts": np.array([r.ts_ns for r in rows], dtype=np.int64).view("datetime64[ns]"),
        "product": pd.Categorical([r.product for r in rows]),
        "area": pd.Categorical([_area(r.product) for r in rows]),
        **{name: np.array([getattr(r, name) for r in rows], dtype=np.float64) for name in (
            "position_mw", "avg_price_eur_per_mwh", "mark_eur_per_mwh", "realised_pnl_eur", "unrealised_pnl_eur",
            "pnl_eur", "traded_mw", "imbalance_exposure_mw")},
        "gate_closed": np.array([r.gate_closed for r in rows], dtype=np.bool_),
        "trading_state": pd.Categorical([r.trading_state for r in rows]),
    })
    return TableRows(table, frame, ("product", "area", "trading_state"))
