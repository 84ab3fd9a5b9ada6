"""The raw-message wire format (JSON, one event per Kafka message) and its fast, strict decoder.

Field names are the contract documented in ``connectors/feeds/files.py`` and the README. Decoding is
strict: a wrong type, a missing field, an unknown ``type`` or side, ``NaN`` or an integer beyond 64 bits
is an error with a reason code, never a guess. msgspec decodes straight into typed structs (about 0.3 us
for a ~200-byte tick), and the columns of a batch are then built in one pass per field.
"""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np
import orjson

from wattflow.batches import BookBatch, DayAheadBatch, DeadLetter, IngestBatch, RawBatch, TickBatch
from wattflow.errors import Origin

_SIDES = {"BUY": 1, "SELL": -1}


class TradeMessage(msgspec.Struct, tag_field="type", tag="trade", frozen=True, forbid_unknown_fields=True):
    ts_ns: int
    product: str
    price_eur_per_mwh: float
    quantity_mw: float
    side: Literal["BUY", "SELL"]
    trade_id: int
    source: str
    seq: int


class BookMessage(msgspec.Struct, tag_field="type", tag="book", frozen=True, forbid_unknown_fields=True):
    ts_ns: int
    product: str
    side: Literal["BUY", "SELL"]
    level: int
    price_eur_per_mwh: float
    quantity_mw: float
    source: str
    seq: int


class DayAheadMessage(msgspec.Struct, tag_field="type", tag="dayahead", frozen=True, forbid_unknown_fields=True):
    ts_ns: int
    area: str
    delivery_start_ns: int
    duration_min: int
    price_eur_per_mwh: float
    source: str
    seq: int


RawMessage = TradeMessage | BookMessage | DayAheadMessage
_decoder = msgspec.json.Decoder(RawMessage)
_encoder = msgspec.json.Encoder()


def classify_decode_error(error: Exception, value: bytes) -> str:
    """The reason code of a message msgspec refused."""
    text = str(error)
    if isinstance(error, msgspec.ValidationError):
        if "Invalid value" in text and "$.type" in text:
            return "UNKNOWN_TYPE"
        if "unknown field" in text:
            return "UNKNOWN_FIELD"
        if "missing required field" in text.lower() or "Object missing" in text:
            return "MISSING_FIELD"
        if "Invalid enum value" in text or ("Invalid value" in text and "side" in text):
            return "BAD_SIDE"
        return "WRONG_TYPE"
    if isinstance(error, UnicodeDecodeError):
        return "NOT_UTF8"
    if not value.strip():
        return "EMPTY_MESSAGE"
    if "truncated" in text.lower():
        return "TRUNCATED"
    return "MALFORMED_JSON"


class RawEnvelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A packed raw message: several events of one feed frame, ``{"events": [...]}`` ("events" first)."""

    events: list[RawMessage]


_envelope_decoder = msgspec.json.Decoder(RawEnvelope)
_PACKED_PREFIX = b'{"events":'


class CleanEnvelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A clean-topic message (``md.ticks``, ``md.book``, ``md.dayahead``): one product's (or area's) validated
    events with the time each reached Kafka (see ``connectors.wire.packed``)."""

    recv_ns: list[int]
    events: list[RawMessage]
    product: str | None = None
    area: str | None = None


_clean_decoder = msgspec.json.Decoder(CleanEnvelope)
_CLEAN_PREFIXES = (b'{"product":', b'{"area":')


class _Decoded:
    """Decoded events of one raw batch by type, each with its raw row, its index in a packed message (-1
    for a message of its own) and its wire bytes (None: encode from the struct)."""

    def __init__(self) -> None:
        self.messages: dict[type, list[RawMessage]] = {TradeMessage: [], BookMessage: [], DayAheadMessage: []}
        self.rows: dict[type, list[int]] = {TradeMessage: [], BookMessage: [], DayAheadMessage: []}
        self.indexes: dict[type, list[int]] = {TradeMessage: [], BookMessage: [], DayAheadMessage: []}
        self.wires: dict[type, list[bytes | None]] = {TradeMessage: [], BookMessage: [], DayAheadMessage: []}
        self.recv: dict[type, list[int]] = {TradeMessage: [], BookMessage: [], DayAheadMessage: []}
        self.dead: list[DeadLetter] = []
        self.simple = False  # every event a message of its own: positions come straight from the raw batch

    def add(self, message: RawMessage, row: int, index: int, wire: bytes | None) -> None:
        kind = type(message)
        self.messages[kind].append(message)
        self.rows[kind].append(row)
        self.indexes[kind].append(index)
        self.wires[kind].append(wire)
        self.recv[kind].append(-1)

    def add_packed(self, events: list[RawMessage], row: int, recv_ns: list[int] | None = None) -> None:
        """All events of one packed message, appended by type in bulk (no call per event). ``recv_ns``: the
        events' own receive times (clean topics); else the message's Kafka timestamp is used."""
        for kind in (BookMessage, TradeMessage, DayAheadMessage):
            positions = [i for i, message in enumerate(events) if type(message) is kind]
            if positions:
                self.messages[kind].extend([events[i] for i in positions])
                self.indexes[kind].extend(positions)
                self.rows[kind].extend([row] * len(positions))
                self.wires[kind].extend([None] * len(positions))
                self.recv[kind].extend([recv_ns[i] for i in positions] if recv_ns else [-1] * len(positions))

    def reject(self, raw: RawBatch, row: int, index: int | None, *, reason: str, error: str, payload: bytes) -> None:
        origin = Origin(raw.topic, raw.partition, int(raw.offsets[row]), index=index)
        self.dead.append(DeadLetter(int(raw.timestamps_ns[row]), origin, reason, error, payload[:65_536]))


