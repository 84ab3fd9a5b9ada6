"""Shared fixtures: one real Kafka + QuestDB stack per test session, on free ports in a temporary directory.

The stack is started by the very code behind `wattflow stack up`, so the tests exercise it too; it never
touches a user's running stack (other ports, other state directory).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wattflow.settings import Settings
from wattflow.stack import Stack
from wattflow.stack.process import free_port


def isolated_settings(state_dir: Path, **overrides: Any) -> Settings:
    """Settings for a throw-away stack: free loopback ports, its own state directory."""
    return Settings.load(
        state_dir=state_dir,
        kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"},
        questdb={"http_port": free_port(), "ilp_tcp_port": free_port(), "pg_port": free_port(),
                 "health_port": free_port()},
        stack={"kafka_controller_port": free_port(), "stop_grace_s": 15.0, "kafka_retention_check_interval_ms": 2_000},
        **overrides,
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A running stack with wattflow's topics and tables."""
    from cli.stack import init_stack

    settings = isolated_settings(tmp_path_factory.mktemp("stack"))
    running = Stack(settings)
    running.up()
    init_stack(settings)
    yield running
    running.down()


@pytest.fixture(scope="session")
def settings(stack: Stack) -> Settings:
    return stack.settings


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic, table and source names, so that tests never see each other's data."""
    return uuid.uuid4().hex[:10]
