"""The ``dlq`` topic's format: one message per dead letter, keyed by its origin, with the reason code, the error
text and the payload as it came."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from connectors.kafka.sink import KafkaRecords
from wattflow.batches import DeadLetter

_encoder = msgspec.json.Encoder()


def encode_dead_letter(letter: DeadLetter) -> bytes:
    return _encoder.encode(letter.to_dict())


def decode_dead_letter(value: bytes) -> dict[str, Any]:
    """A dead letter as the dict it was written from (``DeadLetter.to_dict``)."""
    message = orjson.loads(value)
    if not isinstance(message, dict):
        raise ValueError("a dead letter is a JSON object")
    return message


def dead_letter_records(letters: list[DeadLetter], topic: str) -> KafkaRecords:
    """One message per dead letter, keyed by its origin, with reason, error text and the payload."""
    return KafkaRecords(topic, [str(d.origin) for d in letters], [encode_dead_letter(d) for d in letters],
                        [d.ts_ns // 1_000_000 for d in letters])
