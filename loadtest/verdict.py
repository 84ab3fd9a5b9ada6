"""Judgements with their rules stated: did a rate hold, does memory grow, is a result worse than an earlier one."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: The rule a rate must meet to count as sustained (printed with the maximum sustainable rate).
SUSTAINABLE_RULE = ("sustained = nothing lost (every message confirmed, every expected row stored or "
                    "dead-lettered, every expected order at the venue) AND p99 tick to order <= {p99_ms:g} ms AND "
                    "lag bounded and not growing (median trading lag and store lag of the last fifth of the run <= "
                    "{lag_ms:g} ms and <= the first fifth's + {growth_ms:g} ms)")


def sustained(result: dict[str, Any], samples: list[dict[str, Any]], *, p99_ms: float, lag_ms: float,
              growth_ms: float, rate_per_s: float) -> tuple[bool, dict[str, Any]]:
    missing = lost(result)
    p99 = result["stages_ms"]["tick to order (intended->at venue)"]["p99"]
    fifth = max(len(samples) // 5, 1)
    # before the phase's first order the trading lag has no figure (NaN, or null read back from JSON)
    trading = [s["trading_lag_ms"] for s in samples if s["trading_lag_ms"] is not None
               and not math.isnan(s["trading_lag_ms"])]
    # the store lag in messages, as time at the offered rate
    store = [s["store_lag_messages"] / max(rate_per_s, 1e-9) * 1000 for s in samples]
    detail: dict[str, Any] = {"lost": missing, "p99_ms": p99}
    ok = missing == 0 and (math.isnan(p99) or p99 <= p99_ms)
    for name, series in (("trading_lag", trading), ("store_lag", store)):
        if not series:
            continue
        first, last = float(np.median(series[:fifth])), float(np.median(series[-fifth:]))
        detail[f"{name}_first_ms"], detail[f"{name}_last_ms"] = round(first, 1), round(last, 1)
        ok = ok and last <= lag_ms and last <= first + growth_ms
    return ok, detail


def rss_slopes_mb_per_min(samples: list[dict[str, Any]], skip_s: float = 0.0) -> dict[str, float]:
    """Each process's RSS trend: the slope of a least-squares line through its samples (MB per minute),
    after the first ``skip_s`` (start-up and warm-up allocations)."""
    out = {}
    names = sorted({name for s in samples for name in s.get("rss_mb", {})})
    for name in names:
        points = [(s["t_s"], s["rss_mb"][name]) for s in samples if name in s.get("rss_mb", {}) and s["t_s"] >= skip_s]
        if len(points) < 3:
            continue
        t, rss = np.array(points).T
        slope_per_s = float(np.polyfit(t, rss, 1)[0])
        out[name] = round(slope_per_s * 60, 3)
    return out


def soak_growth(result: dict[str, Any], bound_mb_per_min: float) -> dict[str, float]:
    """Processes whose RSS grew faster than ``bound_mb_per_min`` over a soak phase (none for other phases)."""
    if not result.get("soak"):
        return {}
    return {name: slope for name, slope in (result.get("rss_slopes_mb_per_min") or {}).items()
            if slope > bound_mb_per_min}


def lost(result: dict[str, Any]) -> int:
    """Messages, rows, dead letters and orders the truth expected and the system never delivered."""
    c = result["counts"]
    return int(c["not_confirmed"] + c["stored_lost"] + c["dead_letters_lost"] + c["at_venue_lost"])


def judge(document: dict[str, Any], *, rss_bound_mb_per_min: float, earlier: dict[str, Any] | None = None,
          regression_pct: float = 20.0) -> tuple[bool, list[str]]:
    """A whole result's verdict for CI: failed when a phase lost anything, a soak's RSS grew beyond the bound
    or (against ``earlier``) a figure got worse beyond ``regression_pct``; with the lines that say why."""
    failed, lines = False, []
    for result in document.get("phases", []):
        if missing := lost(result):
            failed = True
            lines.append(f"{result['phase']}: {missing:,} lost (messages, rows, dead letters or orders)")
        if grown := soak_growth(result, rss_bound_mb_per_min):
            failed = True
            named = ", ".join(f"{name} {slope:+.2f} MB/min" for name, slope in sorted(grown.items()))
            lines.append(f"{result['phase']}: soak failed, RSS grows beyond {rss_bound_mb_per_min:g} MB/min: {named}")
    if earlier is not None:
        rows, regressed = compare(document, earlier, regression_pct)
        lines += [" | ".join(row) for row in rows]
        if regressed:
            failed = True
            lines.append(f"regression beyond {regression_pct:g}% against the earlier result")
    return failed, lines


#: Figures --compare looks at: (path in the result, higher is better).
COMPARED = (
    (("max_sustainable_rate_per_s",), True),
    (("result", "stages_ms", "tick to order (intended->at venue)", "p99"), False),
    (("result", "stages_ms", "tick to order (intended->at venue)", "p50"), False),
    (("result", "stages_ms", "intended->stored", "p99"), False),
    (("result", "stages_ms", "intended->acked", "p99"), False),
)


def _get(document: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = document
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def compare(current: dict[str, Any], earlier: dict[str, Any], threshold_pct: float) -> tuple[list[list[str]], bool]:
    """Rows (figure, earlier, now, change) and whether any figure got worse by more than ``threshold_pct``."""
    rows: list[list[str]] = []
    regressed = False
    for path, higher_better in COMPARED:
        before, now = _get(earlier, path), _get(current, path)
        if before is None or now is None or not math.isfinite(before) or before == 0:
            if before is not None and now is not None and math.isfinite(before) and not math.isfinite(now):
                rows.append([" ".join(path[-2:]), f"{before:,.2f}", "inf", "worse"])
                regressed = True
            continue
        change = (now - before) / abs(before) * 100
        worse = -change if higher_better else change
        flag = "REGRESSION" if worse > threshold_pct else ""
        regressed = regressed or bool(flag)
        rows.append([" ".join(path[-2:]), f"{before:,.2f}", f"{now:,.2f}", f"{change:+.1f}% {flag}".strip()])
    for name, slope in (current.get("rss_slopes_mb_per_min") or {}).items():
        before = (earlier.get("rss_slopes_mb_per_min") or {}).get(name)
        if before is not None:
            rows.append([f"RSS slope {name} (MB/min)", f"{before:.3f}", f"{slope:.3f}", f"{slope - before:+.3f}"])
    return rows, regressed
