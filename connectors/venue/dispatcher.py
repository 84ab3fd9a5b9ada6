"""The order sink's dispatcher: the engine's commands carried out on worker threads, several requests in flight.

:meth:`Dispatcher.put` queues commands and returns at once; up to ``max_in_flight`` of them run at the same time,
each an :class:`~connectors.venue.desk.OrderDesk` operation on a worker thread (the desk and the venue client are
thread-safe; the HTTP connections are pooled). :meth:`Dispatcher.drain` hands over the records of what finished
so far. Order rules:

* **Per order**: a command on a client order id starts only after every earlier command on that id finished (a
  Cancel goes out only after its Submit was answered, never racing it).
* **Kill switch**: a ``CancelAll`` starts only when everything before it has finished, alone, and nothing after
  it starts before it finished; while the venue has not confirmed it (it stays pending in the desk) nothing
  after it starts at all. An account-wide ``CancelAll`` also takes the submits still queued before it out of the
  queue: the kill switch was pulled after they were decided, so they never go out (``NOT_SENT``, as
  :func:`~connectors.venue.desk.kill_switch_first` does within a batch); the cancels queued before it are left to
  it.
* **Reconciliation first** (``reconcile_first=True``, the order sink's): before any command or upkeep starts,
  :meth:`~connectors.venue.desk.OrderDesk.reconcile_at_start` asks the venue for its open orders, its reports since
  the last ``exec_id`` seen and the UNKNOWN orders' status, alone; while the venue cannot be asked it is tried again
  at each :meth:`drain` and everything (the restored commands, a kill switch) waits behind it, queued and in the
  snapshot.
* **Durable first** (the order sink's write-ahead decision log): a submit put with its id among ``unconfirmed``
  waits, queued (and in the snapshot), until :meth:`Dispatcher.confirm` says the broker has its decision; the
  commands of other ids go on meanwhile, and later commands on its id wait behind it.
* **Upkeep**: at each :meth:`drain` (the flow drains at every batch, and the engine's heartbeat makes one at
  least every 250 ms), if nothing is queued behind a cancel-all, one upkeep task resends the kept orders (oldest
  first), sends the pending cancels again, reconciles the UNKNOWN orders and resends those the venue never got,
  for the ids no other command is working on (they are held until it finishes).

A task that raises (a bug, not a venue failure: those are outcomes) is re-raised by the next :meth:`drain`, so
the flow stops loudly and resumes from its last snapshot rather than losing track of an order.

**Snapshot and restore.** :meth:`Dispatcher.checkpoint` (the order sink's ``snapshot()``) hands over the records
of what finished, like :meth:`drain`, together with everything not yet known to be finished, read at the same
moment under the dispatcher's lock, as a picklable :class:`DispatcherState`: the commands in flight (in the
order they started) and queued (in their order), and the desk's kept orders, pending cancels and cancel-alls,
UNKNOWN and NOT_FOUND orders. A task in flight is taken as not done at all: its command is in the state, and
for the upkeep the desk's state of its orders as the upkeep started, so that nothing it had taken in hand (a
NOT_FOUND order being resent, a pending cancel being confirmed) is missed; the records it will make come with a
later drain. So a command may be carried out twice across a crash, never lost: orders are resent under their
own client order ids (the venue answers a repeat as a replay) and a repeated cancel of a done order changes
nothing. :meth:`Dispatcher.restore` (on a fresh dispatcher, before any new command) puts the state back: the
commands first, in their order, under the same rules; the desk's kept, pending, UNKNOWN and NOT_FOUND orders to
the desk, whose upkeep starts at once. Every restored order is *uncertain* until the venue answers for it (it
may have reached the venue between the snapshot and the crash): the desk cancels it at the venue rather than
drop it unsent, and an account-wide cancel-all turns a restored order still queued before it into a cancel
after it (rather than ``NOT_SENT``: nothing new goes out after a kill switch, and the venue says whether it had
the order).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from connectors.venue.desk import DeskState, OrderDesk, not_sent
from wattflow.errors import VenueError
from wattflow.orders import Cancel, CancelAll, Command, OrderRecord, Submit

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DispatcherState:
    """Everything handed to the dispatcher and not yet known to be finished, picklable (the order sink's
    snapshot): ``commands``, those in flight (the first ``in_flight``, in the order they started) then those
    queued (in their order); ``desk``, the desk's kept orders, pending cancels, UNKNOWN and NOT_FOUND orders."""

    commands: tuple[Command, ...] = ()
    in_flight: int = 0
    desk: DeskState = field(default_factory=DeskState)

    def __bool__(self) -> bool:
        return bool(self.commands or self.desk)

    def counts(self) -> dict[str, int]:
        """How much of each kind the state holds (for logs and events)."""
        desk = self.desk
        return {"commands": len(self.commands), "in_flight": self.in_flight,
                "queued": len(self.commands) - self.in_flight, "kept": len(desk.kept), "pending": len(desk.pending),
                "unknown": len(desk.unknown), "not_found": len(desk.not_found)}


