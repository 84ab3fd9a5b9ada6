"""What a load test leaves behind: a JSON result naming the commit, a Markdown table, PNG plots."""

from __future__ import annotations

import contextlib
import math
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from loadtest.stages import STAGES


def git_commit() -> str:
    root = Path(__file__).resolve().parent.parent
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], check=False,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               check=False, capture_output=True, text=True, timeout=10).stdout.strip()
        commit += " (+ uncommitted changes)" if dirty else ""
    return commit or "unknown"


def machine() -> dict[str, Any]:
    import os
    import platform

    return {"cpus": os.cpu_count(), "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "platform": platform.platform()}


def fmt_ms(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def markdown(document: dict[str, Any]) -> str:
    lines = [f"# wattflow loadtest ({document['date']}, git {document['commit']})", "",
             f"Feed: {document['feed']}; {document['machine']['cpus']} CPUs, load average at the end "
             f"{document['machine']['loadavg_at_end']}.", ""]
    if document.get("max_sustainable_rate_per_s") is not None or document.get("ramp"):
        lines += [f"**Maximum sustainable rate: {document.get('max_sustainable_rate_per_s') or 'none of the rates'} "
                  "messages/s**", "", f"Rule: {document['rule']}", ""]
    for phase in document["phases"]:
        c = phase["counts"]
        lines += [f"## {phase['phase']}: {'sustained' if phase['sustained'] else 'NOT sustained'}", "",
                  f"target {phase['rate_per_s']:,.0f}/s, achieved {phase['achieved_rate_per_s']:,.0f}/s, sender p99 "
                  f"{fmt_ms(phase['sender_behind_ms']['p99'])} ms behind its schedule", "",
                  "| stage | count | missing | p50 | p90 | p99 | p99.9 | max (ms) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name in STAGES:
            s = phase["stages_ms"].get(name)
            if s:
                lines.append(f"| {name} | {int(s['count']):,} | {int(s['missing']):,} | {fmt_ms(s['p50'])} | "
                             f"{fmt_ms(s['p90'])} | {fmt_ms(s['p99'])} | {fmt_ms(s['p99.9'])} | {fmt_ms(s['max'])} |")
        lines += ["", "| count | value |", "|---|---:|"]
        lines += [f"| {k} | {v:,} |" if isinstance(v, int) else f"| {k} | {v} |" for k, v in c.items()]
        if phase.get("rss_slopes_mb_per_min"):
            lines += ["", "| process | RSS slope (MB/min) |", "|---|---:|"]
            lines += [f"| {k} | {v:+.3f} |" for k, v in phase["rss_slopes_mb_per_min"].items()]
        lines.append("")
    return "\n".join(lines)


def write(document: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    document.setdefault("date", datetime.now(UTC).isoformat(timespec="seconds"))
    json_path = out_dir / "loadtest.json"
    json_path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
                                       | orjson.OPT_NON_STR_KEYS))
    md_path = out_dir / "loadtest.md"
    md_path.write_text(markdown(document))
    return [json_path, md_path, *plots(document, out_dir)]


def plots(document: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for number, phase in enumerate(document["phases"]):
        fig, axes = plt.subplots(2, 2, figsize=(13, 8))
        ax = axes[0][0]
        for name in ("tick to order (intended->at venue)", "intended->stored", "raw topic->decided",
                     "sent->raw topic", "intended->sent"):
            rows = phase["intervals_ms"].get(name) or []
            if rows:
                ax.plot([r["t_s"] for r in rows], [r["p99"] for r in rows], label=f"{name} p99")
        rows = phase["intervals_ms"].get("tick to order (intended->at venue)") or []
        if rows:
            ax.plot([r["t_s"] for r in rows], [r["p50"] for r in rows], "--", label="tick to order p50")
        ax.set_yscale("log")
        ax.set_title("latency per interval (ms, log)")
        ax.set_xlabel("seconds since the phase started (intended send time)")
        ax.legend(fontsize=7)
        samples = phase["samples"]
        t = [s["t_s"] for s in samples]
        ax = axes[0][1]
        sent = [s["sent"] for s in samples]
        achieved = [0.0] + [(b - a) / max(tb - ta, 1e-9)
                            for a, b, ta, tb in zip(sent, sent[1:], t, t[1:], strict=False)]
        ax.plot(t, achieved, label="achieved (messages/s)")
        ax.axhline(phase["rate_per_s"], color="grey", linestyle="--", label="target")
        ax.set_title("rate")
        ax.legend(fontsize=7)
        ax = axes[1][0]
        ax.plot(t, [s["trading_lag_ms"] for s in samples], label="trading flow lag (ms)")
        ax2 = ax.twinx()
        ax2.plot(t, [s["store_lag_messages"] for s in samples], color="tab:orange", label="store flow lag (messages)")
        ax.set_title("lag per flow")
        ax.legend(loc="upper left", fontsize=7)
        ax2.legend(loc="upper right", fontsize=7)
        ax = axes[1][1]
        names = sorted({n for s in samples for n in s["rss_mb"]})
        for name in names:
            ax.plot(t, [s["rss_mb"].get(name, float("nan")) for s in samples], label=f"{name} RSS")
        ax.set_title("RSS per process (MB)")
        ax.legend(fontsize=6)
        fig.suptitle(f"wattflow loadtest: {phase['phase']} (git {document['commit']})")
        fig.tight_layout()
        path = out_dir / f"loadtest_{number:02d}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
        fig, ax = plt.subplots(figsize=(8, 4))
        for name in names:
            ax.plot(t, [s["cpu_percent"].get(name, float("nan")) for s in samples], label=name)
        ax.set_title(f"CPU per process (% of one core): {phase['phase']}")
        ax.legend(fontsize=6)
        fig.tight_layout()
        path = out_dir / f"loadtest_{number:02d}_cpu.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
