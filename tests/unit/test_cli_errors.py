"""The error path, tried as a user would: the real `wattflow` command as a process, servers down or settings
wrong. Each must end with exit code 1 and one `error [CODE] ...` line plus what to do, no traceback and no
Kafka client log on the terminal, and must not hang (10 s is a generous bound against the 10-60 s of retries
these commands used to take; their speed is not measured here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wattflow.stack.process import free_port


def wattflow(*args: str, env: dict[str, str] | None = None, tmp: Path) -> subprocess.CompletedProcess[str]:
    nowhere = f"127.0.0.1:{free_port()}"
    base = {k: v for k, v in os.environ.items() if not k.startswith("WATTFLOW_")}
    base.update({"WATTFLOW_STATE_DIR": str(tmp / "state"), "WATTFLOW_KAFKA_BOOTSTRAP_SERVERS": nowhere,
                 "WATTFLOW_QUESTDB_HTTP_PORT": str(free_port()), "WATTFLOW_VENUE_PORT": str(free_port()),
                 "COLUMNS": "80"})
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "cli", *args], env=base, capture_output=True, text=True,
                          timeout=10, cwd=tmp, check=False)


def assert_one_error(result: subprocess.CompletedProcess[str], code: str) -> None:
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert f"error [{code}]" in result.stderr, out
    assert "what to do:" in result.stderr, out
    assert "Traceback" not in out and "%3|" not in out and "panicked" not in out, out


@pytest.mark.parametrize("command", [
    ["tail", "md.ticks"], ["kill", "--halt"], ["run", "ingest", "--no-tail"], ["run", "trading", "--no-tail"],
    ["record", "md.ticks", "out.jsonl"], ["stack", "init"], ["adapter"],
])
def test_a_command_needing_a_server_that_is_down_fails_in_one_line(command: list[str], tmp_path: Path) -> None:
    result = wattflow(*command, tmp=tmp_path)
    assert_one_error(result, "SERVER_UNREACHABLE")
    assert "wattflow stack up" in result.stderr or "wattflow venue" in result.stderr


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("WATTFLOW_QUESTDB_HTTP_PORT", "abc", "WATTFLOW_QUESTDB_HTTP_PORT='abc'"),
    ("WATTFLOW_QUESTDB_HTTP_PORT", "99999", "<= 65535"),
    ("WATTFLOW_KAFKA_BOOTSTRAP_SERVERS", "", "host:port"),
    ("WATTFLOW_LOG_LEVEL", "LOUD", "one of DEBUG, INFO, WARNING, ERROR"),
])
def test_a_bad_setting_names_its_variable_and_the_values_allowed(variable: str, value: str, expected: str,
                                                                 tmp_path: Path) -> None:
    result = wattflow("config", env={variable: value}, tmp=tmp_path)
    assert_one_error(result, "SETTINGS_ERROR")
    assert variable in result.stderr and expected in result.stderr.replace("\n", " ")


def test_a_misspelled_variable_is_flagged_with_the_closest_name(tmp_path: Path) -> None:
    result = wattflow("config", env={"WATTFLOW_QUESTDB_HTTP_PROT": "9000"}, tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    warning = " ".join(result.stderr.split())
    assert "WATTFLOW_QUESTDB_HTTP_PROT is not a wattflow setting; did you mean WATTFLOW_QUESTDB_HTTP_PORT?" in warning


def test_debug_shows_the_traceback_the_plain_error_hides(tmp_path: Path) -> None:
    plain = wattflow("tail", "md.ticks", tmp=tmp_path)
    debug = wattflow("--debug", "tail", "md.ticks", tmp=tmp_path)
    assert "Traceback" not in plain.stderr and "Traceback" in debug.stderr
    assert debug.returncode == plain.returncode == 1


@pytest.mark.parametrize(("args", "code", "expected"), [
    (["replay", "missing.parquet"], "FILE", "no such file: missing.parquet"),
    (["replay", "missing.jsonl"], "FILE", "no such file: missing.jsonl"),
    (["feed", "info", "missing.jsonl"], "FILE", "no such file: missing.jsonl"),
    (["replay", "day.csv"], "FEED_FORMAT", "unknown feed format"),
])
def test_an_input_mistake_is_one_line_not_a_traceback(args: list[str], code: str, expected: str,
                                                       tmp_path: Path) -> None:
    (tmp_path / "day.csv").write_text("ts,price\n1,2\n")
    result = wattflow(*args, tmp=tmp_path)
    # replay checks the broker after the file: this one is down, so only the file's error may show
    assert_one_error(result, code)
    assert expected in " ".join(result.stderr.split())


def test_a_speed_of_zero_is_a_usage_error(tmp_path: Path) -> None:
    result = wattflow("replay", "day.jsonl", "--speed", "0", tmp=tmp_path)
    assert result.returncode == 2 and "--speed: must be greater than 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_command_has_examples_and_fits_80_columns(tmp_path: Path) -> None:
    from cli.main import COMMANDS, build_parser

    parser = build_parser()
    names = next(action.choices for action in parser._actions if isinstance(action.choices, dict))
    assert len(names) >= len(COMMANDS)
    wide: dict[str, list[str]] = {}
    missing = []
    for name in ["", *names]:
        result = wattflow(*([name] if name else []), "--help", tmp=tmp_path)
        assert result.returncode == 0, result.stderr
        if "examples:" not in result.stdout and "first steps:" not in result.stdout:
            missing.append(name or "wattflow")
        wide[name or "wattflow"] = [line for line in result.stdout.splitlines() if len(line) > 80]
    assert missing == []
    assert {name: lines for name, lines in wide.items() if lines} == {}


def test_the_shipped_example_settings_file_is_current_and_loads(tmp_path: Path) -> None:
    """wattflow.env.example is what `wattflow config --example` prints now (red when a setting is added and the
    file not regenerated), and uncommented it loads as the defaults."""
    from cli.config import example_settings_file
    from tests.helpers import ROOT
    from wattflow.settings import Settings

    shipped = (ROOT / "wattflow.env.example").read_text()
    assert shipped == example_settings_file(), "regenerate: wattflow config --example > wattflow.env.example"
    active = "\n".join(line[2:] for line in shipped.splitlines()
                       if line.startswith("# WATTFLOW_") and not line.endswith("="))
    (tmp_path / "wattflow.env").write_text(active.replace("~", str(Path.home())))
    assert Settings.load(tmp_path / "wattflow.env").masked() == Settings.load(tmp_path / "none.env").masked()