@dataclass(frozen=True, slots=True)
class _Task:
    """A running task, as a snapshot sees it: its command, or (the upkeep) the desk's state of its orders."""

    command: Command | None = None
    captured: DeskState | None = None


def merged_state(in_flight: list[Command], queued: Iterable[Command], captured: list[DeskState],
                 desk: DeskState) -> DispatcherState:
    """One state from the commands in flight and queued, what running upkeeps had in hand when they started
    (``captured``) and the desk's state now. An order with a submit among the commands is resent by it: it is
    not also kept, UNKNOWN or NOT_FOUND; a cancel among the commands is not also pending; what an upkeep took
    in hand and finished since it started is kept (ahead: it was older), to be done again, except a cancel-all
    the venue has confirmed meanwhile (no longer pending): sent again it would also cancel the orders placed
    after it."""
    commands = [*in_flight, *queued]
    resent = {c.client_order_id for c in commands if isinstance(c, Submit)}
    kept: dict[str, Submit] = {}
    pending: list[Cancel | CancelAll] = []
    unknown: dict[str, dict[str, Any]] = {}
    not_found: dict[str, dict[str, Any]] = {}
    last_exec_id = max((state.last_exec_id for state in [*captured, desk]), default=0)
    for state in [*captured, desk]:
        for submit in state.kept:
            if submit.client_order_id not in resent:
                kept.setdefault(submit.client_order_id, submit)
        for cancel in state.pending:
            if isinstance(cancel, CancelAll) and cancel not in desk.pending:
                continue  # confirmed since the upkeep started
            if cancel not in pending and cancel not in commands:
                pending.append(cancel)
        unknown.update((cid, p) for cid, p in state.unknown.items() if cid not in resent)
        not_found.update((cid, p) for cid, p in state.not_found.items() if cid not in resent and cid not in unknown)
    for cid in unknown:
        not_found.pop(cid, None)
    return DispatcherState(tuple(commands), len(in_flight),
                           DeskState(tuple(kept.values()), tuple(pending), unknown, not_found, last_exec_id))


