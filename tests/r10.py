"""The R10 comparison: the decisions an input determines against the venue's own log of the requests it received,
and the positions a flow ended with against the venue's fills. One function, :func:`r10_check`, used by the real
check (``tests/integration/test_trading_r10.py``) and by its mutation test, so that the check shown red by hand is
the one that passes.

A **decision** is what the engine decided in response to one signal of the input: its *trigger* (product, model,
signal time, trade id: a signal row the raw input determines) and its *terms* (product, side, price, quantity,
time in force, displayed quantity). Its client order id is a hash of the trigger; the check does not take that
on trust: it maps ids back to triggers by hashing every signal of the input (an id no signal explains has no
trigger, ``None``), and it counts "the same decision under two ids" by terms alone.

What the venue's log says of a decision (each ``POST /orders`` as received, before any fault, retries included):

* **delivered**: at least one of its ``POST``s was processed by the venue (no ``drop``, ``error_5xx`` or ``down``
  fault drawn for it, answered, not rate limited), or, every ``POST`` of it having failed, a ``DELETE`` of its id
  reached the venue after them (the flow cancelled it before it got through: superseded, not lost);
* **lost**: a decision not delivered (never sent, or sent only into faults and given up);
* **extra**: an order entry at the venue that is no decision of the input (a trigger the input has no decision
  for, or other terms under a decision's id);
* **the same decision under two ids**: for each terms key, the distinct client order ids the venue got an order
  entry for, minus the decisions with those terms: a positive excess is a decision sent again under another id.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from operators.sizing import client_order_id

#: Faults after which the venue did not process the request.
UNPROCESSED_FAULTS = ("drop", "error_5xx", "down")

Trigger = tuple[str, str, int, int]  # product, model, signal ts_ns, trade id
Terms = tuple[str, str, float, float, str, float | None]  # product, side, price, quantity, tif, display quantity


def terms_of(body: Mapping[str, Any]) -> Terms:
    """An order entry's terms, as the venue received them."""
    display = body.get("display_quantity_mw")
    return (str(body["product"]), str(body["side"]), round(float(body["price_eur_per_mwh"]), 2),
            round(float(body["quantity_mw"]), 3), str(body.get("tif", "GTC")),
            None if display is None else round(float(display), 3))


def triggers_of(signal_keys: Iterable[Trigger]) -> dict[str, Trigger]:
    """Client order id -> the signal it would come from, for every signal of the input."""
    return {client_order_id(*key): key for key in signal_keys}


def order_entries(requests: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The ``POST /orders`` rows of a venue request log (``VenueServer.requests()``), in arrival order."""
    return [r for r in requests if r["method"] == "POST" and r["path"] == "/orders" and r.get("body")]


def processed(row: Mapping[str, Any]) -> bool:
    """The venue processed this request: no fault that stops it, answered, not rate limited."""
    return row["fault"] not in UNPROCESSED_FAULTS and row["status"] not in (0, 429)


def decisions_of(requests: Sequence[Mapping[str, Any]], triggers: Mapping[str, Trigger]
                 ) -> dict[tuple[Trigger | None, Terms], str]:
    """The decisions a fault-free venue's log shows (the reference): (trigger, terms) -> client order id."""
    out: dict[tuple[Trigger | None, Terms], str] = {}
    for row in order_entries(requests):
        out.setdefault((triggers.get(row["client_order_id"]), terms_of(row["body"])), row["client_order_id"])
    return out


@dataclass(frozen=True)
class R10Result:
    decisions: int
    requests: int
    order_entries: int
    faults: dict[str, int]
    orders_at_venue: int
    lost: list[tuple[Trigger | None, Terms]]
    extra: list[tuple[Trigger | None, Terms]]
    two_ids: list[tuple[Terms, list[str]]]  # terms -> the ids sent beyond the decisions with those terms
    superseded: int  # decisions every POST of which failed, cancelled at the venue after them
    replays: int  # order entries the venue answered as a replay of an id it had (200): a resend, not a new order
    positions: dict[str, tuple[float, float]]  # product -> (flow's position, venue's fills), every product
    position_differences: list[tuple[str, float, float]]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.extra or self.two_ids or self.position_differences)

    def line(self) -> str:
        """The figure, in lines of at most 80 columns."""
        faults = ", ".join(f"{mode} {n}" for mode, n in sorted(self.faults.items()) if mode != "none")
        return "\n".join([
            f"R10: {self.decisions} decisions; {self.requests} requests at the venue, retries included",
            f"  ({self.order_entries} order entries; faults: {faults or 'none'});",
            f"  {self.orders_at_venue} orders at the venue ({self.replays} entries answered as replays);",
            f"  same decision under two ids {len(self.two_ids)};",
            f"  decisions lost {len(self.lost)} ({self.superseded} cancelled before they got through), "
            f"extra {len(self.extra)};",
            f"  positions of {len(self.positions)} products vs the venue's fills: "
            f"{len(self.position_differences)} differ"])


