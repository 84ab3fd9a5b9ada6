"""Latency summaries with HdrHistogram: p50/p90/p99/p99.9/max overall and per interval.

Values are recorded in microseconds (1 us to 1 hour, 3 significant digits). A message that never reached a
stage is not dropped from that stage's figures: it counts as infinitely late (``missing``), and a percentile
that falls among the missing ones is ``inf``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram
from numpy.typing import NDArray

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
_LOWEST_US, _HIGHEST_US, _DIGITS = 1, 3_600_000_000, 3


def histogram_of(latencies_ns: NDArray[np.int64]) -> HdrHistogram:
    histogram = HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)
    values_us = np.clip(np.asarray(latencies_ns, dtype=np.int64) // 1000, _LOWEST_US, _HIGHEST_US)
    unique, counts = np.unique(values_us, return_counts=True)
    for value, count in zip(unique.tolist(), counts.tolist(), strict=True):
        histogram.record_value(value, count)
    return histogram


def summary_ms(latencies_ns: NDArray[np.int64] | list[int], missing: int = 0) -> dict[str, float]:
    """count, missing, p50, p90, p99, p99.9 and max in ms; a percentile among the missing ones is inf."""
    values = np.asarray(latencies_ns, dtype=np.int64)
    total = len(values) + missing
    out: dict[str, float] = {"count": float(len(values)), "missing": float(missing)}
    if total == 0:
        return {**out, **{_name(q): math.nan for q in PERCENTILES}, "max": math.nan}
    histogram = histogram_of(values) if len(values) else None
    for q in PERCENTILES:
        rank = q / 100.0 * total
        if histogram is None or rank > len(values):
            out[_name(q)] = math.inf
        else:
            out[_name(q)] = histogram.get_value_at_percentile(100.0 * rank / len(values)) / 1000.0
    out["max"] = math.inf if missing else (histogram.get_max_value() / 1000.0 if histogram else math.nan)
    return out


def _name(q: float) -> str:
    return f"p{q:g}"


def per_interval(start_ns: int, interval_s: float, at_ns: NDArray[np.int64], latencies_ns: NDArray[np.int64],
                 ) -> list[dict[str, Any]]:
    """Summaries of the latencies of messages whose intended time falls in each interval from ``start_ns``."""
    if not len(at_ns):
        return []
    width = int(interval_s * 1e9)
    bucket = (np.asarray(at_ns) - start_ns) // width
    out = []
    for b in range(int(bucket.min()), int(bucket.max()) + 1):
        rows = bucket == b
        if rows.any():
            out.append({"t_s": round(b * interval_s, 3), **summary_ms(latencies_ns[rows])})
    return out
