"""Shared helpers of the benchmarks: a throw-away stack, the data, CPU accounting, tables and JSON results.

Every benchmark measures wattflow and its baselines in the same run, on the same data, and reports ratios
next to absolute figures (shared/design/performance.md). The servers share the box's cores with the
client, so each measured variant also records the CPU seconds the client and each server used: a figure
measured while a server was busy says so in the JSON.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

from wattflow.settings import Settings
from wattflow.stack import Stack
from wattflow.stack.process import free_port

RESULTS_DIR = Path(__file__).resolve().parent / "results"
console = Console(width=None if Console().is_terminal else 200)
#: Markdown of the tables printed since the last write_results() (written next to the JSON).
_MARKDOWN: list[str] = []

# --- the stack ----------------------------------------------------------------------------------------


def isolated_settings(state_dir: Path, **overrides: Any) -> Settings:
    """Settings for a throw-away stack: free loopback ports, its own state directory (as tests/conftest.py)."""
    return Settings.load(
        state_dir=state_dir,
        kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"},
        questdb={"http_port": free_port(), "ilp_tcp_port": free_port(), "pg_port": free_port(),
                 "health_port": free_port()},
        stack={"kafka_controller_port": free_port(), "stop_grace_s": 15.0},
        **overrides,
    )


@contextlib.contextmanager
def running_stack(keep_state: bool = False) -> Iterator[Stack]:
    """Start real Kafka and QuestDB on free ports in a temporary directory, create wattflow's topics and
    tables, and always stop both servers (and delete the directory) on the way out."""
    from cli.stack import init_stack
    from wattflow.errors import StackError

    attempts = 3
    affinity = os.sched_getaffinity(0)  # pin_servers() may narrow it; restored on the way out
    for attempt in range(1, attempts + 1):
        state_dir = Path(tempfile.mkdtemp(prefix="wattflow-bench-"))
        stack = Stack(isolated_settings(state_dir))
        try:
            started = time.perf_counter()
            with console.status("starting Kafka and QuestDB on free ports..."):
                try:
                    stack.up()
                except StackError as error:
                    # e.g. a random KRaft cluster id starting with "-" (read as an option by kafka-storage),
                    # or a free port taken meanwhile: start afresh elsewhere.
                    if attempt == attempts:
                        raise
                    console.print(f"[yellow]stack start failed (attempt {attempt}), retrying:[/] {error}")
                    continue
                init_stack(stack.settings)
            console.print(f"stack up in {time.perf_counter() - started:.1f} s ({state_dir})")
            yield stack
            return
        finally:
            with console.status("stopping the stack..."):
                outcome = stack.down()
            console.print(f"stack down: {outcome}")
            if not keep_state:
                shutil.rmtree(state_dir, ignore_errors=True)
            os.sched_setaffinity(0, affinity)


def server_pids(stack: Stack) -> dict[str, int]:
    return {name: pid for name, process in stack.processes().items() if (pid := process.pid()) is not None}


def pin_servers(stack: Stack, server_cpus: set[int], client_cpus: set[int]) -> None:
    """Pin every thread of both servers to ``server_cpus`` and this process to ``client_cpus``."""
    for pid in server_pids(stack).values():
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task.name), server_cpus)
    os.sched_setaffinity(0, client_cpus)


def environment_for(settings: Settings) -> dict[str, str]:
    """WATTFLOW_* variables that point a child process (``python -m bytewax.run``) at ``settings`` (and at no
    settings file, and none of this shell's WATTFLOW_* variables)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("WATTFLOW_")}
    env["WATTFLOW_SETTINGS_FILE"] = os.devnull
    env.update(settings.to_env())
    return env


# --- CPU accounting -----------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds; 0 when it is gone."""
    try:
        fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields_[11]) + int(fields_[12])) / _TICK


