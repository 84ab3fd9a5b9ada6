"""The orphan watch after a restart (``connectors.venue.orphans``): which logged decisions the resumed engine did
not make again, and when that is certain. The decision log's format round trip too."""

from __future__ import annotations

from connectors.venue.orphans import DECIDED_AGAIN_WITH_OTHER_TERMS, INPUT_ENDED, NOT_DECIDED_AGAIN, OrphanWatch
from connectors.wire.decisions import LoggedDecision, decode_decision, encode_decision
from wattflow.domain import Side
from wattflow.enums import OrderAction, TimeInForce
from wattflow.orders import OrderPlan, OrderRecord, Submit

KEY = "DE-LU:2018-10-28T12:00Z:PT60M"
OTHER = "DE-LU:2018-10-28T13:00Z:PT60M"


def submit(cid: str, signal_ts_ns: int, *, product: str = KEY, model: str = "m", quantity_mw: float = 0.5) -> Submit:
    plan = OrderPlan(cid, product, model, Side.BUY, 45.0, quantity_mw, TimeInForce.GTC, 0.0, 50.0, 5.0, signal_ts_ns)
    return Submit(plan, signal_ts_ns, decided_wall_ns=7)


def logged(command: Submit, offset: int = 0) -> LoggedDecision:
    return decode_decision(encode_decision(command), offset)


def test_a_decision_round_trips_through_the_log_format() -> None:
    command = submit("x", 100)
    decision = logged(command, 42)
    assert (decision.client_order_id, decision.product, decision.model, decision.signal_ts_ns, decision.offset,
            decision.decided_wall_ns) == ("x", KEY, "m", 100, 42, 7)
    assert decision.terms() == (KEY, 1, 45.0, 0.5, "GTC", None)


def test_a_decision_made_again_is_no_orphan_one_not_made_again_is_once_the_engine_is_past_its_signal() -> None:
    """Red if a decision made again were cancelled, or one not made again were cancelled before the engine had
    read its (product, model) past the signal that caused it (a slow catch-up is not a different decision), or
    never."""
    a, b, c = submit("a", 100), submit("b", 200), submit("c", 150, product=OTHER)
    watch = OrphanWatch([logged(a), logged(b), logged(c)])
    # The engine is at its signal of 100 and 200 is not read yet: nothing is certain.
    assert watch.observe([a], {(KEY, "m"): 100}) == []
    # At 200 exactly: a row with the same time (another trade id) may still decide it.
    assert watch.observe([], {(KEY, "m"): 200, (OTHER, "m"): 120}) == []
    # Another model of the product moving on says nothing about this model's rows.
    assert watch.observe([], {(KEY, "other"): 900}) == []
    found = watch.observe([], {(KEY, "m"): 201})
    assert [(o.decision.client_order_id, o.why, o.progress_ns) for o in found] == [("b", NOT_DECIDED_AGAIN, 201)]
    # The submit and the progress past it in one output: it was made again (commands are read first).
    assert watch.observe([c], {(OTHER, "m"): 500}) == [] and not watch
    assert watch.decided_again == 2


def test_decisions_in_the_snapshot_are_known_and_the_input_end_settles_the_rest() -> None:
    a, b = submit("a", 100), submit("b", 200)
    watch = OrphanWatch([logged(a), logged(b)], known={"a"})
    assert watch.known == 1 and [d.client_order_id for d in watch.watched()] == ["b"]
    assert [(o.decision.client_order_id, o.why) for o in watch.finish()] == [("b", INPUT_ENDED)]
    assert watch.observe([], {(KEY, "m"): 10**12}) == []


def test_made_again_with_other_terms_is_an_orphan_only_if_the_venue_refuses_it_as_a_duplicate() -> None:
    """Same id, other terms: the venue holds the logged order if it refuses the new one (DUPLICATE_CLIENT_ORDER_ID),
    and then it is an orphan; if it takes the new one, the logged one never reached it (cancelling would cancel the
    engine's own order). Red either way round."""
    a, b = submit("a", 100), submit("b", 200)
    watch = OrphanWatch([logged(a), logged(b)])
    assert watch.observe([submit("a", 100, quantity_mw=0.3), submit("b", 200, quantity_mw=0.2)], {(KEY, "m"): 300}) \
        == []
    assert {d.client_order_id for d in watch.changed()} == {"a", "b"}
    rejected = OrderRecord(100, KEY, "a", OrderAction.SUBMIT, "REJECTED", reason="DUPLICATE_CLIENT_ORDER_ID")
    acked = OrderRecord(200, KEY, "b", OrderAction.SUBMIT, "ACKED")
    unknown = OrderRecord(200, KEY, "b", OrderAction.SUBMIT, "UNKNOWN")
    found = watch.on_records([rejected, unknown])
    assert [(o.decision.client_order_id, o.why) for o in found] == [("a", DECIDED_AGAIN_WITH_OTHER_TERMS)]
    assert watch.on_records([acked]) == [] and not watch
    # What is watched survives a snapshot: a second restart watches the same.
    again = OrphanWatch(watch.watched(), changed=watch.changed())
    assert not again
