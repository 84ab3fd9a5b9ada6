"""The two servers of the native stack: Apache Kafka (KRaft, one node) and QuestDB, bound to loopback."""

from __future__ import annotations

import base64
import logging
import os
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from wattflow.errors import StackError
from wattflow.settings import Settings
from wattflow.stack.java import find_java, required_java_major
from wattflow.stack.process import ManagedProcess

_QUIET = logging.getLogger("wattflow.stack.probe")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False

_LOG4J2 = """status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = {logs}/server.log
appender.file.filePattern = {logs}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def split_host_port(address: str) -> tuple[str, int]:
    host, _, port = address.split(",", maxsplit=1)[0].rpartition(":")
    if not host or not port.isdigit():
        raise StackError(f"cannot read host:port from {address!r}")
    return host, int(port)


@dataclass
class KafkaServer:
    settings: Settings
    libs: Path

    @property
    def home(self) -> Path:
        return self.settings.state_dir / "kafka"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("kafka", self.home, marker=f"{self.home.resolve()}/server.properties")

    @property
    def address(self) -> tuple[str, int]:
        return split_host_port(self.settings.kafka.bootstrap_servers)

    def ports(self) -> dict[str, tuple[str, int]]:
        host, port = self.address
        return {"Kafka": (host, port), "Kafka controller": (host, self.settings.stack.kafka_controller_port)}

    def write_config(self) -> Path:
        host, port = self.address
        ctrl = self.settings.stack.kafka_controller_port
        data = self.home.resolve() / "data"
        logs = self.home.resolve() / "logs"
        data.mkdir(parents=True, exist_ok=True)
        logs.mkdir(parents=True, exist_ok=True)
        single = "1"
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{host}:{ctrl}",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{ctrl}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{ctrl}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": str(self.settings.topics.partitions),
            "offsets.topic.replication.factor": single,
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": single,
            "transaction.state.log.min.isr": single,
            "share.coordinator.state.topic.replication.factor": single,
            "share.coordinator.state.topic.min.isr": single,
            "default.replication.factor": single,
            "min.insync.replicas": single,
            "group.initial.rebalance.delay.ms": "0",
            # After a crash the controller waits out the dead broker's session before it may re-register.
            "broker.session.timeout.ms": "4000",
            "broker.heartbeat.interval.ms": "1000",
            "auto.create.topics.enable": "false",
            "log.retention.hours": "168",
            "log.retention.check.interval.ms": str(self.settings.stack.kafka_retention_check_interval_ms),
        }
        config = self.home.resolve() / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))
        (self.home / "log4j2.properties").write_text(_LOG4J2.format(logs=logs))
        return config

    def command(self, config: Path, java: Path) -> list[str]:
        heap = self.settings.stack.kafka_heap_mb
        return [
            str(java), f"-Xms{heap}m", f"-Xmx{heap}m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={self.home.resolve() / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.home.resolve() / 'logs'}",
            "-cp", f"{self.libs}/*", "kafka.Kafka", str(config),
        ]

    def format_storage(self, config: Path, java: Path) -> None:
        """Format the log directory once (KRaft needs a cluster id before the first start)."""
        if (self.home / "data" / "meta.properties").exists():
            return
        import subprocess

        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        # `--cluster-id=ID`, not `-t ID`: one id in 64 starts with "-" and would be read as an option.
        result = subprocess.run(
            [str(java), "-cp", f"{self.libs}/*", "kafka.tools.StorageTool", "format", "--standalone",
             f"--cluster-id={cluster_id}", "-c", str(config)],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise StackError(f"formatting Kafka's log directory failed:\n{result.stdout}{result.stderr}")

    def ready(self) -> bool:
        # A plain connect first: an admin client against a closed port logs a refusal every 50 ms.
        try:
            socket.create_connection(self.address, timeout=1.0).close()
        except OSError:
            return False
        from confluent_kafka.admin import AdminClient

        try:
            config = {**self.settings.kafka.client_config(), "socket.timeout.ms": 1000, "logger": _QUIET}
            AdminClient(config).list_topics(timeout=2.0)
        except Exception:
            return False
        return True

    def start(self) -> float:
        java = find_java(17, self.settings.stack.java_home)
        config = self.write_config()
        self.format_storage(config, java.java)
        self.process.start(self.command(config, java.java), cwd=self.home)
        return self.process.wait_ready(self.ready, self.settings.stack.start_timeout_s, "admin metadata")


@dataclass
class QuestDBServer:
    settings: Settings
    jar: Path

    @property
    def home(self) -> Path:
        return self.settings.state_dir / "questdb"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("questdb", self.home, marker=f"-d {self.home.resolve()}")

    def ports(self) -> dict[str, tuple[str, int]]:
        q = self.settings.questdb
        return {
            "QuestDB HTTP": (q.host, q.http_port),
            "QuestDB ILP/TCP": (q.host, q.ilp_tcp_port),
            "QuestDB PostgreSQL wire": (q.host, q.pg_port),
            "QuestDB health": (q.host, q.health_port),
        }

    def write_config(self) -> None:
        q = self.settings.questdb
        conf = self.home / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        (self.home / "tmp").mkdir(exist_ok=True)
        lines = {
            "http.net.bind.to": f"{q.host}:{q.http_port}",
            "http.min.net.bind.to": f"{q.host}:{q.health_port}",
            "pg.net.bind.to": f"{q.host}:{q.pg_port}",
            "line.tcp.net.bind.to": f"{q.host}:{q.ilp_tcp_port}",
            "telemetry.enabled": "false",
            "http.security.readonly": "false",
            "shared.worker.count": "2",
            "cairo.sql.copy.root": str((self.home / "import").resolve()),
        }
        (conf / "server.conf").write_text("".join(f"{k}={v}\n" for k, v in lines.items()))

    def command(self) -> list[str]:
        needed = required_java_major(self.jar, "io/questdb/ServerMain.class")
        java = find_java(needed, self.settings.stack.java_home)
        heap = self.settings.stack.questdb_heap_mb
        flags = ["--add-exports", "java.base/jdk.internal.math=io.questdb"]
        if needed >= 25:
            flags = [
                "--add-exports=java.base/jdk.internal.vm=io.questdb", "--sun-misc-unsafe-memory-access=allow",
                "--enable-native-access=io.questdb", "--add-opens=java.base/java.lang=io.questdb",
                "--add-opens=java.base/java.lang.reflect=io.questdb", "--add-opens=java.base/java.nio=io.questdb",
                "--add-opens=java.base/java.time.zone=io.questdb",
            ]
        home = self.home.resolve()
        return [
            str(java.java), f"-Xmx{heap}m", "-XX:+UseParallelGC", f"-Djava.io.tmpdir={home / 'tmp'}", *flags,
            "-p", str(self.jar), "-m", "io.questdb/io.questdb.ServerMain", "-d", str(home),
        ]

    def ready(self) -> bool:
        q = self.settings.questdb
        request = urllib.request.Request(f"{q.http_url}/exec?query=SELECT%201", headers=q.auth_headers())
        try:
            with urllib.request.urlopen(request, timeout=1.0) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> float:
        self.write_config()
        self.process.start(self.command(), cwd=self.home)
        return self.process.wait_ready(self.ready, self.settings.stack.start_timeout_s, "SELECT 1")


# --- the paper venue -----------------------------------------------------------------------------------


def _venue_keys_file(settings: Settings) -> Path:
    return settings.state_dir / "venue" / "keys.json"


def stored_venue_keys(settings: Settings) -> tuple[str, str] | None:
    """The (API, admin) keys `wattflow stack up` made for its venue, if it made any."""
    import json

    try:
        stored = json.loads(_venue_keys_file(settings).read_text())
        return str(stored["api_key"]), str(stored["admin_key"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def venue_keys(settings: Settings) -> tuple[str, str]:
    """The venue's (API, admin) keys: from the settings when set, else made once and kept (mode 600) in
    ``<state dir>/venue/keys.json``, where `wattflow adapter` finds them too."""
    import json
    import secrets

    stored = stored_venue_keys(settings)
    api = settings.venue.api_key.get_secret_value() if settings.venue.api_key else None
    admin = settings.venue.admin_key.get_secret_value() if settings.venue.admin_key else None
    if api is not None and admin is not None:
        return api, admin
    if stored is None:
        stored = (secrets.token_urlsafe(16), secrets.token_urlsafe(16))
        path = _venue_keys_file(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(json.dumps({"api_key": stored[0], "admin_key": stored[1]}) + "\n")
    return api or stored[0], admin or stored[1]


@dataclass
class VenueServerProcess:
    """The paper venue (`python -m paper.server`) over ``WATTFLOW_VENUE_FEED``; keys through the
    environment, never on the command line."""

    settings: Settings

    @property
    def home(self) -> Path:
        return self.settings.state_dir / "venue"

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess("venue", self.home, marker=f"paper.server --port {self.settings.venue.port}")

    def ports(self) -> dict[str, tuple[str, int]]:
        return {"paper venue": (self.settings.venue.host, self.settings.venue.port)}

    def command(self) -> list[str]:
        import sys

        venue = self.settings.venue
        if venue.feed is None:
            raise StackError("no feed for the paper venue", hint="set WATTFLOW_VENUE_FEED to a feed file")
        return [sys.executable, "-m", "paper.server", "--port", str(venue.port), "--host", venue.host,
                "--feed", str(Path(venue.feed).resolve()), "--speed", f"{venue.speed:g}",
                "--rate-limit", str(venue.rate_limit_per_s), "--latency-ms", f"{venue.latency_ms:g}"]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.settings.venue.url}/health", timeout=1.0) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> float:
        feed = self.settings.venue.feed
        if feed is None or not Path(feed).exists():
            raise StackError(f"the venue's feed {feed} does not exist",
                             hint="point WATTFLOW_VENUE_FEED at a feed file (`wattflow feed simulate -o day.parquet`)")
        api, admin = venue_keys(self.settings)
        source_root = Path(__file__).resolve().parents[2]
        pythonpath = os.pathsep.join(p for p in (str(source_root), os.environ.get("PYTHONPATH", "")) if p)
        self.process.start(self.command(), env={"WATTFLOW_VENUE_API_KEY": api, "WATTFLOW_VENUE_ADMIN_KEY": admin,
                                                "PYTHONPATH": pythonpath}, cwd=self.home)
        return self.process.wait_ready(self.ready, self.settings.stack.start_timeout_s, "GET /health")
