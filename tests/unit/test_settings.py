from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from wattflow.errors import SettingsError
from wattflow.settings import KafkaSettings, QuestDBSettings, Settings


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTFLOW_KAFKA_BOOTSTRAP_SERVERS", "10.1.2.3:19092")
    monkeypatch.setenv("WATTFLOW_QUESTDB_HTTP_PORT", "19000")
    monkeypatch.setenv("WATTFLOW_TOPICS_PARTITIONS", "8")
    settings = Settings.load()
    assert settings.kafka.bootstrap_servers == "10.1.2.3:19092"
    assert settings.questdb.http_url == "http://127.0.0.1:19000"
    assert settings.topics.all_topics()["md.ticks"] == 8


def test_settings_file_is_read_and_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "wattflow.env"
    path.write_text("WATTFLOW_KAFKA_BOOTSTRAP_SERVERS=file-host:9092\nWATTFLOW_QUESTDB_PG_PORT=18812\n")
    monkeypatch.setenv("WATTFLOW_QUESTDB_PG_PORT", "28812")
    settings = Settings.load(path)
    assert settings.kafka.bootstrap_servers == "file-host:9092"
    assert settings.questdb.pg_port == 28812


def test_bad_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTFLOW_KAFKA_SECURITY_PROTOCOL", "CARRIER_PIGEON")
    with pytest.raises(SettingsError, match="WATTFLOW_KAFKA_SECURITY_PROTOCOL='CARRIER_PIGEON'") as raised:
        Settings.load()
    assert "one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL" in str(raised.value)


def test_secrets_reach_the_clients_but_never_the_printout(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("WATTFLOW_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("WATTFLOW_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("WATTFLOW_KAFKA_SASL_USERNAME", "trader")
    monkeypatch.setenv("WATTFLOW_KAFKA_SASL_PASSWORD", "kafka-s3cret")
    monkeypatch.setenv("WATTFLOW_QUESTDB_TOKEN", "qdb-t0ken")
    monkeypatch.setenv("WATTFLOW_VENUE_API_KEY", "venue-k3y")
    settings = Settings.load()
    client = settings.kafka.client_config()
    assert client["sasl.password"] == "kafka-s3cret"
    assert client["security.protocol"] == "sasl_ssl"
    assert "token=qdb-t0ken" in settings.questdb.ilp_conf()
    assert settings.questdb.auth_headers() == {"Authorization": "Bearer qdb-t0ken"}
    assert "kafka-s3cret" not in repr(settings) and "qdb-t0ken" not in str(settings)
    assert main(["config"]) == 0
    assert main(["config", "--json"]) == 0
    printed = capsys.readouterr().out
    assert "WATTFLOW_KAFKA_SASL_USERNAME" in printed and "trader" in printed
    assert "kafka-s3cret" not in printed and "qdb-t0ken" not in printed and "venue-k3y" not in printed
    assert settings.venue.api_key is not None and settings.venue.api_key.get_secret_value() == "venue-k3y"
    assert "**********" in printed


def test_defaults_listen_on_loopback_only() -> None:
    assert KafkaSettings().bootstrap_servers.startswith("127.0.0.1:")
    assert QuestDBSettings().host == "127.0.0.1"


def test_settings_survive_a_trip_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a child process gets from ``to_env`` loads back as the very same settings, secrets included."""
    original = Settings.load(venue={"api_key": "trade-key", "port": 8711}, execution={"max_clip_mw": 2.5},
                             kafka={"sasl_password": "s3cret", "bootstrap_servers": "127.0.0.1:19092"})
    env = original.to_env()
    assert env["WATTFLOW_VENUE_API_KEY"] == "trade-key" and env["WATTFLOW_EXECUTION_MAX_CLIP_MW"] == "2.5"
    assert "WATTFLOW_VENUE_FEED" not in env  # unset stays unset
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert Settings.load() == original
