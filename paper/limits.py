"""The paper venue's limits and faults: stream pacing, body size, the per-key rate limit, injected faults."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

FAULT_MODES: tuple[str, ...] = ("none", "down", "error_5xx", "timeout", "slow", "drop", "mix")
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
    """The venue's faults. ``mode`` applies to a ``probability`` share of requests; ``mode="mix"`` draws for each
    request one of the modes of ``mix`` (mode, share of requests), or none, from the venue's seeded generator: a
    schedule of faults of several kinds that depends only on the seed and the order requests arrive in."""

    mode: str = "none"
    extra_latency_s: float = 0.5
    timeout_s: float = 5.0
    probability: float = 1.0
    mix: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {self.mode!r}: expected one of {', '.join(FAULT_MODES)}")
        for mode, share in self.mix:
            if mode not in FAULT_MODES or mode in ("none", "mix"):
                raise ValueError(f"fault mix: unknown or nested mode {mode!r}")
            if not 0 <= share <= 1:
                raise ValueError(f"fault mix: share of {mode!r} must be within [0, 1], not {share}")
        if sum(share for _, share in self.mix) > 1 + 1e-9:
            raise ValueError("fault mix: the shares add up to more than 1")
        if self.mode == "mix" and not self.mix:
            raise ValueError("fault mode 'mix' needs a mix, e.g. {\"timeout\": 0.02, \"error_5xx\": 0.05}")


@dataclass(slots=True)
class RequestRecord:
    """One request as the venue saw it, the venue's own log (admin calls are not logged; streams and ``/health``
    are): when it arrived (``wall_ns``, ``time.time_ns``; ``started_s``, monotonic), its method and path, the
    client order id it names (the body's, or the path's for ``/orders/{id}``; "" if none), the body of an order
    entry (``POST /orders``, as received; else None), its TCP connection (a number per accepted connection, from
    1), ``traded`` (a trading request: counted in :class:`~paper.server.Traffic`, not a stream), how many trading
    requests were being handled at once when it arrived (itself included; 0 for one not traded), the fault drawn
    for it ("none" if none), when its answer started to go out (``ended_s``, monotonic: before the client could
    have any of it; for a dropped request, when the venue was done with it; 0 while it is being handled) and its
    HTTP status (0: dropped or not answered yet). Logged as it arrives, before any fault, retries included: the
    truth tests and benchmarks count orders against. The server fills in the rest as the request is handled and
    hands out copies."""

    wall_ns: int
    method: str
    path: str
    connection: int
    started_s: float
    traded: bool
    concurrent: int = 0
    client_order_id: str = ""
    body: dict[str, Any] | None = None
    fault: str = "none"
    ended_s: float = 0.0
    status: int = 0

    def row(self) -> dict[str, Any]:
        """JSON-ready (``GET /admin/requests``)."""
        return {"wall_ns": self.wall_ns, "method": self.method, "path": self.path,
                "client_order_id": self.client_order_id, "connection": self.connection, "traded": self.traded,
                "concurrent": self.concurrent, "fault": self.fault, "status": self.status,
                "started_s": self.started_s, "ended_s": self.ended_s, "body": self.body}


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
