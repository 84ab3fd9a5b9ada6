"""Feed faults for a recorded or simulated day: a product's book (or trades) silenced over a stretch of market time.

What a lost feed looks like from the inside: the events are not late, they never come. Applied to a
:class:`~connectors.feeds.files.FeedFrame` before it is replayed, so a test or a calibration knows exactly which
events are missing (its truth), and the same frame and fault always give the same feed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from connectors.feeds.files import BOOK, FeedFrame


@dataclass(frozen=True, slots=True)
class Silence:
    """``product``'s events of ``event_types`` (``BOOK``, ``TRADE``) with ``start_ns <= ts < end_ns`` are lost."""

    product: str
    start_ns: int
    end_ns: int
    event_types: tuple[int, ...] = (BOOK,)


def silence(frame: FeedFrame, faults: Sequence[Silence]) -> tuple[FeedFrame, int]:
    """The frame without the silenced events, and how many were dropped."""
    keys = frame.key_strings()
    drop = np.zeros(len(frame), dtype=bool)
    for fault in faults:
        drop |= ((keys == fault.product) & np.isin(frame.event_type, fault.event_types)
                 & (frame.ts_ns >= fault.start_ns) & (frame.ts_ns < fault.end_ns))
    return frame.take(np.flatnonzero(~drop)), int(drop.sum())
