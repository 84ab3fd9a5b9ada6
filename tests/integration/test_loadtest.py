"""``wattflow loadtest`` against the real servers, on a small feed (one run of the trading and store flows and
the paper venue, about a minute of load):

* counts are keyed and exact against the feed sent in and the venue's own request log;
* a message left out on purpose (kept in the truth) is reported lost, exactly that one;
* a malformed row of the feed is sent as it came and comes back as exactly one dead letter;
* the venue slowed on purpose (WATTFLOW_VENUE_LATENCY_MS-like ``--latency-ms``) shows in its own stage: the
  injected delay is a lower bound of that stage only (no wall-clock threshold anywhere else);
* a minute of load reports an RSS slope for every process;
* ``--pack``: events packed 10 to a raw message are still counted one by one (an event left out of its pack is
  reported lost, exactly that one; the malformed row, sent alone, is one dead letter).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import orjson
import pytest

from connectors.feeds.files import json_lines, read_raw_feed, write_feed
from loadtest.load import DAYAHEAD_KIND, build_load
from loadtest.run import LoadTest, Options, Phase
from paper.simulator import simulate_day
from wattflow.settings import Settings

pytestmark = [pytest.mark.stack, pytest.mark.slow]
VENUE_LATENCY_MS = 150.0


@pytest.fixture(scope="module")
def feed_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated day with its day-ahead prices and one row whose time is null (line 200)."""
    from connectors.feeds.files import FeedFrame, day_ahead_feed
    from connectors.feeds.smard import day_ahead_day

    day = date(2018, 10, 28)
    frame = FeedFrame.concat([day_ahead_feed(day_ahead_day(None, "DE-LU", day)),
                              simulate_day("DE-LU", day, 7, 0.05)]).sort_by_time()
    path = tmp_path_factory.mktemp("feed") / "day.jsonl"
    lines = json_lines(frame)
    lines[199] = orjson.dumps({**orjson.loads(lines[199]), "ts_ns": None})
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_loadtest_counts_losses_stage_latency_and_slope(settings: Settings, feed_path: Path, unique: str,
                                                        tmp_path: Path) -> None:
    feed = read_raw_feed(feed_path)
    assert len(feed.bad_rows) == 1
    source = f"lt{unique[:8]}"
    load = build_load(feed, source=source, rate_per_s=100.0, speed=None, duration_s=60.0, products=4)
    book_rows = np.flatnonzero(load.kind == 1)
    omitted = int(book_rows[len(book_rows) // 2])  # a book update in the middle: never sent, still expected
    options = Options(duration_s=60.0, warmup_s=2.0, venue_latency_ms=VENUE_LATENCY_MS)
    products = sorted({p for p in load.product.tolist() if p})
    clock = int(load.ts_ns[load.kind != DAYAHEAD_KIND].min())
    with LoadTest(settings, options, tmp_path, products=products, clock_ns=clock, source=source) as test:
        result = test.run_phase(Phase("soak 1 min", load, 100.0, soak=True, omit=[omitted]))

    c = result["counts"]
    assert c["messages"] == len(load)
    assert c["sent"] == len(load) - 1
    assert c["confirmed"] == c["sent"]
    assert c["stored_lost"] == 1
    assert c["stored_lost_examples"] == [f"message {omitted} (seq {int(load.seq[omitted])})"]
    assert c["stored"] == c["stored_expected"] - 1
    assert c["stored_unexpected"] == 0 and c["stored_doubled"] == 0
    assert int((load.kind == -1).sum()) == load.loops  # the null-time row, sent as it came in every pass
    assert c["dead_letters"] == c["dead_letters_expected"] and c["dead_letters_lost"] == 0
    assert c["orders_expected"] > 0
    assert c["decided"] == c["orders_expected"]
    assert c["at_venue"] == c["orders_expected"] and c["at_venue_lost"] == 0 and c["at_venue_unexpected"] == 0
    stages = result["stages_ms"]
    # The venue holds every answer VENUE_LATENCY_MS after logging the request: a lower bound on that stage.
    assert stages["at venue->acked"]["p50"] >= VENUE_LATENCY_MS
    assert stages["at venue->acked"]["count"] == stages["decided->at venue"]["count"] > 0
    assert set(result["rss_slopes_mb_per_min"]) >= {"trading flow", "store flow", "venue", "load generator"}
    assert all(np.isfinite(v) for v in result["rss_slopes_mb_per_min"].values())


def test_feed_written_back_round_trips(feed_path: Path, tmp_path: Path) -> None:
    """The load's rewritten events are still valid feed events (every pass can be recorded and replayed)."""
    feed = read_raw_feed(feed_path)
    load = build_load(feed, source="ltcheck", rate_per_s=1000.0, speed=None, duration_s=1.0)
    good = [v for v, k in zip(load.values, load.kind.tolist(), strict=True) if k >= 0]
    path = tmp_path / "again.jsonl"
    path.write_bytes(b"\n".join(good) + b"\n")
    again = read_raw_feed(path)
    assert again.bad_rows == () and len(again.frame) == len(good)
    assert write_feed(again.frame, tmp_path / "again.parquet").exists()


def test_packed_load_is_counted_per_event(settings: Settings, feed_path: Path, unique: str, tmp_path: Path) -> None:
    feed = read_raw_feed(feed_path)
    source = f"lp{unique[:8]}"
    load = build_load(feed, source=source, rate_per_s=300.0, speed=None, duration_s=15.0, products=4)
    book_rows = np.flatnonzero(load.kind == 1)
    omitted = int(book_rows[len(book_rows) // 3])
    options = Options(duration_s=15.0, warmup_s=2.0, pack=10)
    products = sorted({p for p in load.product.tolist() if p})
    clock = int(load.ts_ns[load.kind != DAYAHEAD_KIND].min())
    with LoadTest(settings, options, tmp_path, products=products, clock_ns=clock, source=source) as test:
        result = test.run_phase(Phase("300/s packed", load, 300.0, omit=[omitted]))

    c = result["counts"]
    assert result["packed_messages"] < len(load) - 1
    assert c["sent"] == c["confirmed"] == len(load) - 1  # events, in fewer messages
    assert c["stored_lost"] == 1
    assert c["stored_lost_examples"] == [f"message {omitted} (seq {int(load.seq[omitted])})"]
    assert c["stored"] == c["stored_expected"] - 1 and c["stored_doubled"] == 0 and c["stored_unexpected"] == 0
    assert c["dead_letters"] == c["dead_letters_expected"] == int((load.kind == -1).sum())
    assert c["dead_letters_lost"] == 0 and c["dead_letters_doubled"] == 0
    assert c["orders_expected"] > 0 and c["at_venue"] == c["decided"] == c["orders_expected"], c
    assert c["at_venue_unexpected"] == 0