def _salvage_packed(decoded: _Decoded, raw: RawBatch, row: int, value: bytes, error: Exception) -> None:
    """A packed message that did not decode whole: keep its good events, dead-letter the others one by one."""
    try:
        envelope = orjson.loads(value)
    except orjson.JSONDecodeError:
        decoded.reject(raw, row, None, reason=classify_decode_error(error, value), error=str(error), payload=value)
        return
    events = envelope.get("events") if isinstance(envelope, dict) else None
    if not isinstance(events, list) or set(envelope) != {"events"}:
        decoded.reject(raw, row, None, reason="BAD_ENVELOPE", payload=value,
                       error=f"packed message is not {{\"events\": [...]}}: {error}")
        return
    for index, event in enumerate(events):
        try:
            payload = orjson.dumps(event)
        except TypeError as encode_error:  # an integer beyond 64 bits
            decoded.reject(raw, row, index, reason="WRONG_TYPE", error=str(encode_error),
                           payload=repr(event).encode()[:4096])
            continue
        try:
            decoded.add(_decoder.decode(payload), row, index, payload)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as event_error:
            decoded.reject(raw, row, index, reason=classify_decode_error(event_error, payload),
                           error=str(event_error), payload=payload)


def decode_batch(raw: RawBatch) -> IngestBatch:
    """Decode a batch of raw messages into columnar trades, book updates and day-ahead prices.

    A raw message is one event, or a packed ``{"events": [...]}`` of several (what a feed adapter gets in one
    frame); clean-topic messages (``{"product": ..., "recv_ns": [...], "events": [...]}``) decode too. What
    cannot be decoded becomes a dead letter with its reason and origin (``topic[p]@offset``, plus ``#index``
    inside a packed message); nothing is dropped: events in = ticks + book + dayahead + dead.
    """
    simple = _decode_simple(raw)
    if simple is not None:
        return simple
    decoded = _Decoded()
    decode = _decoder.decode
    add = decoded.add
    for row, maybe_value in enumerate(raw.values):
        value = maybe_value or b""
        if value.startswith(_CLEAN_PREFIXES):
            try:
                envelope = _clean_decoder.decode(value)
            except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as error:
                decoded.reject(raw, row, None, reason="BAD_ENVELOPE", error=str(error), payload=value)
                continue
            if len(envelope.recv_ns) != len(envelope.events):
                decoded.reject(raw, row, None, reason="BAD_ENVELOPE", payload=value,
                               error=f"{len(envelope.events)} events but {len(envelope.recv_ns)} receive times")
                continue
            decoded.add_packed(envelope.events, row, envelope.recv_ns)
            continue
        if value.startswith(_PACKED_PREFIX):
            try:
                events = _envelope_decoder.decode(value).events
            except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as error:
                _salvage_packed(decoded, raw, row, value, error)
                continue
            decoded.add_packed(events, row)
            continue
        try:
            add(decode(value), row, -1, value)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as error:
            decoded.reject(raw, row, None, reason=classify_decode_error(error, value), error=str(error), payload=value)
    return IngestBatch(
        ticks=_trade_columns(decoded, raw),
        book=_book_columns(decoded, raw),
        dayahead=_dayahead_columns(decoded, raw),
        dead=decoded.dead, topic=raw.topic, partition=raw.partition,
    )


def _decode_simple(raw: RawBatch) -> IngestBatch | None:
    """The common case, fast: every message a single event. None when a batch holds anything else."""
    decode = _decoder.decode
    messages: dict[type, list[RawMessage]] = {TradeMessage: [], BookMessage: [], DayAheadMessage: []}
    rows: dict[type, list[int]] = {TradeMessage: [], BookMessage: [], DayAheadMessage: []}
    dead: list[DeadLetter] = []
    for row, value in enumerate(raw.values):
        try:
            message = decode(value)  # type: ignore[arg-type]
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as error:
            payload = value or b""
            if payload.startswith(_CLEAN_PREFIXES) or payload.startswith(_PACKED_PREFIX):
                return None
            origin = Origin(raw.topic, raw.partition, int(raw.offsets[row]))
            reason = "EMPTY_MESSAGE" if value is None else classify_decode_error(error, payload)
            dead.append(DeadLetter(int(raw.timestamps_ns[row]), origin, reason, str(error), payload[:65_536]))
            continue
        kind = type(message)
        messages[kind].append(message)
        rows[kind].append(row)
    decoded = _Decoded()
    decoded.messages, decoded.rows, decoded.dead, decoded.simple = messages, rows, dead, True
    return IngestBatch(
        ticks=_trade_columns(decoded, raw), book=_book_columns(decoded, raw),
        dayahead=_dayahead_columns(decoded, raw), dead=dead, topic=raw.topic, partition=raw.partition,
    )


