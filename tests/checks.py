"""The comparisons the reliability tests make, and the mutations that show each of them can go red.

A check that cannot fail proves nothing. Each check here counts what the system under test produced against a
truth it did not write (the feed or the signals sent in, an offline reference run of the engine, the venue's own
books), keyed and exact: every record counted (a multiset, never a set), the missing keys and the extra keys
listed. :func:`mutations_go_red` feeds a check the real truth with one record dropped and one doubled by hand, and
returns the keys the check named, so that each test shows on its own evidence that its check would fail.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from operators.sizing import client_order_id
from tests.helpers import KeyedDiff, keyed_diff
from wattflow.settings import ExecutionSettings
from wattflow.signals import SignalBatch

T = TypeVar("T", bound=Hashable)

#: What an order is, independent of the id it travels under: (product, trigger, side, price, quantity). The
#: trigger is the signal row that caused it, (model, signal time, trade id); an order under an id no signal sent
#: in gives, it is ``("unknown id", <the id>)``. Two orders of one decision under two ids are the same key twice.
Decision = tuple[str, tuple[Any, ...], int, float, float]


@dataclass(frozen=True)
class Red:
    """What a check said about the evidence with one record dropped and with one record doubled."""

    dropped: KeyedDiff
    doubled: KeyedDiff

    def __str__(self) -> str:
        return f"one dropped -> {self.dropped}; one doubled -> {self.doubled}"


def mutations_go_red(check: Callable[[list[T]], KeyedDiff], evidence: Sequence[T],
                     double: Callable[[T], T] | None = None, at: int = 0) -> Red:
    """Run ``check`` on ``evidence`` with its record ``at`` dropped and with that record doubled (as ``double``
    makes the copy, default: the same record again); assert that both go red naming that record (missing once,
    extra once) and nothing else. The evidence itself must pass the check first."""
    assert check(list(evidence)).same, "the evidence must pass before it is mutated"
    record = evidence[at]
    dropped = check([r for i, r in enumerate(evidence) if i != at])
    copy = double(record) if double else record
    doubled = check([*evidence, copy])
    assert dropped.missing == [(record, 1)] and not dropped.extra, f"dropping {record!r} was not named: {dropped}"
    assert doubled.extra == [(copy, 1)] and not doubled.missing, f"doubling {record!r} was not named: {doubled}"
    return Red(dropped, doubled)


# --- decisions: an offline reference, and the venue's books ------------------------------------------------


def signal_triggers(batches: Iterable[SignalBatch]) -> dict[str, tuple[Any, ...]]:
    """Client order id -> trigger for every signal row sent in: the id the engine gives the order a signal causes
    (``operators.sizing.client_order_id``), so an order at the venue is traced back to its signal without asking
    the flow."""
    return {client_order_id(b.product, b.model, int(ts), int(trade)): (b.model, int(ts), int(trade))
            for b in batches for ts, trade in zip(b.ts_ns.tolist(), b.trade_id.tolist(), strict=True)}


def reference_decisions(batches: Sequence[SignalBatch], execution: ExecutionSettings) -> dict[str, Decision]:
    """Client order id -> decision for every order the execution engine decides over ``batches`` in this order,
    run here, in-process (not the flow under test), under ``execution``. Each cancel it asks for is confirmed
    before the next signal (as a venue that answers would), so pre-trade risk releases the cancelled order."""
    from connectors.wire.signals import signal_records, signal_rows
    from operators.execution import EngineSettings, ExecutionEngine
    from wattflow.orders import Cancel, Submit

    engine = ExecutionEngine(EngineSettings.from_settings(execution))
    out: dict[str, Decision] = {}
    for batch in batches:
        records = signal_records(batch, "reference")
        rows = [row for value in records.values for row in signal_rows(orjson.loads(value))]
        decided = engine.on_signals(rows)
        for command in decided.commands:
            if isinstance(command, Submit):
                plan = command.plan
                trigger = signal_triggers([batch])[plan.client_order_id]
                out[plan.client_order_id] = (plan.product, trigger, int(plan.side), plan.price_eur_per_mwh,
                                             plan.quantity_mw)
        confirmed = [{"kind": "cancel", "client_order_id": c.client_order_id, "product": c.product,
                      "ts_ns": c.ts_ns} for c in decided.commands if isinstance(c, Cancel)]
        engine.on_reports(confirmed)
    return out


def venue_decisions(venue: Any, triggers: Mapping[str, tuple[Any, ...]]) -> list[tuple[str, Decision]]:
    """Every order the venue holds, from its own books (its ``ack`` reports: one per order it created), as
    (client order id, decision); the trigger looked up in ``triggers`` (:func:`signal_triggers`)."""
    with venue.lock:
        acks = [r for r in venue.exchange.reports if r.kind == "ack"]
    return [(r.client_order_id, (r.product, triggers.get(r.client_order_id, ("unknown id", r.client_order_id)),
                                 int(r.side), float(r.price_eur_per_mwh), float(r.leaves_quantity_mw)))
            for r in acks]


def decision_diff(expected: Iterable[Decision], at_venue: Iterable[Decision]) -> KeyedDiff:
    """Decisions expected (from the signals sent in) against the orders at the venue, keyed by decision and
    counted: a lost order is missing, an order no signal asked for is extra, and one decision placed under two
    client order ids is that decision extra once (never a figure per client order id, which the venue's own
    idempotency makes zero by construction)."""
    return keyed_diff(expected, at_venue)


def under_another_id(decision: Decision) -> Decision:
    """The mutation "the same decision placed twice": what the venue's books would show for it under a second
    client order id (one the engine never made, so its trigger is unknown)."""
    product, _, side, price, quantity = decision
    return (product, ("unknown id", "wf-mutant-second-id"), side, price, quantity)


def signals_check_goes_red(expected: dict[Any, Any], got: dict[Any, Any]) -> str:
    """:func:`tests.trading.keyed_differences` (the signals check) on ``got`` with one signal dropped and with one
    signal's fields changed: both must be named. Returns what it said."""
    from tests.trading import keyed_differences

    assert keyed_differences(expected, got) == ([], [], []), "the evidence must pass before it is mutated"
    key = sorted(got, key=repr)[len(got) // 2]
    dropped = keyed_differences(expected, {k: v for k, v in got.items() if k != key})
    changed = keyed_differences(expected, {**got, key: (*got[key][:-1], "mutated")})
    assert dropped == ([key], [], []), f"dropping signal {key} was not named: {dropped}"
    assert changed == ([], [], [key]), f"changing signal {key} was not named: {changed}"
    return f"one dropped -> missing {dropped[0]}; one changed -> changed {changed[2]}"
