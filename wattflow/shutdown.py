"""A clean stop on Ctrl-C: the first interrupt asks every Kafka source partition of this process to end, so the
flow finishes its epoch, flushes its sinks, writes its snapshot and returns; a second interrupt exits at once.

Bytewax turns an interrupt into a panic of its worker (a Rust backtrace and a ``BytewaxRuntimeError``); with
:func:`stop_on_interrupt` the interrupt never reaches it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

_STOP = threading.Event()


def stop_requested() -> bool:
    """True once a stop was asked for (sources end their partitions at their next batch)."""
    return _STOP.is_set()


def request_stop() -> None:
    _STOP.set()


def stop_on_interrupt(message: str = "stopping at the end of this batch (Ctrl-C again to quit at once)") -> None:
    """From now on, the first SIGINT asks for a clean stop (printing ``message`` to stderr); the second exits
    with code 130 without cleaning up. Call from the main thread."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if _STOP.is_set():
            sys.stderr.write("\ninterrupted again: quitting without a final snapshot\n")
            sys.stderr.flush()
            os._exit(130)
        sys.stderr.write(f"\n{message}\n")
        sys.stderr.flush()
        _STOP.set()

    signal.signal(signal.SIGINT, handler)
