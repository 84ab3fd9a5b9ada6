"""The order desk and the dispatcher with a scripted venue client (no network): kept orders, an unconfirmed kill
switch, a failing task. The rules against the real venue are in tests/integration/test_order_sink.py."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from connectors.venue.client import CIRCUIT_OPEN, OrderRequest, SubmitOutcome, SubmitStatus
from connectors.venue.desk import OrderDesk
from connectors.venue.dispatcher import Dispatcher
from wattflow.domain import Side
from wattflow.enums import CancelReason, TimeInForce
from wattflow.errors import VenueError
from wattflow.orders import CancelAll, OrderPlan, Submit

KEY = "DE-LU:2018-10-28T12:00Z:PT60M"


class ScriptedClient:
    """What OrderDesk uses of VenueClient, answering from a script: ids in ``refuse`` are BLOCKED, cancel-alls
    fail while ``cancel_all_fails``, ``explode`` makes submit raise."""

    def __init__(self) -> None:
        self.refuse: set[str] = set()
        self.cancel_all_fails = False
        self.explode = False
        self.sent: list[str] = []
        self.cancel_alls = 0
        self.unknown: dict[str, dict[str, Any]] = {}
        self.not_found: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def submit(self, order: OrderRequest | dict[str, Any]) -> SubmitOutcome:
        cid = order.client_order_id if isinstance(order, OrderRequest) else str(order["client_order_id"])
        if self.explode:
            raise RuntimeError("a bug in a worker thread")
        if cid in self.refuse:
            return SubmitOutcome(cid, SubmitStatus.BLOCKED, reason=CIRCUIT_OPEN, attempts=1)
        with self._lock:
            self.sent.append(cid)
        return SubmitOutcome(cid, SubmitStatus.ACKED, report={"client_order_id": cid}, http_status=201, attempts=1)

    def cancel(self, client_order_id: str) -> dict[str, Any] | None:
        return {"status": "CANCELLED"}

    def cancel_all(self, product: str | None = None) -> list[dict[str, Any]]:
        if self.cancel_all_fails:
            raise VenueError("venue down")
        self.cancel_alls += 1
        return []

    def forget(self, client_order_id: str) -> bool:
        return False

    def forget_product(self, product: str | None) -> list[str]:
        return []

    def tracked(self) -> tuple[list[str], list[str]]:
        return [], []

    def reconcile(self, ids: Any = None) -> dict[str, str]:
        return {}

    def events_since(self, position: int) -> tuple[list[dict[str, Any]], int]:
        return [], position


def submit(cid: str) -> Submit:
    return Submit(OrderPlan(cid, KEY, "m", Side.BUY, 45.0, 0.5, TimeInForce.GTC, 0.0, 50.0, 5.0, 0), 1)


def desk(client: ScriptedClient) -> OrderDesk:
    return OrderDesk(client)  # type: ignore[arg-type]


def test_kept_orders_are_retried_oldest_first_and_the_first_refused_ends_the_round() -> None:
    """Red if kept orders were retried out of order, or a refused one moved behind younger ones."""
    client = ScriptedClient()
    d = desk(client)
    client.refuse = {"a", "b", "c"}
    assert [d.submit(submit(cid)).status for cid in "abc"] == ["BLOCKED"] * 3
    assert list(d.kept) == ["a", "b", "c"]
    client.refuse = {"b"}
    assert [(r.client_order_id, r.status) for r in d.retry_kept()] == [("a", "ACKED")]
    assert list(d.kept) == ["b", "c"] and client.sent == ["a"]  # c not tried after b was refused
    client.refuse = set()
    assert [r.client_order_id for r in d.retry_kept()] == ["b", "c"] and d.kept == {}


def test_an_unconfirmed_kill_switch_holds_back_what_follows_until_the_venue_confirms() -> None:
    """The cancel-all fails (venue down): the order decided after it is not sent while the cancel-all is pending;
    once the venue is back, the next drain's upkeep sends the cancel-all, then the order goes. Red if orders after
    an unconfirmed kill switch went out."""
    client = ScriptedClient()
    dispatcher = Dispatcher(desk(client), max_in_flight=4)
    client.cancel_all_fails = True
    dispatcher.put([CancelAll(None, CancelReason.HALTED, 1), submit("after")])
    deadline = time.monotonic() + 5
    while dispatcher.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    for _ in range(5):  # heartbeats: the upkeep retries the cancel-all, which still fails
        dispatcher.drain()
        time.sleep(0.02)
    assert client.sent == [] and dispatcher.queued == 1 and dispatcher.desk.cancel_all_pending()
    client.cancel_all_fails = False
    dispatcher.drain()
    assert dispatcher.wait_idle(5)
    records = dispatcher.drain()
    assert [(r.action, r.status) for r in records] == [("CANCEL_ALL", "CANCELLED_0"), ("SUBMIT", "ACKED")]
    assert client.sent == ["after"] and client.cancel_alls == 1
    assert dispatcher.close(1)


def test_close_gives_up_on_a_venue_that_never_confirms() -> None:
    """close() is bounded: a cancel-all the venue never confirms leaves it after ``stall_s`` without progress.
    Red if close() waited forever."""
    client = ScriptedClient()
    client.cancel_all_fails = True
    dispatcher = Dispatcher(desk(client), max_in_flight=2)
    dispatcher.put([CancelAll(None, CancelReason.HALTED, 1), submit("after")])
    started = time.monotonic()
    assert dispatcher.close(0.3) is False
    assert time.monotonic() - started < 5 and client.sent == []
    with pytest.raises(RuntimeError, match="closed"):
        dispatcher.put([submit("late")])


def test_a_failing_task_is_raised_by_the_next_drain() -> None:
    """A bug in a worker thread must stop the flow loudly, not vanish with the order. Red if drain() swallowed it."""
    client = ScriptedClient()
    client.explode = True
    dispatcher = Dispatcher(desk(client), max_in_flight=2)
    dispatcher.put([submit("x")])
    assert dispatcher.wait_idle(5)
    with pytest.raises(RuntimeError, match="worker thread"):
        dispatcher.drain()
    dispatcher.close(0.1)