def own_cpu_s() -> float:
    """CPU seconds of this process and its waited-for children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def system_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (everything in /proc/stat but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / _TICK


#: Defaults of wait_for_quiet(); the benchmarks' --quiet-wait option overrides the wait.
QUIET_CORES = 0.3
QUIET_WAIT_S = 20.0


def wait_for_quiet(max_wait_s: float = QUIET_WAIT_S, threshold_cores: float = QUIET_CORES,
                   window_s: float = 0.5) -> dict[str, float]:
    """Wait (at most ``max_wait_s``) until the whole box is nearly idle: the servers done with background work
    (WAL apply, log flushes) and other processes quiet. Returns how long it waited and the last load seen, so
    that a figure measured on a busy box says so."""
    started = time.perf_counter()
    load = float("nan")
    while True:
        before = system_busy_s()
        time.sleep(window_s)
        load = (system_busy_s() - before) / window_s
        waited = time.perf_counter() - started
        if load < threshold_cores or waited >= max_wait_s:
            return {"waited_s": round(waited, 2), "busy_cores_before": round(load, 2)}


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class CpuMeter:
    """CPU seconds used by the client, each server and everything else on the box between ``start()`` and
    ``stop()``. ``cpu_other_s`` is what other processes (not this benchmark) took: contention."""

    pids: dict[str, int]
    _start: dict[str, float] = field(default_factory=dict)
    _wall: float = 0.0

    def start(self) -> CpuMeter:
        self._start = {"client": own_cpu_s(), **{n: process_cpu_s(p) for n, p in self.pids.items()},
                       "system": system_busy_s()}
        self._wall = time.perf_counter()
        return self

    def stop(self, extra_client_s: float = 0.0) -> dict[str, float]:
        """``extra_client_s``: CPU of child processes not waited for by this one (measured by the caller)."""
        wall = time.perf_counter() - self._wall
        now = {"client": own_cpu_s(), **{n: process_cpu_s(p) for n, p in self.pids.items()},
               "system": system_busy_s()}
        used = {f"cpu_{n}_s": round(now[n] - self._start[n] + (extra_client_s if n == "client" else 0.0), 3)
                for n in now if n != "system"}
        total = now["system"] - self._start["system"]
        used["cpu_other_s"] = round(max(total - sum(used.values()), 0.0), 3)
        used["wall_s"] = round(wall, 3)
        used["cores_busy"] = round(total / wall, 2) if wall else 0.0
        return used


# --- data ---------------------------------------------------------------------------------------------

TRADE, BOOK, INVALID = 0, 1, -1
#: Events of one simulated DE-LU day at scale 1 (used to pick the scale for a wanted size).
_SIM_EVENTS_AT_SCALE_1 = 560_000
DAY = date(2018, 10, 28)
#: Synthetic trades are stamped at 2018-10-27T22:40Z: every 2018-10-28 DE-LU product from 01:00Z is open.
SYNTHETIC_TS_NS = 1_540_680_000_000_000_000


@dataclass
class Feed:
    """Raw messages in wire form, with what a correct pipeline must make of them."""

    messages: list[bytes]
    keys: list[bytes]  # Kafka key (the product) per message
    kind: NDArray[np.int8]  # TRADE, BOOK or INVALID per message
    origin: str
    invalid_reasons: dict[str, int]
    expected: dict[str, int]  # rows each table must hold after a correct run (dedup keys applied)

    def __len__(self) -> int:
        return len(self.messages)

    @property
    def mean_bytes(self) -> float:
        return sum(map(len, self.messages)) / max(len(self.messages), 1)

    def describe(self) -> dict[str, Any]:
        return {"origin": self.origin, "messages": len(self), "mean_bytes": round(self.mean_bytes, 1),
                "trades": int((self.kind == TRADE).sum()), "book_updates": int((self.kind == BOOK).sum()),
                "invalid": self.invalid_reasons, "expected_rows": self.expected}


def _simulated(n: int, seed: int) -> tuple[list[bytes], str] | None:
    try:
        from connectors.feeds.files import json_lines
        from paper.simulator import simulate_day
    except ImportError:
        return None
    scale = max(n / _SIM_EVENTS_AT_SCALE_1 * 1.03, 0.01)
    frame = simulate_day("DE-LU", DAY, seed, scale)
    while len(frame) < n:
        scale *= 1.1 * n / max(len(frame), 1)
        frame = simulate_day("DE-LU", DAY, seed, scale)
    if len(frame) > n:
        rows = np.sort(np.random.default_rng(seed).choice(len(frame), n, replace=False))
        frame = frame.take(rows)
    return json_lines(frame), f"simulate_day('DE-LU', {DAY}, seed={seed}, scale={scale:.3f}), {n} events sampled"


def _synthetic(n: int, seed: int, products: int = 100) -> tuple[list[bytes], str]:
    """Trades over ``products`` quarter-hour and hourly DE-LU products of 2018-10-28 (all open)."""
    from wattflow.domain import products_of_day

    keys = [p.key for p in products_of_day("DE-LU", DAY) if p.delivery_start_ns >= SYNTHETIC_TS_NS + 3 * 3600 * 10**9]
    keys = keys[:products]
    rng = np.random.default_rng(seed)
    product = rng.integers(0, len(keys), n)
    price = np.round(rng.normal(50, 15, n), 2)
    quantity = np.round(rng.integers(1, 200, n) / 10, 1)
    side = rng.integers(0, 2, n)
    ts = SYNTHETIC_TS_NS + np.sort(rng.integers(0, 3_600 * 10**9, n))
    messages = [orjson.dumps({
        "type": "trade", "ts_ns": int(ts[i]), "product": keys[product[i]], "price_eur_per_mwh": float(price[i]),
        "quantity_mw": float(quantity[i]), "side": "BUY" if side[i] else "SELL", "trade_id": i + 1,
        "source": "bench", "seq": i,
    }) for i in range(n)]
    return messages, f"synthetic trades over {len(keys)} products"


def make_feed(n: int, seed: int = 7, invalid_fraction: float = 0.0, synthetic: bool = False) -> Feed:
    """``n`` raw messages: a simulated DE-LU day (trades and book updates) when the simulator imports,
    else synthetic trades. ``invalid_fraction`` of them are broken, half as truncated JSON, half with a
    price out of the intraday range, so that the dead-letter path is exercised too.
    """
    made = None if synthetic else _simulated(n, seed)
    messages, origin = made if made is not None else _synthetic(n, seed)
    decoded = [orjson.loads(m) for m in messages]
    kind = np.array([TRADE if d["type"] == "trade" else BOOK for d in decoded], dtype=np.int8)
    keys = [d["product"].encode() for d in decoded]
    reasons = {"TRUNCATED": 0, "PRICE_OUT_OF_RANGE": 0}
    if invalid_fraction > 0:
        rng = np.random.default_rng(seed + 1)
        broken = rng.choice(n, max(1, round(n * invalid_fraction)), replace=False)
        for number, row in enumerate(broken.tolist()):
            if number % 2 == 0:
                messages[row] = messages[row][: len(messages[row]) // 2]
                reasons["TRUNCATED"] += 1
            else:
                messages[row] = orjson.dumps({**decoded[row], "price_eur_per_mwh": 99999.0})
                reasons["PRICE_OUT_OF_RANGE"] += 1
            kind[row] = INVALID
    trades = [d for d, k in zip(decoded, kind.tolist(), strict=True) if k == TRADE]
    books = [d for d, k in zip(decoded, kind.tolist(), strict=True) if k == BOOK]
    expected = {
        "ticks": len({(d["ts_ns"], d["product"], d["trade_id"]) for d in trades}),
        "book": len({(d["ts_ns"], d["product"], d["side"], d["level"], d["seq"]) for d in books}),
        "dlq": int((kind == INVALID).sum()),
    }
    return Feed(messages, keys, kind, origin, reasons, expected)


def preload(settings: Settings, topic: str, feed: Feed, partitions: int = 4) -> dict[str, float]:
    """Create ``topic`` and produce every message of ``feed`` to it (keyed by product), checked."""
    from connectors.kafka.admin import ensure_topics
    from connectors.kafka.producer import CheckedProducer

    ensure_topics(settings.kafka, {topic: partitions})
    started = time.perf_counter()
    producer = CheckedProducer(settings.kafka)
    producer.produce_many(topic, feed.keys, feed.messages)
    producer.flush(300.0)
    seconds = time.perf_counter() - started
    return {"messages": len(feed), "seconds": round(seconds, 3), "msgs_per_s": round(len(feed) / seconds)}


def topic_message_count(settings: Settings, topic: str) -> int:
    """Sum over partitions of (high - low) watermark."""
    from confluent_kafka import Consumer, TopicPartition

    from connectors.kafka.admin import topic_partitions

    consumer = Consumer({**settings.kafka.client_config(), "group.id": "wattflow-bench-watermarks"})
    try:
        total = 0
        for partition in range(topic_partitions(settings.kafka, topic)):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10.0)
            total += high - low
        return total
    finally:
        consumer.close()


def table_ddl(template: str, name: str) -> str:
    """wattflow's DDL of ``template`` (connectors/questdb/tables.py) for a table named ``name``."""
    from connectors.questdb.tables import TABLES

    return re.sub(rf"EXISTS\s+{template}\s*\(", f"EXISTS {name} (", TABLES[template], count=1)


