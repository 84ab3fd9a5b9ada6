"""The recorded-feed format: trades, L2 book updates and day-ahead prices in one columnar frame.

A feed is kept columnar (numpy arrays) because a simulated area-day has up to a million events and a
load test many more; a Python object per event would be the bottleneck. On disk a feed is either
JSON lines (``.jsonl``, ``.jsonl.gz``), one object per event in exactly the Kafka raw-message form, or
Parquet (``.parquet``) with the same fields as columns. Both round-trip exactly.

Wire form (field names are the Kafka contract; keep them)::

    {"type":"trade","ts_ns":..,"product":..,"price_eur_per_mwh":..,"quantity_mw":..,"side":"BUY"|"SELL",
     "trade_id":..,"source":..,"seq":..}
    {"type":"book","ts_ns":..,"product":..,"side":..,"level":..,"price_eur_per_mwh":..,"quantity_mw":..,
     "source":..,"seq":..}
    {"type":"dayahead","ts_ns":..,"area":..,"delivery_start_ns":..,"duration_min":..,"price_eur_per_mwh":..,
     "source":..,"seq":..}

``level`` counts from 0 (the best price of that side); a book update with ``quantity_mw`` 0 removes
the level. ``side`` of a trade is the aggressor side.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from wattflow.domain import AREAS, DayAheadPrice, Product, datetime_to_ns, ns_to_datetime, product_area
from wattflow.errors import FeedFormatError, Origin, RecordError

TRADE, BOOK, DAYAHEAD = 0, 1, 2
EVENT_TYPES: tuple[str, ...] = ("trade", "book", "dayahead")
_TYPE_CODES = {name: code for code, name in enumerate(EVENT_TYPES)}
_SIDE_NAMES = {1: "BUY", -1: "SELL"}
_SIDE_CODES = {"BUY": 1, "SELL": -1}


@dataclass(frozen=True, eq=False, slots=True)
class FeedFrame:
    """Events of a feed as parallel numpy columns (row i is event i, in feed order).

    Strings are dictionary-encoded: ``key_code`` indexes ``keys`` (the product key of a trade or book
    update, the area of a day-ahead price) and ``source_code`` indexes ``sources``. A field an event
    type does not have holds a sentinel: ``side`` 0, ``level`` -1, ``quantity_mw`` NaN, ``trade_id`` -1.
    ``delivery_start_ns`` and ``duration_min`` are filled for every event (from the product key for
    trades and book updates), so consumers need not parse keys.
    """

    event_type: NDArray[np.int8]
    ts_ns: NDArray[np.int64]
    key_code: NDArray[np.int32]
    keys: tuple[str, ...]
    side: NDArray[np.int8]
    level: NDArray[np.int8]
    price_eur_per_mwh: NDArray[np.float64]
    quantity_mw: NDArray[np.float64]
    trade_id: NDArray[np.int64]
    delivery_start_ns: NDArray[np.int64]
    duration_min: NDArray[np.int16]
    source_code: NDArray[np.int16]
    sources: tuple[str, ...]
    seq: NDArray[np.int64]

    def __post_init__(self) -> None:
        length = len(self.ts_ns)
        for column, dtype in _COLUMN_DTYPES.items():
            value = np.ascontiguousarray(getattr(self, column), dtype=dtype)
            if value.ndim != 1 or len(value) != length:
                raise ValueError(f"feed column {column} has shape {value.shape}, expected ({length},)")
            object.__setattr__(self, column, value)
        object.__setattr__(self, "keys", tuple(self.keys))
        object.__setattr__(self, "sources", tuple(self.sources))

    def __len__(self) -> int:
        return len(self.ts_ns)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeedFrame) and self.equals(other)

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def empty(cls) -> FeedFrame:
        return cls(**{column: np.empty(0, dtype) for column, dtype in _COLUMN_DTYPES.items()},
                   keys=(), sources=())

    def equals(self, other: FeedFrame) -> bool:
        """Same events in the same order (dictionaries may differ in order; NaN equals NaN)."""
        if len(self) != len(other):
            return False
        for column in _COLUMN_DTYPES:
            if column in ("key_code", "source_code"):
                continue
            mine, theirs = getattr(self, column), getattr(other, column)
            if not np.array_equal(mine, theirs, equal_nan=mine.dtype.kind == "f"):
                return False
        return bool(np.array_equal(self.key_strings(), other.key_strings())
                    and np.array_equal(self.source_strings(), other.source_strings()))

    def key_strings(self) -> NDArray[np.object_]:
        """The product key (trade, book) or area (day-ahead) of every event."""
        return np.asarray(self.keys, dtype=object)[self.key_code] if len(self) else np.empty(0, object)

    def source_strings(self) -> NDArray[np.object_]:
        return np.asarray(self.sources, dtype=object)[self.source_code] if len(self) else np.empty(0, object)

    def counts_by_type(self) -> dict[str, int]:
        counts = np.bincount(self.event_type, minlength=len(EVENT_TYPES))
        return {name: int(counts[code]) for code, name in enumerate(EVENT_TYPES)}

    def products(self) -> list[str]:
        """Distinct product keys of the trades and book updates, sorted."""
        codes = np.unique(self.key_code[self.event_type != DAYAHEAD])
        return sorted(self.keys[int(code)] for code in codes)

    def take(self, rows: NDArray[np.integer[Any]] | NDArray[np.bool_]) -> FeedFrame:
        """A frame of some rows (indices or mask), dictionaries shared."""
        columns = {column: getattr(self, column)[rows] for column in _COLUMN_DTYPES}
        return FeedFrame(**columns, keys=self.keys, sources=self.sources)

    def sort_by_time(self) -> FeedFrame:
        """Stably sorted by ``ts_ns`` (ties keep feed order), ``seq`` renumbered 0..n-1."""
        order = np.argsort(self.ts_ns, kind="stable")
        frame = self.take(order)
        object.__setattr__(frame, "seq", np.arange(len(frame), dtype=np.int64))
        return frame

    @classmethod
    def concat(cls, frames: Sequence[FeedFrame]) -> FeedFrame:
        """Frames one after the other, dictionaries merged; use :meth:`sort_by_time` to interleave."""
        keys: dict[str, int] = {}
        sources: dict[str, int] = {}
        columns: dict[str, list[NDArray[Any]]] = {column: [] for column in _COLUMN_DTYPES}
        for frame in frames:
            key_map = np.array([keys.setdefault(k, len(keys)) for k in frame.keys], dtype=np.int32)
            source_map = np.array([sources.setdefault(s, len(sources)) for s in frame.sources],
                                  dtype=np.int16)
            for column in _COLUMN_DTYPES:
                value = getattr(frame, column)
                if column == "key_code" and len(value):
                    value = key_map[value]
                elif column == "source_code" and len(value):
                    value = source_map[value]
                columns[column].append(value)
        merged = {column: np.concatenate(parts) if parts else np.empty(0, _COLUMN_DTYPES[column])
                  for column, parts in columns.items()}
        return cls(**merged, keys=tuple(keys), sources=tuple(sources))


#: Every numpy column of a FeedFrame and its dtype.
_COLUMN_DTYPES: dict[str, type[np.generic]] = {
    "event_type": np.int8, "ts_ns": np.int64, "key_code": np.int32, "side": np.int8, "level": np.int8,
    "price_eur_per_mwh": np.float64, "quantity_mw": np.float64, "trade_id": np.int64,
    "delivery_start_ns": np.int64, "duration_min": np.int16, "source_code": np.int16, "seq": np.int64,
}


def day_ahead_publication_ns(area: str, delivery_start_ns: int) -> int:
    """When a day-ahead result is published: 12:45 local time on the day before delivery (EPEX/SDAC)."""
    zone = ZoneInfo(AREAS[area].timezone)
    local_day = ns_to_datetime(delivery_start_ns).astimezone(zone).date() - timedelta(days=1)
    return datetime_to_ns(datetime(local_day.year, local_day.month, local_day.day, 12, 45, tzinfo=zone))


def day_ahead_feed(prices: Sequence[DayAheadPrice]) -> FeedFrame:
    """Day-ahead prices as feed events, stamped with their publication time (12:45 local on D-1)."""
    n = len(prices)
    keys: dict[str, int] = {}
    sources: dict[str, int] = {}
    key_code = np.array([keys.setdefault(p.area, len(keys)) for p in prices], dtype=np.int32)
    source_code = np.array([sources.setdefault(p.source, len(sources)) for p in prices], dtype=np.int16)
    frame = FeedFrame(
        event_type=np.full(n, DAYAHEAD, np.int8),
        ts_ns=np.array([day_ahead_publication_ns(p.area, p.delivery_start_ns) for p in prices], np.int64),
        key_code=key_code, keys=tuple(keys),
        side=np.zeros(n, np.int8), level=np.full(n, -1, np.int8),
        price_eur_per_mwh=np.array([p.price_eur_per_mwh for p in prices], dtype=np.float64),
        quantity_mw=np.full(n, np.nan), trade_id=np.full(n, -1, np.int64),
        delivery_start_ns=np.array([p.delivery_start_ns for p in prices], dtype=np.int64),
        duration_min=np.array([p.duration_min for p in prices], dtype=np.int16),
        source_code=source_code, sources=tuple(sources), seq=np.arange(n, dtype=np.int64),
    )
    return frame.sort_by_time()


# --- JSON lines -------------------------------------------------------------------------------------

_TRADE_LINE = (b'{"type":"trade","ts_ns":%b,"product":%b,"price_eur_per_mwh":%b,"quantity_mw":%b,'
               b'"side":%b,"trade_id":%b,"source":%b,"seq":%b}')
_BOOK_LINE = (b'{"type":"book","ts_ns":%b,"product":%b,"side":%b,"level":%b,"price_eur_per_mwh":%b,'
              b'"quantity_mw":%b,"source":%b,"seq":%b}')
_DAYAHEAD_LINE = (b'{"type":"dayahead","ts_ns":%b,"area":%b,"delivery_start_ns":%b,"duration_min":%b,'
                  b'"price_eur_per_mwh":%b,"source":%b,"seq":%b}')


def _tokens(values: NDArray[Any]) -> list[bytes]:
    """Each value as orjson writes it, for a whole column at once (a per-value call is ~20x slower)."""
    if len(values) == 0:
        return []
    return orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")


def _string_tokens(names: tuple[str, ...], codes: NDArray[Any]) -> list[bytes]:
    encoded = np.array([orjson.dumps(name) for name in names] or [b""], dtype=object)
    return list(encoded[codes])


def json_lines(frame: FeedFrame) -> list[bytes]:
    """Every event as one JSON object (bytes, no newline), in feed order.

    Byte-for-byte what ``orjson.dumps`` of the event's dict would give, built from per-column tokens
    instead of a dict per event.
    """
    lines = np.empty(len(frame), dtype=object)
    side_names = np.array([b"", b'"BUY"', b'"SELL"'], dtype=object)
    for code, template in ((TRADE, _TRADE_LINE), (BOOK, _BOOK_LINE), (DAYAHEAD, _DAYAHEAD_LINE)):
        rows = np.flatnonzero(frame.event_type == code)
        if len(rows) == 0:
            continue
        ts = _tokens(frame.ts_ns[rows])
        key = _string_tokens(frame.keys, frame.key_code[rows])
        price = _tokens(frame.price_eur_per_mwh[rows])
        source = _string_tokens(frame.sources, frame.source_code[rows])
        seq = _tokens(frame.seq[rows])
        if code == TRADE:
            side = list(side_names[frame.side[rows]])
            lines[rows] = [template % values for values in zip(
                ts, key, price, _tokens(frame.quantity_mw[rows]), side, _tokens(frame.trade_id[rows]),
                source, seq, strict=True)]
        elif code == BOOK:
            side = list(side_names[frame.side[rows]])
            lines[rows] = [template % values for values in zip(
                ts, key, side, _tokens(frame.level[rows]), price, _tokens(frame.quantity_mw[rows]),
                source, seq, strict=True)]
        else:
            lines[rows] = [template % values for values in zip(
                ts, key, _tokens(frame.delivery_start_ns[rows]), _tokens(frame.duration_min[rows]), price,
                source, seq, strict=True)]
    return list(lines)


def iter_json_lines(frame: FeedFrame) -> Iterator[bytes]:
    """One JSON message per event, in feed order: the Kafka raw-message payloads."""
    yield from json_lines(frame)


def _bad_line(reason: str, message: str, path: Path, line: int) -> RecordError:
    return RecordError(reason, message, origin=Origin(file=str(path), line=line))


class _Columns:
    """Growing Python lists for a JSONL read; turned into a FeedFrame at the end."""

    def __init__(self) -> None:
        self.values: dict[str, list[Any]] = {column: [] for column in _COLUMN_DTYPES}
        self.keys: dict[str, int] = {}
        self.sources: dict[str, int] = {}

    def frame(self) -> FeedFrame:
        return FeedFrame(**{column: np.asarray(values, dtype=_COLUMN_DTYPES[column])
                            for column, values in self.values.items()},
                         keys=tuple(self.keys), sources=tuple(self.sources))


def _field(event: dict[str, Any], name: str, kind: type | tuple[type, ...], path: Path, line: int) -> Any:
    try:
        value = event[name]
    except KeyError:
        raise _bad_line("MISSING_FIELD", f"{event.get('type')} event has no {name!r}", path, line) from None
    if isinstance(value, bool) or not isinstance(value, kind):
        raise _bad_line("BAD_FIELD_TYPE", f"{name}={value!r} is not {_KIND_NAMES.get(kind, kind)}", path, line)
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        raise _bad_line("BAD_FIELD_TYPE", f"{name}={value} does not fit in 64 bits", path, line)
    return value


_NUMBER = (int, float)
_KIND_NAMES: dict[type | tuple[type, ...], str] = {int: "an integer", str: "a string", _NUMBER: "a number"}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FIELDS = {
    TRADE: frozenset(("type", "ts_ns", "product", "price_eur_per_mwh", "quantity_mw", "side", "trade_id",
                      "source", "seq")),
    BOOK: frozenset(("type", "ts_ns", "product", "side", "level", "price_eur_per_mwh", "quantity_mw", "source",
                     "seq")),
    DAYAHEAD: frozenset(("type", "ts_ns", "area", "delivery_start_ns", "duration_min", "price_eur_per_mwh",
                         "source", "seq")),
}


def _append_event(columns: _Columns, event: Any, path: Path, line: int) -> None:
    if not isinstance(event, dict):
        raise _bad_line("NOT_AN_OBJECT", f"expected a JSON object, got {type(event).__name__}", path, line)
    type_code = _TYPE_CODES.get(event.get("type"))  # type: ignore[arg-type]
    if type_code is None:
        raise _bad_line("UNKNOWN_TYPE", f"type {event.get('type')!r} is not one of {EVENT_TYPES}", path, line)
    if len(event) != len(_FIELDS[type_code]) or not _FIELDS[type_code].issuperset(event):
        unknown = sorted(set(event) - _FIELDS[type_code])
        if unknown:
            raise _bad_line("UNKNOWN_FIELD", f"{EVENT_TYPES[type_code]} event has unknown fields {unknown}",
                            path, line)
    row = columns.values
    ts_ns = _field(event, "ts_ns", int, path, line)
    price = float(_field(event, "price_eur_per_mwh", _NUMBER, path, line))
    source = _field(event, "source", str, path, line)
    seq = _field(event, "seq", int, path, line)
    if type_code == DAYAHEAD:
        key = _field(event, "area", str, path, line)
        side, level, quantity, trade_id = 0, -1, float("nan"), -1
        delivery_start_ns = _field(event, "delivery_start_ns", int, path, line)
        duration_min = _field(event, "duration_min", int, path, line)
        if not 1 <= duration_min <= 1440:
            raise _bad_line("BAD_DURATION", f"duration_min {duration_min} outside 1..1440", path, line)
    else:
        key = _field(event, "product", str, path, line)
        try:
            product = Product.parse(key)
        except ValueError as error:
            raise _bad_line("BAD_PRODUCT", str(error), path, line) from None
        delivery_start_ns, duration_min = product.delivery_start_ns, product.duration_min
        side_name = _field(event, "side", str, path, line)
        if side_name not in _SIDE_CODES:
            raise _bad_line("BAD_SIDE", f"side {side_name!r} is not BUY or SELL", path, line)
        side = _SIDE_CODES[side_name]
        quantity = float(_field(event, "quantity_mw", _NUMBER, path, line))
        level, trade_id = -1, -1
        if type_code == TRADE:
            trade_id = _field(event, "trade_id", int, path, line)
        else:
            level = _field(event, "level", int, path, line)
            if not 0 <= level <= 127:
                raise _bad_line("BAD_LEVEL", f"level {level} outside 0..127", path, line)
    for column, value in (
        ("event_type", type_code), ("ts_ns", ts_ns), ("side", side), ("level", level),
        ("price_eur_per_mwh", price), ("quantity_mw", quantity), ("trade_id", trade_id),
        ("delivery_start_ns", delivery_start_ns), ("duration_min", duration_min), ("seq", seq),
    ):
        row[column].append(value)
    row["key_code"].append(columns.keys.setdefault(key, len(columns.keys)))
    row["source_code"].append(columns.sources.setdefault(source, len(columns.sources)))


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row of a feed file that is not a valid event, kept as it came: ``before`` good events precede it."""

    before: int
    payload: bytes
    origin: str
    reason: str