def r10_check(decisions: Mapping[tuple[Trigger | None, Terms], str], triggers: Mapping[str, Trigger],
              requests: Sequence[Mapping[str, Any]], *, orders_at_venue: Iterable[str],
              fills: Iterable[tuple[str, int, float]], positions_mw: Mapping[str, float]) -> R10Result:
    """Compare, keyed: ``decisions`` (from :func:`decisions_of` over the reference venue's log) against the run's
    venue log ``requests`` (``VenueServer.requests()``); the flow's final ``positions_mw`` (product -> MW) against
    the venue's ``fills`` ((product, side sign, quantity) each). See the module docstring."""
    entries = order_entries(requests)
    by_id: dict[str, list[Mapping[str, Any]]] = {}
    for row in entries:
        by_id.setdefault(row["client_order_id"], []).append(row)
    cancelled_after: dict[str, float] = {}
    for row in requests:
        if row["method"] == "DELETE" and row["path"].startswith("/orders/"):
            cancelled_after[row["client_order_id"]] = max(cancelled_after.get(row["client_order_id"], 0.0),
                                                          row["started_s"])
    sent: dict[tuple[Trigger | None, Terms], str] = {}
    for cid, rows in by_id.items():
        for row in rows:  # one id under other terms is another key: a changed decision shows as lost and extra
            sent.setdefault((triggers.get(cid), terms_of(row["body"])), cid)
    lost, superseded = [], 0
    for key, cid in decisions.items():
        rows = [r for r in by_id.get(cid, []) if (triggers.get(cid), terms_of(r["body"])) == key]
        if any(processed(r) for r in rows):
            continue
        if rows and cancelled_after.get(cid, 0.0) > max(r["started_s"] for r in rows):
            superseded += 1
            continue
        lost.append(key)
    extra = [key for key in sent if key not in decisions]
    wanted = Counter(terms for _, terms in decisions)
    ids_by_terms: dict[Terms, list[str]] = {}
    for (_, terms), cid in sent.items():
        ids_by_terms.setdefault(terms, []).append(cid)
    decided_ids = set(decisions.values())
    two_ids = [(terms, sorted(set(ids) - decided_ids) or sorted(set(ids))[wanted[terms]:])
               for terms, ids in ids_by_terms.items() if len(set(ids)) > wanted[terms]]
    filled: dict[str, float] = {}
    for product, side, quantity in fills:
        filled[product] = filled.get(product, 0.0) + (1.0 if side > 0 else -1.0) * quantity
    positions = {p: (float(positions_mw.get(p, 0.0)), round(filled.get(p, 0.0), 6))
                 for p in sorted(set(filled) | set(positions_mw))}
    differences = [(p, have, want) for p, (have, want) in positions.items() if not math.isclose(have, want,
                                                                                                abs_tol=1e-6)]
    return R10Result(len(decisions), len(requests), len(entries), dict(Counter(r["fault"] for r in requests)),
                     len(set(orders_at_venue)), sorted(lost, key=repr), sorted(extra, key=repr),
                     sorted(two_ids, key=repr), superseded, sum(1 for r in entries if r["status"] == 200), positions,
                     differences)


