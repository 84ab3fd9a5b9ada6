"""Reconciliation at start: what the venue holds and did for the account, asked before the first new order.

After a restart the order sink knows only what its snapshot carried (the commands not finished, the orders kept,
UNKNOWN or NOT_FOUND, the cancels not confirmed) and the highest ``exec_id`` it had seen in the venue's answers.
Between that snapshot and the crash the venue may have taken orders, filled them and cancelled them. So before
the sink sends anything (the restored commands included), :func:`reconcile_at_start` asks the venue, in this
order:

1. the account's open orders (``GET /orders``);
2. its execution reports since the snapshot's ``exec_id`` (``GET /reports?since=``): the fills the venue made since
   (a superset: the mark is the last ``exec_id`` the sink had *seen*, never past the snapshot);
3. each UNKNOWN order of the snapshot (``GET /orders/{id}``): the venue's status, or ``NOT_FOUND`` (the client
   keeps it to be resent under the same id).

Its result, a :class:`Reconciliation`, is what the sink records (the ``VENUE_RECONCILED`` event, with the counts
and the ids, see :meth:`Reconciliation.detail`) and what it acts on: a restored order the venue turns out to hold
is no longer *uncertain* (it reached the venue before the crash). Any failure to ask raises
:class:`~wattflow.errors.VenueError` (breaker open, venue down): the caller tries again, and sends nothing new
meanwhile.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

#: At most this many ids per list in the event (the counts are always complete).
EVENT_IDS = 50


class ReconcilingClient(Protocol):
    """What reconciliation uses of :class:`~connectors.venue.client.VenueClient`."""

    def open_orders(self) -> list[dict[str, Any]]: ...

    def reports(self, since: int = 0) -> list[dict[str, Any]]: ...

    def reconcile(self, ids: Collection[str] | None = None) -> dict[str, str]: ...


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What the venue said at start: its open orders (client order id -> order), its execution reports after
    ``since_exec_id`` (in ``exec_id`` order) and the last ``exec_id`` among them (``since_exec_id`` if none), the
    snapshot's UNKNOWN orders settled (id -> the venue's status or ``NOT_FOUND``; ``UNKNOWN`` if it still did not
    answer), and which of the ``restored`` orders (submits of the snapshot, which may have reached the venue
    before the crash) the venue holds."""

    wall_ns: int
    open_orders: dict[str, dict[str, Any]]
    since_exec_id: int
    reports: list[dict[str, Any]]
    last_exec_id: int
    settled: dict[str, str] = field(default_factory=dict)
    restored_at_venue: list[str] = field(default_factory=list)
    restored_absent: list[str] = field(default_factory=list)

    @property
    def fills(self) -> list[dict[str, Any]]:
        return [r for r in self.reports if r.get("kind") == "fill"]

    def filled_mw(self) -> dict[str, float]:
        """Per product, the signed quantity filled since ``since_exec_id`` (buys positive)."""
        out: dict[str, float] = {}
        for fill in self.fills:
            sign = 1.0 if _side_sign(fill.get("side")) > 0 else -1.0
            product = str(fill.get("product", ""))
            out[product] = round(out.get(product, 0.0) + sign * float(fill.get("last_quantity_mw", 0.0)), 6)
        return out

    def detail(self) -> dict[str, Any]:
        """The event's detail: counts, and at most :data:`EVENT_IDS` ids per list."""
        return {"open_orders": len(self.open_orders), "open_order_ids": sorted(self.open_orders)[:EVENT_IDS],
                "since_exec_id": self.since_exec_id, "last_exec_id": self.last_exec_id,
                "reports_since": len(self.reports), "fills_since": len(self.fills),
                "filled_mw_since": self.filled_mw(),
                "unknown_settled": dict(Counter(self.settled.values())),
                "restored_at_venue": len(self.restored_at_venue),
                "restored_at_venue_ids": self.restored_at_venue[:EVENT_IDS],
                "restored_absent": len(self.restored_absent), "wall_ns": self.wall_ns}


def _side_sign(side: Any) -> int:
    if isinstance(side, str):
        return 1 if side.upper() == "BUY" else -1
    return 1 if int(side or 0) > 0 else -1


def reconcile_at_start(client: ReconcilingClient, *, since_exec_id: int, restored: Collection[str] = (),
                       wall_ns: int = 0) -> Reconciliation:
    """Ask the venue (see the module docstring); raises VenueError if it cannot be asked."""
    open_orders = {str(o["client_order_id"]): o for o in client.open_orders()}
    reports = sorted((r for r in client.reports(since_exec_id) if int(r.get("exec_id", 0)) > since_exec_id),
                     key=lambda r: int(r["exec_id"]))
    settled = client.reconcile()
    last = max((int(r["exec_id"]) for r in reports), default=since_exec_id)
    reported = {str(r.get("client_order_id", "")) for r in reports}
    at_venue = [cid for cid in restored
                if cid in open_orders or cid in reported or settled.get(cid, "UNKNOWN") not in ("UNKNOWN", "NOT_FOUND")]
    held = set(at_venue)
    absent = [cid for cid in restored if cid not in held]
    return Reconciliation(wall_ns, open_orders, since_exec_id, reports, last, settled, at_venue, absent)


def highest_exec_id(answer: Mapping[str, Any] | None) -> int:
    """The highest ``exec_id`` in a venue answer: an execution report's own, or those of the executions an order's
    answer carries (0 if none)."""
    if not isinstance(answer, Mapping):
        return 0
    executions = answer.get("executions") or ()
    ids = [int(e.get("exec_id") or 0) for e in executions if isinstance(e, Mapping)]
    return max([int(answer.get("exec_id") or 0), *ids])
