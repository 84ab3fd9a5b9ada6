"""The order desk: the execution engine's commands carried out at the venue, one command and outcome per record.

:class:`OrderDesk` knows the venue client and nothing of Bytewax, Kafka or QuestDB. Its rules:

* ``Submit``: ACKED (or REPLAYED) and REJECTED are final; UNKNOWN (no answer within the retry budget) stays with
  the client until :meth:`OrderDesk.reconcile` asks the venue, and an order the venue never got (NOT_FOUND) is
  sent again under the same id (RESUBMIT). BLOCKED (breaker open) and RATE_LIMITED orders were never processed
  by the venue: they are **kept** and sent again by :meth:`OrderDesk.retry_kept`, oldest first.
* ``Cancel``: an order still kept unsent is simply dropped (``CANCELLED_UNSENT``); otherwise ``DELETE
  /orders/{id}`` (an UNKNOWN order is cancelled too, and no longer resent). A cancel the venue did not answer is
  **pending** and tried again by :meth:`OrderDesk.reconcile`.
* ``CancelAll`` (kill switch): everything kept unsent is dropped, the UNKNOWN and NOT_FOUND orders are
  forgotten, then ``DELETE /orders``; pending until the venue confirms it.

**Snapshots** (the order sink's, through the dispatcher): :meth:`OrderDesk.state` is what the desk has not
finished, a picklable :class:`DeskState` (kept orders, pending cancels and cancel-alls, the client's UNKNOWN and
NOT_FOUND orders); :meth:`OrderDesk.restore` puts it back after a restart. A restored order may have reached the
venue between the snapshot and the crash, so its id is **uncertain** (:attr:`OrderDesk.uncertain`) until the
venue answers for it: an uncertain order that is kept again (still refused) and then cancelled is not dropped
silently but cancelled at the venue (``DELETE /orders/{id}``: the venue says whether it had it), and a
cancel-all that drops it cancels it at the venue after itself, for the same reason.

**Reconciliation at start** (:meth:`OrderDesk.reconcile_at_start`, run by the dispatcher before anything else):
the venue's open orders, its reports since the highest ``exec_id`` the desk had seen (:attr:`DeskState.last_exec_id`)
and the UNKNOWN orders settled (``connectors.venue.reconcile``); a ``VENUE_RECONCILED`` event records it.

Each operation is safe to call from several threads at once (the desk's containers change under its lock, no
lock is held during a request), **provided no two operations on the same client order id run at once**; the
order sink's dispatcher (``connectors.venue.dispatcher``) guarantees that. :meth:`OrderDesk.execute` runs a list
of commands one after the other on the calling thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from connectors.venue.client import NOT_FOUND, RATE_LIMITED, OrderRequest, SubmitStatus, VenueClient
from connectors.venue.reconcile import Reconciliation, highest_exec_id, reconcile_at_start
from wattflow.enums import OrderAction
from wattflow.errors import VenueError
from wattflow.events import Event
from wattflow.orders import Cancel, CancelAll, Command, OrderRecord, Submit

log = logging.getLogger(__name__)


def submit_record(command: Submit, status: str, *, attempts: int = 0, reason: str = "", sent_wall_ns: int = 0,
                  answered_wall_ns: int = 0) -> OrderRecord:
    """The record of a Submit and its outcome (latency: from the engine's decision to the venue's answer)."""
    plan = command.plan
    latency = answered_wall_ns - command.decided_wall_ns if answered_wall_ns and command.decided_wall_ns else 0
    return OrderRecord(command.ts_ns, plan.product, plan.client_order_id, OrderAction.SUBMIT, status, plan.model,
                       int(plan.side), plan.price_eur_per_mwh, plan.quantity_mw, plan.tif, plan.urgency,
                       plan.arrival_mid_eur_per_mwh, plan.estimated_slippage_eur_per_mwh, plan.signal_ts_ns,
                       attempts, latency, reason, command.decided_wall_ns, answered_wall_ns,
                       plan.display_quantity_mw, sent_wall_ns)


def order_request(command: Submit) -> OrderRequest:
    plan = command.plan
    return OrderRequest(plan.client_order_id, plan.product, plan.side.name, plan.price_eur_per_mwh,
                        plan.quantity_mw, plan.tif, display_quantity_mw=plan.display_quantity_mw)


@dataclass(frozen=True, slots=True)
class DeskState:
    """What the desk has not finished, picklable (part of the order sink's snapshot): the kept orders (oldest
    first), the cancels and cancel-alls the venue has not confirmed (in order), the UNKNOWN and the NOT_FOUND
    orders (client order id -> the payload to resend), and the highest ``exec_id`` seen in the venue's answers
    (not work to do: a mark for :func:`~connectors.venue.reconcile.reconcile_at_start`)."""

    kept: tuple[Submit, ...] = ()
    pending: tuple[Cancel | CancelAll, ...] = ()
    unknown: dict[str, dict[str, Any]] = field(default_factory=dict)
    not_found: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The highest exec_id seen in the venue's answers: after a restart, the venue's reports after it are asked for.
    last_exec_id: int = 0

    def __bool__(self) -> bool:
        return bool(self.kept or self.pending or self.unknown or self.not_found)


class OrderDesk:
    """The venue side of the order sink: commands in, order records out (see the module docstring)."""

    def __init__(self, client: VenueClient, *, wall_clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.client = client
        self.kept: dict[str, Submit] = {}  # never processed by the venue (breaker open, rate limited), oldest first
        self.pending: list[Cancel | CancelAll] = []  # cancels the venue has not confirmed yet, in order
        # Restored orders that may have reached the venue before a crash, until the venue answers for them.
        self.uncertain: set[str] = set()
        self.last_exec_id = 0  # the highest exec_id seen in the venue's answers
        self.reconciliations: list[Reconciliation] = []  # one per reconcile_at_start that got its answers
        self._events: list[Event] = []  # the desk's own events, until client_events() hands them over
        self._wall_clock_ns = wall_clock_ns
        self._lock = threading.RLock()
        self._events_seen = 0

    # --- all in one go, on the calling thread ------------------------------------------------------

    def execute(self, commands: list[Command]) -> list[OrderRecord]:
        """Kept orders first, then the commands in order, then the reconciliation, one after the other."""
        records = self.retry_kept()
        for command in commands:
            if isinstance(command, Submit):
                records.append(self.submit(command))
            elif isinstance(command, Cancel):
                records += self.cancel(command)
            else:
                records += self.cancel_all(command)
        records += self.reconcile()
        return records

    # --- one operation each (thread-safe, one per client order id at a time) -----------------------

    def submit(self, command: Submit) -> OrderRecord:
        """Send a new order; refused without being processed (breaker open, rate limited): kept."""
        record, refused = self._attempt(command)
        if refused:
            with self._lock:
                self.kept[command.client_order_id] = command
        return record

    def retry_kept(self, ids: Collection[str] | None = None) -> list[OrderRecord]:
        """Send the kept orders (those of ``ids``, or all) again, oldest first; the first still refused ends the
        round (it and the rest stay kept, where they were, and are not recorded again: their status has not
        changed)."""
        with self._lock:
            queue = [(cid, command) for cid, command in self.kept.items() if ids is None or cid in ids]
        records: list[OrderRecord] = []
        for cid, command in queue:
            with self._lock:
                if self.kept.get(cid) is not command:  # dropped meanwhile
                    continue
            record, refused = self._attempt(command)
            if refused:
                break
            with self._lock:
                self.kept.pop(cid, None)
            records.append(record)
        return records

    def cancel(self, command: Cancel) -> list[OrderRecord]:
        """Drop the order if it is kept unsent; otherwise cancel it at the venue (pending if not confirmed). A kept
        order restored from a snapshot (uncertain: it may have reached the venue before the crash) is dropped and
        cancelled at the venue too."""
        cid = command.client_order_id
        with self._lock:
            dropped = self.kept.pop(cid, None)
            if cid in self.uncertain:
                self.uncertain.discard(cid)
                dropped = None
        self.client.forget(cid)  # an UNKNOWN or NOT_FOUND order is cancelled, no longer resent
        if dropped is not None:
            return [OrderRecord(command.ts_ns, command.product, cid, OrderAction.CANCEL, "CANCELLED_UNSENT",
                                reason=command.reason)]
        record = self._send_cancel(command)
        if record is None:
            with self._lock:
                self.pending.append(command)
            return []
        return [record]

    def cancel_all(self, command: CancelAll) -> list[OrderRecord]:
        """Drop every kept order of the product (None: all), forget its UNKNOWN ones, then cancel at the venue
        after any cancel still pending (the cancel-all stays pending until the venue confirms it)."""
        records: list[OrderRecord] = []
        unsure: list[Cancel] = []  # uncertain kept orders: cancelled at the venue after the cancel-all
        with self._lock:
            for cid, dropped in list(self.kept.items()):
                if command.product is None or dropped.product == command.product:
                    del self.kept[cid]
                    if cid in self.uncertain:
                        self.uncertain.discard(cid)
                        unsure.append(Cancel(cid, dropped.product, command.reason, command.ts_ns))
                        continue
                    records.append(OrderRecord(command.ts_ns, dropped.product, cid, OrderAction.CANCEL,
                                               "CANCELLED_UNSENT", reason=command.reason))
            self.pending.append(command)
            self.pending += unsure
        self.client.forget_product(command.product)
        return records + self.flush_cancels()

    def flush_cancels(self, ids: Collection[str] | None = None) -> list[OrderRecord]:
        """Send the pending cancels in order, until one is not confirmed (it and the rest stay pending) or, with
        ``ids``, one of another order comes up (a cancel-all is always sent)."""
        records: list[OrderRecord] = []
        while True:
            with self._lock:
                if not self.pending:
                    break
                command = self.pending[0]
            if ids is not None and isinstance(command, Cancel) and command.client_order_id not in ids:
                break
            record = self._send_cancel(command)
            if record is None:
                break
            with self._lock:
                self.pending = [c for c in self.pending if c is not command]
            records.append(record)
        return records

    def reconcile(self, ids: Collection[str] | None = None) -> list[OrderRecord]:
        """Pending cancels sent again; the UNKNOWN orders (of ``ids``, or all) looked up at the venue; those it
        never got (NOT_FOUND) sent again under the same id. A resend the venue refuses unprocessed (breaker
        open, rate limited) stays NOT_FOUND for the next round, unrecorded."""
        records = self.flush_cancels(ids)
        unknown, _ = self.client.tracked()
        if any(ids is None or cid in ids for cid in unknown):
            self.client.reconcile(ids)
        _, not_found = self.client.tracked()
        for cid in not_found:
            if ids is not None and cid not in ids:
                continue
            payload = self.client.take_not_found(cid)
            if payload is None:
                continue
            sent = self._wall_clock_ns()
            outcome = self.client.submit(payload)
            self._saw(outcome.report)
            if outcome.status is SubmitStatus.BLOCKED or outcome.reason == RATE_LIMITED:
                self.client.keep_not_found(cid, payload)
                break
            if outcome.status is SubmitStatus.ACKED:
                status = "REPLAYED" if outcome.replayed else "RESENT"  # replayed: the venue had it after all
            else:
                status = outcome.status.value
            records.append(OrderRecord(0, str(payload.get("product", "")), cid, OrderAction.RESUBMIT, status,
                                       attempts=outcome.attempts, reason=outcome.reason or "",
                                       answered_wall_ns=self._wall_clock_ns(), sent_wall_ns=sent))
        return records

    # --- snapshots ------------------------------------------------------------------------------------

    def state(self, ids: Collection[str] | None = None) -> DeskState:
        """What the desk has not finished (for the orders of ``ids`` and every cancel-all, or all), as a picklable
        :class:`DeskState`. The desk's own containers are read before the client's: an order moves from the desk
        to the client (a kept order resent, UNKNOWN) only after the client has it, so it is never missed."""
        with self._lock:
            kept = tuple(c for cid, c in self.kept.items() if ids is None or cid in ids)
            pending = tuple(c for c in self.pending
                            if ids is None or isinstance(c, CancelAll) or c.client_order_id in ids)
            last_exec_id = self.last_exec_id
        unknown, not_found = self.client.unsettled()
        if ids is not None:
            unknown = {cid: p for cid, p in unknown.items() if cid in ids}
            not_found = {cid: p for cid, p in not_found.items() if cid in ids}
        return DeskState(kept, pending, unknown, not_found, last_exec_id)

    def restore(self, state: DeskState, uncertain: Collection[str] = ()) -> None:
        """Take back a snapshot's state (ahead of what the desk holds, on a fresh desk: nothing) and mark uncertain
        its kept orders and the ids of ``uncertain`` (the restored submits the dispatcher sends again): each may
        have reached the venue between the snapshot and the crash."""
        with self._lock:
            self.kept = {**{c.client_order_id: c for c in state.kept}, **self.kept}
            self.pending[:0] = list(state.pending)
            self.uncertain |= {c.client_order_id for c in state.kept} | set(uncertain)
            self.last_exec_id = max(self.last_exec_id, state.last_exec_id)
        self.client.track(state.unknown, state.not_found)

    def reconcile_at_start(self) -> Reconciliation:
        """Ask the venue what it holds and did since the last ``exec_id`` seen, and settle the UNKNOWN orders
        (:func:`~connectors.venue.reconcile.reconcile_at_start`), before anything is sent: the restored orders it
        holds are no longer uncertain; a ``VENUE_RECONCILED`` event records the result. Raises VenueError if the
        venue could not be asked (the caller tries again later)."""
        with self._lock:
            since, restored = self.last_exec_id, sorted(self.uncertain)
        unknown, _ = self.client.tracked()
        result = reconcile_at_start(self.client, since_exec_id=since, restored=sorted({*restored, *unknown}),
                                    wall_ns=self._wall_clock_ns())
        detail = result.detail()
        with self._lock:
            self.uncertain -= set(result.restored_at_venue)
            self.last_exec_id = max(self.last_exec_id, result.last_exec_id)
            self.reconciliations.append(result)
            self._events.append(Event(result.wall_ns, "VENUE_RECONCILED", "", "INFO", detail))
        log.info("reconciled with the venue before the first order: %d open orders, %d fills since exec_id %d, "
                 "%d restored orders at the venue, UNKNOWN settled %s", detail["open_orders"], detail["fills_since"],
                 since, detail["restored_at_venue"], detail["unknown_settled"])
        return result

    def uncertain_ids(self) -> set[str]:
        """The restored orders the venue has not answered for yet (a copy)."""
        with self._lock:
            return set(self.uncertain)

    # --- what is left to do --------------------------------------------------------------------------

    def client_events(self) -> list[Event]:
        """The desk's events (``VENUE_RECONCILED``) and the client's (breaker changes, unknown and reconciled
        orders) since the last call."""
        with self._lock:
            fresh, self._events_seen = self.client.events_since(self._events_seen)
            events, self._events = self._events, []
        for event in fresh:
            detail = event.get("detail")
            detail = dict(detail) if isinstance(detail, dict) else {"detail": detail}
            events.append(Event(int(event.get("ts") or self._wall_clock_ns()), str(event["kind"]).upper(),
                                str(detail.get("product", "")), "WARNING", detail))
        return events

    def outstanding_ids(self) -> set[str]:
        """The client order ids with something left to do: kept, UNKNOWN, NOT_FOUND, or a cancel pending."""
        unknown, not_found = self.client.tracked()
        with self._lock:
            ids = set(self.kept) | {c.client_order_id for c in self.pending if isinstance(c, Cancel)}
            return ids | set(unknown) | set(not_found)

    def cancel_all_pending(self) -> bool:
        """A cancel-all the venue has not confirmed yet."""
        with self._lock:
            return any(isinstance(c, CancelAll) for c in self.pending)

    @property
    def outstanding(self) -> int:
        """Orders and cancels whose outcome the venue has not confirmed yet."""
        unknown, not_found = self.client.tracked()
        with self._lock:
            return len(self.kept) + len(self.pending) + len(unknown) + len(not_found)

    # --- requests --------------------------------------------------------------------------------------

    def _attempt(self, command: Submit) -> tuple[OrderRecord, bool]:
        """Send one order: its record, and whether the venue refused it unprocessed (to be kept)."""
        sent = self._wall_clock_ns()
        outcome = self.client.submit(order_request(command))
        answered = self._wall_clock_ns()
        self._saw(outcome.report)
        status = outcome.status.value
        refused = False
        if outcome.status is SubmitStatus.ACKED:
            status = "REPLAYED" if outcome.replayed else "ACKED"
        elif outcome.status is SubmitStatus.BLOCKED or outcome.reason == RATE_LIMITED:
            refused = True
            status = "BLOCKED" if outcome.status is SubmitStatus.BLOCKED else RATE_LIMITED
        if not refused:  # UNKNOWN included: the client tracks it, and a cancel of it goes to the venue anyway
            with self._lock:
                self.uncertain.discard(command.client_order_id)  # the venue answered for it
        # A BLOCKED order was never sent: no send or answer time.
        sent_ns, answered_ns = (0, 0) if outcome.status is SubmitStatus.BLOCKED else (sent, answered)
        return submit_record(command, status, attempts=outcome.attempts, reason=outcome.reason or "",
                             sent_wall_ns=sent_ns, answered_wall_ns=answered_ns), refused

    def _saw(self, answer: Any) -> None:
        """Keep the highest exec_id the venue's answers carried (the mark reconciliation starts from)."""
        seen = highest_exec_id(answer)
        if seen:
            with self._lock:
                self.last_exec_id = max(self.last_exec_id, seen)

    def _send_cancel(self, command: Cancel | CancelAll) -> OrderRecord | None:
        """One cancel at the venue; None if the venue did not confirm it."""
        sent = self._wall_clock_ns()
        try:
            if isinstance(command, Cancel):
                answer = self.client.cancel(command.client_order_id)
                self._saw(answer)
                status = NOT_FOUND if answer is None else str(answer.get("status", "CANCELLED"))
                return OrderRecord(command.ts_ns, command.product, command.client_order_id, OrderAction.CANCEL,
                                   status, reason=command.reason, answered_wall_ns=self._wall_clock_ns(),
                                   sent_wall_ns=sent)
            cancelled = self.client.cancel_all(command.product)
            for answer in cancelled:
                self._saw(answer)
            return OrderRecord(command.ts_ns, command.product or "", "*", OrderAction.CANCEL_ALL,
                               f"CANCELLED_{len(cancelled)}", reason=command.reason,
                               answered_wall_ns=self._wall_clock_ns(), sent_wall_ns=sent)
        except VenueError as error:
            log.warning("cancel not confirmed, kept for the next round: %s", error)
            return None


