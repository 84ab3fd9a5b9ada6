"""The paper venue's limits and faults: stream pacing, body size, the per-key rate limit, injected faults."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

FAULT_MODES: tuple[str, ...] = ("none", "down", "error_5xx", "timeout", "slow", "drop")
MAX_BODY_BYTES = 1 << 20
#: A stream sends a heartbeat after this many seconds without a line.
STREAM_HEARTBEAT_S = 1.0
#: How often a streaming thread looks at the clock and the reports when it has nothing to send.
STREAM_POLL_S = 0.05
#: At most this many lines in one chunk (bounds the work done between two looks at ``stopping``).
STREAM_CHUNK_LINES = 2_000
#: A stream whose client reads nothing for this long is closed (its thread must not hang forever).
STREAM_WRITE_TIMEOUT_S = 30.0
#: A keep-alive connection with no request for this long is closed by the venue (clients keep theirs less long).
KEEPALIVE_IDLE_S = 60.0


@dataclass(frozen=True, slots=True)
class FaultConfig:
    mode: str = "none"
    extra_latency_s: float = 0.5
    timeout_s: float = 5.0
    probability: float = 1.0


@dataclass(frozen=True, slots=True)
class RequestLog:
    """One trading request as the venue saw it (admin calls and streams are not logged): its TCP connection
    (a number per accepted connection, from 1), the monotonic times it arrived and its answer started to go out
    (before the client could have any of it; for a dropped request, when the venue was done with it), its HTTP
    status (0: dropped, no answer), and how many trading requests were being handled at once when it arrived,
    itself included."""

    method: str
    path: str
    connection: int
    started_s: float
    ended_s: float
    status: int
    concurrent: int


class RateLimiter:
    """At most ``per_second`` requests per key in any sliding one-second window."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str, now: float | None = None) -> float:
        """0 if the request may go ahead (and counts it), else the seconds until it could."""
        if self.per_second <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - 1.0:
                hits.popleft()
            if len(hits) >= self.per_second:
                return max(hits[0] + 1.0 - now, 0.001)
            hits.append(now)
            return 0.0
