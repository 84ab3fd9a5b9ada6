"""The pinned versions and ports agree everywhere: settings, the Maven project, docker-compose.yml."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from wattflow.settings import KAFKA_VERSION, QUESTDB_VERSION, KafkaSettings, QuestDBSettings
from wattflow.stack.artifacts import POM

ROOT = Path(__file__).resolve().parents[2]
NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def _published(service: dict[str, object]) -> dict[int, str]:
    """container port -> host address:port"""
    result = {}
    for mapping in service["ports"]:  # type: ignore[attr-defined]
        host, host_port, container_port = str(mapping).rsplit(":", 2)
        result[int(container_port)] = f"{host}:{host_port}"
    return result


def test_maven_project_pins_the_same_versions_as_the_settings() -> None:
    properties = ET.parse(POM).getroot().find("m:properties", NS)
    assert properties is not None
    assert properties.findtext("m:kafka.version", namespaces=NS) == KAFKA_VERSION
    assert properties.findtext("m:questdb.version", namespaces=NS) == QUESTDB_VERSION


def test_compose_images_ports_and_environment_agree_with_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert services["questdb"]["image"] == f"questdb/questdb:{QUESTDB_VERSION}"

    kafka, questdb = KafkaSettings(), QuestDBSettings()
    assert _published(services["kafka"]) == {9092: kafka.bootstrap_servers}
    assert _published(services["questdb"]) == {
        questdb.http_port: f"{questdb.host}:{questdb.http_port}",
        questdb.ilp_tcp_port: f"{questdb.host}:{questdb.ilp_tcp_port}",
        questdb.pg_port: f"{questdb.host}:{questdb.pg_port}",
        questdb.health_port: f"{questdb.host}:{questdb.health_port}",
    }
    env = services["kafka"]["environment"]
    assert f"HOST://{kafka.bootstrap_servers}" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    for name in ("kafka", "questdb"):
        assert services[name]["healthcheck"]["test"], f"{name} needs a healthcheck"
        assert services[name]["volumes"], f"{name} needs a data volume"

    app = services["wattflow"]
    assert app["build"] == "."
    assert (ROOT / "Dockerfile").exists()
    internal = app["environment"]["WATTFLOW_KAFKA_BOOTSTRAP_SERVERS"]
    assert f"DOCKER://{internal}" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert app["environment"]["WATTFLOW_QUESTDB_HTTP_PORT"] == str(questdb.http_port)
    assert "--external-stack" in app["command"]


def test_compose_runs_the_live_topology_a_service_per_process_and_the_image_holds_every_package() -> None:
    import tomllib

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert services["trading"]["command"][:3] == ["wattflow", "run", "trading"]
    assert services["store"]["command"][:3] == ["wattflow", "run", "store"]
    assert services["adapter"]["command"] == ["wattflow", "adapter"]
    assert "wattflow venue --feed" in " ".join(services["venue"]["command"])
    for name in ("venue", "adapter", "trading", "store"):
        env = services[name]["environment"]
        assert env["WATTFLOW_KAFKA_BOOTSTRAP_SERVERS"] == services["wattflow"]["environment"][
            "WATTFLOW_KAFKA_BOOTSTRAP_SERVERS"]
        assert env["WATTFLOW_VENUE_API_KEY"] == services["venue"]["environment"]["WATTFLOW_VENUE_API_KEY"]
    # The image must hold every package the project installs (a new room forgotten there breaks the image).
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")}
    assert {name.rstrip("*") for name in packages} <= copied