@dataclass(frozen=True, slots=True)
class RawFeed:
    """A feed file as it came: its valid events (a FeedFrame) and its malformed or incomplete rows."""

    frame: FeedFrame
    bad_rows: tuple[BadRow, ...]

    def messages(self) -> tuple[list[bytes], list[str | None], NDArray[np.int64]]:
        """Every row as a raw Kafka message in file order: (values, keys, event times). A bad row is sent
        as it came (the flows dead-letter it with its origin), keyed by nothing, due with the event before it."""
        values: list[bytes] = json_lines(self.frame)
        keys: list[str | None] = list(self.frame.key_strings().tolist())
        ts = self.frame.ts_ns.tolist()
        for shift, row in enumerate(self.bad_rows):
            at = row.before + shift
            values.insert(at, row.payload)
            keys.insert(at, None)
            ts.insert(at, ts[at - 1] if at > 0 else (ts[at] if at < len(ts) else 0))
        return values, keys, np.asarray(ts, dtype=np.int64)


def _read_json_lines(path: Path, handle: Iterable[bytes], bad_rows: list[BadRow] | None = None) -> FeedFrame:
    """With ``bad_rows`` given, a row that is not a valid event is kept there instead of refusing the file."""
    columns = _Columns()
    for line_number, raw in enumerate(handle, start=1):
        if not raw.strip():
            continue
        try:
            try:
                event = orjson.loads(raw)
            except orjson.JSONDecodeError as error:
                raise _bad_line("MALFORMED_JSON", str(error), path, line_number) from None
            _append_event(columns, event, path, line_number)
        except RecordError as error:
            if bad_rows is None:
                raise
            bad_rows.append(BadRow(len(columns.values["ts_ns"]), raw.rstrip(b"\r\n"), f"{path.name}:{line_number}",
                                   error.reason))
    try:
        return columns.frame()
    except OverflowError as error:
        raise RecordError("VALUE_OUT_OF_RANGE", str(error), origin=Origin(file=str(path))) from None


