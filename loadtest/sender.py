"""The open-loop sender: every message goes out at its intended time, whatever the system does.

Message i is due at ``start_ns + offsets_ns[i]``. When the sender falls behind (a busy core, a full producer
queue) it sends everything due at once; it never waits for the system, so a slow system cannot slow the load
down and hide its own latency (no coordinated omission). Each message's actual send time and its delivery
report (partition, offset, the broker's append time: the topics are stamped with LogAppendTime) are kept:
``sent - intended`` is the sender's own delay, reported next to every latency (which counts from the
intended time, so that delay is in it, never hidden).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from loadtest.load import Load

#: Send at most this many messages between two looks at the clock.
_CHUNK = 2_000


@dataclass
class Deliveries:
    """What the broker confirmed, per message index: partition, offset and append time (ms), -1 when not."""

    size: int
    #: Events each message carries (1 unless packed).
    weight: NDArray[np.int64] | None = None
    partition: NDArray[np.int32] = field(init=False)
    offset: NDArray[np.int64] = field(init=False)
    appended_ms: NDArray[np.int64] = field(init=False)
    failed: int = 0
    last_error: str = ""

    def __post_init__(self) -> None:
        self.partition = np.full(self.size, -1, np.int32)
        self.offset = np.full(self.size, -1, np.int64)
        self.appended_ms = np.full(self.size, -1, np.int64)

    def callback(self, index: int) -> Callable[[Any, Any], None]:
        def done(error: Any, message: Any) -> None:
            if error is not None:
                self.failed += 1
                self.last_error = str(error)
                return
            self.partition[index] = message.partition()
            self.offset[index] = message.offset()
            self.appended_ms[index] = message.timestamp()[1]
        return done

    @property
    def confirmed(self) -> int:
        """Messages confirmed."""
        return int((self.offset >= 0).sum())

    @property
    def confirmed_events(self) -> int:
        """Events in the messages confirmed (= messages unless packed)."""
        if self.weight is None:
            return self.confirmed
        return int(self.weight[self.offset >= 0].sum())


@dataclass
class SendProgress:
    """Shared with the live display and the observer (read from other threads)."""

    start_ns: int = 0
    sent: int = 0  # messages
    sent_events: int = 0  # events in them (= messages unless packed)
    behind_ms: float = 0.0
    done: bool = False
    newest_ts_ns: int = 0


class OpenLoopSender:
    """Sends a :class:`Load` of messages to ``topic`` on its schedule; ``sent_ns`` holds each message's actual
    send time; ``events_per_message``: what each carries when packed (``loadtest.pack``)."""

    def __init__(self, kafka_config: dict[str, Any], topic: str, load: Load,
                 events_per_message: NDArray[np.int64] | None = None) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.load = load
        self.producer = Producer({**kafka_config, "linger.ms": 0, "enable.idempotence": True,
                                  "queue.buffering.max.messages": 2_000_000, "client.id": "wattflow-loadtest"})
        self.deliveries = Deliveries(len(load), events_per_message)
        self._events_before = (np.concatenate([[0], np.cumsum(events_per_message)]) if events_per_message is not None
                               else np.arange(len(load) + 1))
        self.sent_ns = np.zeros(len(load), np.int64)
        self.progress = SendProgress()
        self.stop = threading.Event()

    def run(self, start_ns: int) -> None:
        """Send everything (returns when all is sent and flushed, or ``stop`` is set)."""
        load, produce, topic = self.load, self.producer.produce, self.topic
        due_ns = start_ns + load.offsets_ns
        self.progress.start_ns = start_ns
        values, keys, callback = load.values, load.keys, self.deliveries.callback
        i, n = 0, len(load)
        while i < n and not self.stop.is_set():
            now = time.time_ns()
            if due_ns[i] > now:
                self.producer.poll(0)
                time.sleep(min((int(due_ns[i]) - now) / 1e9, 0.05))
                continue
            j = min(int(np.searchsorted(due_ns, now, side="right")), i + _CHUNK)
            for k in range(i, j):
                while True:
                    try:
                        produce(topic, values[k], keys[k], on_delivery=callback(k))
                        break
                    except BufferError:  # the local queue is full: the broker is behind; wait, stay honest
                        self.producer.poll(0.01)
            self.sent_ns[i:j] = time.time_ns()
            self.producer.poll(0)
            self.progress.behind_ms = (self.sent_ns[j - 1] - int(due_ns[j - 1])) / 1e6
            self.progress.newest_ts_ns = max(self.progress.newest_ts_ns, int(load.ts_ns[j - 1]))
            i = j
            self.progress.sent, self.progress.sent_events = i, int(self._events_before[i])
        remaining = self.producer.flush(120)
        if remaining:
            self.deliveries.last_error = f"{remaining} messages not confirmed within 120 s"
        self.progress.done = True

    def send_delay_ns(self) -> NDArray[np.int64]:
        """Actual minus intended send time of every message sent."""
        sent = self.sent_ns > 0
        return (self.sent_ns - (self.progress.start_ns + self.load.offsets_ns))[sent]
