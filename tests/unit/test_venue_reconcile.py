"""Reconciliation at start (``connectors/venue/reconcile.py``) and the dispatcher's rule that nothing goes out before
it: the function over a scripted client, and the dispatcher and desk over the scripted venue of the dispatcher
tests (no HTTP here; ``tests/integration/test_trading_r10.py`` runs it against the real venue)."""

from __future__ import annotations

import pickle
from collections.abc import Collection
from typing import Any

import pytest

from connectors.venue.dispatcher import Dispatcher
from connectors.venue.reconcile import highest_exec_id, reconcile_at_start
from tests.unit.test_order_dispatcher import KEY, ScriptedClient, cancel, desk, outcomes, settle, submit, wait_for
from wattflow.errors import VenueError


class VenueAnswers:
    """A client that answers reconciliation from fixed data (a unit test of one function)."""

    def __init__(self, open_ids: list[str], reports: list[dict[str, Any]], venue: set[str]) -> None:
        self.open_ids, self.all_reports, self.venue = open_ids, reports, venue
        self.unknown = {"u-got": {}, "u-lost": {}}
        self.asked_since: list[int] = []

    def open_orders(self) -> list[dict[str, Any]]:
        return [{"client_order_id": cid, "status": "NEW"} for cid in self.open_ids]

    def reports(self, since: int = 0) -> list[dict[str, Any]]:
        self.asked_since.append(since)
        return [r for r in self.all_reports if r["exec_id"] > since]

    def reconcile(self, ids: Collection[str] | None = None) -> dict[str, str]:
        settled = {cid: ("FILLED" if cid in self.venue else "NOT_FOUND") for cid in self.unknown}
        self.unknown = {}
        return settled


def fill(exec_id: int, cid: str, side: int, quantity_mw: float, product: str = KEY) -> dict[str, Any]:
    return {"exec_id": exec_id, "kind": "fill", "client_order_id": cid, "product": product, "side": side,
            "last_quantity_mw": quantity_mw, "status": "FILLED"}


def test_reconcile_at_start_reports_open_orders_fills_since_the_mark_and_settles_the_unknown() -> None:
    """Open orders, the reports after the mark only, the fills among them signed per product, the UNKNOWN orders
    settled, and which restored orders the venue holds (open, reported since the mark, or settled as known). Red if
    a report at or before the mark were counted, a sell counted as a buy, or a restored order the venue never got
    were taken as held."""
    reports = [fill(3, "old", 1, 9.0), fill(4, "r-filled", 1, 1.5), {"exec_id": 5, "kind": "ack",
               "client_order_id": "r-open", "product": KEY}, fill(6, "x", -1, 0.5, "OTHER")]
    client = VenueAnswers(["r-open", "theirs"], reports, {"u-got"})
    result = reconcile_at_start(client, since_exec_id=3, restored=["r-open", "r-filled", "r-never", "u-got"],
                                wall_ns=7)
    assert client.asked_since == [3]
    assert sorted(result.open_orders) == ["r-open", "theirs"]
    assert [r["exec_id"] for r in result.reports] == [4, 5, 6] and result.last_exec_id == 6
    assert result.filled_mw() == {KEY: 1.5, "OTHER": -0.5}
    assert result.settled == {"u-got": "FILLED", "u-lost": "NOT_FOUND"}
    assert result.restored_at_venue == ["r-open", "r-filled", "u-got"] and result.restored_absent == ["r-never"]
    detail = result.detail()
    assert (detail["open_orders"], detail["fills_since"], detail["reports_since"], detail["unknown_settled"]) == (
        2, 2, 3, {"FILLED": 1, "NOT_FOUND": 1})
    assert highest_exec_id({"executions": [{"exec_id": 8}, {"exec_id": 11}]}) == 11
    assert highest_exec_id({"exec_id": 4}) == 4 and highest_exec_id(None) == 0


