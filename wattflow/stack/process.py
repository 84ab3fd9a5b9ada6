"""Background server processes with pid files: start once, recognise stale pids, stop gracefully."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from wattflow.errors import PortInUseError, StackError


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (for tests and throw-away stacks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def require_free_ports(ports: dict[str, tuple[str, int]], env_hint: str) -> None:
    """Raise a PortInUseError naming the first taken port and what to do about it."""
    for what, (host, port) in ports.items():
        if not port_is_free(host, port):
            raise PortInUseError(
                f"port {port} on {host} ({what}) is already taken by another process",
                hint=f"stop whatever listens there (`ss -ltnp 'sport = :{port}'` shows it), or move wattflow "
                f"to other ports: {env_hint}",
            )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); it is dead all the same.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class ManagedProcess:
    """One server process owned by a state directory: ``<home>/pid``, ``<home>/logs/stdout.log``.

    ``marker`` is a string that must appear in the process's command line; a pid file whose process is
    gone, or whose pid now belongs to another program, is stale.
    """

    name: str
    home: Path
    marker: str

    @property
    def pid_file(self) -> Path:
        return self.home / "pid"

    @property
    def stdout_log(self) -> Path:
        return self.home / "logs" / "stdout.log"

    def recorded_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def pid(self) -> int | None:
        """The pid of the running server, or None (a stale pid file counts as none)."""
        pid = self.recorded_pid()
        if pid is None or not _pid_alive(pid) or self.marker not in _cmdline(pid):
            return None
        return pid

    def is_stale(self) -> bool:
        """A pid file exists but its server is gone: it died or was killed."""
        return self.recorded_pid() is not None and self.pid() is None

    def start(self, command: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
        self.stdout_log.parent.mkdir(parents=True, exist_ok=True)
        with self.stdout_log.open("ab") as out:
            process = subprocess.Popen(
                list(command), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=cwd, env={**os.environ, **(env or {})}, start_new_session=True,
            )
        self.pid_file.write_text(f"{process.pid}\n")
        return process.pid

    def wait_ready(self, probe: Callable[[], bool], timeout_s: float, what: str) -> float:
        """Poll ``probe`` until it answers True; fail early if the process dies. Returns seconds waited."""
        started = time.monotonic()
        pid = self.recorded_pid()
        while time.monotonic() - started < timeout_s:
            # Liveness of the very pid we started (not the command-line check of `pid()`, which can race with
            # a process that is still exec-ing under load).
            if pid is None or not _pid_alive(pid):
                raise StackError(
                    f"{self.name} exited while starting; last lines of {self.stdout_log}:\n{self.tail(15)}",
                    hint=f"read the whole log with `wattflow stack logs {self.name}`",
                )
            if probe():
                return time.monotonic() - started
            time.sleep(0.25)
        raise StackError(
            f"{self.name} did not become ready ({what}) within {timeout_s:.0f} s; last log lines:\n{self.tail(15)}",
            hint="raise WATTFLOW_STACK_START_TIMEOUT_S on a slow machine, or read `wattflow stack logs`",
        )

    def stop(self, grace_s: float) -> str:
        """SIGTERM, then SIGKILL after ``grace_s``. Returns what happened."""
        pid = self.pid()
        outcome = "not running"
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            outcome = "stopped"
            if not _wait_gone(pid, grace_s):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                outcome = "killed after grace period"
                _wait_gone(pid, 30.0)
        elif self.is_stale():
            outcome = "was not running (stale pid file removed)"
        self.pid_file.unlink(missing_ok=True)
        return outcome

    def kill(self) -> None:
        """SIGKILL without grace: for fault tests."""
        pid = self.pid()
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)
            _wait_gone(pid, 30.0)

    def tail(self, lines: int = 40) -> str:
        if not self.stdout_log.exists():
            return "(no log yet)"
        return "\n".join(self.stdout_log.read_text(errors="replace").splitlines()[-lines:])


def _wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait until the process has fully exited and released its sockets; True if it did in time.

    A killed JVM turns zombie while its other threads are still exiting and its listening sockets are
    still open: "not alive" is not yet "gone". Reap it if it is our child; otherwise init will.
    """
    deadline = time.monotonic() + timeout_s
    while Path(f"/proc/{pid}").exists():
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