# --- Parquet -----------------------------------------------------------------------------------------

def _dictionary(indices: NDArray[Any], names: Sequence[str], mask: NDArray[np.bool_] | None) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(indices, mask=mask), pa.array(list(names), pa.string()))


def _to_table(frame: FeedFrame) -> pa.Table:
    is_dayahead = frame.event_type == DAYAHEAD
    not_book = frame.event_type != BOOK
    not_trade = frame.event_type != TRADE
    area_names = sorted({product_area(key) for key in frame.keys})
    area_of_key = np.array([area_names.index(product_area(key)) for key in frame.keys] or [0], np.int32)
    side_index = np.where(frame.side == -1, 1, 0).astype(np.int8)
    return pa.table({
        "type": _dictionary(frame.event_type, EVENT_TYPES, None),
        "ts_ns": frame.ts_ns,
        "product": _dictionary(frame.key_code, frame.keys, is_dayahead),
        "area": _dictionary(area_of_key[frame.key_code], area_names, None),
        "side": _dictionary(side_index, ("BUY", "SELL"), is_dayahead),
        "level": pa.array(frame.level, mask=not_book),
        "price_eur_per_mwh": frame.price_eur_per_mwh,
        "quantity_mw": pa.array(frame.quantity_mw, mask=is_dayahead),
        "trade_id": pa.array(frame.trade_id, mask=not_trade),
        "delivery_start_ns": frame.delivery_start_ns,
        "duration_min": frame.duration_min,
        "source": _dictionary(frame.source_code, frame.sources, None),
        "seq": frame.seq,
    })


