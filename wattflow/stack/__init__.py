"""The native stack: real Apache Kafka and QuestDB from Maven Central jars, without Docker.

``Stack(settings).up()`` fetches the jars once (cached), starts both servers bound to loopback under the
state directory, and waits until each answers; with ``WATTFLOW_VENUE_FEED`` set it also starts the paper
venue over that feed (``python -m paper.server``, health-checked on ``GET /health``).
The same code serves ``wattflow stack``, the tests' session fixtures and the benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wattflow.errors import StackError
from wattflow.settings import Settings
from wattflow.stack.artifacts import StackJars, ensure_jars, jars_dir
from wattflow.stack.process import ManagedProcess, require_free_ports
from wattflow.stack.servers import KafkaServer, QuestDBServer, VenueServerProcess

__all__ = ["ServerStatus", "Stack", "StackJars"]


@dataclass(frozen=True, slots=True)
class ServerStatus:
    name: str
    state: str  # running | stopped | dead | unresponsive
    pid: int | None
    addresses: dict[str, str]
    detail: str = ""

    @property
    def healthy(self) -> bool:
        return self.state == "running"


@dataclass
class Stack:
    settings: Settings
    jars: StackJars | None = field(default=None, repr=False)

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir

    def _jars(self) -> StackJars:
        if self.jars is None:
            self.jars = ensure_jars(self.settings.stack, log=self.state_dir / "maven.log")
        return self.jars

    def kafka(self) -> KafkaServer:
        libs = jars_dir(self.settings.stack) / "kafka"
        return KafkaServer(self.settings, self.jars.kafka_libs if self.jars else libs)

    def questdb(self) -> QuestDBServer:
        jar = jars_dir(self.settings.stack) / "questdb" / "questdb.jar"
        return QuestDBServer(self.settings, self.jars.questdb_jar if self.jars else jar)

    def venue(self) -> VenueServerProcess:
        return VenueServerProcess(self.settings)

    def has_venue(self) -> bool:
        """A venue is part of this stack when a feed is set for it, or one was started and not stopped."""
        return self.settings.venue.feed is not None or self.venue().process.recorded_pid() is not None

    def processes(self) -> dict[str, ManagedProcess]:
        processes = {"kafka": self.kafka().process, "questdb": self.questdb().process}
        if self.has_venue():
            processes["venue"] = self.venue().process
        return processes

    def addresses(self) -> dict[str, dict[str, str]]:
        q = self.settings.questdb
        addresses = {
            "kafka": {"bootstrap": self.settings.kafka.bootstrap_servers},
            "questdb": {
                "console/REST": q.http_url,
                "ILP/HTTP": f"{q.http_url}/write",
                "PostgreSQL wire": f"{q.pg_address} (user admin, password quest)",
            },
        }
        if self.has_venue():
            addresses["venue"] = {"HTTP API": self.settings.venue.url,
                                  "market stream": f"{self.settings.venue.url}/stream/market"}
        return addresses

    def up(self) -> dict[str, str]:
        """Start whatever is not running yet; returns what happened to each server."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._jars()
        outcome: dict[str, str] = {}
        servers: list[tuple[str, KafkaServer | QuestDBServer | VenueServerProcess]] = [
            ("kafka", self.kafka()), ("questdb", self.questdb())]
        if self.settings.venue.feed is not None:
            servers.append(("venue", self.venue()))
        for name, server in servers:
            process = server.process
            if process.pid() is not None:
                outcome[name] = f"already running (pid {process.pid()})"
                continue
            stale = " (stale pid file replaced)" if process.is_stale() else ""
            require_free_ports(server.ports(), _PORT_HINT[name])
            seconds = server.start()
            outcome[name] = f"started (pid {process.pid()}) in {seconds:.1f} s{stale}"
        return outcome

    def down(self) -> dict[str, str]:
        grace = self.settings.stack.stop_grace_s
        # The venue first, then QuestDB: it may still be flushing what a flow sent while Kafka stops.
        return {name: process.stop(grace) for name, process in reversed(self.processes().items())}

    def status(self) -> list[ServerStatus]:
        statuses = []
        addresses = self.addresses()
        probes = {"kafka": self.kafka().ready, "questdb": self.questdb().ready, "venue": self.venue().ready}
        for name, process in self.processes().items():
            pid = process.pid()
            if pid is not None:
                state = "running" if probes[name]() else "unresponsive"
                detail = "" if state == "running" else "process alive but not answering"
            elif process.is_stale():
                state, detail = "dead", f"pid {process.recorded_pid()} is gone; see `wattflow stack logs {name}`"
            else:
                state, detail = "stopped", ""
            statuses.append(ServerStatus(name, state, pid, addresses[name], detail))
        return statuses

    def logs(self, name: str, lines: int = 40) -> str:
        processes = self.processes()
        if name not in processes:
            raise StackError(f"no server named {name!r}: choose one of {', '.join(processes)}")
        server_log = self.state_dir / name / "logs" / "server.log"
        text = processes[name].tail(lines)
        if server_log.exists():
            text += "\n" + "\n".join(server_log.read_text(errors="replace").splitlines()[-lines:])
        return text


_PORT_HINT = {
    "kafka": "WATTFLOW_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:<port> and WATTFLOW_STACK_KAFKA_CONTROLLER_PORT=<port>",
    "questdb": "WATTFLOW_QUESTDB_HTTP_PORT, WATTFLOW_QUESTDB_ILP_TCP_PORT, WATTFLOW_QUESTDB_PG_PORT, "
    "WATTFLOW_QUESTDB_HEALTH_PORT",
    "venue": "WATTFLOW_VENUE_PORT",
}