class Dispatcher:
    """Commands in (:meth:`put`, never blocking on the venue), order records out (:meth:`drain`)."""

    def __init__(self, desk: OrderDesk, *, max_in_flight: int = 8, reconcile_first: bool = False) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.desk = desk
        self.max_in_flight = max_in_flight
        self._pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="order-dispatch")
        self._cond = threading.Condition()
        self._queue: deque[Command] = deque()
        self._busy: Counter[str] = Counter()  # client order ids a running task works on
        self._running = 0
        self._tasks: dict[int, _Task] = {}  # the running tasks, in the order they started
        self._numbers = itertools.count()
        self._exclusive = False  # a cancel-all is running
        self._upkeep = False     # the upkeep task is running
        # Reconciliation at start not done yet: nothing (restored commands, upkeep, new commands) starts before it.
        self._gate = reconcile_first
        # Submits whose decision is not durable yet (the decision log's broker has not confirmed it): they wait.
        self._unconfirmed: set[str] = set()
        self._done: list[OrderRecord] = []
        self._error: BaseException | None = None
        self._closed = False
        self.high_water = 0  # the most tasks that ran at once
        self.started = 0
        self.finished = 0
        self._progress = 0  # commands finished and records made: an upkeep round that changed nothing is not progress

    # --- the flow's side -------------------------------------------------------------------------

    def put(self, commands: list[Command], *, unconfirmed: Collection[str] = ()) -> None:
        """Queue commands (in the engine's order) and start what the rules allow; returns at once. The submits of
        ``unconfirmed`` (client order ids) wait until :meth:`confirm` says their decision is durable."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the dispatcher is closed")
            self._unconfirmed.update(unconfirmed)
            for command in commands:
                after: list[Command] = []
                if isinstance(command, CancelAll) and command.product is None and self._queue:
                    # Restored orders may be at the venue already: cancelled there after the cancel-all, not NOT_SENT.
                    uncertain = self.desk.uncertain_ids()
                    held = [c for c in self._queue if not (isinstance(c, Submit) and c.client_order_id in uncertain)]
                    after = [Cancel(c.client_order_id, c.product, command.reason, command.ts_ns)
                             for c in self._queue if isinstance(c, Submit) and c.client_order_id in uncertain]
                    self._done += not_sent(held, command)
                    self._unconfirmed.difference_update(c.client_order_id for c in held if isinstance(c, Submit))
                    self._queue.clear()
                self._queue.append(command)
                self._queue.extend(after)
            self._schedule()

    def confirm(self, ids: Collection[str]) -> None:
        """The decisions of ``ids`` are durable (the decision log's broker confirmed them): their submits may start.
        Safe from any thread."""
        with self._cond:
            self._unconfirmed.difference_update(ids)
            self._schedule()

    @property
    def unconfirmed(self) -> int:
        """Submits waiting for their decision to be confirmed durable."""
        with self._cond:
            return len(self._unconfirmed)

    def drain(self) -> list[OrderRecord]:
        """The records of what finished since the last drain; starts the upkeep if there is any to do."""
        with self._cond:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if not self._closed:
                self._schedule(upkeep=True)
            done, self._done = self._done, []
        return done

    def checkpoint(self) -> tuple[list[OrderRecord], DispatcherState]:
        """The records of what finished since the last drain (as :meth:`drain`), and everything not yet known to
        be finished (see the module docstring), both read at one moment."""
        with self._cond:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            done, self._done = self._done, []
            tasks = list(self._tasks.values())
            in_flight = [task.command for task in tasks if task.command is not None]
            captured = [task.captured for task in tasks if task.captured is not None]
            state = merged_state(in_flight, self._queue, captured, self.desk.state())
            if not self._closed:
                self._schedule(upkeep=True)
        return done, state

    def restore(self, state: DispatcherState) -> None:
        """Put a snapshot's state back, before any new command (a fresh dispatcher only): its commands first, in
        their order; its kept, pending, UNKNOWN and NOT_FOUND orders to the desk, whose upkeep starts at once."""
        with self._cond:
            if self._queue or self._running or self._done or self._closed:
                raise RuntimeError("restore only into a fresh dispatcher")
            resent = [c.client_order_id for c in state.commands if isinstance(c, Submit)]
            self.desk.restore(state.desk, uncertain=resent)
            self._queue.extend(state.commands)
            self._schedule(upkeep=True)

    @property
    def in_flight(self) -> int:
        return self._running

    @property
    def queued(self) -> int:
        return len(self._queue)

    def idle(self) -> bool:
        """Nothing queued, nothing running (a reconciliation not done yet with nothing queued behind it is idle)."""
        with self._cond:
            return not self._queue and not self._running

    def wait_idle(self, stall_s: float) -> bool:
        """Wait until nothing is queued or running; give up when no task finished for ``stall_s``. True if idle."""
        with self._cond:
            seen, last = self._progress, time.monotonic()
            while self._queue or self._running:
                if self._progress != seen:
                    seen, last = self._progress, time.monotonic()
                left = last + stall_s - time.monotonic()
                if left <= 0:
                    return False
                if not self._running:  # queued but nothing runs: a cancel-all the venue has not confirmed
                    self._schedule(upkeep=True)
                    if not self._running:
                        self._cond.wait(min(left, 0.1))
                        continue
                self._cond.wait(min(left, 0.5))
            return True

    def close(self, stall_s: float) -> bool:
        """Finish the queue and what runs (bounded: ``stall_s`` without progress), then one round of upkeep (kept
        orders, pending cancels, reconciliation) if there is any to do; no command is taken after this. True if
        nothing was left undone; the records stay for a last :meth:`drain`."""
        done = self.wait_idle(stall_s)
        if done and self.desk.outstanding:
            with self._cond:
                self._schedule(upkeep=True)
            done = self.wait_idle(stall_s)
        with self._cond:
            self._closed = True
            left = len(self._queue) + self._running
        self._pool.shutdown(wait=False, cancel_futures=False)
        outstanding = self.desk.outstanding
        if left or outstanding:
            log.warning("order dispatcher closed with %d commands unfinished and %d orders or cancels the venue has "
                        "not confirmed", left, outstanding)
        return done and not left and not outstanding

    # --- scheduling (under the condition's lock) -------------------------------------------------

    def _schedule(self, *, upkeep: bool = False) -> None:
        if self._exclusive or self._closed:
            return
        if self._gate:  # reconciliation first; tried (again) at a drain, never in a loop against a failing venue
            if upkeep and not self._running:
                self._start_gate()
            return
        if self.desk.cancel_all_pending():  # an unconfirmed kill switch: only its retry (the upkeep) may run
            if upkeep and not self._running:
                self._start_upkeep(self.desk.outstanding_ids())
            return
        queue, waiting = self._queue, deque[Command]()
        held: set[str] = set()  # ids with an earlier command still queued
        while queue:
            command = queue.popleft()
            if isinstance(command, CancelAll):
                if not self._running and not waiting:
                    self._start(command, None)
                else:
                    waiting.append(command)
                waiting.extend(queue)
                queue.clear()
                break
            cid = command.client_order_id
            if self._running >= self.max_in_flight:
                waiting.append(command)
                waiting.extend(queue)
                queue.clear()
                break
            if cid in held or self._busy[cid] or (isinstance(command, Submit) and cid in self._unconfirmed):
                held.add(cid)
                waiting.append(command)
                continue
            self._start(command, cid)
        self._queue = waiting
        if (upkeep and not self._upkeep and not self._exclusive and self._running < self.max_in_flight
                and not any(isinstance(c, CancelAll) for c in waiting)):
            queued = {c.client_order_id for c in waiting if not isinstance(c, CancelAll)}
            ids = {cid for cid in self.desk.outstanding_ids() if not self._busy[cid] and cid not in queued}
            if ids:
                self._start_upkeep(ids)

    def _start(self, command: Command, cid: str | None) -> None:
        task = _Task(command=command)
        if cid is None:
            self._exclusive = True
            assert isinstance(command, CancelAll)
            self._launch(lambda: self.desk.cancel_all(command), (), task, exclusive=True)
        elif isinstance(command, Submit):
            self._launch(lambda: [self.desk.submit(command)], (cid,), task)
        else:
            assert isinstance(command, Cancel)
            self._launch(lambda: self.desk.cancel(command), (cid,), task)

    def _start_gate(self) -> None:
        def reconcile() -> list[OrderRecord]:
            try:
                self.desk.reconcile_at_start()
            except VenueError as error:
                log.warning("reconciliation with the venue before the first order failed, tried again at the next "
                            "drain: %s", error)
                return []
            with self._cond:
                self._gate = False
            return []

        self._launch(reconcile, (), _Task(), exclusive=True, gate=True)

    @property
    def reconciled(self) -> bool:
        """Reconciliation at start is done (or was not asked for)."""
        with self._cond:
            return not self._gate

    def _start_upkeep(self, ids: set[str]) -> None:
        self._upkeep = True

        def upkeep() -> list[OrderRecord]:
            return self.desk.retry_kept(ids) + self.desk.reconcile(ids)

        # What the upkeep takes in hand, as it is now: a snapshot while it runs must not miss any of it.
        self._launch(upkeep, tuple(ids), _Task(captured=self.desk.state(ids)), upkeep=True)

    def _launch(self, work: Callable[[], list[OrderRecord]], ids: Collection[str], task: _Task, *,
                exclusive: bool = False, upkeep: bool = False, gate: bool = False) -> None:
        for cid in ids:
            self._busy[cid] += 1
        self._running += 1
        self.started += 1
        self.high_water = max(self.high_water, self._running)
        number = next(self._numbers)
        self._tasks[number] = task
        self._pool.submit(self._run, work, ids, number, exclusive, upkeep, gate=gate)

    def _run(self, work: Callable[[], list[OrderRecord]], ids: Collection[str], number: int, exclusive: bool,
             upkeep: bool, *, gate: bool = False) -> None:
        records: list[OrderRecord] = []
        failure: BaseException | None = None
        try:
            records = work()
        except BaseException as error:  # re-raised by drain(): a bug must stop the flow, not vanish in a thread
            log.exception("order dispatcher task failed")
            failure = error
        with self._cond:
            self._done += records
            del self._tasks[number]
            for cid in ids:
                self._busy[cid] -= 1
                if not self._busy[cid]:
                    del self._busy[cid]
            self._running -= 1
            self.finished += 1
            self._progress += len(records) + (0 if upkeep or gate else 1)
            if exclusive:
                self._exclusive = False
            if upkeep:
                self._upkeep = False
            if failure is not None and self._error is None:
                self._error = failure
            self._schedule(upkeep=gate and not self._gate)  # reconciled: the restored orders' upkeep at once
            self._cond.notify_all()
