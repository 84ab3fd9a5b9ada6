"""SQL against QuestDB's REST endpoint (``/exec``), with errors that carry the server's message."""

from __future__ import annotations

import contextlib
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import orjson

from wattflow.errors import QuestDBError
from wattflow.settings import QuestDBSettings


class QuestDBClient:
    """A small, dependency-free SQL client for QuestDB's HTTP API."""

    def __init__(self, settings: QuestDBSettings, timeout_s: float = 30.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s

    def execute(self, sql: str) -> dict[str, Any]:
        url = f"{self.settings.http_url}/exec?" + urllib.parse.urlencode({"query": sql})
        request = urllib.request.Request(url, headers=self.settings.auth_headers())
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            with contextlib.suppress(orjson.JSONDecodeError):
                detail = orjson.loads(detail).get("error", detail)
            raise QuestDBError(f"QuestDB refused `{_short(sql)}`: {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            raise QuestDBError(
                f"QuestDB at {self.settings.http_url} is unreachable: {error}",
                hint="start it with `wattflow stack up`, or check WATTFLOW_QUESTDB_HOST/HTTP_PORT",
            ) from None
        result: dict[str, Any] = orjson.loads(body) if body else {}
        return result

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name."""
        result = self.execute(sql)
        names = [column["name"] for column in result.get("columns", [])]
        return [dict(zip(names, row, strict=True)) for row in result.get("dataset", [])]

    def scalar(self, sql: str) -> Any:
        rows = self.execute(sql).get("dataset", [])
        return rows[0][0] if rows else None

    def table_exists(self, table: str) -> bool:
        return bool(self.query(f"SELECT table_name FROM tables() WHERE table_name = '{table}'"))

    def wal_status(self, table: str) -> dict[str, Any] | None:
        rows = self.query(f"SELECT * FROM wal_tables() WHERE name = '{table}'")
        return rows[0] if rows else None

    def wait_applied(self, tables: list[str], timeout_s: float = 60.0) -> None:
        """Wait until every WAL table has applied all it received (writerTxn == sequencerTxn).

        A suspended table accepts writes and shows none of them: that is an error, not a wait.
        """
        deadline = time.monotonic() + timeout_s
        pending = list(tables)
        while pending:
            still = []
            for table in pending:
                status = self.wal_status(table)
                if status is None:
                    continue
                if status.get("suspended"):
                    raise QuestDBError(
                        f"WAL table {table} is suspended: it accepts writes but applies none",
                        hint=f"read the QuestDB log, fix the cause, then `ALTER TABLE {table} RESUME WAL`",
                    )
                if status["writerTxn"] != status["sequencerTxn"]:
                    still.append(table)
            pending = still
            if pending and time.monotonic() > deadline:
                raise QuestDBError(f"WAL apply of {pending} did not catch up within {timeout_s:.0f} s")
            if pending:
                time.sleep(0.1)


def _short(sql: str, limit: int = 120) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
