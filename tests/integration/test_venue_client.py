"""R4 against the real paper venue over HTTP: retries never duplicate, UNKNOWN is reconciled, the breaker
sends nothing while open."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from connectors.venue.client import (
    NOT_FOUND,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    OrderRequest,
    SubmitStatus,
    VenueClient,
)
from paper.handmade import BookEvent, handmade_feed
from paper.limits import FaultConfig
from paper.server import VenueServer
from tests.checks import Decision, decision_diff, mutations_go_red, under_another_id, venue_decisions
from tests.helpers import KeyedDiff
from wattflow.domain import Side, datetime_to_ns
from wattflow.stack.process import free_port

KEY = "DE-LU:2018-10-28T12:00Z:PT60M"
T0 = datetime_to_ns(datetime(2018, 10, 28, 10, 0, tzinfo=UTC))
API, ADMIN = "trader-key", "admin-key"


class CountingVenue:
    """The venue, with a server-side count of trading requests (admin calls not counted)."""

    def __init__(self, server: VenueServer) -> None:
        self.server = server
        self.count = 0
        self._lock = threading.Lock()
        base: Any = server.httpd.RequestHandlerClass
        owner = self

        class Counting(base):
            def _dispatch(self, method: str) -> None:
                if not self.path.startswith("/admin"):
                    with owner._lock:
                        owner.count += 1
                super()._dispatch(method)

        server.httpd.RequestHandlerClass = Counting

    @property
    def url(self) -> str:
        return self.server.url

    def admin(self, path: str, body: Any) -> Any:
        request = urllib.request.Request(self.url + path, data=orjson.dumps(body), method="POST",
                                         headers={"X-API-Key": ADMIN, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            return orjson.loads(answer.read())

    def fault(self, mode: str, **options: Any) -> None:
        self.admin("/admin/faults", {"mode": mode, **options})


@pytest.fixture
def venue() -> Iterator[CountingVenue]:
    feed = handmade_feed([BookEvent(T0, KEY, Side.BUY, 0, 49.5, 2.0), BookEvent(T0, KEY, Side.SELL, 0, 50.0, 1.5)])
    server = VenueServer(feed, port=free_port(), api_keys=[API], admin_key=ADMIN, rate_limit_per_s=10_000, seed=7)
    server.start()
    counting = CountingVenue(server)
    counting.admin("/admin/clock", {"ts_ns": T0})
    yield counting
    server.stop()


def resting(cid: str) -> OrderRequest:
    return OrderRequest(cid, KEY, "BUY", 40.0, 0.5)


def client(venue: CountingVenue, *, breaker: CircuitBreaker | None = None, **options: Any) -> VenueClient:
    # 1 s: a healthy answer on a loaded 2-core box can take a few hundred ms, and must not pass for a lost one.
    settings: dict[str, Any] = {"timeout_s": 1.0, "max_attempts": 3, "backoff_s": 0.01, "max_backoff_s": 0.05}
    settings.update(options)
    return VenueClient(venue.url, API, breaker=breaker or CircuitBreaker(failure_threshold=10_000), **settings)


def requested(cids: Iterable[str], make: Callable[[str], OrderRequest] | None = None) -> list[Decision]:
    """The decisions the test asked for: one per request it submitted (the truth the venue is counted against)."""
    return [_decision(request) for request in map(make or resting, cids)]


def _decision(request: OrderRequest) -> Decision:
    return (request.product, ("request", request.client_order_id), 1 if request.side == "BUY" else -1,
            request.price_eur_per_mwh, request.quantity_mw)


def held(venue: CountingVenue, cids: Iterable[str]) -> list[Decision]:
    """The venue's own books as decisions (each order it created, once), keyed by what was asked, not by id
    only: an order placed twice under two ids shows as an extra key."""
    return [decision for _, decision in venue_decisions(venue.server, {cid: ("request", cid) for cid in cids})]


def venue_check(venue: CountingVenue, cids: Iterable[str]) -> KeyedDiff:
    """The venue's books against the requests submitted, keyed by decision."""
    cids = list(cids)
    return decision_diff(requested(cids), held(venue, cids))


