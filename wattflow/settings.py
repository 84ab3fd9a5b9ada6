"""Typed settings, read from the environment (``WATTFLOW_...``) and an optional settings file.

One class per component, each with its own prefix (``WATTFLOW_KAFKA_``, ``WATTFLOW_QUESTDB_``,
``WATTFLOW_TOPICS_``, ``WATTFLOW_STACK_``, ``WATTFLOW_``). Precedence: explicit arguments, then the
environment, then the settings file (dotenv syntax: ``WATTFLOW_KAFKA_BOOTSTRAP_SERVERS=...``; path in
``WATTFLOW_SETTINGS_FILE``, default ``./wattflow.env`` when it exists), then the defaults below.
Secrets are ``SecretStr``: they print as ``**********`` and only the client configs see them.
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from wattflow.environment import check_model, known_variables
from wattflow.logs import KAFKA_CLIENT_LOGGER

#: Pinned server versions; wattflow/stack/maven/pom.xml pins the same (a test checks both agree).
KAFKA_VERSION = "4.3.1"
QUESTDB_VERSION = "9.3.4"
LOOPBACK = "127.0.0.1"
#: A TCP port.
Port = Annotated[int, Field(ge=1, le=65_535)]


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", env_file_encoding="utf-8")


class KafkaSettings(BaseSettings):
    """How to reach the Kafka cluster. Security fields map onto librdkafka's names."""

    model_config = _config("WATTFLOW_KAFKA_")

    bootstrap_servers: str = Field(default=f"{LOOPBACK}:9092", description="host:port[,host:port...]")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr | None = None
    client_id: str = "wattflow"
    #: Latency tuning (None: wattflow's defaults, connectors/kafka/producer.py and source.py). linger.ms of
    #: the flows' producers (default 5), fetch.wait.max.ms of their consumers (default 20), and how long a
    #: source partition that found nothing waits before it polls again (default 2 ms).
    producer_linger_ms: float | None = Field(default=None, ge=0)
    consumer_fetch_wait_max_ms: int | None = Field(default=None, ge=0)
    source_idle_ms: float | None = Field(default=None, ge=0)

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_ports(cls, value: str) -> str:
        entries = [entry.strip() for entry in value.split(",")]
        for entry in entries:
            host, _, port = entry.rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65_535:
                raise ValueError(f"{entry!r} is not host:port (a comma-separated list, e.g. 127.0.0.1:9092)")
        return ",".join(entries)

    def client_config(self) -> dict[str, Any]:
        """The librdkafka configuration shared by producers, consumers and the admin client."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol.lower(),
            "client.id": self.client_id,
            # librdkafka's own log (connection failures, notices) to a file, never the terminal: wattflow/logs.py
            "logger": KAFKA_CLIENT_LOGGER,
        }
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password.get_secret_value() if self.sasl_password else None,
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": self.ssl_key_password.get_secret_value() if self.ssl_key_password else None,
        }
        config.update({k: str(v) for k, v in optional.items() if v is not None})
        return config


class QuestDBSettings(BaseSettings):
    """How to reach QuestDB: ILP over HTTP for writes, the REST ``/exec`` endpoint for SQL."""

    model_config = _config("WATTFLOW_QUESTDB_")

    host: str = LOOPBACK
    http_port: Port = 9000
    ilp_tcp_port: Port = 9009
    pg_port: Port = 8812
    health_port: Port = 9003
    tls: bool = False
    token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    auto_flush_rows: int = 75_000
    request_timeout_ms: int = 10_000
    retry_timeout_ms: int = 10_000

    @property
    def http_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.http_port}"

    @property
    def pg_address(self) -> str:
        return f"{self.host}:{self.pg_port}"

    def ilp_conf(self) -> str:
        """The questdb client's configuration string (ILP over HTTP, which reports the server's errors)."""
        parts = [
            f"{'https' if self.tls else 'http'}::addr={self.host}:{self.http_port}",
            "auto_flush=off",
            f"request_timeout={self.request_timeout_ms}",
            f"retry_timeout={self.retry_timeout_ms}",
        ]
        if self.token:
            parts.append(f"token={self.token.get_secret_value()}")
        elif self.username and self.password:
            parts.append(f"username={self.username}")
            parts.append(f"password={self.password.get_secret_value()}")
        return ";".join(parts) + ";"

    def auth_headers(self) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"Bearer {self.token.get_secret_value()}"}
        if self.username and self.password:
            import base64

            raw = f"{self.username}:{self.password.get_secret_value()}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}


class TopicSettings(BaseSettings):
    """Topic names and partition counts. Partitions are keyed by area and product."""

    model_config = _config("WATTFLOW_TOPICS_")

    raw: str = "md.raw.sim"
    ticks: str = "md.ticks"
    book: str = "md.book"
    dayahead: str = "md.dayahead"
    features: str = "features"
    signals: str = "signals"
    orders: str = "orders"
    execution_reports: str = "execution.reports"
    events: str = "events"
    positions: str = "positions"
    dlq: str = "dlq"
    control: str = "control"
    #: The order sink's write-ahead decision log (one partition: the account's decisions in their order).
    decisions: str = "decisions"
    partitions: int = Field(default=4, ge=1)
    raw_partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)

    def all_topics(self) -> dict[str, int]:
        """Every topic wattflow uses, with its partition count."""
        names = [
            self.ticks, self.book, self.dayahead, self.features, self.signals, self.orders,
            self.execution_reports, self.events, self.positions, self.dlq,
        ]
        topics = dict.fromkeys(names, self.partitions)
        topics[self.raw] = self.raw_partitions
        topics[self.control] = 1
        topics[self.decisions] = 1
        return topics


class SignalSettings(BaseSettings):
    """The signals flow: which models run (a module each in operators/models/) and how big they may go."""

    model_config = _config("WATTFLOW_SIGNALS_")

    models: str = "mean_reversion,imbalance_momentum"
    max_position_mw: float = Field(default=10.0, gt=0)
    product_durations_min: str = "15,60"

    def model_names(self) -> list[str]:
        return [name.strip() for name in self.models.split(",") if name.strip()]

    def durations(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.product_durations_min.split(",") if part.strip())


class VenueSettings(BaseSettings):
    """The paper venue (`wattflow venue`): where it listens and the keys clients must send."""

    model_config = _config("WATTFLOW_VENUE_")

    host: str = LOOPBACK
    port: Port = 8700
    api_key: SecretStr | None = None
    admin_key: SecretStr | None = None
    rate_limit_per_s: int = Field(default=50, ge=0)
    latency_ms: float = Field(default=0.0, ge=0)
    #: The feed `wattflow stack up` starts the venue on (none: the stack runs without a venue).
    feed: Path | None = None
    #: Market time per wall time of that venue (0: manual clock, moved through POST /admin/clock).
    speed: float = Field(default=1.0, ge=0)
    timeout_s: float = Field(default=2.0, gt=0)
    max_attempts: int = Field(default=4, ge=1)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset_s: float = Field(default=2.0, gt=0)
    #: The order sink's requests in flight at once (worker threads, and idle keep-alive connections kept).
    max_in_flight: int = Field(default=8, ge=1)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class ExecutionSettings(BaseSettings):
    """The execution flow: order sizing on observed liquidity, urgency, stale orders and the risk limits."""

    model_config = _config("WATTFLOW_EXECUTION_")

    depth_share: float = Field(default=0.25, gt=0, le=1)
    volume_share: float = Field(default=0.10, gt=0, le=1)
    max_clip_mw: float = Field(default=5.0, gt=0)
    urgency_window_min: float = Field(default=120.0, gt=0)
    ioc_urgency: float = Field(default=0.8, ge=0, le=1)
    #: How far an urgent (IOC) order may reach beyond the other side's best price.
    ioc_cross_eur_per_mwh: float = Field(default=0.5, ge=0)
    #: A resting order larger than this shows only this much at the venue (an iceberg); 0: no icebergs.
    iceberg_display_mw: float = Field(default=0.0, ge=0)
    #: A resting order older than this (market time) is cancelled and, if still wanted, replaced.
    order_ttl_s: float = Field(default=300.0, gt=0)
    #: A resting order priced this many EUR/MWh off the price the sizing would now choose is replaced.
    reprice_eur_per_mwh: float = Field(default=0.5, ge=0)
    #: In the last minutes before a product's gate closure its target is 0: flatten, so that as little as
    #: possible is left as imbalance exposure (0: hold positions into delivery).
    flatten_before_gate_min: float = Field(default=10.0, ge=0)
    #: A product with an order or a position whose signals stop for this long (market time, while other
    #: products' signals move the clock on) is stale: its order is cancelled, an event is recorded (0: off).
    stale_after_s: float = Field(default=3600.0, ge=0)
    #: The least market time between two orders of one product: a large intent goes out in clips over time.
    clip_interval_s: float = Field(default=10.0, ge=0)
    collar_eur_per_mwh: float = Field(default=500.0, gt=0)
    max_order_volume_mw: float = Field(default=50.0, gt=0)
    max_order_value_eur: float = Field(default=250_000.0, gt=0)
    max_product_position_mw: float = Field(default=20.0, gt=0)
    max_total_position_mw: float = Field(default=100.0, gt=0)
    max_orders_per_interval: int = Field(default=20, ge=1)
    rate_interval_s: float = Field(default=1.0, gt=0)
    #: Orders of each interval's rate budget that only position-reducing orders may use: when the budget runs
    #: low, the engine defers orders that add exposure (keeping the latest target) and still reduces.
    reducing_reserve_orders: int = Field(default=2, ge=0)
    #: A product whose market access (measured feed access x order-path availability, ``operators.access``,
    #: ``operators.order_path``) is below this gets no new exposure, only position-reducing orders, until it is back.
    min_access: float = Field(default=0.5, ge=0, le=1)
    #: A product holding a position whose predicted fill probability before gate closure
    #: (``operators.access_prediction``) is below this is flattened while it still can be (0: off).
    min_fill_probability: float = Field(default=0.1, ge=0, le=1)
    #: Order-path availability: half-life (market time) of a failed order outcome, and the failures tolerated.
    order_path_half_life_s: float = Field(default=300.0, gt=0)
    order_path_tolerated_failures: float = Field(default=3.0, gt=0)


def execution_default(name: str) -> Any:
    """The default of one :class:`ExecutionSettings` field: the one source of the engine's, sizing's and risk's
    defaults (``operators`` reads them here rather than writing numbers of its own)."""
    return ExecutionSettings.model_fields[name].default


class StackSettings(BaseSettings):
    """The native stack (`wattflow stack`): where the jars are cached, which Java, ports and heaps."""

    model_config = _config("WATTFLOW_STACK_")

    kafka_version: str = KAFKA_VERSION
    questdb_version: str = QUESTDB_VERSION
    cache_dir: Path = Path.home() / ".cache" / "wattflow"
    java_home: Path | None = None
    kafka_controller_port: Port = 9093
    kafka_heap_mb: int = Field(default=1024, ge=512)
    questdb_heap_mb: int = Field(default=1024, ge=256)
    #: How often the broker deletes segments past retention (Kafka's default, 5 minutes); the tests check every
    #: 2 s so that a topic retention would empty shows it within the test.
    kafka_retention_check_interval_ms: int = Field(default=300_000, ge=1_000)
    start_timeout_s: float = 90.0
    stop_grace_s: float = 20.0


class Settings(BaseSettings):
    """All of wattflow's settings."""

    model_config = _config("WATTFLOW_")

    state_dir: Path = Path(".wattflow")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    questdb: QuestDBSettings = Field(default_factory=QuestDBSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    signals: SignalSettings = Field(default_factory=SignalSettings)
    venue: VenueSettings = Field(default_factory=VenueSettings)
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)
    stack: StackSettings = Field(default_factory=StackSettings)

    @classmethod
    def load(cls, settings_file: Path | str | None = None, **overrides: Any) -> Settings:
        """Read settings from the environment and the settings file; ``overrides`` win over both."""
        path = Path(settings_file) if settings_file else default_settings_file()
        env_file = path if path and path.exists() else None
        components: dict[str, Any] = {
            "kafka": KafkaSettings,
            "questdb": QuestDBSettings,
            "topics": TopicSettings,
            "signals": SignalSettings,
            "venue": VenueSettings,
            "execution": ExecutionSettings,
            "stack": StackSettings,
        }
        kwargs: dict[str, Any] = {}
        for name, component in components.items():
            given = overrides.pop(name, None)
            if isinstance(given, BaseModel):
                kwargs[name] = given
            else:
                kwargs[name] = check_model(component, _env_file=env_file, **(given or {}))
        return typing.cast(Settings, check_model(cls, _env_file=env_file, **kwargs, **overrides))

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data, every secret masked."""
        return _mask(self.model_dump(mode="python"))

    def to_env(self) -> dict[str, str]:
        """These settings as ``WATTFLOW_*`` variables (secrets included, unset fields left out): what a child
        process (``python -m bytewax.run ...``) needs to run with exactly these settings."""
        env = _env_of(self, exclude=set(_COMPONENTS))
        for name in _COMPONENTS:
            env.update(_env_of(getattr(self, name)))
        return env


#: The component settings of :class:`Settings`, each with its own prefix.
_COMPONENTS = ("kafka", "questdb", "topics", "signals", "venue", "execution", "stack")


def _env_of(component: BaseSettings, exclude: set[str] | None = None) -> dict[str, str]:
    prefix = str(component.model_config.get("env_prefix", ""))
    env = {}
    for name in type(component).model_fields:
        value = getattr(component, name)
        if value is None or name in (exclude or ()):
            continue
        env[f"{prefix}{name.upper()}"] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    return env


def default_settings_file() -> Path | None:
    named = os.environ.get("WATTFLOW_SETTINGS_FILE")
    if named:
        return Path(named)
    candidate = Path("wattflow.env")
    return candidate if candidate.exists() else None


def _mask(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "**********"
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def wattflow_variables() -> set[str]:
    """Every ``WATTFLOW_*`` variable a setting reads (what :func:`~wattflow.environment.unknown_variables` checks
    the environment against)."""
    components = [field.annotation for name, field in Settings.model_fields.items() if name in _COMPONENTS]
    top = {f"WATTFLOW_{name.upper()}" for name in Settings.model_fields if name not in _COMPONENTS}
    return known_variables(c for c in components if isinstance(c, type) and issubclass(c, BaseSettings)) | top