class ReconcilingScript(ScriptedClient):
    """The dispatcher tests' scripted venue, which also answers reconciliation; ``down`` makes it fail; ``calls``
    is every request in order (``reconcile``, then a submit's id)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.calls: list[str] = []
        self.exec_id = 0

    def submit(self, order: Any) -> Any:
        outcome = super().submit(order)
        self.calls.append(outcome.client_order_id)
        self.exec_id += 1
        if outcome.report is not None:
            outcome.report["executions"] = [{"exec_id": self.exec_id}]
        return outcome

    def open_orders(self) -> list[dict[str, Any]]:
        if self.down:
            raise VenueError("venue down")
        self.calls.append("reconcile")
        return [{"client_order_id": cid} for cid in sorted(self.venue)]

    def reconcile(self, ids: Any = None) -> dict[str, str]:
        settled = {cid: "NEW" if cid in self.venue else "NOT_FOUND" for cid, _ in self.unsettled()[0].items()
                   if ids is None or cid in ids}
        super().reconcile(ids)
        return settled

    def reports(self, since: int = 0) -> list[dict[str, Any]]:
        return [{"exec_id": since + 1, "kind": "fill", "client_order_id": "a", "product": KEY, "side": 1,
                 "last_quantity_mw": 0.5}]


def test_nothing_goes_out_before_reconciliation_and_a_failed_one_is_tried_again_at_the_next_drain() -> None:
    """A dispatcher restored from a snapshot (2 commands queued, 1 UNKNOWN order) while the venue is down: no
    request goes out, new commands included, and its snapshot still holds everything; each drain tries again.
    Once the venue answers: reconciliation first, then the restored commands, then the new one; its event
    ``VENUE_RECONCILED`` says which restored orders the venue already had; the exec_id mark it started from is the
    one the snapshot carried, and the mark moves on in the next snapshot. Red if a command went out before the
    venue was reconciled (``calls`` would not start with ``reconcile``)."""
    old = ReconcilingScript()
    first = Dispatcher(desk(old), max_in_flight=2)
    old.vanish = {"u1"}
    first.put([submit("u1")])
    wait_for(first.idle)
    first.put([submit("seen")])
    wait_for(first.idle)
    seen = old.exec_id  # the answer to "seen" carried it
    old.gate.clear()
    first.put([submit("a"), submit("b")])
    wait_for(lambda: old.waiting == 2)
    try:
        _, state = first.checkpoint()
    finally:
        old.gate.set()
    first.close(1)
    state = pickle.loads(pickle.dumps(state))
    mark = state.desk.last_exec_id
    assert mark == seen > 0 and list(state.desk.unknown) == ["u1"]

    fresh = ReconcilingScript()
    fresh.venue = {"a"}  # reached the venue before the crash
    fresh.down = True
    dispatcher = Dispatcher(desk(fresh), max_in_flight=1, reconcile_first=True)
    dispatcher.restore(state)
    dispatcher.put([submit("new")])
    for _ in range(3):
        dispatcher.drain()
        wait_for(lambda: dispatcher.in_flight == 0)
    assert fresh.sent == [] and fresh.calls == [] and not dispatcher.reconciled
    _, held = dispatcher.checkpoint()
    assert [c.client_order_id for c in held.commands] == ["a", "b", "new"] and list(held.desk.unknown) == ["u1"]
    fresh.down = False
    done = settle(dispatcher)
    assert dispatcher.reconciled
    assert fresh.calls[0] == "reconcile" and fresh.calls[1:4] == ["a", "b", "new"] and "u1" in fresh.calls[4:]
    assert ("a", "SUBMIT", "REPLAYED") in outcomes(done)
    (event,) = [e for e in dispatcher.desk.client_events() if e.kind == "VENUE_RECONCILED"]
    assert event.detail["since_exec_id"] == mark and event.detail["restored_at_venue_ids"] == ["a"]
    assert event.detail["unknown_settled"] == {"NOT_FOUND": 1} and event.detail["fills_since"] == 1
    _, after = dispatcher.checkpoint()
    assert after.desk.last_exec_id > mark
    assert dispatcher.close(1)


def test_without_reconcile_first_the_dispatcher_starts_at_once() -> None:
    """The rule is the order sink's choice: a dispatcher not asked to reconcile sends at once (and never calls the
    venue's reconciliation). Red if the gate were on by default for every dispatcher."""
    client = ReconcilingScript()
    dispatcher = Dispatcher(desk(client), max_in_flight=1)
    dispatcher.put([submit("x"), cancel("x")])
    settle(dispatcher)
    assert client.calls == ["x"] and client.cancels == ["x"] and dispatcher.reconciled
    assert dispatcher.close(1)


def test_a_reconciliation_that_raises_a_bug_stops_the_flow() -> None:
    """Only a venue failure is tried again; anything else is a bug and the next drain raises it."""
    client = ReconcilingScript()

    def broken() -> list[dict[str, Any]]:
        raise KeyError("client_order_id")

    client.open_orders = broken  # type: ignore[method-assign]
    dispatcher = Dispatcher(desk(client), max_in_flight=1, reconcile_first=True)
    dispatcher.put([submit("x")])
    dispatcher.drain()
    wait_for(lambda: dispatcher.in_flight == 0)
    with pytest.raises(KeyError):
        dispatcher.drain()
    assert client.sent == []
    dispatcher.close(0.1)
