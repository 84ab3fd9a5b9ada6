"""Per stage and end to end: latencies and counts of one run, keyed against the truth (the load sent and
the reference), never against what the system says about itself alone.

Stages of a trade that made an order (``intended`` is its intended send time):
intended -> sent (the sender's own delay) -> in the raw topic (the broker's append time, 1 ms resolution)
-> decided by the engine (``decided_wall_ns`` on the orders topic) -> at the venue (the venue's own request
log) -> acknowledged (the venue's answer back at the order sink, ``answered_wall_ns``). End to end:
**tick to order** = at the venue - intended, and intended -> acknowledged. The store: intended -> visible in
QuestDB, from the stored-row counts polled during the run (each message counts as stored at the first poll
that saw as many rows as its place in the send order: an upper bound, good to the poll interval).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from loadtest.latency import per_interval, summary_ms
from loadtest.load import Load
from loadtest.reference import ExpectedOrder, ExpectedStore

STAGES = ("intended->sent", "sent->raw topic", "raw topic->decided", "decided->at venue", "at venue->acked",
          "tick to order (intended->at venue)", "intended->acked", "intended->stored")
ACKED = ("ACKED", "REPLAYED")


@dataclass
class Observed:
    """Everything read back from the system after a run."""

    start_ns: int
    sent_ns: NDArray[np.int64]
    appended_ms: NDArray[np.int64]
    partition: NDArray[np.int32]
    offset: NDArray[np.int64]
    index: NDArray[np.int64]  # each event's place in its packed message (-1: sent alone)
    orders: list[dict[str, Any]]
    at_venue: dict[str, int]
    venue_repeats: int
    stored_seq: dict[str, list[int]]  # table -> seq of each stored row of this run
    stored_dayahead: int
    dead_origins: list[tuple[int, int, int]]  # (partition, offset, index in a packed message or -1)
    stored_curve: list[tuple[int, int]]


def trade_offsets(load: Load) -> dict[tuple[str, int], int]:
    """(product, event time) of each trade -> its intended offset (the first such trade)."""
    rows = np.flatnonzero(load.kind == 0)
    out: dict[tuple[str, int], int] = {}
    for row, product, ts, offset in zip(rows.tolist(), load.product[rows].tolist(), load.ts_ns[rows].tolist(),
                                        load.offsets_ns[rows].tolist(), strict=True):
        out.setdefault((product, ts), offset)
        del row
    return out


def analyse(load: Load, observed: Observed, store: ExpectedStore, expected: dict[str, ExpectedOrder], *,
            warmup_s: float, interval_s: float) -> dict[str, Any]:
    """Counts (sent, confirmed, stored, dead-lettered, decided, at venue, acked; lost and doubled) over the
    whole run, and every stage's latency summary, overall and per interval, after the warm-up."""
    start = observed.start_ns
    intended = start + load.offsets_ns
    measured = load.offsets_ns >= int(warmup_s * 1e9)
    sent = observed.sent_ns > 0
    confirmed = observed.offset >= 0
    appended = observed.appended_ms * 1_000_000 + 500_000
    latencies: dict[str, tuple[NDArray[np.int64], NDArray[np.int64], int]] = {}

    def stage(name: str, at: NDArray[np.int64], values: NDArray[np.int64], missing: int = 0) -> None:
        latencies[name] = (np.asarray(at, np.int64), np.asarray(values, np.int64), missing)

    rows = measured & sent
    stage("intended->sent", intended[rows], observed.sent_ns[rows] - intended[rows])
    rows = measured & confirmed
    stage("sent->raw topic", intended[rows], np.maximum(appended[rows] - observed.sent_ns[rows], 0))

    # Orders: the reference's ids, the orders topic's records, the venue's log.
    offsets = trade_offsets(load)
    index_of_offset = {int(o): i for i, o in enumerate(load.offsets_ns.tolist())} if len(load) < 5_000_000 else {}
    submits: dict[str, dict[str, Any]] = {}
    decided_count: Counter[str] = Counter()
    record: dict[str, Any] | None
    for record in observed.orders:
        if record.get("action") == "SUBMIT" and record.get("decided_wall_ns"):
            decided_count[record["client_order_id"]] += 1
            submits.setdefault(record["client_order_id"], record)
    wanted = {cid: offsets[(o.product, o.signal_ts_ns)] for cid, o in expected.items()
              if (o.product, o.signal_ts_ns) in offsets}
    wanted = {cid: off for cid, off in wanted.items() if off >= int(warmup_s * 1e9)}
    at_v, to_venue, acked_lat, decided_lat, venue_lat, ack_lat = [], [], [], [], [], []
    at_d, at_a, at_vv = [], [], []
    missing_venue = missing_ack = 0
    for cid, off in wanted.items():
        planned = start + off
        record = submits.get(cid)
        arrived = observed.at_venue.get(cid)
        if arrived is None:
            missing_venue += 1
        else:
            at_v.append(planned)
            to_venue.append(arrived - planned)
        if record is None or not record.get("answered_wall_ns"):
            missing_ack += 1
            continue
        answered, decided = int(record["answered_wall_ns"]), int(record["decided_wall_ns"])
        at_a.append(planned)
        acked_lat.append(answered - planned)
        row = index_of_offset.get(off)
        if row is not None and confirmed[row]:
            at_d.append(planned)
            decided_lat.append(decided - int(appended[row]))
        if arrived is not None:
            at_vv.append(planned)
            venue_lat.append(arrived - decided)
            ack_lat.append(answered - arrived)
    stage("raw topic->decided", np.array(at_d), np.array(decided_lat))
    stage("decided->at venue", np.array(at_vv), np.array(venue_lat))
    stage("at venue->acked", np.array(at_vv), np.array(ack_lat))
    stage("tick to order (intended->at venue)", np.array(at_v), np.array(to_venue), missing_venue)
    stage("intended->acked", np.array(at_a), np.array(acked_lat), missing_ack)

    # The store: the k-th row of the run (send order) is stored at the first poll that saw k rows.
    store_rows = np.flatnonzero(np.isin(load.kind, (0, 1, 2)) & ~np.isin(np.arange(len(load)), list(store.dead_rows)))
    curve_t = np.array([t for t, _ in observed.stored_curve], np.int64)
    curve_n = np.maximum.accumulate(np.array([n for _, n in observed.stored_curve] or [0], np.int64))
    rank = np.arange(1, len(store_rows) + 1)
    hit = np.searchsorted(curve_n, rank, side="left") if len(curve_t) else np.full(len(rank), 0)
    ok = hit < len(curve_t)
    keep = measured[store_rows] & ok
    stored_at = curve_t[hit[keep]] if len(curve_t) else np.zeros(0, np.int64)
    stage("intended->stored", intended[store_rows][keep], stored_at - intended[store_rows][keep],
          int((measured[store_rows] & ~ok).sum()))

    counts = count(load, observed, store, expected, submits=submits, decided_count=decided_count)
    return {
        "counts": counts,
        "stages_ms": {name: summary_ms(values, missing) for name, (_, values, missing) in latencies.items()},
        "intervals_ms": {name: per_interval(start, interval_s, at, values) for name, (at, values, _) in
                         latencies.items()},
    }