def _ints(values: list[int]) -> np.ndarray:
    # Integers beyond int64 passed msgspec (it accepts arbitrary ints up to 2**64): range-check later.
    try:
        return np.array(values, dtype=np.int64)
    except OverflowError:
        return np.array([v if -(2**63) <= v < 2**63 else -1 for v in values], dtype=np.int64)


def _positions(decoded: _Decoded, kind: type, raw: RawBatch) -> dict[str, np.ndarray]:
    """recv_ns, offset, index and wire columns of one event type."""
    rows = np.array(decoded.rows[kind], dtype=np.int64)
    if decoded.simple:
        values = raw.values
        wire = np.empty(len(rows), dtype=object)
        wire[:] = [values[row] for row in decoded.rows[kind]]
        return {"recv_ns": raw.timestamps_ns[rows], "offset": raw.offsets[rows],
                "index": np.full(len(rows), -1, dtype=np.int64), "wire": wire}
    wires = decoded.wires[kind]
    if None in wires:
        # Events of packed messages keep their struct: encode_events writes a whole group in one call.
        messages = decoded.messages[kind]
        wires = [wire if wire is not None else messages[i] for i, wire in enumerate(wires)]  # type: ignore[misc]
    wire = np.empty(len(wires), dtype=object)
    wire[:] = wires
    recv_ns = np.array(decoded.recv[kind], dtype=np.int64)
    recv_ns = np.where(recv_ns < 0, raw.timestamps_ns[rows], recv_ns)
    return {"recv_ns": recv_ns, "offset": raw.offsets[rows],
            "index": np.array(decoded.indexes[kind], dtype=np.int64), "wire": wire}


def _trade_columns(decoded: _Decoded, raw: RawBatch) -> TickBatch:
    messages: list[TradeMessage] = decoded.messages[TradeMessage]  # type: ignore[assignment]
    if not messages:
        return TickBatch.empty()
    return TickBatch(
        ts_ns=_ints([m.ts_ns for m in messages]),
        product=np.array([m.product for m in messages], dtype=object),
        price_eur_per_mwh=np.array([m.price_eur_per_mwh for m in messages], dtype=np.float64),
        quantity_mw=np.array([m.quantity_mw for m in messages], dtype=np.float64),
        side=np.array([_SIDES[m.side] for m in messages], dtype=np.int8),
        trade_id=_ints([m.trade_id for m in messages]),
        source=np.array([m.source for m in messages], dtype=object),
        seq=_ints([m.seq for m in messages]),
        **_positions(decoded, TradeMessage, raw),
    )


def _book_columns(decoded: _Decoded, raw: RawBatch) -> BookBatch:
    messages: list[BookMessage] = decoded.messages[BookMessage]  # type: ignore[assignment]
    if not messages:
        return BookBatch.empty()
    return BookBatch(
        ts_ns=_ints([m.ts_ns for m in messages]),
        product=np.array([m.product for m in messages], dtype=object),
        side=np.array([_SIDES[m.side] for m in messages], dtype=np.int8),
        level=_ints([m.level for m in messages]),
        price_eur_per_mwh=np.array([m.price_eur_per_mwh for m in messages], dtype=np.float64),
        quantity_mw=np.array([m.quantity_mw for m in messages], dtype=np.float64),
        source=np.array([m.source for m in messages], dtype=object),
        seq=_ints([m.seq for m in messages]),
        **_positions(decoded, BookMessage, raw),
    )


def _dayahead_columns(decoded: _Decoded, raw: RawBatch) -> DayAheadBatch:
    messages: list[DayAheadMessage] = decoded.messages[DayAheadMessage]  # type: ignore[assignment]
    if not messages:
        return DayAheadBatch.empty()
    return DayAheadBatch(
        ts_ns=_ints([m.ts_ns for m in messages]),
        area=np.array([m.area for m in messages], dtype=object),
        delivery_start_ns=_ints([m.delivery_start_ns for m in messages]),
        duration_min=_ints([m.duration_min for m in messages]),
        price_eur_per_mwh=np.array([m.price_eur_per_mwh for m in messages], dtype=np.float64),
        source=np.array([m.source for m in messages], dtype=object),
        seq=_ints([m.seq for m in messages]),
        **_positions(decoded, DayAheadMessage, raw),
    )


def encode_events(wire: list[bytes | RawMessage]) -> bytes:
    """Events as the inside of a JSON array (no brackets): raw bytes as they came, structs encoded.

    A ``wire`` column holds the raw bytes of single messages and the decoded struct of events that came
    packed; encoding a group in one call is ~5x cheaper than one call per event.
    """
    if all(type(item) is bytes for item in wire):
        return b",".join(wire)  # type: ignore[arg-type]
    items = [msgspec.Raw(item) if type(item) is bytes else item for item in wire]
    return _encoder.encode(items)[1:-1]
