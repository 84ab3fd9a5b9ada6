"""The recorded-feed format: exact round trips through JSON lines and Parquet, the wire form, bad lines."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.feeds import files, smard
from connectors.feeds.files import FeedFrame, read_feed, write_feed
from paper import simulator
from wattflow.domain import AREAS, products_of_day
from wattflow.errors import FeedFormatError, RecordError

WIRE_FIELDS = {
    "trade": ["type", "ts_ns", "product", "price_eur_per_mwh", "quantity_mw", "side", "trade_id", "source", "seq"],
    "book": ["type", "ts_ns", "product", "side", "level", "price_eur_per_mwh", "quantity_mw", "source", "seq"],
    "dayahead": ["type", "ts_ns", "area", "delivery_start_ns", "duration_min", "price_eur_per_mwh", "source",
                 "seq"],
}
SUFFIXES = ("jsonl", "jsonl.gz", "parquet")


@pytest.fixture(scope="module")
def feed() -> FeedFrame:
    """A small simulated day with its day-ahead prices, interleaved: all three event types."""
    simulated = simulator.simulate_day(day=date(2018, 10, 28), scale=0.05)
    prices = smard.day_ahead_day(None, "DE-LU", date(2018, 10, 28))
    return FeedFrame.concat([files.day_ahead_feed(prices), simulated]).sort_by_time()


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip_is_exact(feed: FeedFrame, tmp_path: Path, suffix: str) -> None:
    path = write_feed(feed, tmp_path / f"feed.{suffix}")
    back = read_feed(path)
    assert back == feed
    assert back.counts_by_type() == feed.counts_by_type()
    np.testing.assert_array_equal(back.ts_ns, feed.ts_ns)
    assert back.products() == feed.products()
    assert not list(tmp_path.glob("*.partial"))


def test_jsonl_and_parquet_agree(feed: FeedFrame, tmp_path: Path) -> None:
    from_json = read_feed(write_feed(feed, tmp_path / "a.jsonl"))
    from_parquet = read_feed(write_feed(feed, tmp_path / "a.parquet"))
    assert from_json == from_parquet
    # And a re-written JSON file is byte-identical.
    write_feed(from_parquet, tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_wire_form_is_what_orjson_writes_for_the_documented_fields(feed: FeedFrame) -> None:
    lines = list(files.iter_json_lines(feed))
    assert len(lines) == len(feed)
    seen = set()
    for line, event_type in zip(lines, feed.event_type.tolist(), strict=True):
        message = orjson.loads(line)
        name = files.EVENT_TYPES[event_type]
        assert list(message) == WIRE_FIELDS[name]
        assert orjson.dumps(message) == line
        assert isinstance(message["price_eur_per_mwh"], float)
        if name != "dayahead":
            assert message["side"] in ("BUY", "SELL")
            assert isinstance(message["quantity_mw"], float)
        seen.add(name)
    assert seen == {"trade", "book", "dayahead"}
    assert [orjson.loads(line)["seq"] for line in lines] == list(range(len(feed)))


def test_counts_concat_and_sort(feed: FeedFrame) -> None:
    counts = feed.counts_by_type()
    assert counts["dayahead"] == 25 and counts["trade"] > 0 and counts["book"] > 0
    doubled = FeedFrame.concat([feed, feed])
    assert len(doubled) == 2 * len(feed)
    assert doubled.counts_by_type() == {name: 2 * n for name, n in counts.items()}
    assert doubled.take(np.arange(len(feed), 2 * len(feed))) == feed
    ordered = doubled.sort_by_time()
    assert (np.diff(ordered.ts_ns) >= 0).all()
    np.testing.assert_array_equal(ordered.seq, np.arange(len(ordered)))
    assert FeedFrame.concat([]) == FeedFrame.empty()


def test_empty_feed_round_trips(tmp_path: Path) -> None:
    for suffix in SUFFIXES:
        assert read_feed(write_feed(FeedFrame.empty(), tmp_path / f"empty.{suffix}")) == FeedFrame.empty()


def test_unknown_suffix() -> None:
    with pytest.raises(FeedFormatError, match="unknown feed format"):
        files.feed_format("feed.csv")


GOOD_TRADE = {"type": "trade", "ts_ns": 1540645200000000000, "product": "DE-LU:2018-10-28T01:00Z:PT15M",
              "price_eur_per_mwh": 41.5, "quantity_mw": 2.5, "side": "BUY", "trade_id": 7, "source": "x", "seq": 0}


@pytest.mark.parametrize(("bad", "reason"), [
    (b'{"type":"trade",', "MALFORMED_JSON"),
    (b"[1, 2]", "NOT_AN_OBJECT"),
    (orjson.dumps({**GOOD_TRADE, "type": "quote"}), "UNKNOWN_TYPE"),
    (orjson.dumps({k: v for k, v in GOOD_TRADE.items() if k != "trade_id"}), "MISSING_FIELD"),
    (orjson.dumps({**GOOD_TRADE, "ts_ns": "yesterday"}), "BAD_FIELD_TYPE"),
    (orjson.dumps({**GOOD_TRADE, "seq": True}), "BAD_FIELD_TYPE"),
    (orjson.dumps({**GOOD_TRADE, "trade_id": 2**64 - 1}), "BAD_FIELD_TYPE"),
    (orjson.dumps({**GOOD_TRADE, "side": "LONG"}), "BAD_SIDE"),
    (orjson.dumps({**GOOD_TRADE, "product": "DE-LU:tomorrow"}), "BAD_PRODUCT"),
    (orjson.dumps({**GOOD_TRADE, "venue": "epex"}), "UNKNOWN_FIELD"),
    (b'{"type":"trade","price_eur_per_mwh":NaN}', "MALFORMED_JSON"),
])
def test_bad_line_names_file_and_line(tmp_path: Path, bad: bytes, reason: str) -> None:
    path = tmp_path / "bad.jsonl"
    good = orjson.dumps(GOOD_TRADE)
    path.write_bytes(b"\n".join([good, good, bad, good]) + b"\n")
    with pytest.raises(RecordError) as caught:
        read_feed(path)
    assert caught.value.reason == reason
    assert caught.value.origin is not None
    assert caught.value.origin.file == str(path)
    assert caught.value.origin.line == 3
    assert f"{path}:3" in str(caught.value)


def test_hand_written_lines_accept_integer_prices_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "hand.jsonl"
    path.write_bytes(orjson.dumps({**GOOD_TRADE, "price_eur_per_mwh": 41}) + b"\n\n")
    frame = read_feed(path)
    assert len(frame) == 1 and frame.price_eur_per_mwh[0] == 41.0
    assert frame.delivery_start_ns[0] == 1540688400000000000 and frame.duration_min[0] == 15


# --- property: any valid feed round-trips exactly, through every format ----------------------------------

PRODUCT_KEYS = [p.key for p in products_of_day("DE-LU", date(2018, 10, 28), (15, 30, 60))][:40]
finite = st.floats(allow_nan=False, allow_infinity=False)
int64 = st.integers(-(2**63), 2**63 - 1)
common = {"ts_ns": int64, "source": st.sampled_from(["sim", "smard", "épex \"live\""]), "seq": int64}
trade = st.fixed_dictionaries({"type": st.just("trade"), "ts_ns": common["ts_ns"],
                               "product": st.sampled_from(PRODUCT_KEYS), "price_eur_per_mwh": finite,
                               "quantity_mw": finite, "side": st.sampled_from(["BUY", "SELL"]),
                               "trade_id": int64, "source": common["source"], "seq": common["seq"]})
book = st.fixed_dictionaries({"type": st.just("book"), "ts_ns": common["ts_ns"],
                              "product": st.sampled_from(PRODUCT_KEYS), "side": st.sampled_from(["BUY", "SELL"]),
                              "level": st.integers(0, 127), "price_eur_per_mwh": finite, "quantity_mw": finite,
                              "source": common["source"], "seq": common["seq"]})
dayahead = st.fixed_dictionaries({"type": st.just("dayahead"), "ts_ns": common["ts_ns"],
                                  "area": st.sampled_from(sorted(AREAS)), "delivery_start_ns": int64,
                                  "duration_min": st.sampled_from([15, 30, 60]), "price_eur_per_mwh": finite,
                                  "source": common["source"], "seq": common["seq"]})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(st.one_of(trade, book, dayahead), max_size=40))
def test_any_feed_round_trips_exactly(tmp_path: Path, messages: list[dict[str, Any]]) -> None:
    in_order = [{name: message[name] for name in WIRE_FIELDS[message["type"]]} for message in messages]
    wire = b"".join(orjson.dumps(message) + b"\n" for message in in_order)
    source = tmp_path / "in.jsonl"
    source.write_bytes(wire)
    frame = read_feed(source)
    assert len(frame) == len(messages)
    assert b"".join(line + b"\n" for line in files.iter_json_lines(frame)) == wire
    for suffix in SUFFIXES:
        assert read_feed(write_feed(frame, tmp_path / f"out.{suffix}")) == frame


def test_feed_commands(tmp_path: Path) -> None:
    import argparse

    from cli import feed as cli_feed

    parser = argparse.ArgumentParser()
    cli_feed.register(parser.add_subparsers(dest="command"))

    def run(*argv: str) -> int:
        args = parser.parse_args(list(argv))
        code: int = args.func(args)
        return code

    simulated = tmp_path / "day.parquet"
    assert run("feed", "simulate", "--day", "2018-10-28", "--scale", "0.02", "--durations", "15,60",
               "--with-dayahead", "-o", str(simulated)) == 0
    frame = read_feed(simulated)
    assert frame.counts_by_type()["dayahead"] == 25 and frame.counts_by_type()["trade"] > 0
    dayahead = tmp_path / "da.jsonl"
    assert run("feed", "dayahead", "--areas", "DE-LU,FR", "--from", "2018-10-27", "--to", "2018-10-29",
               "-o", str(dayahead)) == 0
    assert read_feed(dayahead).counts_by_type()["dayahead"] == 2 * (24 + 25 + 24)
    assert run("feed", "info", str(dayahead)) == 0
    with pytest.raises(SystemExit):
        run("feed", "simulate", "--area", "XX", "-o", str(tmp_path / "x.jsonl"))
