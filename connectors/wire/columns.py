"""Columnar messages (``features``, ``signals``): one JSON object per product and batch, columns as arrays."""

from __future__ import annotations

#: At most this many rows in one features or signals message (a features row is about 40 numbers: ~0.6 MB).
MAX_ROWS_PER_MESSAGE = 1_000


def chunks(n: int) -> list[slice]:
    return [slice(start, min(start + MAX_ROWS_PER_MESSAGE, n)) for start in range(0, n, MAX_ROWS_PER_MESSAGE)]
