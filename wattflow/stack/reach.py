"""Can a command reach the servers it needs? A TCP connection per server with a short timeout, before the
command starts work that would otherwise retry for tens of seconds and bury the cause in client logs."""

from __future__ import annotations

import socket
from collections.abc import Iterable

from wattflow.errors import StackError
from wattflow.settings import Settings

#: How long a command waits for a server to accept a connection before it gives up.
REACH_TIMEOUT_S = 1.5


class ServerUnreachableError(StackError):
    code = "SERVER_UNREACHABLE"


def _addresses(settings: Settings, server: str) -> tuple[list[tuple[str, int]], str]:
    """The (host, port) pairs of ``server`` and the variable that sets them."""
    if server == "kafka":
        pairs = []
        for entry in settings.kafka.bootstrap_servers.split(","):
            host, _, port = entry.strip().rpartition(":")
            pairs.append((host, int(port)))
        return pairs, "WATTFLOW_KAFKA_BOOTSTRAP_SERVERS"
    if server == "questdb":
        return [(settings.questdb.host, settings.questdb.http_port)], "WATTFLOW_QUESTDB_HOST / _HTTP_PORT"
    if server == "venue":
        return [(settings.venue.host, settings.venue.port)], "WATTFLOW_VENUE_HOST / _PORT"
    raise ValueError(f"unknown server {server!r}: kafka, questdb or venue")


def _accepts(host: str, port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def require_servers(settings: Settings, servers: Iterable[str], timeout_s: float = REACH_TIMEOUT_S) -> None:
    """Raise :class:`ServerUnreachableError` naming the first of ``servers`` (kafka, questdb, venue) that accepts
    no connection within ``timeout_s`` on any of its addresses."""
    for server in servers:
        pairs, variable = _addresses(settings, server)
        if not any(_accepts(host, port, timeout_s) for host, port in pairs):
            where = ",".join(f"{host}:{port}" for host, port in pairs)
            start = ("`wattflow venue` (or `wattflow stack up`)" if server == "venue"
                     else "`wattflow stack up`")
            raise ServerUnreachableError(
                f"{server} is not reachable at {where} (no answer in {timeout_s:g} s)",
                hint=f"start it with {start}, or point {variable} at a running one")