def _codes(column: pa.ChunkedArray) -> tuple[NDArray[np.int64], list[str]]:
    """Dictionary codes (-1 for null) and dictionary of a string column, whatever its encoding."""
    array = column.combine_chunks()
    if not pa.types.is_dictionary(array.type):
        array = array.dictionary_encode()
    codes = array.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, [str(name) for name in array.dictionary.to_pylist()]


#: Columns every event of a type must have (not null) in a Parquet feed.
_PARQUET_REQUIRED = {
    "trade": ("ts_ns", "product", "side", "price_eur_per_mwh", "quantity_mw", "trade_id", "source", "seq"),
    "book": ("ts_ns", "product", "side", "level", "price_eur_per_mwh", "quantity_mw", "source", "seq"),
    "dayahead": ("ts_ns", "area", "delivery_start_ns", "duration_min", "price_eur_per_mwh", "source", "seq"),
}


def _incomplete_rows(table: pa.Table) -> NDArray[np.bool_]:
    """Rows of an unknown type or with a null where their type needs a value."""
    types = np.asarray(table["type"].combine_chunks().cast(pa.string()).fill_null("").to_pylist(), dtype=object)
    bad = ~np.isin(types, list(_PARQUET_REQUIRED))
    for name, required in _PARQUET_REQUIRED.items():
        rows = types == name
        for column in required:
            bad |= rows & np.asarray(table[column].is_null().to_numpy(zero_copy_only=False), dtype=bool)
    return bad


