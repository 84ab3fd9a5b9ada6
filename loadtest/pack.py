"""What the sender puts on the wire for a load: one message per event, or (``--pack N``) packed messages.

Packed as ``wattflow replay --pack`` and a feed adapter forwarding a websocket frame do: each run of N
consecutive events becomes one ``{"events": [...]}`` message per key (a product's events stay in order on one
partition). A malformed row is always sent alone, as it came (packed with others it would take the good events
of its message into the dead letters with it). **Per-event tracking**: every event keeps its own intended
time, and a packed message is due when its *last* event is (a frame can only be forwarded once it is whole),
so the wait for a pack to fill counts in each event's latency; each event knows its message and its place in
it (``index``, as the flows' dead letters give it: ``topic[partition]@offset#index``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from loadtest.load import BAD, Load


@dataclass
class Wire:
    """The messages to send (a :class:`Load` of messages: values, keys, due offsets, newest event time), and
    for every event of the load the message that carries it and its place in it (-1: sent alone)."""

    messages: Load
    message: NDArray[np.int64]
    index: NDArray[np.int64]

    @property
    def events_per_message(self) -> NDArray[np.int64]:
        return np.bincount(self.message, minlength=len(self.messages)).astype(np.int64)


def unpacked(load: Load) -> Wire:
    n = len(load)
    return Wire(load, np.arange(n, dtype=np.int64), np.full(n, -1, np.int64))


def packed(load: Load, block: int) -> Wire:
    """Each run of ``block`` consecutive events packed into one message per key (malformed rows alone)."""
    if block <= 1:
        return unpacked(load)
    groups: list[list[int]] = []
    for start in range(0, len(load), block):
        by_key: dict[bytes | None, list[int]] = {}
        for row in range(start, min(start + block, len(load))):
            if load.kind[row] == BAD:
                groups.append([row])
            else:
                by_key.setdefault(load.keys[row], []).append(row)
        groups += by_key.values()
    due = np.array([int(load.offsets_ns[rows[-1]]) for rows in groups], np.int64)
    first = np.array([rows[0] for rows in groups], np.int64)
    order = np.lexsort((first, due))  # by due time; a key's later packs are due later, so its order holds
    groups = [groups[i] for i in order.tolist()]
    message = np.zeros(len(load), np.int64)
    index = np.full(len(load), -1, np.int64)
    values: list[bytes] = []
    for number, rows in enumerate(groups):
        message[rows] = number
        if len(rows) == 1 and load.kind[rows[0]] == BAD:
            values.append(load.values[rows[0]])
            continue
        index[rows] = np.arange(len(rows))
        values.append(b'{"events":[' + b",".join(load.values[row] for row in rows) + b"]}")
    keys = [load.keys[rows[0]] for rows in groups]
    last = [rows[-1] for rows in groups]
    ts = np.array([int(load.ts_ns[rows].max()) for rows in groups], np.int64)
    n = len(groups)
    messages = Load(values, keys, load.offsets_ns[last], ts, np.full(n, BAD, np.int8), np.full(n, -1, np.int64),
                    np.full(n, "", dtype=object), np.full(n, -1, np.int64), load.loops, load.shift_ns)
    return Wire(messages, message, index)
