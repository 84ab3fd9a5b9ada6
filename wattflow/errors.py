"""The wattflow error hierarchy.

Every error says where it came from: the component (``code``) and, for a bad record, its origin
(topic, partition, offset or file and line), so that a dead letter can be traced back to its source.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record came from: a Kafka position (``index``: the event's place in a packed message) or a file
    position."""

    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    file: str | None = None
    line: int | None = None
    index: int | None = None

    def __str__(self) -> str:
        if self.topic is not None:
            where = f"{self.topic}[{self.partition}]@{self.offset}"
            return where if self.index is None else f"{where}#{self.index}"
        if self.file is not None:
            return f"{self.file}:{self.line}"
        return "unknown origin"


class WattflowError(Exception):
    """Root of every error wattflow raises on purpose."""

    code: str = "WATTFLOW_ERROR"

    def __init__(self, message: str, *, origin: Origin | None = None, hint: str | None = None) -> None:
        self.origin = origin
        self.hint = hint
        text = message
        if origin is not None:
            text = f"{text} (origin: {origin})"
        if hint:
            text = f"{text}\n  what to do: {hint}"
        super().__init__(text)


class SettingsError(WattflowError):
    code = "SETTINGS_ERROR"


class StackError(WattflowError):
    """The native Kafka/QuestDB stack could not be set up, started, stopped or reached."""

    code = "STACK_ERROR"


class PortInUseError(StackError):
    code = "PORT_IN_USE"


class KafkaError(WattflowError):
    code = "KAFKA_ERROR"


class KafkaDeliveryError(KafkaError):
    """The broker did not confirm some messages: they are not known to be stored."""

    code = "KAFKA_DELIVERY_FAILED"


class QuestDBError(WattflowError):
    code = "QUESTDB_ERROR"


class VenueError(WattflowError):
    code = "VENUE_ERROR"


class RecordError(WattflowError):
    """A record that cannot be used: malformed, wrongly typed or out of range. Goes to the dead-letter topic."""

    code = "BAD_RECORD"

    def __init__(self, reason: str, message: str, *, origin: Origin | None = None) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {message}", origin=origin)


class FeedFormatError(WattflowError):
    """A feed file wattflow cannot read as a whole (its name or format), as opposed to one bad record in it."""

    code = "FEED_FORMAT"
