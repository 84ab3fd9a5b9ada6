"""Writing to QuestDB: ILP over HTTP from a retained buffer, retried until it lands or a bound passes.

The questdb client's ``flush()`` clears its internal buffer even when the flush fails; a buffer built
explicitly and flushed with ``clear=False`` survives a failure, so a refused or interrupted write (QuestDB
restarting, a network blip) is retried from the very same rows. Rows that may have landed before the
failure are absorbed by the tables' DEDUP UPSERT KEYS. ``RetryingWriter.write`` returns only when QuestDB
acknowledged every row, or raises after ``max_retry_s``; the flows' sink is
:class:`~connectors.store_and_publish.StoreAndPublishSink`.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from dataclasses import dataclass

import pandas as pd
from questdb import QuestDBError as IngressError
from questdb import Sender

from wattflow.errors import QuestDBError
from wattflow.settings import QuestDBSettings
from wattflow.tally import TALLY

log = logging.getLogger("wattflow.questdb")


@dataclass(frozen=True, slots=True)
class TableRows:
    """Rows for one table as a DataFrame; ``symbols`` are the SYMBOL columns, ``at`` the designated timestamp."""

    table: str
    frame: pd.DataFrame
    symbols: tuple[str, ...]
    at: str = "ts"

    def __len__(self) -> int:
        return len(self.frame)


class RetryingWriter:
    """Writes TableRows over ILP/HTTP with bounded retries (exponential backoff with jitter)."""

    def __init__(self, settings: QuestDBSettings, *, max_retry_s: float = 300.0) -> None:
        self.settings = settings
        self.max_retry_s = max_retry_s
        self.sender: Sender | None = None
        self.retries = 0

    def _connect(self) -> Sender:
        if self.sender is None:
            sender = Sender.from_conf(self.settings.ilp_conf())
            sender.establish()
            self.sender = sender
        return self.sender

    def _reset(self) -> None:
        if self.sender is not None:
            with contextlib.suppress(IngressError):
                self.sender.close()
            self.sender = None

    def write(self, items: list[TableRows]) -> int:
        """Write every row of ``items``; returns the row count. Raises QuestDBError past the retry bound."""
        rows = sum(len(item) for item in items if len(item))
        if not rows:
            return 0
        started = time.monotonic()
        delay_s = 0.2
        attempt = 0
        while True:
            attempt += 1
            try:
                sender = self._connect()
                buffer = sender.new_buffer()
                for item in items:
                    if len(item):
                        buffer.dataframe(item.frame, table_name=item.table, symbols=list(item.symbols), at=item.at)
                sender.flush(buffer, clear=False)
                for item in items:
                    TALLY.add("stored", item.table, len(item))
                return rows
            except IngressError as error:
                waited = time.monotonic() - started
                if waited > self.max_retry_s:
                    tables = ", ".join(sorted({item.table for item in items}))
                    raise QuestDBError(
                        f"QuestDB at {self.settings.http_url} did not take {rows} rows for {tables} "
                        f"after {attempt} attempts in {waited:.0f} s: {error}",
                        hint="check `wattflow stack status` and the QuestDB log; the flow resumes from its last "
                        "snapshot once restarted, and dedup keys absorb the replay",
                    ) from error
                self.retries += 1
                log.warning("QuestDB write of %d rows failed (attempt %d, retrying in %.1f s): %s",
                            rows, attempt, delay_s, error)
                self._reset()
                time.sleep(delay_s * (0.5 + random.random()))
                delay_s = min(delay_s * 2, 5.0)

    def close(self) -> None:
        self._reset()