def first_orders_after_reconciliation(requests: Sequence[Mapping[str, Any]], starts_ns: Sequence[int]
                                      ) -> tuple[int, list[str]]:
    """For each start of the flow (the wall times its processes were started, in order), from the venue's log:
    the requests that arrived from that start until the next belong to it; its first order entry or cancel must
    arrive after its reconciliation (``GET /orders``, then ``GET /reports``) was answered. How many starts sent an
    order or cancel at all, and a description of each start that sent one first."""
    bounds = [*starts_ns, 2**63]
    active, wrong = 0, []
    for k, (start, end) in enumerate(itertools.pairwise(bounds)):
        window = [r for r in requests if start <= r["wall_ns"] < end]
        trades = [r for r in window if (r["method"], r["path"]) in (("POST", "/orders"), ("DELETE", "/orders"))
                  or (r["method"] == "DELETE" and r["path"].startswith("/orders/"))]
        if not trades:
            continue
        active += 1
        first = trades[0]
        asked = [r for r in window if r["method"] == "GET" and r["path"] == "/orders" and processed(r)]
        reported = [r for r in window if r["method"] == "GET" and r["path"] == "/reports" and processed(r)
                    and r["ended_s"] <= first["started_s"]]
        if not asked or not reported or asked[0]["started_s"] > first["started_s"]:
            wrong.append(f"start {k}: {first['method']} {first['path']} {first['client_order_id']} before "
                         f"the reconciliation was answered")
    return active, wrong


@dataclass(frozen=True)
class OrphanResult:
    """Orders created at the venue before a crash, seen from the venue's own log and books after the resumed run."""

    created_before: int
    decided_again: int           # posted again after the restart under the same id and the same terms
    cancelled_after: int         # cancelled by id after the restart (the engine's cancels and the orphan cancels)
    left_open_unknown: list[str]  # open at the end, neither decided again nor cancelled by id after the restart
    lost: list[str]              # logged decisions the venue never heard of (no order entry, no cancel)

    @property
    def ok(self) -> bool:
        return not self.left_open_unknown and not self.lost

    def line(self) -> str:
        return (f"{self.created_before} orders created before the kill: {self.decided_again} decided again (same id "
                f"and terms), {self.cancelled_after} cancelled by id after the restart; left open and unknown "
                f"{len(self.left_open_unknown)} {self.left_open_unknown[:5]}; decisions lost {len(self.lost)} "
                f"{self.lost[:5]}")


def orphan_check(requests: Sequence[Mapping[str, Any]], restart_ns: int, open_at_end: Collection[str],
                 logged: Collection[str]) -> OrphanResult:
    """From the venue's request log (``restart_ns``: the resumed run's start), the ids open at the venue at the end
    and the ids of every logged decision: which orders created before the crash nobody manages (keyed, listed)."""
    created: dict[str, Terms] = {}
    again: set[str] = set()
    cancelled: set[str] = set()
    heard: set[str] = set()
    for row in requests:
        cid = str(row.get("client_order_id") or "")
        if not cid:
            continue
        heard.add(cid)
        if row["method"] == "POST" and row.get("body"):
            if int(row["wall_ns"]) < restart_ns and int(row.get("status") or 0) == 201:
                created[cid] = terms_of(row["body"])
            elif int(row["wall_ns"]) >= restart_ns and cid in created and terms_of(row["body"]) == created[cid]:
                again.add(cid)
        elif row["method"] == "DELETE" and int(row["wall_ns"]) >= restart_ns:
            cancelled.add(cid)
    open_ids = set(open_at_end)
    unknown = sorted(cid for cid in created if cid in open_ids and cid not in again and cid not in cancelled)
    lost = sorted(set(logged) - heard)
    return OrphanResult(len(created), len(again & set(created)), len(cancelled & set(created)), unknown, lost)