def test_happy_path_api(venue: CountingVenue) -> None:
    c = client(venue)
    first = c.submit(resting("a1"))
    assert first.status is SubmitStatus.ACKED and first.http_status == 201 and first.report is not None
    again = c.submit(resting("a1"))
    assert again.status is SubmitStatus.ACKED and again.replayed
    clash = c.submit(OrderRequest("a1", KEY, "BUY", 41.0, 0.5))
    assert clash.status is SubmitStatus.REJECTED and clash.reason == "DUPLICATE_CLIENT_ORDER_ID"
    bad = c.submit(OrderRequest("a2", KEY, "BUY", 40.001, 0.5))
    assert bad.status is SubmitStatus.REJECTED and bad.reason == "INVALID_PRICE_TICK" and bad.http_status == 422
    taker = c.submit(OrderRequest("a3", KEY, "BUY", 50.0, 1.0, "IOC"))
    assert taker.report is not None and taker.report["status"] == "FILLED"
    assert [o["client_order_id"] for o in c.open_orders()] == ["a1"]
    assert [f["client_order_id"] for f in c.fills()] == ["a3"]
    assert c.order("nope") is None and c.cancel("nope") is None
    cancelled = c.cancel("a1")
    assert cancelled is not None and cancelled["status"] == "CANCELLED"
    c.submit(resting("a4"))
    assert [o["client_order_id"] for o in c.cancel_all(KEY)] == ["a4"] and c.open_orders() == []
    assert c.unknown == {} and c.events == []


def test_r4_timeout_retries_never_duplicate_and_reconcile_finds_the_orders(venue: CountingVenue) -> None:
    """``timeout``: the venue processes the request and holds the answer; the retry is a replay."""
    venue.fault("timeout", timeout_s=1.5, probability=0.5)
    c = client(venue, max_attempts=2, timeout_s=0.5)
    outcomes = [c.submit(resting(f"t{i}")) for i in range(20)]
    unknown = [o.client_order_id for o in outcomes if o.status is SubmitStatus.UNKNOWN]
    acked = [o for o in outcomes if o.status is SubmitStatus.ACKED]
    assert len(acked) + len(unknown) == 20 and unknown and set(c.unknown) == set(unknown)
    assert any(o.replayed for o in acked)  # an answer lost, the retry was answered as a replay
    venue.fault("none")
    settled = c.reconcile()
    assert settled == dict.fromkeys(unknown, "NEW")  # processed despite the lost answer
    assert c.unknown == {} and c.not_found == {}
    cids = [f"t{i}" for i in range(20)]
    diff = venue_check(venue, cids)
    assert diff.same, str(diff)
    assert len(c.open_orders()) == 20
    red = mutations_go_red(lambda evidence: decision_diff(requested(cids), evidence), held(venue, cids),
                           under_another_id)
    print(f"\nR4 timeout: 20 orders asked for, the venue's books against them: {diff}; "
          f"{sum(o.replayed for o in acked)} acked on a replayed retry, {len(unknown)} unknown -> reconciled "
          f"({len(unknown)} found at the venue)\nR4 timeout red by hand: {red}")


def test_r4_drop_retries_never_duplicate(venue: CountingVenue) -> None:
    """``drop``: the connection is closed before processing; retries under the same id are safe."""
    venue.fault("drop", probability=0.5)
    c = client(venue, max_attempts=2)
    outcomes = [c.submit(resting(f"d{i}")) for i in range(20)]
    unknown = [o.client_order_id for o in outcomes if o.status is SubmitStatus.UNKNOWN]
    acked = [o.client_order_id for o in outcomes if o.status is SubmitStatus.ACKED]
    assert len(acked) + len(unknown) == 20 and unknown and c.stats.retries > 0
    venue.fault("none")
    assert c.reconcile() == dict.fromkeys(unknown, NOT_FOUND)  # dropped before processing
    assert set(c.not_found) == set(unknown) and c.unknown == {}
    for cid in list(c.not_found):  # resend under the same id
        assert c.submit(c.not_found[cid]).status is SubmitStatus.ACKED
    assert c.not_found == {}
    cids = [f"d{i}" for i in range(20)]
    diff = venue_check(venue, cids)
    assert diff.same, str(diff)
    red = mutations_go_red(lambda evidence: decision_diff(requested(cids), evidence), held(venue, cids),
                           under_another_id, at=len(cids) - 1)
    print(f"\nR4 drop: 20 orders asked for, the venue's books against them: {diff}; {len(unknown)} unknown -> "
          f"reconciled NOT_FOUND and resent, {c.stats.retries} retries\nR4 drop red by hand: {red}")


