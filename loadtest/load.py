"""The load: every message to send, in order, with its intended send time.

A feed file is sent as it came (malformed rows included, as raw messages), restricted to its busiest
``products`` if asked. Each pass over the feed (a *loop*) is rewritten so that the store keeps every pass:
event times and delivery periods move forward by ``loop x 52 weeks`` (more for a feed longer than that), so
products open and close at the same local hours and keys never collide, ``seq`` becomes the message's index in the
run and ``source`` the run's tag. That makes every stored row traceable to one message sent (keyed, exact).

Open loop: message i is due at ``start + offset_i`` where the offsets come from ``--rate`` (``i / rate``) or
``--speed`` (event time / speed, each loop after the previous one); a slow moment never shifts what follows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from connectors.feeds.files import DAYAHEAD, FeedFrame, RawFeed, json_lines
from wattflow.domain import Product

NS = 1_000_000_000
#: One loop's move: 52 weeks keeps the weekday, and the daylight-saving days of one year fall on the same
#: days of the next (last Sundays of March and October), so every event stays inside its trading window.
YEAR_OF_WEEKS_NS = 364 * 24 * 3600 * NS
#: ``kind`` of a message that is not a valid event (sent as it came from the file).
BAD = -1
DAYAHEAD_KIND = DAYAHEAD


@dataclass
class Load:
    """Messages in send order. ``seq`` is each valid event's ``seq`` as sent (its index in the run), -1 for a
    malformed row; ``product`` is "" for day-ahead prices and malformed rows."""

    values: list[bytes]
    keys: list[bytes | None]
    offsets_ns: NDArray[np.int64]  # intended send time after the start
    ts_ns: NDArray[np.int64]  # event time as sent
    kind: NDArray[np.int8]  # TRADE, BOOK, DAYAHEAD or BAD
    seq: NDArray[np.int64]
    product: NDArray[np.object_]
    trade_id: NDArray[np.int64]
    loops: int = 1
    shift_ns: int = 0

    def __len__(self) -> int:
        return len(self.values)

    def take(self, count: int) -> Load:
        return Load(self.values[:count], self.keys[:count], self.offsets_ns[:count], self.ts_ns[:count],
                    self.kind[:count], self.seq[:count], self.product[:count], self.trade_id[:count], self.loops,
                    self.shift_ns)

    @staticmethod
    def concat(loads: list[Load]) -> Load:
        """Loads one after the other (offsets as they were: each is its own phase's schedule)."""
        first = loads[0]
        return Load([v for load in loads for v in load.values], [k for load in loads for k in load.keys],
                    np.concatenate([load.offsets_ns for load in loads]), np.concatenate([load.ts_ns for load in loads]),
                    np.concatenate([load.kind for load in loads]), np.concatenate([load.seq for load in loads]),
                    np.concatenate([load.product for load in loads]),
                    np.concatenate([load.trade_id for load in loads]), first.loops, first.shift_ns)

    def without(self, rows: list[int]) -> Load:
        """The same load with some messages left out of what is *sent* (they stay in the truth): the tool's
        check of itself, a message removed on purpose must be reported lost."""
        return self.select(np.setdiff1d(np.arange(len(self)), np.asarray(rows, dtype=np.int64)))

    def select(self, rows: NDArray[np.int64]) -> Load:
        """These messages, in this order."""
        pick = rows.tolist()
        return Load([self.values[i] for i in pick], [self.keys[i] for i in pick], self.offsets_ns[rows],
                    self.ts_ns[rows], self.kind[rows], self.seq[rows], self.product[rows], self.trade_id[rows],
                    self.loops, self.shift_ns)


def busiest_products(frame: FeedFrame, count: int) -> list[str]:
    """The ``count`` products with the most events (ties by key)."""
    rows = frame.event_type != DAYAHEAD
    codes, counts = np.unique(frame.key_code[rows], return_counts=True)
    ranked = sorted(zip(counts.tolist(), codes.tolist(), strict=True), key=lambda c: (-c[0], frame.keys[c[1]]))
    return [frame.keys[code] for _, code in ranked[:count]]


def loop_shift_ns(frame: FeedFrame) -> int:
    """Whole 52-week years covering the feed's span (event times and delivery periods): one loop's move."""
    if not len(frame):
        return YEAR_OF_WEEKS_NS
    low = int(min(frame.ts_ns.min(), frame.delivery_start_ns.min()))
    high = int(max(frame.ts_ns.max(), frame.delivery_start_ns.max())) + 24 * 3600 * NS
    return max(1, -(-(high - low) // YEAR_OF_WEEKS_NS)) * YEAR_OF_WEEKS_NS


def shifted(frame: FeedFrame, shift_ns: int, first_seq: int, source: str) -> FeedFrame:
    """The frame moved ``shift_ns`` forward (event times, delivery starts, product keys), ``seq`` numbered
    from ``first_seq``, ``source`` set."""
    keys = []
    for name in frame.keys:
        if ":" in name and shift_ns:
            product = Product.parse(name)
            name = Product(product.area, product.delivery_start_ns + shift_ns, product.duration_min).key  # noqa: PLW2901
        keys.append(name)
    return FeedFrame(event_type=frame.event_type, ts_ns=frame.ts_ns + shift_ns, key_code=frame.key_code,
                     keys=tuple(keys), side=frame.side, level=frame.level, price_eur_per_mwh=frame.price_eur_per_mwh,
                     quantity_mw=frame.quantity_mw, trade_id=frame.trade_id,
                     delivery_start_ns=frame.delivery_start_ns + shift_ns, duration_min=frame.duration_min,
                     source_code=np.zeros(len(frame), np.int16), sources=(source,),
                     seq=np.arange(first_seq, first_seq + len(frame), dtype=np.int64))


def build_load(feed: RawFeed, *, source: str, rate_per_s: float | None, speed: float | None, duration_s: float,
               products: int | None = None, max_messages: int | None = None, first_loop: int = 0) -> Load:
    """Enough loops of ``feed`` to fill ``duration_s`` at the pace asked (``rate_per_s`` messages/s, or
    ``speed`` x event time; neither: the feed once, as fast as possible). Loops are numbered from
    ``first_loop``, so that successive phases of a run never repeat a message."""
    frame = feed.frame
    bad_rows = list(feed.bad_rows)
    if products:
        keep_keys = set(busiest_products(frame, products))
        keep = np.array([frame.event_type[i] == DAYAHEAD or frame.keys[frame.key_code[i]] in keep_keys
                         for i in range(len(frame))], dtype=bool)
        before = np.cumsum(keep) - keep  # good events kept before each original row
        bad_rows = [type(row)(int(before[row.before]) if row.before < len(before) else int(keep.sum()),
                              row.payload, row.origin, row.reason) for row in bad_rows]
        frame = frame.take(keep)
    per_loop = len(frame) + len(bad_rows)
    if per_loop == 0:
        raise ValueError("the feed has no messages")
    shift = loop_shift_ns(frame)
    if rate_per_s:
        wanted = max(int(rate_per_s * duration_s), 1)
    elif speed:
        span_s = (int(frame.ts_ns.max()) - int(frame.ts_ns.min())) / NS / speed if len(frame) else 0.0
        wanted = per_loop * max(1, int(np.ceil(duration_s / max(span_s, 1e-9))))
    else:
        wanted = per_loop
    if max_messages:
        wanted = min(wanted, max_messages)
    loops = -(-wanted // per_loop)
    parts: dict[str, list[object]] = {k: [] for k in ("values", "keys", "ts", "kind", "seq", "product", "trade")}
    for loop in range(first_loop, first_loop + loops):
        moved = shifted(frame, loop * shift, loop * per_loop, source)
        values, keys, ts = RawFeed(moved, tuple(bad_rows)).messages()
        kind = np.full(len(values), BAD, np.int8)
        seq = np.full(len(values), -1, np.int64)
        product = np.full(len(values), "", dtype=object)
        trade = np.full(len(values), -1, np.int64)
        good = np.ones(len(values), bool)
        for shift_index, row in enumerate(bad_rows):
            good[row.before + shift_index] = False
        kind[good], seq[good], trade[good] = moved.event_type, moved.seq, moved.trade_id
        names = moved.key_strings()
        product[good] = np.where(moved.event_type == DAYAHEAD, "", names)
        for name, value in (("values", values), ("keys", [k.encode() if k else None for k in keys]), ("ts", ts),
                            ("kind", kind), ("seq", seq), ("product", product), ("trade", trade)):
            parts[name].append(value)
    values_all = [v for chunk in parts["values"] for v in chunk][:wanted]  # type: ignore[attr-defined]
    keys_all = [k for chunk in parts["keys"] for k in chunk][:wanted]  # type: ignore[attr-defined]
    ts_all: NDArray[np.int64] = np.concatenate(parts["ts"])[:wanted]  # type: ignore[arg-type]
    load = Load(values_all, keys_all, np.zeros(len(values_all), np.int64), ts_all,
                np.concatenate(parts["kind"])[:wanted], np.concatenate(parts["seq"])[:wanted],  # type: ignore[arg-type]
                np.concatenate(parts["product"])[:wanted], np.concatenate(parts["trade"])[:wanted],  # type: ignore[arg-type]
                loops, shift)
    load.offsets_ns = intended_offsets_ns(load, rate_per_s=rate_per_s, speed=speed)
    return load


def intended_offsets_ns(load: Load, *, rate_per_s: float | None, speed: float | None) -> NDArray[np.int64]:
    """When each message is due after the start: ``i / rate``, or its event time since the loop's first over
    ``speed`` (each loop starts one mean gap after the previous one ended); zeros: as fast as possible."""
    n = len(load)
    if rate_per_s:
        return np.round(np.arange(n, dtype=np.float64) * (NS / rate_per_s)).astype(np.int64)
    if speed:
        ts = load.ts_ns
        loop = (ts - ts[0]) // load.shift_ns if load.shift_ns else np.zeros(n, np.int64)
        within = ts - ts[0] - loop * load.shift_ns
        span = int(within.max()) if n else 0
        per_loop_span = span + max(span // max(n, 1), 1)
        return np.maximum.accumulate(((within + loop * per_loop_span) / speed).astype(np.int64))
    return np.zeros(n, np.int64)


__all__ = ["BAD", "NS", "Load", "build_load", "busiest_products", "intended_offsets_ns", "json_lines",
           "loop_shift_ns", "shifted"]
