"""The ``dlq`` topic's format: one message per dead letter, keyed by its origin, with the reason code, the error
text and the payload as it came."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import orjson

from connectors.kafka.sink import KafkaRecords
from connectors.wire.columns import Int64
from wattflow.batches import DeadLetter
from wattflow.errors import Origin

_encoder = msgspec.json.Encoder()


def encode_dead_letter(letter: DeadLetter) -> bytes:
    return _encoder.encode(letter.to_dict())


def decode_dead_letter(value: bytes) -> dict[str, Any]:
    """A dead letter as the dict it was written from (``DeadLetter.to_dict``)."""
    message = orjson.loads(value)
    if not isinstance(message, dict):
        raise ValueError("a dead letter is a JSON object")
    return message


class _DeadLetterMessage(msgspec.Struct, forbid_unknown_fields=True):
    ts_ns: Int64
    origin: str
    topic: str | None
    partition: Int64 | None
    offset: Int64 | None
    reason: str
    error: str
    payload: str


_decoder = msgspec.json.Decoder(_DeadLetterMessage)
_KAFKA_ORIGIN = re.compile(r"^(?P<topic>.*)\[(?P<partition>-?\d+|None)\]@(?P<offset>-?\d+|None)(?:#(?P<index>\d+))?$")


def _origin(message: _DeadLetterMessage) -> Origin:
    """The origin the message was written from; its string form must be the message's ``origin``."""
    text = message.origin
    if message.topic is not None:
        match = _KAFKA_ORIGIN.match(text)
        index = int(match["index"]) if match and match["index"] is not None else None
        origin = Origin(message.topic, message.partition, message.offset, index=index)
    elif text == str(Origin()):
        origin = Origin()
    else:
        file, _, line = text.rpartition(":")
        origin = Origin(file=file, line=int(line)) if file and line.isdigit() else Origin(file=text)
    if str(origin) != text:
        raise ValueError(f"origin {text!r} does not match topic={message.topic!r} partition={message.partition!r} "
                         f"offset={message.offset!r}")
    return origin


def decode_dead_letter_record(value: bytes) -> DeadLetter:
    """A ``dlq`` message back as the :class:`DeadLetter` it was written from (the payload as its UTF-8 text, which
    is what the ``dlq`` table stores). Strict: a missing or unknown field, a wrong type, or an origin that does not
    match its topic, partition and offset raise ``ValueError``."""
    message = _decoder.decode(value)
    return DeadLetter(message.ts_ns, _origin(message), message.reason, message.error, message.payload.encode())


def dead_letter_records(letters: list[DeadLetter], topic: str) -> KafkaRecords:
    """One message per dead letter, keyed by its origin, with reason, error text and the payload."""
    return KafkaRecords(topic, [str(d.origin) for d in letters], [encode_dead_letter(d) for d in letters],
                        [d.ts_ns // 1_000_000 for d in letters])
