"""The main job (`make demo`), on a stack of its own: it must run to the end and say that all is well.

Each run is judged by what it wrote itself: the demo counts the ticks and book rows this run stored (received
after it began), and the signals of the two runs are compared from each run's own topic (``<topic>.d<run>``),
keyed and every field, never from the table both runs wrote into."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.checks import signals_check_goes_red
from tests.conftest import isolated_settings
from tests.helpers import ROOT, python
from tests.trading import keyed_differences, keyed_signals
from wattflow.settings import Settings
from wattflow.stack import Stack

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def run_signals(settings: Settings, stdout: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The signals one demo run published on its own topic (``<signals>.d<run>``, the run named by the orders
    topic the demo prints), keyed: read before the next run deletes it."""
    run = re.search(r"\.d(\d{10,})\b", stdout)
    assert run, "the demo names its run's topics"
    topics = settings.topics.model_copy(update={"signals": f"{settings.topics.signals}.d{run.group(1)}"})
    keyed, _ = keyed_signals(settings.model_copy(update={"topics": topics}))
    return keyed


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
        first_signals = run_signals(settings, first.stdout)
        # The day was traded: orders went to the venue, some filled, and the report has its plots.
        trading = next(line for line in first.stdout.splitlines() if line.startswith("trading: "))
        orders, fills = int(trading.split()[1]), int(trading.split(" fills")[0].rsplit(" ", 1)[-1])
        assert orders > 0 and fills > 0, trading
        # The engine plans within its limits: risk denials are a safety net, under 1% of the run's decisions.
        decisions = next(line for line in first.stdout.splitlines() if "denial share" in line)
        share = float(decisions.rsplit("denial share ", 1)[1].rstrip("%"))
        assert share < 1.0, decisions
        assert (settings.state_dir / "reports" / "trading_overview.png").stat().st_size > 10_000
        # The injected outage: said which, and market access saw it (a gap of the silenced book, trades below 0.5).
        lines = first.stdout.splitlines()
        outage = lines[next(i for i, line in enumerate(lines) if line.startswith("injected outage:")):][:4]
        print("\ndemo outage:\n" + "\n".join(outage))
        blind = outage[2].split("feed access: ")[1].split()[0]
        assert "min silent" in outage[1] and int(blind) > 0, outage
        assert (settings.state_dir / "reports" / "access_calibration.png").stat().st_size > 10_000
        # A second run replays the same day again: nothing changes in the store, nor in the signals.
        second = subprocess.run(command, env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=600, check=False)
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        again = next(line for line in second.stdout.splitlines() if "signals hash" in line)
        assert "every valid event stored once" in second.stdout  # counted over the rows the second run stored
        assert digest.split("signals hash")[1].split()[0] == again.split("signals hash")[1].split()[0]
        second_signals = run_signals(settings, second.stdout)
        missing, extra, changed = keyed_differences(first_signals, second_signals)
        red = signals_check_goes_red(first_signals, second_signals)
        print(f"\ndemo: second run's signals (its own topic) against the first's: {len(second_signals)} vs "
              f"{len(first_signals)}, missing {len(missing)}, extra {len(extra)}, changed {len(changed)}\n"
              f"demo red by hand: {red}")
        assert len(first_signals) > 1000
        assert (missing[:5], extra[:5], changed[:5]) == ([], [], [])
    finally:
        Stack(settings).down()
