"""The load test's judgements over synthetic results (no servers, no timings): a soak whose RSS grows beyond
the bound fails and names the process; ``--compare`` flags a worse p99 beyond the threshold and exits non-zero,
tried as a user (or CI) would: the real ``wattflow loadtest --result ... --compare ...`` as a process."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from loadtest.verdict import compare, judge, rss_slopes_mb_per_min, soak_growth, sustained

T2O = "tick to order (intended->at venue)"
ROOT = Path(__file__).resolve().parents[2]


def samples(seconds: int, rss_mb: dict[str, Any], **extra: float) -> list[dict[str, Any]]:
    """One sample a second; ``rss_mb``: process -> RSS as a function of the time in seconds."""
    return [{"t_s": float(t), "rss_mb": {name: f(t) for name, f in rss_mb.items()}, "trading_lag_ms": 50.0,
             "store_lag_messages": 10, **extra} for t in range(seconds)]


def phase(*, soak: bool = False, p99_ms: float = 100.0, slopes: dict[str, float] | None = None,
          at_venue_lost: int = 0) -> dict[str, Any]:
    stage = {"count": 1000.0, "missing": 0.0, "p50": p99_ms / 4, "p90": p99_ms / 2, "p99": p99_ms,
             "p99.9": p99_ms * 1.2, "max": p99_ms * 1.5}
    return {"phase": "soak 10 min" if soak else "1,000/s", "soak": soak, "rate_per_s": 1000.0,
            "counts": {"not_confirmed": 0, "stored_lost": 0, "dead_letters_lost": 0, "at_venue_lost": at_venue_lost},
            "stages_ms": {T2O: stage, "intended->stored": {**stage, "p99": 900.0},
                          "intended->acked": {**stage, "p99": p99_ms + 5}},
            "rss_slopes_mb_per_min": slopes or {}}


def document(result: dict[str, Any], commit: str = "abc1234") -> dict[str, Any]:
    return {"tool": "wattflow loadtest", "commit": commit, "phases": [result], "result": result,
            "rss_slopes_mb_per_min": result["rss_slopes_mb_per_min"], "max_sustainable_rate_per_s": None}


def test_rss_slope_is_fitted_per_process_after_the_warmup() -> None:
    series = samples(120, {"trading flow": lambda t: 200 + 5 * t / 60, "venue": lambda t: 80.0,
                           "store flow": lambda t: 500.0 if t < 10 else 150.0})  # start-up allocation, then flat
    slopes = rss_slopes_mb_per_min(series, skip_s=10)
    assert slopes["trading flow"] == pytest.approx(5.0)
    assert slopes["venue"] == pytest.approx(0.0) and slopes["store flow"] == pytest.approx(0.0)


def test_soak_with_growing_rss_fails_naming_the_process() -> None:
    grown = phase(soak=True, slopes={"trading flow": 5.0, "venue": 0.1, "kafka": -0.3})
    assert soak_growth(grown, 2.0) == {"trading flow": 5.0}
    failed, lines = judge(document(grown), rss_bound_mb_per_min=2.0)
    assert failed
    assert lines == ["soak 10 min: soak failed, RSS grows beyond 2 MB/min: trading flow +5.00 MB/min"]
    # the same slopes on a phase that is not a soak are reported, not judged; a flat soak passes
    assert judge(document(phase(slopes={"trading flow": 5.0})), rss_bound_mb_per_min=2.0) == (False, [])
    assert judge(document(phase(soak=True, slopes={"trading flow": 1.9})), rss_bound_mb_per_min=2.0) == (False, [])


def test_lost_orders_fail_the_run() -> None:
    failed, lines = judge(document(phase(at_venue_lost=3)), rss_bound_mb_per_min=2.0)
    assert failed and lines == ["1,000/s: 3 lost (messages, rows, dead letters or orders)"]


def test_compare_flags_a_worse_p99_beyond_the_threshold() -> None:
    earlier = document(phase(p99_ms=100.0))
    rows, regressed = compare(document(phase(p99_ms=150.0)), earlier, 20.0)
    assert regressed
    assert [f"{T2O} p99", "100.00", "150.00", "+50.0% REGRESSION"] in rows
    rows, regressed = compare(document(phase(p99_ms=110.0)), earlier, 20.0)
    assert not regressed and [f"{T2O} p99", "100.00", "110.00", "+10.0%"] in rows
    # better is never a regression; an order that never arrived (p99 inf) is
    assert not compare(document(phase(p99_ms=50.0)), earlier, 20.0)[1]
    assert compare(document(phase(p99_ms=float("inf"))), earlier, 20.0)[1]


def test_sustained_needs_nothing_lost_p99_under_its_bound_and_flat_lag() -> None:
    flat = samples(50, {})
    assert sustained(phase(p99_ms=100.0), flat, p99_ms=1000, lag_ms=2000, growth_ms=500, rate_per_s=1000)[0]
    assert not sustained(phase(p99_ms=1500.0), flat, p99_ms=1000, lag_ms=2000, growth_ms=500, rate_per_s=1000)[0]
    assert not sustained(phase(at_venue_lost=1), flat, p99_ms=1000, lag_ms=2000, growth_ms=500, rate_per_s=1000)[0]
    growing = [{**s, "trading_lag_ms": 40.0 * s["t_s"]} for s in flat]  # 0 -> 2 s behind
    ok, detail = sustained(phase(), growing, p99_ms=1000, lag_ms=2000, growth_ms=500, rate_per_s=1000)
    assert not ok and detail["trading_lag_last_ms"] > detail["trading_lag_first_ms"] + 500
    # before the first order the trading lag has no figure: not a lag of 0 that makes a steady one look grown
    late_start = [{**s, "trading_lag_ms": float("nan") if s["t_s"] < 10 else 700.0} for s in flat]
    ok, detail = sustained(phase(), late_start, p99_ms=1000, lag_ms=2000, growth_ms=500, rate_per_s=1000)
    assert ok and detail["trading_lag_first_ms"] == detail["trading_lag_last_ms"] == 700.0


def wattflow_loadtest(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATTFLOW_")}
    env.update({"WATTFLOW_STATE_DIR": str(cwd / "state"), "COLUMNS": "200",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))})
    return subprocess.run([sys.executable, "-m", "cli", "loadtest", *args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=cwd, check=False)


def test_the_command_exits_non_zero_on_a_regression_and_prints_the_change(tmp_path: Path) -> None:
    earlier, now = tmp_path / "earlier.json", tmp_path / "now.json"
    earlier.write_bytes(orjson.dumps(document(phase(p99_ms=100.0), commit="1111111")))
    now.write_bytes(orjson.dumps(document(phase(p99_ms=180.0), commit="2222222")))
    worse = wattflow_loadtest("--result", str(now), "--compare", str(earlier), cwd=tmp_path)
    assert worse.returncode == 1, worse.stdout + worse.stderr
    assert f"{T2O} p99 | 100.00 | 180.00 | +80.0% REGRESSION" in worse.stdout
    assert "git 1111111" in worse.stdout and "verdict: FAILED" in worse.stdout
    same = wattflow_loadtest("--result", str(earlier), "--compare", str(earlier), cwd=tmp_path)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "+0.0%" in same.stdout and "verdict: passed" in same.stdout


def test_the_command_fails_a_soak_whose_rss_grows_naming_the_process(tmp_path: Path) -> None:
    grown = phase(soak=True, slopes={"store flow": 0.4, "trading flow": 3.5})
    path = tmp_path / "soak.json"
    path.write_bytes(orjson.dumps(document(grown)))
    result = wattflow_loadtest("--result", str(path), "--rss-bound", "2", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "RSS grows beyond 2 MB/min: trading flow +3.50 MB/min" in result.stdout
    assert "store flow" not in result.stdout
    flat = copy.deepcopy(grown)
    flat["rss_slopes_mb_per_min"] = {"store flow": 0.4, "trading flow": 0.1}
    path.write_bytes(orjson.dumps(document(flat)))
    assert wattflow_loadtest("--result", str(path), "--rss-bound", "2", cwd=tmp_path).returncode == 0
