"""Columnar batches: how ticks and book updates travel through the flows.

A batch is a few hundred to many thousand records as parallel numpy columns. Per-record Python objects
are the enemy of throughput (about 15 us per tick through a per-event Bytewax pipeline against about
1 us batched), so operators and sinks take and give batches. Product keys are strings in an object column;
everything else is a fixed-width number. ``offset`` is the Kafka offset each row came from (-1 when the
row did not come from Kafka) and ``index`` its place in a packed message (-1 for a message of its own), so a
rejected row can always be traced to its origin. ``wire`` holds each
row's message bytes in the canonical wire form (or, for an event that came in a packed message, its decoded
struct), so that clean topics forward them without encoding each again.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

from wattflow.errors import Origin

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
I8 = NDArray[np.int8]
Obj = NDArray[np.object_]


@dataclass(frozen=True, slots=True, eq=False)
class _Columns:
    """Shared behaviour of the batch types: length, row selection, concatenation."""

    def __len__(self) -> int:
        return len(self.ts_ns)  # type: ignore[attr-defined]

    @classmethod
    def names(cls) -> tuple[str, ...]:
        # dataclasses.fields() costs microseconds a call, and batches are cut into many small pieces.
        cached: tuple[str, ...] | None = cls.__dict__.get("_names")
        if cached is None:
            cached = tuple(f.name for f in fields(cls))
            type.__setattr__(cls, "_names", cached)
        return cached

    def take(self, rows: NDArray[Any]) -> Self:
        return type(self)(**{name: getattr(self, name)[rows] for name in self.names()})

    @classmethod
    def concat(cls, batches: list[Self]) -> Self:
        return cls(**{name: np.concatenate([getattr(b, name) for b in batches]) for name in cls.names()})

    @classmethod
    def empty(cls) -> Self:
        return cls(**{name: np.empty(0, dtype=_DTYPES[name]) for name in cls.names()})


@dataclass(frozen=True, slots=True, eq=False)
class TickBatch(_Columns):
    """Trades. ``side`` is the aggressor side (+1 buy, -1 sell)."""

    ts_ns: I64
    recv_ns: I64
    product: Obj
    price_eur_per_mwh: F64
    quantity_mw: F64
    side: I8
    trade_id: I64
    source: Obj
    seq: I64
    offset: I64
    index: I64
    wire: Obj


@dataclass(frozen=True, slots=True, eq=False)
class BookBatch(_Columns):
    """L2 book updates: one level of one side; ``quantity_mw`` 0 removes the level."""

    ts_ns: I64
    recv_ns: I64
    product: Obj
    side: I8
    level: I64
    price_eur_per_mwh: F64
    quantity_mw: F64
    source: Obj
    seq: I64
    offset: I64
    index: I64
    wire: Obj


@dataclass(frozen=True, slots=True, eq=False)
class DayAheadBatch(_Columns):
    """Day-ahead auction results: ``ts_ns`` is the publication time."""

    ts_ns: I64
    recv_ns: I64
    area: Obj
    delivery_start_ns: I64
    duration_min: I64
    price_eur_per_mwh: F64
    source: Obj
    seq: I64
    offset: I64
    index: I64
    wire: Obj


_DTYPES: dict[str, Any] = {
    "ts_ns": np.int64, "recv_ns": np.int64, "product": object, "area": object, "source": object,
    "price_eur_per_mwh": np.float64, "quantity_mw": np.float64, "side": np.int8, "trade_id": np.int64,
    "seq": np.int64, "offset": np.int64, "level": np.int64, "delivery_start_ns": np.int64,
    "duration_min": np.int64, "wire": object, "index": np.int64,
}


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that could not be used, with why (an UPPER_SNAKE reason code) and where it came from."""

    ts_ns: int
    origin: Origin
    reason: str
    error: str
    payload: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "ts_ns": self.ts_ns,
            "origin": str(self.origin),
            "topic": self.origin.topic,
            "partition": self.origin.partition,
            "offset": self.origin.offset,
            "reason": self.reason,
            "error": self.error,
            "payload": self.payload.decode("utf-8", errors="replace"),
        }


@dataclass(frozen=True, slots=True)
class RawBatch:
    """Messages as read from one Kafka partition: values, offsets and broker timestamps (ns)."""

    topic: str
    partition: int
    values: list[bytes | None]
    offsets: I64
    timestamps_ns: I64

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True, slots=True)
class IngestBatch:
    """What validation makes of a raw batch: clean records by type, and the dead letters."""

    ticks: TickBatch
    book: BookBatch
    dayahead: DayAheadBatch
    dead: list[DeadLetter]
    topic: str
    partition: int

    @property
    def valid(self) -> int:
        return len(self.ticks) + len(self.book) + len(self.dayahead)

    def without_day_ahead(self) -> IngestBatch:
        """The same batch with no day-ahead prices (the trades and book updates only)."""
        return IngestBatch(self.ticks, self.book, DayAheadBatch.empty(), self.dead, self.topic, self.partition)
