"""The native stack's lifecycle, on its own ports and state directory (not the session stack)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cli.main import main
from tests.conftest import isolated_settings
from wattflow.errors import PortInUseError
from wattflow.stack import Stack

pytestmark = pytest.mark.stack


def _states(stack: Stack) -> dict[str, str]:
    return {status.name: status.state for status in stack.status()}


def test_up_status_idempotent_up_kill_and_down(tmp_path: Path) -> None:
    stack = Stack(isolated_settings(tmp_path / "state"))
    try:
        assert _states(stack) == {"kafka": "stopped", "questdb": "stopped"}
        first = stack.up()
        assert all(what.startswith("started") for what in first.values()), first
        assert _states(stack) == {"kafka": "running", "questdb": "running"}
        pids = {s.name: s.pid for s in stack.status()}

        again = stack.up()
        assert all(what.startswith("already running") for what in again.values()), again
        assert {s.name: s.pid for s in stack.status()} == pids

        stack.kafka().process.kill()
        assert _states(stack) == {"kafka": "dead", "questdb": "running"}
        recovered = stack.up()
        assert "stale pid file" in recovered["kafka"] and recovered["questdb"].startswith("already running")
        assert _states(stack) == {"kafka": "running", "questdb": "running"}
    finally:
        stopped = stack.down()
    assert set(stopped) == {"kafka", "questdb"}
    assert _states(stack) == {"kafka": "stopped", "questdb": "stopped"}
    assert not stack.kafka().process.pid_file.exists()


def test_a_taken_port_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path / "state")
    host, port = settings.questdb.host, settings.questdb.http_port
    with socket.socket() as squatter:
        squatter.bind((host, port))
        squatter.listen()
        stack = Stack(settings)
        try:
            with pytest.raises(PortInUseError) as raised:
                stack.up()
        finally:
            stack.down()
    message = str(raised.value)
    assert f"port {port}" in message and "QuestDB HTTP" in message
    assert "WATTFLOW_QUESTDB_HTTP_PORT" in message


def test_cli_status_exit_code_follows_the_servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = isolated_settings(tmp_path / "state")
    env = {
        "WATTFLOW_STATE_DIR": str(settings.state_dir),
        "WATTFLOW_KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "WATTFLOW_STACK_KAFKA_CONTROLLER_PORT": str(settings.stack.kafka_controller_port),
        "WATTFLOW_QUESTDB_HTTP_PORT": str(settings.questdb.http_port),
        "WATTFLOW_QUESTDB_ILP_TCP_PORT": str(settings.questdb.ilp_tcp_port),
        "WATTFLOW_QUESTDB_PG_PORT": str(settings.questdb.pg_port),
        "WATTFLOW_QUESTDB_HEALTH_PORT": str(settings.questdb.health_port),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        assert main(["stack", "status"]) == 1
        assert main(["stack", "up"]) == 0
        assert main(["stack", "status"]) == 0
        assert main(["stack", "logs", "questdb", "-n", "5"]) == 0
    finally:
        assert main(["stack", "down"]) == 0
    assert main(["stack", "status"]) == 1