def test_r4_5xx_is_unknown_not_failed_then_reconciled(venue: CountingVenue) -> None:
    venue.fault("error_5xx", probability=1.0)
    c = client(venue, max_attempts=4)
    sent_before = venue.count
    outcome = c.submit(resting("e1"))
    assert outcome.status is SubmitStatus.UNKNOWN and outcome.attempts == 4 and "e1" in c.unknown
    assert venue.count - sent_before == 4 and c.stats.server_errors == 4
    assert c.reconcile() == {"e1": "UNKNOWN"} and "e1" in c.unknown  # venue still failing: keep it
    venue.fault("none")
    assert c.reconcile() == {"e1": NOT_FOUND}  # the 500 came before the venue processed the order
    assert c.unknown == {} and "e1" in c.not_found
    assert c.submit(c.not_found["e1"]).status is SubmitStatus.ACKED
    diff = venue_check(venue, ["e1"])
    assert diff.same, str(diff)
    kinds = [e["kind"] for e in c.events]
    assert kinds == ["order_unknown", "order_reconciled"]
    print(f"\nR4 error_5xx: 1 order, {outcome.attempts} x 500 over {outcome.attempts} attempts -> UNKNOWN, "
          f"reconciled NOT_FOUND, resent once; the venue's books against the order asked for: {diff}")


def test_r4_down_opens_the_breaker_and_nothing_is_sent_while_open(venue: CountingVenue) -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=0.3)
    c = client(venue, breaker=breaker, max_attempts=2)
    assert c.submit(resting("b0")).status is SubmitStatus.ACKED
    venue.fault("down")
    assert c.submit(resting("b1")).status is SubmitStatus.UNKNOWN  # 2 failures
    second = c.submit(resting("b2"))  # third failure opens the breaker mid-call: sent once, so UNKNOWN
    assert second.status is SubmitStatus.UNKNOWN and second.attempts == 2 and breaker.state is BreakerState.OPEN
    sent = venue.count
    blocked = [c.submit(resting(f"x{i}")) for i in range(50)]
    assert all(o.status is SubmitStatus.BLOCKED and o.reason == "CIRCUIT_OPEN" for o in blocked)
    assert c.stats.blocked == 50  # how fast a blocked submit returns: benchmarks/bench_venue_client.py
    with pytest.raises(CircuitOpenError):
        c.open_orders()
    assert venue.count == sent  # not one request while open
    time.sleep(0.35)
    assert c.submit(resting("x-probe")).status is SubmitStatus.BLOCKED  # the probe failed: open again
    assert venue.count == sent + 1 and breaker.state is BreakerState.OPEN
    venue.fault("none")
    assert c.submit(resting("x-early")).status is SubmitStatus.BLOCKED  # reset timeout not over yet
    assert venue.count == sent + 1
    time.sleep(0.35)
    back = c.submit(resting("b3"))
    assert back.status is SubmitStatus.ACKED and breaker.state is BreakerState.CLOSED
    assert venue.count == sent + 3  # probe + the order
    assert c.reconcile() == {"b1": NOT_FOUND, "b2": NOT_FOUND}  # 503 "down" never reached the exchange
    breaker_events = [e["kind"] for e in c.events if e["kind"].startswith("breaker_")]
    assert breaker_events == ["breaker_open", "breaker_half_open", "breaker_open", "breaker_half_open",
                              "breaker_closed"]
    assert all(set(e) == {"kind", "ts", "detail"} and isinstance(e["ts"], int) for e in c.events)
    diff = venue_check(venue, ["b0", "b3"])
    assert diff.same, str(diff)
    print(f"\nR4 down: breaker opened after 3 failures; {c.stats.blocked} calls blocked while open with 0 "
          f"requests sent (only {c.stats.probes} health probes, 1 failed); the half-open probe closed it; "
          f"2 unknown -> reconciled NOT_FOUND; the venue's books against the orders it must hold: {diff}")


def test_rate_limit_retry_after_is_honoured() -> None:
    feed = handmade_feed([BookEvent(T0, KEY, Side.BUY, 0, 49.5, 2.0)])
    with VenueServer(feed, port=free_port(), api_keys=[API], rate_limit_per_s=3) as server:
        c = VenueClient(server.url, API, timeout_s=1.0, max_attempts=3, backoff_s=0.01, max_backoff_s=1.5)
        for _ in range(3):
            c.open_orders()
        assert c.open_orders() == []  # 429 Retry-After: 1, waited, then answered
        # Waited out, not retried at once: a retry after the 10 ms backoff would have met a second 429 (the
        # limiter's window is 1 s). How long the wait took: benchmarks/bench_venue_client.py.
        assert c.stats.rate_limited == 1
        short = VenueClient(server.url, API, timeout_s=1.0, max_attempts=3, backoff_s=0.01, max_backoff_s=0.5)
        server.rate_limiter.check(API)
        server.rate_limiter.check(API)
        server.rate_limiter.check(API)
        outcome = short.submit(OrderRequest("r1", KEY, "BUY", 40.0, 0.5))
        assert outcome.status is SubmitStatus.REJECTED and outcome.reason == "RATE_LIMITED"  # Retry-After > budget
        assert short.unknown == {} and short.breaker.state is BreakerState.CLOSED


