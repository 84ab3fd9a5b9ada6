"""Orphans after a restart: decisions logged before a crash that the resumed engine does not make again.

After a SIGKILL the flow resumes from its last snapshot and the engine decides again from there. The decision log
(``connectors.venue.decision_log``) holds every decision made after that snapshot, sent or not. Each is one of:

* **known**: it is in the sink's snapshot (queued, in flight, kept, UNKNOWN, NOT_FOUND: decided before the snapshot
  and confirmed after it), so the sink carries it out or settles it as before;
* **decided again**, same client order id and same terms: the resumed engine manages it again; sent again it is
  answered as a replay. Nothing to do;
* **decided again with other terms** (same id: same signal, but e.g. another quantity since a report or a control
  message came in at another point): the venue refuses the new one (``DUPLICATE_CLIENT_ORDER_ID``) if it holds the
  logged one, which the engine then does not know: it is an orphan as soon as that refusal is seen (if the
  venue accepts the new one, the logged one never reached it: nothing to do);
* **not decided again**: an orphan, but only once the resumed engine has gone past the point where it would have
  decided it. When is that? A decision comes from one signal row (product, model, event time ``t``: its
  ``signal_ts_ns``) and the engine acts on a row of a (product, model) only if it is newer than the last it
  acted on (``EngineState.last_signal``: a repeat or a late row is skipped). The engine reports how far it has
  read each pair (``EngineOutput.progress_ns``). Once that is past ``t`` (strictly: two rows with the same time
  but different trade ids are ordered by trade id, which the log does not carry), the engine has either acted on
  the row at ``t`` already in this run or will skip it: it never makes that decision again. Judging by the
  engine's progress and not by wall time or by the input's offsets means a slow catch-up is never mistaken for a
  different decision, and a re-decision is never cancelled by mistake: the Submit, if the engine makes it, is in
  the same engine output as the progress that passes ``t``, and :meth:`OrphanWatch.observe` takes the commands
  before the progress. At the end of a finite input (:meth:`OrphanWatch.finish`) every decision still watched is
  an orphan (nothing more will be decided). A product whose signals never go past ``t`` again (its last trade)
  stays watched; the venue cancels its resting orders at gate closure.

An orphan is **cancelled at the venue** (``DELETE /orders/{id}``, reason ``ORPHANED_AFTER_RESTART``) with an
``ORPHANED_AFTER_RESTART`` event carrying the numbers; the venue answers for it (cancelled, already done, or never
got it: ``NOT_FOUND``). Its fills, if any, still reach positions through the venue's execution reports (the
engine applies every fill to the product's position, known order or not). The decisions still watched are in
the sink's snapshot (:meth:`OrphanWatch.watched`), so a second crash before they are settled does not lose them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from connectors.wire.decisions import LoggedDecision, submit_terms
from wattflow.enums import OrderAction
from wattflow.orders import Command, OrderRecord, Submit

#: Why a logged decision is an orphan.
NOT_DECIDED_AGAIN = "NOT_DECIDED_AGAIN"
DECIDED_AGAIN_WITH_OTHER_TERMS = "DECIDED_AGAIN_WITH_OTHER_TERMS"
INPUT_ENDED = "INPUT_ENDED"
#: The venue's answer to a new order under a known id with other terms.
DUPLICATE = "DUPLICATE_CLIENT_ORDER_ID"


@dataclass(frozen=True, slots=True)
class Orphan:
    decision: LoggedDecision
    why: str
    progress_ns: int = -1  # how far the engine had read the decision's (product, model) when it was found

    def detail(self) -> dict[str, object]:
        d = self.decision
        return {"client_order_id": d.client_order_id, "why": self.why, "model": d.model, "side": d.side,
                "price_eur_per_mwh": d.price_eur_per_mwh, "quantity_mw": d.quantity_mw, "tif": d.tif,
                "signal_ts_ns": d.signal_ts_ns, "engine_progress_ns": self.progress_ns,
                "log_offset": d.offset, "decided_wall_ns": d.decided_wall_ns}


class OrphanWatch:
    """The logged decisions a resumed engine has not made again yet (see the module docstring)."""

    def __init__(self, logged: Iterable[LoggedDecision] = (), known: Collection[str] = (),
                 changed: Iterable[LoggedDecision] = ()) -> None:
        self._watched: dict[str, LoggedDecision] = {}
        # Decided again with other terms: an orphan if the venue refuses the new one as a duplicate.
        self._changed: dict[str, LoggedDecision] = {d.client_order_id: d for d in changed}
        self.known = 0
        for decision in logged:
            if decision.client_order_id in known:
                self.known += 1
                continue
            self._watched[decision.client_order_id] = decision  # the latest record of an id counts
        self.decided_again = 0
        self.found: list[Orphan] = []

    def __bool__(self) -> bool:
        return bool(self._watched or self._changed)

    def watched(self) -> tuple[LoggedDecision, ...]:
        """The decisions not made again yet (for the snapshot)."""
        return tuple(self._watched.values())

    def changed(self) -> tuple[LoggedDecision, ...]:
        """The decisions made again with other terms whose outcome at the venue is not known yet (for the snapshot)."""
        return tuple(self._changed.values())

    def observe(self, commands: Iterable[Command], progress_ns: Mapping[tuple[str, str], int]) -> list[Orphan]:
        """One engine output: its submits first (a decision made again is no orphan), then its progress."""
        if not self._watched:
            return []
        for command in commands:
            if not isinstance(command, Submit):
                continue
            logged = self._watched.pop(command.client_order_id, None)
            if logged is None:
                continue
            self.decided_again += 1
            if submit_terms(command) != logged.terms():
                self._changed[command.client_order_id] = logged
        orphans: list[Orphan] = []
        for cid, logged in list(self._watched.items()):
            progress = progress_ns.get((logged.product, logged.model), -1)
            if progress > logged.signal_ts_ns:
                del self._watched[cid]
                orphans.append(Orphan(logged, NOT_DECIDED_AGAIN, progress))
        self.found += orphans
        return orphans

    def on_records(self, records: Iterable[OrderRecord]) -> list[Orphan]:
        """The outcomes of submits made again with other terms: refused as a duplicate, the venue holds the logged
        one (an orphan); any other outcome, it did not (nothing to do)."""
        if not self._changed:
            return []
        orphans: list[Orphan] = []
        for record in records:
            if record.action not in (OrderAction.SUBMIT, OrderAction.RESUBMIT):
                continue
            logged = self._changed.get(record.client_order_id)
            if logged is None or record.status in ("UNKNOWN", "BLOCKED", "RATE_LIMITED"):
                continue  # not answered yet
            del self._changed[record.client_order_id]
            if record.status == "REJECTED" and DUPLICATE in record.reason:
                orphans.append(Orphan(logged, DECIDED_AGAIN_WITH_OTHER_TERMS))
        self.found += orphans
        return orphans

    def finish(self) -> list[Orphan]:
        """The input ended: every decision still watched will not be made again."""
        orphans = [Orphan(logged, INPUT_ENDED) for logged in self._watched.values()]
        self._watched.clear()
        self.found += orphans
        return orphans
