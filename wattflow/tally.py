"""What this process's flows have done so far: messages read per topic, rows stored per table, messages published
per topic. Sources and sinks add to :data:`TALLY`; `wattflow run` prints it as progress and at the end."""

from __future__ import annotations

import threading
from collections import Counter


class Tally:
    """Thread-safe counters keyed by (what, name): ``read``/topic, ``stored``/table, ``published``/topic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, what: str, name: str, n: int) -> None:
        if n:
            with self._lock:
                self._counts[(what, name)] += n

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)

    def total(self, what: str) -> int:
        with self._lock:
            return sum(n for (kind, _), n in self._counts.items() if kind == what)


TALLY = Tally()


def summary(counts: dict[tuple[str, str], int], dlq_topic: str) -> str:
    """One line: read, stored, derived (published to topics other than the dead letters), dead-lettered."""
    read = sum(n for (kind, _), n in counts.items() if kind == "read")
    stored = sum(n for (kind, _), n in counts.items() if kind == "stored")
    dead = sum(n for (kind, name), n in counts.items() if kind == "published" and name == dlq_topic)
    derived = sum(n for (kind, name), n in counts.items() if kind == "published" and name != dlq_topic)
    return f"read {read:,} messages · stored {stored:,} rows · published {derived:,} · dead-lettered {dead:,}"