def test_connections_are_kept_alive_and_reused(venue: CountingVenue) -> None:
    """Keep-alive: 30 orders one after the other go over one TCP connection, 40 from 4 threads over at most 4.
    Red if the client opened a connection per request (as it did over http.client): the venue would count as many
    connections as requests."""
    c = client(venue)
    venue.server.reset_traffic()
    for i in range(30):
        assert c.submit(resting(f"k{i}")).status is SubmitStatus.ACKED
    sequential = venue.server.traffic()
    assert sequential.requests == 30 and sequential.connections == 1

    venue.server.reset_traffic()

    def trader(t: int) -> None:
        for i in range(10):
            assert c.submit(resting(f"k{t}-{i}")).status is SubmitStatus.ACKED

    threads = [threading.Thread(target=trader, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    concurrent = venue.server.traffic()
    assert concurrent.requests == 40 and 1 <= concurrent.connections <= 4
    diff = venue_check(venue, [f"k{i}" for i in range(30)] + [f"k{t}-{i}" for t in range(4) for i in range(10)])
    assert diff.same, str(diff)
    c.close()
    print(f"\nkeep-alive: 30 sequential requests over {sequential.connections} connection, 40 from 4 threads over "
          f"{concurrent.connections}")


def test_a_dropped_connection_does_not_poison_the_next_request(venue: CountingVenue) -> None:
    """``drop``: the venue closes the connection without an answer. The pool must discard it: the next request
    goes over another connection and is answered at its first attempt. Red if a broken connection were kept and
    reused (the request after the drop would fail its first attempt on it, or be sent on a dropped connection)."""
    c = client(venue, max_attempts=2)
    venue.server.reset_traffic()
    assert c.submit(resting("p0")).status is SubmitStatus.ACKED
    venue.server.set_faults(FaultConfig(mode="drop"))
    dropped = c.submit(resting("p1"))
    assert dropped.status is SubmitStatus.UNKNOWN and dropped.attempts == 2
    venue.server.set_faults(FaultConfig())
    errors = c.stats.transport_errors
    after = [c.submit(resting(f"p{i}")) for i in range(2, 6)]
    assert all(o.status is SubmitStatus.ACKED and o.attempts == 1 for o in after)
    assert c.stats.transport_errors == errors == 2
    log = venue.server.traffic().log
    dropped_on = {r.connection for r in log if r.status == 0}
    answered_after = [r for r in log if r.method == "POST" and r.status == 201][1:]
    assert len(dropped_on) == 2 and len(answered_after) == 4  # each drop closed its connection
    assert not dropped_on & {r.connection for r in answered_after}
    assert c.reconcile() == {"p1": NOT_FOUND}
    diff = venue_check(venue, [f"p{i}" for i in (0, 2, 3, 4, 5)])
    assert diff.same, str(diff)
    c.close()


def test_a_late_answer_on_a_timed_out_connection_is_never_read_as_the_next_one(venue: CountingVenue) -> None:
    """``timeout``: the venue processes the order and answers after the client gave up. That connection must not
    be reused: its late answer would be read as the answer to the next request (another order's 201). Red if the
    client kept the connection that timed out."""
    c = client(venue, max_attempts=1, timeout_s=0.3)
    venue.server.set_faults(FaultConfig(mode="timeout", timeout_s=0.6))
    assert c.submit(resting("late1")).status is SubmitStatus.UNKNOWN
    venue.server.set_faults(FaultConfig())
    time.sleep(0.8)  # the held answer has gone out by now
    nxt = c.submit(OrderRequest("late2", KEY, "BUY", 41.0, 0.5))
    assert nxt.status is SubmitStatus.ACKED and nxt.attempts == 1
    assert nxt.report is not None
    assert (nxt.report["client_order_id"], nxt.report["price_eur_per_mwh"]) == ("late2", 41.0)
    assert c.reconcile() == {"late1": "NEW"}
    c.close()