def _split_parquet(table: pa.Table, path: Path, bad_rows: list[BadRow]) -> pa.Table:
    """Move the incomplete rows of ``table`` into ``bad_rows`` (as JSON objects, nulls kept); the rest."""
    bad = _incomplete_rows(table)
    if not bad.any():
        return table
    good_before: NDArray[np.int64] = np.cumsum(~bad) - (~bad)
    for row in np.flatnonzero(bad).tolist():
        record = {k: v for k, v in table.slice(row, 1).to_pylist()[0].items() if k in _PARQUET_COLUMNS}
        bad_rows.append(BadRow(int(good_before[row]), orjson.dumps(record), f"{path.name}:row {row}",
                               "INCOMPLETE_ROW"))
    return table.filter(pa.array(~bad))


def _from_table(table: pa.Table, path: Path) -> FeedFrame:
    missing = [name for name in _PARQUET_COLUMNS if name not in table.column_names]
    if missing:
        raise RecordError("BAD_SCHEMA", f"missing columns {missing}", origin=Origin(file=str(path)))
    incomplete = np.flatnonzero(_incomplete_rows(table))
    if len(incomplete):
        raise RecordError("INCOMPLETE_ROW", f"row {int(incomplete[0])} has a null where its type needs a value "
                          f"({len(incomplete)} such rows)", origin=Origin(file=str(path), line=int(incomplete[0])))
    type_codes, type_names = _codes(table["type"])
    event_type = np.array([_TYPE_CODES.get(name, -1) for name in type_names] or [0], np.int8)[type_codes]
    if (event_type < 0).any() or (type_codes < 0).any():
        raise RecordError("UNKNOWN_TYPE", f"types {type_names} are not all of {EVENT_TYPES}",
                          origin=Origin(file=str(path)))
    product_codes, product_names = _codes(table["product"])
    area_codes, area_names = _codes(table["area"])
    keys = list(product_names) + list(area_names)
    key_code = np.where(event_type == DAYAHEAD, area_codes + len(product_names), product_codes)
    side_codes, side_names = _codes(table["side"])
    side_values = np.array([_SIDE_CODES[name] for name in side_names] + [0], np.int8)[side_codes]
    source_codes, source_names = _codes(table["source"])

    def numbers(name: str, fill: float) -> NDArray[Any]:
        return np.asarray(table[name].combine_chunks().fill_null(fill).to_numpy(zero_copy_only=False))

    return FeedFrame(
        event_type=event_type, ts_ns=numbers("ts_ns", 0), key_code=key_code, keys=tuple(keys),
        side=side_values, level=numbers("level", -1), price_eur_per_mwh=numbers("price_eur_per_mwh", np.nan),
        quantity_mw=numbers("quantity_mw", np.nan), trade_id=numbers("trade_id", -1),
        delivery_start_ns=numbers("delivery_start_ns", 0), duration_min=numbers("duration_min", 0),
        source_code=source_codes.astype(np.int16), sources=tuple(source_names), seq=numbers("seq", 0),
    )