# --- statistics, tables, results ----------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else float("nan")


def best_of(samples: Sequence[float]) -> dict[str, float]:
    """min and median of repeated timings (min: the least disturbed run; median: the typical one)."""
    return {"min": float(min(samples)), "median": float(np.median(samples))}


def machine_info() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gb = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory_gb = int(Path("/proc/meminfo").read_text().split()[1]) / 1024**2
    versions = {}
    for package in ("bytewax", "confluent-kafka", "questdb", "msgspec", "orjson", "numpy", "pandas", "numba"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    with contextlib.suppress(ImportError):
        import confluent_kafka

        versions["librdkafka"] = confluent_kafka.libversion()[0]
    from wattflow.settings import KAFKA_VERSION, QUESTDB_VERSION

    versions["kafka"], versions["questdb-server"] = KAFKA_VERSION, QUESTDB_VERSION
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        root = Path(__file__).resolve().parent.parent
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], check=False,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], check=False,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        commit += " (+ uncommitted changes)" if dirty else ""
    return {
        "cpu": cpu, "cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_gb": round(memory_gb, 1), "loadavg_at_start": list(os.getloadavg()),
        "python": platform.python_version(), "platform": platform.platform(), "versions": versions,
        "git": commit,
    }


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                caption: str | None = None) -> None:
    table = Table(title=title, caption=caption, caption_justify="left")
    for number, column in enumerate(columns):
        table.add_column(column, justify="left" if number == 0 else "right")
    for row in rows:
        table.add_row(*[_cell(value) for value in row])
    console.print(table)
    lines = [f"**{title}**", "", "| " + " | ".join(columns) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(columns) - 1)) + "|"]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    if caption:
        lines += ["", caption]
    _MARKDOWN.append("\n".join(lines) + "\n")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if np.isnan(value):
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_results(name: str, parameters: dict[str, Any], results: Any, *, machine: dict[str, Any],
                  notes: Sequence[str] = (), extra: dict[str, Any] | None = None) -> Path:
    """benchmarks/results/<name>.json (machine, date, parameters, figures, notes) and <name>.md (the tables)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "parameters": parameters,
        "results": results,
        "notes": list(notes),
        **(extra or {}),
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
                                  | orjson.OPT_NON_STR_KEYS))
    if _MARKDOWN:
        header = f"# {name} ({document['date']}, {machine.get('cpus')} CPUs, git {machine.get('git') or '?'})\n\n"
        (RESULTS_DIR / f"{name}.md").write_text(header + "\n".join(_MARKDOWN))
        _MARKDOWN.clear()
    console.print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return path
