"""The venue client's circuit breaker state machine (fake clock) and its backoff schedule."""

from __future__ import annotations

import random

import pytest

from connectors.venue.client import BreakerState, CircuitBreaker, Permit, VenueClient
from wattflow.errors import VenueError


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(threshold: int = 3, reset: float = 2.0) -> tuple[CircuitBreaker, FakeClock, list[tuple[str, str]]]:
    clock = FakeClock()
    changes: list[tuple[str, str]] = []
    b = CircuitBreaker(threshold, reset, clock=clock, on_change=lambda old, new, _: changes.append((old, new)))
    return b, clock, changes


def test_consecutive_failures_open_and_a_success_resets_the_count() -> None:
    b, _, changes = breaker()
    b.record_failure("x")
    b.record_failure("x")
    b.record_success()
    b.record_failure("x")
    b.record_failure("x")
    assert b.state is BreakerState.CLOSED and b.acquire() is Permit.GO
    b.record_failure("x")
    assert b.state is BreakerState.OPEN and b.acquire() is Permit.BLOCKED
    assert changes == [("CLOSED", "OPEN")]


def test_reset_timeout_allows_exactly_one_probe() -> None:
    b, clock, _ = breaker(threshold=1, reset=2.0)
    b.record_failure("down")
    clock.now += 1.99
    assert b.acquire() is Permit.BLOCKED
    clock.now += 0.01
    assert b.acquire() is Permit.PROBE and b.state is BreakerState.HALF_OPEN
    assert b.acquire() is Permit.BLOCKED  # the probe is out: nobody else goes


def test_probe_success_closes_and_failure_reopens_with_a_fresh_timeout() -> None:
    b, clock, changes = breaker(threshold=1, reset=2.0)
    b.record_failure("down")
    clock.now += 2.0
    assert b.acquire() is Permit.PROBE
    b.record_failure("still down")
    assert b.state is BreakerState.OPEN
    clock.now += 1.0
    assert b.acquire() is Permit.BLOCKED  # the timeout restarted at the failed probe
    clock.now += 1.0
    assert b.acquire() is Permit.PROBE
    b.record_success()
    assert b.state is BreakerState.CLOSED and b.consecutive_failures == 0 and b.acquire() is Permit.GO
    assert changes == [("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "OPEN"),
                       ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")]
    assert [new for _, new, _ in b.transitions] == ["OPEN", "HALF_OPEN", "OPEN", "HALF_OPEN", "CLOSED"]


def test_breaker_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(0)
    with pytest.raises(ValueError, match="reset_timeout_s"):
        CircuitBreaker(1, -1.0)


def test_client_events_and_backoff_without_a_venue() -> None:
    """Nothing listens on the port: every attempt is a transport failure; the breaker opens; sleeps are
    exponential with jitter and capped."""
    clock = FakeClock()
    slept: list[float] = []
    b = CircuitBreaker(failure_threshold=4, reset_timeout_s=5.0, clock=clock)
    c = VenueClient("http://127.0.0.1:9", "k", timeout_s=0.2, max_attempts=4, backoff_s=0.1, max_backoff_s=0.3,
                    breaker=b, sleep=slept.append, rng=random.Random(1), wall_clock_ns=lambda: 42)
    outcome = c.submit({"client_order_id": "u1", "product": "P", "side": "BUY", "price_eur_per_mwh": 1.0,
                        "quantity_mw": 1.0})
    assert outcome.status == "UNKNOWN" and outcome.attempts == 4 and "u1" in c.unknown
    assert len(slept) == 3
    for attempt, wait in enumerate(slept, start=1):
        capped = min(0.3, 0.1 * 2 ** (attempt - 1))
        assert capped / 2 <= wait <= capped
    assert b.state is BreakerState.OPEN
    assert c.submit({"client_order_id": "u2"}).status == "BLOCKED" and c.stats.blocked == 1
    assert [e["kind"] for e in c.events] == ["breaker_open", "order_unknown"]
    assert all(e["ts"] == 42 for e in c.events)
    assert c.reconcile() == {"u1": "UNKNOWN"} and "u1" in c.unknown  # blocked: kept for later
    with pytest.raises(VenueError):
        VenueClient("ftp://x", "k")