_PARQUET_COLUMNS = ("type", "ts_ns", "product", "area", "side", "level", "price_eur_per_mwh", "quantity_mw",
                    "trade_id", "delivery_start_ns", "duration_min", "source", "seq")


# --- Files ---------------------------------------------------------------------------------------------

def feed_format(path: str | Path) -> str:
    """``jsonl``, ``jsonl.gz`` or ``parquet``, from the file name."""
    name = Path(path).name.lower()
    for suffix in ("jsonl.gz", "jsonl", "parquet"):
        if name.endswith("." + suffix):
            return suffix
    raise FeedFormatError(f"{path}: unknown feed format",
                          hint="name it *.jsonl, *.jsonl.gz or *.parquet (`wattflow feed --help` describes them)")


def write_feed(frame: FeedFrame, path: str | Path) -> Path:
    """Write a feed, format by suffix; returns the path. Writes to a temporary name, then renames."""
    target = Path(path)
    kind = feed_format(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    if kind == "parquet":
        pq.write_table(_to_table(frame), partial, compression="zstd")
    else:
        lines = json_lines(frame)
        # gzip's default level 9 takes several times longer than level 5 for a few percent less.
        with gzip.open(partial, "wb", compresslevel=5) if kind == "jsonl.gz" else partial.open("wb") as handle:
            for begin in range(0, len(lines), 65_536):
                handle.write(b"\n".join(lines[begin:begin + 65_536]) + b"\n")
    partial.replace(target)
    return target


def read_feed(path: str | Path) -> FeedFrame:
    """Read a feed written by :func:`write_feed` (or by hand, for JSON lines)."""
    source = Path(path)
    kind = feed_format(source)
    if kind == "parquet":
        return _from_table(pq.read_table(source), source)
    if kind == "jsonl.gz":
        with gzip.open(source, "rb") as compressed:
            return _read_json_lines(source, compressed)
    with source.open("rb") as handle:
        return _read_json_lines(source, handle)


def read_raw_feed(path: str | Path) -> RawFeed:
    """A feed file as it comes: its valid events, and each malformed or incomplete row kept with its origin
    (``file:line``) and reason instead of refusing the whole file (what :func:`read_feed` does)."""
    source = Path(path)
    kind = feed_format(source)
    bad_rows: list[BadRow] = []
    if kind == "parquet":
        table = pq.read_table(source)
        missing = [name for name in _PARQUET_COLUMNS if name not in table.column_names]
        if missing:
            raise RecordError("BAD_SCHEMA", f"missing columns {missing}", origin=Origin(file=str(source)))
        frame = _from_table(_split_parquet(table, source, bad_rows), source)
    elif kind == "jsonl.gz":
        with gzip.open(source, "rb") as compressed:
            frame = _read_json_lines(source, compressed, bad_rows)
    else:
        with source.open("rb") as handle:
            frame = _read_json_lines(source, handle, bad_rows)
    return RawFeed(frame, tuple(bad_rows))
