"""Order-path availability: can an order we send now reach the venue's book? Measured from the order outcomes the
engine sees, in market time (the engine's clock; never the wall clock).

``F`` is the number of recent failed order outcomes, each decayed with half-life ``H`` (ns of market time): a reject
(venue or order sink, any reason), an order refused unsent by the open circuit breaker (``BLOCKED``) and an
order whose outcome is unknown (``UNKNOWN``: no answer within the retry budget). Then

    order_path_availability = exp(-F / f0)        (dimensionless, in (0, 1])

with ``f0`` the failures tolerated (``tolerated_failures``): one reject gives ``exp(-1/3) = 0.72`` with the default
``f0 = 3``; a burst of 10 gives 0.036 and recovers to 0.5 after ``log2(10 / (f0 ln 2)) = 2.3`` half-lives without
another failure. It is venue-wide (one order path for every product) and depends on report arrival, which the
market-data log does not order: the engine applies it, the models (pure functions of the log) do not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(slots=True)
class OrderPath:
    """Decayed failure count (picklable, part of the engine state) and the failures by reason (totals)."""

    half_life_ns: int
    tolerated_failures: float
    failures: float = 0.0
    last_ns: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)

    def _decay(self, now_ns: int) -> None:
        if now_ns > self.last_ns:
            if self.failures and self.half_life_ns > 0:
                self.failures *= math.exp2(-(now_ns - self.last_ns) / self.half_life_ns)
            self.last_ns = now_ns

    def on_failure(self, now_ns: int, reason: str) -> float:
        """Count a failed outcome at market time ``now_ns``; returns the availability after it."""
        self._decay(now_ns)
        self.failures += 1.0
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        return self.availability(now_ns)

    def availability(self, now_ns: int) -> float:
        """``exp(-F / f0)`` at market time ``now_ns`` (see the module docstring)."""
        self._decay(now_ns)
        return math.exp(-self.failures / self.tolerated_failures) if self.tolerated_failures > 0 else 1.0