def count(load: Load, observed: Observed, store: ExpectedStore, expected: dict[str, ExpectedOrder], *,
          submits: dict[str, dict[str, Any]], decided_count: Counter[str]) -> dict[str, Any]:
    """Every stage's count against the truth, keyed: what arrived, what was lost, what came twice."""
    sent = int((observed.sent_ns > 0).sum())
    confirmed = int((observed.offset >= 0).sum())
    stored_ticks, stored_book = observed.stored_seq.get("ticks", []), observed.stored_seq.get("book", [])
    ticks_seen, book_seen = Counter(stored_ticks), Counter(stored_book)
    lost_ticks = sorted(store.ticks_seq - set(ticks_seen))
    lost_book = sorted(store.book_seq - set(book_seen))
    where = {(int(p), int(o), int(x)): i for i, (p, o, x) in enumerate(zip(
        observed.partition.tolist(), observed.offset.tolist(), observed.index.tolist(), strict=True)) if o >= 0}
    dead_seen = Counter(where.get(origin, -1) for origin in observed.dead_origins)
    lost_dead = sorted(store.dead_rows - set(dead_seen))
    seq_index = {int(s): i for i, s in enumerate(load.seq.tolist()) if s >= 0}
    # Orders of this phase: caused by one of its trades (the venue's log and the topic hold earlier phases too).
    offsets = trade_offsets(load)
    mine = {cid for cid, r in submits.items() if (r.get("product", ""), int(r.get("signal_ts_ns") or 0)) in offsets}
    acked = [cid for cid in expected if submits.get(cid, {}).get("status") in ACKED]
    return {
        "messages": len(load),
        "sent": sent,
        "confirmed": confirmed,
        "not_confirmed": len(load) - confirmed,
        "stored": len(ticks_seen) + len(book_seen) + observed.stored_dayahead,
        "stored_expected": store.rows,
        "stored_lost": len(lost_ticks) + len(lost_book) + max(store.dayahead - observed.stored_dayahead, 0),
        "stored_lost_examples": [f"message {seq_index.get(s, -1)} (seq {s})" for s in (lost_ticks + lost_book)[:5]],
        "stored_unexpected": len(set(ticks_seen) - store.ticks_seq) + len(set(book_seen) - store.book_seq),
        "stored_doubled": sum(c - 1 for c in ticks_seen.values() if c > 1) + sum(c - 1 for c in book_seen.values()
                                                                              if c > 1),
        "dead_letters": sum(dead_seen.values()),
        "dead_letters_expected": len(store.dead_rows),
        "dead_letters_lost": len(lost_dead),
        "dead_letters_doubled": sum(c - 1 for c in dead_seen.values() if c > 1),
        "dead_letter_reasons_expected": store.dead_reasons,
        "orders_expected": len(expected),
        "decided": sum(1 for cid in expected if cid in submits),
        "decided_doubled": sum(c - 1 for c in decided_count.values() if c > 1),
        "decided_unexpected": len(mine - set(expected)),
        "at_venue": sum(1 for cid in expected if cid in observed.at_venue),
        "at_venue_lost": sum(1 for cid in expected if cid not in observed.at_venue),
        "at_venue_unexpected": len((mine & set(observed.at_venue)) - set(expected)),
        "at_venue_doubled": observed.venue_repeats,
        "acked": len(acked),
        "statuses": dict(Counter(str(r.get("status")) for r in submits.values())),
    }
