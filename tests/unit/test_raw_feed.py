"""A recorded feed as it comes: a malformed or incomplete row is kept (with its origin) instead of refusing
the whole file; the strict reader still refuses it."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from connectors.feeds.files import json_lines, read_feed, read_raw_feed, write_feed
from paper.simulator import simulate_day
from wattflow.errors import RecordError


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    from datetime import date

    return json_lines(simulate_day("DE-LU", date(2018, 10, 28), 7, 0.002))[:50]


def test_jsonl_null_time_row_is_kept_in_place(tmp_path: Path, lines: list[bytes]) -> None:
    broken = orjson.dumps({**orjson.loads(lines[9]), "ts_ns": None})
    path = tmp_path / "day.jsonl"
    path.write_bytes(b"\n".join([*lines[:9], broken, *lines[10:]]) + b"\n")
    with pytest.raises(RecordError, match=r"day\.jsonl:10"):
        read_feed(path)
    feed = read_raw_feed(path)
    assert [(row.before, row.origin, row.reason) for row in feed.bad_rows] == [(9, "day.jsonl:10", "BAD_FIELD_TYPE")]
    values, keys, _ = feed.messages()
    assert values == [*lines[:9], broken, *lines[10:]]
    assert keys[9] is None


def test_parquet_incomplete_row_is_kept(tmp_path: Path, lines: list[bytes]) -> None:
    import pyarrow as pa

    from connectors.feeds.files import read_feed as strict

    path = write_feed(strict_frame(tmp_path, lines), tmp_path / "day.parquet")
    table = pq.read_table(path)
    ts = table["ts_ns"].to_pylist()
    ts[4] = None
    pq.write_table(table.set_column(table.column_names.index("ts_ns"), "ts_ns", pa.array(ts, pa.int64())), path)
    with pytest.raises(RecordError, match="INCOMPLETE_ROW"):
        strict(path)
    feed = read_raw_feed(path)
    assert [(row.before, row.reason) for row in feed.bad_rows] == [(4, "INCOMPLETE_ROW")]
    assert orjson.loads(feed.bad_rows[0].payload)["ts_ns"] is None
    values, _, _ = feed.messages()
    assert len(values) == len(lines) and values[:4] == lines[:4] and values[5:] == lines[5:]


def strict_frame(tmp_path: Path, lines: list[bytes]):  # type: ignore[no-untyped-def]
    path = tmp_path / "all.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return read_feed(path)
