"""Columnar messages (``features``, ``signals``): one JSON object per product and batch, columns as arrays.

Writing, NaN (and an infinity) becomes JSON ``null`` (orjson); reading, ``null`` comes back as NaN. Every other
float comes back bit for bit (orjson writes the shortest representation that round-trips).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
import numpy as np
from numpy.typing import NDArray

#: At most this many rows in one features or signals message (a features row is about 40 numbers: ~0.6 MB).
MAX_ROWS_PER_MESSAGE = 1_000

#: An integer column's values: 64-bit signed, as the tables store them.
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
#: A float column's values: a number, or null for NaN (JSON has no NaN).
Float = float | None


def chunks(n: int) -> list[slice]:
    return [slice(start, min(start + MAX_ROWS_PER_MESSAGE, n)) for start in range(0, n, MAX_ROWS_PER_MESSAGE)]


def int_column(values: list[int], n: int, name: str) -> NDArray[np.int64]:
    """A decoded integer column as int64, checked to have ``n`` rows."""
    if len(values) != n:
        raise ValueError(f"column {name} has {len(values)} values, ts_ns has {n}")
    return np.array(values, dtype=np.int64)


def float_column(values: list[float | None], n: int, name: str) -> NDArray[np.float64]:
    """A decoded float column as float64 (``null`` -> NaN), checked to have ``n`` rows."""
    if len(values) != n:
        raise ValueError(f"column {name} has {len(values)} values, ts_ns has {n}")
    return np.array(values, dtype=np.float64)

