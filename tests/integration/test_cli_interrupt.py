"""Ctrl-C on a command that runs until interrupted: `run` (one process and several) and `tail` stop with exit code
130 and one summary line, no Rust panic and no traceback. The 10 s bound only guards against a hang (a stop
used to print a panic and exit 1); how fast it stops is not measured here."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.helpers import flow_env, python, with_topics
from wattflow.settings import Settings

pytestmark = pytest.mark.stack


def interrupted(env: dict[str, str], *args: str, ready: str) -> tuple[int, str, str]:
    """Start the command, wait for ``ready`` on its stdout or stderr, send SIGINT, return (code, out, err)."""
    process = subprocess.Popen([python(), "-m", "cli", *args], env={**env, "COLUMNS": "80"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    seen = []
    deadline = time.monotonic() + 60
    for line in process.stdout:
        seen.append(line)
        if ready in line:
            break
        assert time.monotonic() < deadline, "".join(seen)
    time.sleep(2)  # running, polling the broker
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=10)
    return process.returncode, "".join(seen) + rest, ""


@pytest.mark.parametrize("processes", ["1", "2"])
def test_ctrl_c_stops_run_with_one_line_and_code_130(settings: Settings, unique: str, processes: str) -> None:
    s = with_topics(settings, unique)
    code, out, _ = interrupted(flow_env(s), "run", "ingest", "--processes", processes, ready="running ingest")
    assert code == 130, out
    assert "ingest stopped by Ctrl-C after" in out
    assert "panicked" not in out and "Traceback" not in out and "BytewaxRuntimeError" not in out, out


def test_ctrl_c_stops_tail_with_a_count_of_what_it_showed(settings: Settings, unique: str) -> None:
    s = with_topics(settings, unique)
    code, out, _ = interrupted(flow_env(s), "tail", s.topics.raw, ready="reading from the beginning")
    assert code == 130, out
    assert "stopped after 0 messages" in out and "Traceback" not in out, out