ORPHANED = "ORPHANED_AFTER_RESTART"
#: Outcomes after which the venue will never report on the order: the sink reports it closed itself.
_NEVER_AT_VENUE = {"CANCELLED_UNSENT": "cancel", "NOT_SENT": "cancel", "NOT_FOUND": "cancel"}


#: Outcomes that say the order path failed while the order stays the sink's to finish: reported as ``status`` (the
#: engine counts them against order-path availability and releases nothing). Negative exec ids keep them apart
#: from the venue's reports and from each other in the store's dedup keys.
_PATH_FAILED = {"BLOCKED": -1, "UNKNOWN": -2}


def local_report(record: OrderRecord) -> dict[str, Any] | None:
    """An execution report for an order the venue will never report on (never sent, or unknown to it), so that
    the engine releases what pre-trade risk still counts for it; a ``status`` report for a submit refused unsent by
    the open breaker or left unknown (the order path failed); None when the venue reports by itself."""
    if record.action == OrderAction.SUBMIT and record.status in _PATH_FAILED and record.client_order_id != "*":
        return {"exec_id": _PATH_FAILED[record.status], "kind": "status", "ts_ns": record.ts_ns,
                "client_order_id": record.client_order_id, "product": record.product, "side": record.side,
                "status": record.status, "last_quantity_mw": 0.0, "reason": record.reason or record.status,
                "source": "order_sink"}
    kind = _NEVER_AT_VENUE.get(record.status)
    if kind is None and record.status == "REJECTED" and record.reason.startswith("HTTP_"):
        kind = "reject"  # refused before the venue's order entry (a malformed request)
    if kind is None or record.client_order_id == "*" or record.reason == ORPHANED:
        return None  # an orphan is none of the engine's orders: it has nothing to release
    return {"exec_id": 0, "kind": kind, "ts_ns": record.ts_ns or record.answered_wall_ns,
            "client_order_id": record.client_order_id, "product": record.product, "side": record.side,
            "status": "CANCELLED" if kind == "cancel" else "REJECTED", "last_quantity_mw": 0.0,
            "reason": record.status if kind == "cancel" else record.reason, "source": "order_sink"}


def kill_switch_first(commands: list[Command]) -> tuple[list[Command], list[OrderRecord]]:
    """The batch's commands from its last account-wide cancel-all on, and a record for each submit left out
    before it: the kill switch was pulled after those orders were decided, so they must not go out now (HALTED
    means nothing new; the engine has already forgotten them) and the cancel-all covers the cancels."""
    kills = [i for i, c in enumerate(commands) if isinstance(c, CancelAll) and c.product is None]
    if not kills:
        return commands, []
    last = kills[-1]
    return commands[last:], not_sent(commands[:last], commands[last])


def not_sent(commands: list[Command], kill: Command) -> list[OrderRecord]:
    """``NOT_SENT`` records for the submits among ``commands``, held back by the kill switch ``kill``."""
    why = f"KILL_SWITCH_{getattr(kill, 'reason', '')}"
    return [submit_record(c, "NOT_SENT", reason=why) for c in commands if isinstance(c, Submit)]
