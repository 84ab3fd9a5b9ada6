"""``--pack N``: every event of the load is in exactly one message, a product's events keep their order, a
malformed row goes alone, a pack is due when its last event is, and each event's place in its message is the
one the flows' decoder gives it (so dead letters and stored rows are traced to the event, keyed and exact)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import orjson

from connectors.feeds.files import FeedFrame, RawFeed, day_ahead_feed, json_lines, read_raw_feed
from connectors.wire.market import decode_batch
from loadtest.load import BAD, build_load
from loadtest.pack import packed, unpacked
from loadtest.run import origin_index
from paper.simulator import simulate_day
from wattflow.batches import RawBatch


def small_feed(tmp_path: Path) -> RawFeed:
    """A small simulated day with its day-ahead prices and one row whose time is null."""
    from connectors.feeds.smard import day_ahead_day

    day = date(2018, 10, 28)
    frame = FeedFrame.concat([day_ahead_feed(day_ahead_day(None, "DE-LU", day)),
                              simulate_day("DE-LU", day, 7, 0.02)]).sort_by_time()
    lines = json_lines(frame)
    lines[150] = orjson.dumps({**orjson.loads(lines[150]), "ts_ns": None})
    path = tmp_path / "day.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return read_raw_feed(path)


def test_every_event_once_in_order_per_product_bad_rows_alone(tmp_path: Path) -> None:
    load = build_load(small_feed(tmp_path), source="ltpack", rate_per_s=1000.0, speed=None, duration_s=2.0,
                      products=3)
    assert (load.kind == BAD).sum() == load.loops > 1  # the null-time row, in every pass over the feed
    wire = packed(load, 10)
    assert len(wire.messages) < len(load) and wire.events_per_message.sum() == len(load)
    # a pack is due when its last event is; the messages go out in due order
    assert (np.diff(wire.messages.offsets_ns) >= 0).all()
    for number in range(len(wire.messages)):
        rows = np.flatnonzero(wire.message == number)
        assert wire.messages.offsets_ns[number] == load.offsets_ns[rows].max()
        assert len({load.keys[r] for r in rows.tolist()}) == 1  # one key (product) per message
    for bad in np.flatnonzero(load.kind == BAD).tolist():
        assert wire.events_per_message[wire.message[bad]] == 1 and wire.index[bad] == -1
        assert wire.messages.values[wire.message[bad]] == load.values[bad]  # as it came
    # decoding the messages in send order gives each event back at (message, index), in each product's order
    messages = wire.messages.values
    n = len(messages)
    decoded = decode_batch(RawBatch("raw", 0, list(messages), np.arange(n, dtype=np.int64), np.zeros(n, np.int64)))
    assert sorted(d.origin.offset for d in decoded.dead) == sorted(wire.message[load.kind == BAD].tolist())
    at = {(int(m), int(i)): row for row, (m, i) in enumerate(zip(wire.message.tolist(), wire.index.tolist(),
                                                                  strict=True))}
    for batch in (decoded.ticks, decoded.book):
        for seq, offset, index in zip(batch.seq.tolist(), batch.offset.tolist(), batch.index.tolist(), strict=True):
            assert load.seq[at[(offset, index)]] == seq  # the decoder's (message, index) is the event sent there
    assert len(decoded.ticks) + len(decoded.book) + len(decoded.dayahead) == len(load) - load.loops
    for product in {p for p in load.product.tolist() if p}:
        rows = np.flatnonzero(load.product == product)
        carried = [(int(wire.message[r]), int(wire.index[r])) for r in rows.tolist()]
        assert carried == sorted(carried)  # sent in the product's order


def test_pack_of_one_is_the_load_itself(tmp_path: Path) -> None:
    load = build_load(small_feed(tmp_path), source="ltpack", rate_per_s=1000.0, speed=None, duration_s=0.5)
    for wire in (packed(load, 1), unpacked(load)):
        assert wire.messages is load and (wire.message == np.arange(len(load))).all() and (wire.index == -1).all()


def test_dead_letter_origin_index() -> None:
    assert origin_index("lt1.md.raw[2]@41#7") == 7
    assert origin_index("lt1.md.raw[2]@41") == -1
