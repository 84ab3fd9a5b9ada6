"""Replay a recorded feed into Kafka on an absolute schedule.

Message ``i`` is due at ``start + (ts_i - ts_0) / speed`` (or ``start + i / rate``): send times are
computed from the start, never from the previous send, so a slow moment does not shift everything after
it (no drift), and lateness is measured against the schedule. Delivery reports are checked: what the
broker did not confirm is counted and reported, never silently dropped.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from connectors.kafka.producer import CheckedProducer
from wattflow.errors import KafkaDeliveryError
from wattflow.settings import KafkaSettings

#: Send at most this many messages between two looks at the clock.
_CHUNK = 5_000


def schedule_offsets_ns(ts_ns: NDArray[np.int64], *, speed: float | None = None,
                        rate: float | None = None) -> NDArray[np.int64] | None:
    """When each message is due, in ns after the start; None means as fast as possible."""
    if speed is not None and rate is not None:
        raise ValueError("choose a speed or a rate, not both")
    if speed is not None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        return ((ts_ns - ts_ns[0]) / speed).astype(np.int64) if len(ts_ns) else ts_ns.copy()
    if rate is not None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        return (np.arange(len(ts_ns), dtype=np.float64) * (1e9 / rate)).astype(np.int64)
    return None


def pack_messages(values: Sequence[bytes], keys: Sequence[str | None], ts_ns: NDArray[np.int64],
                  block: int) -> tuple[list[bytes], list[str | None], NDArray[np.int64]]:
    """Pack each run of ``block`` consecutive events into one ``{"events": [...]}`` message per key.

    This is what a feed adapter does with a websocket frame: fewer, larger Kafka messages (much cheaper per
    event for the broker and the consumers), each product's events still in order on one partition. A
    packed message is due when its first event is.
    """
    import pandas as pd

    out_values: list[bytes] = []
    out_keys: list[str | None] = []
    out_ts: list[int] = []
    key_array = np.asarray(keys, dtype=object)
    for start in range(0, len(values), block):
        stop = min(start + block, len(values))
        codes, uniques = pd.factorize(key_array[start:stop], use_na_sentinel=False)
        order = np.argsort(codes, kind="stable")
        bounds = [0, *(np.flatnonzero(np.diff(codes[order])) + 1).tolist(), len(order)]
        groups = [order[a:b] + start for a, b in itertools.pairwise(bounds)]
        groups.sort(key=lambda rows: int(rows[0]))
        for rows in groups:
            out_values.append(b'{"events":[' + b",".join([values[i] for i in rows.tolist()]) + b"]}")
            out_keys.append(uniques[codes[rows[0] - start]])
            out_ts.append(int(ts_ns[rows[0]]))
    return out_values, out_keys, np.asarray(out_ts, dtype=np.int64)


@dataclass
class ReplayStats:
    total: int
    sent: int = 0
    failed: int = 0
    loops_done: int = 0
    elapsed_s: float = 0.0
    target_rate: float | None = None
    max_behind_ms: float = 0.0
    last_error: str | None = None
    history: list[tuple[float, int]] = field(default_factory=list)

    @property
    def achieved_rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def replay(settings: KafkaSettings, topic: str, values: Sequence[bytes], keys: Sequence[str | None],
           ts_ns: NDArray[np.int64], *, speed: float | None = None, rate: float | None = None,
           loops: int = 1, progress: Callable[[ReplayStats], None] | None = None,
           should_stop: Callable[[], bool] = lambda: False, **producer_config: object) -> ReplayStats:
    """Publish ``values`` (keyed) to ``topic`` on schedule, ``loops`` times (0 = until ``should_stop``).

    Raises KafkaDeliveryError at the end if any message was not confirmed; the stats say how many.
    """
    offsets = schedule_offsets_ns(ts_ns, speed=speed, rate=rate)
    producer = CheckedProducer(settings, **{"linger.ms": 2, **producer_config})
    period_ns = 0
    if offsets is not None and len(offsets):
        gap = int(offsets[-1] - offsets[0])
        period_ns = gap + (gap // max(len(offsets) - 1, 1) if len(offsets) > 1 else 1_000_000)
    stats = ReplayStats(total=len(values) * loops if loops else 0)
    if offsets is not None and len(offsets) > 1 and offsets[-1] > 0:
        stats.target_rate = len(values) / (offsets[-1] / 1e9)
    elif rate is not None:
        stats.target_rate = rate
    started_ns = time.perf_counter_ns()
    loop = 0
    while (loops == 0 or loop < loops) and not should_stop():
        base_ns = started_ns + loop * period_ns
        index = 0
        while index < len(values) and not should_stop():
            now_ns = time.perf_counter_ns()
            if offsets is None:
                end = min(index + _CHUNK, len(values))
            else:
                due = int(np.searchsorted(offsets, now_ns - base_ns, side="right"))
                if due <= index:
                    wait_ns = base_ns + int(offsets[index]) - now_ns
                    producer.poll(0)
                    time.sleep(min(max(wait_ns, 0) / 1e9, 0.05))
                    continue
                end = min(due, index + _CHUNK)
                behind_ms = (now_ns - base_ns - int(offsets[index])) / 1e6
                stats.max_behind_ms = max(stats.max_behind_ms, behind_ms)
            producer.produce_many(topic, keys[index:end], values[index:end])
            producer.poll(0)
            stats.sent += end - index
            index = end
            stats.elapsed_s = (time.perf_counter_ns() - started_ns) / 1e9
            if progress is not None:
                progress(stats)
        loop += 1
        stats.loops_done = loop
    try:
        producer.flush()
    except KafkaDeliveryError as error:
        stats.failed = producer.failed + producer.pending()
        stats.last_error = str(error)
        raise
    finally:
        stats.elapsed_s = (time.perf_counter_ns() - started_ns) / 1e9
        stats.failed = producer.failed
        if progress is not None:
            progress(stats)
    return stats
