"""The main job (`make demo`), on a stack of its own: it must run to the end and say that all is well."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import isolated_settings
from tests.helpers import ROOT, python
from wattflow.stack import Stack

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_demo_runs_end_to_end_and_is_deterministic(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path / "state")
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "COLUMNS": "160", "PYTHONPATH": str(ROOT),
        "WATTFLOW_STATE_DIR": str(settings.state_dir),
        "WATTFLOW_KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "WATTFLOW_STACK_KAFKA_CONTROLLER_PORT": str(settings.stack.kafka_controller_port),
        "WATTFLOW_QUESTDB_HTTP_PORT": str(settings.questdb.http_port),
        "WATTFLOW_QUESTDB_ILP_TCP_PORT": str(settings.questdb.ilp_tcp_port),
        "WATTFLOW_QUESTDB_PG_PORT": str(settings.questdb.pg_port),
        "WATTFLOW_QUESTDB_HEALTH_PORT": str(settings.questdb.health_port),
    }
    try:
        command = [python(), "-m", "cli", "demo", "--scale", "0.1", "--minutes", "0.5"]
        first = subprocess.run(command, env=env, cwd=tmp_path,
                               capture_output=True, text=True, timeout=600, check=False)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        assert "every valid event stored once" in first.stdout
        assert "dead letters by reason" in first.stdout and "PRICE_OUT_OF_RANGE 1" in first.stdout
        assert (settings.state_dir / "reports" / "signals_DE-LU_2018-10-28.png").stat().st_size > 10_000
        digest = next(line for line in first.stdout.splitlines() if "signals hash" in line)
        # The day was traded: orders went to the venue, some filled, and the report has its plots.
        trading = next(line for line in first.stdout.splitlines() if line.startswith("trading: "))
        orders, fills = int(trading.split()[1]), int(trading.split(" fills")[0].rsplit(" ", 1)[-1])
        assert orders > 0 and fills > 0, trading
        # The engine plans within its limits: risk denials are a safety net, under 1% of the run's decisions.
        decisions = next(line for line in first.stdout.splitlines() if "denial share" in line)
        share = float(decisions.rsplit("denial share ", 1)[1].rstrip("%"))
        assert share < 1.0, decisions
        assert (settings.state_dir / "reports" / "trading_overview.png").stat().st_size > 10_000
        # A second run replays the same day again: nothing changes in the store, nor in the signals.
        second = subprocess.run(command, env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=600, check=False)
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        again = next(line for line in second.stdout.splitlines() if "signals hash" in line)
        assert "every valid event stored once" in second.stdout
        assert digest.split("signals hash")[1].split()[0] == again.split("signals hash")[1].split()[0]
    finally:
        Stack(settings).down()
