"""The SMARD day-ahead parser on the shipped sample: BOM, 12-hour clock, DST days, zone split, bad lines."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from connectors.feeds import smard
from connectors.feeds.files import DAYAHEAD, day_ahead_feed
from wattflow.domain import NS_PER_HOUR, datetime_to_ns
from wattflow.errors import RecordError, WattflowError

SAMPLE = smard.SAMPLE_DAY_AHEAD_FILE
REPOSITORY = Path(__file__).resolve().parents[2]


def utc_ns(text: str) -> int:
    return datetime_to_ns(datetime.fromisoformat(text).replace(tzinfo=UTC))


def test_sample_ships_with_the_repository_and_keeps_the_bom() -> None:
    assert SAMPLE.is_relative_to(REPOSITORY / "data")
    raw = SAMPLE.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfDate;Time of day;")
    prices = smard.read_day_ahead()
    assert prices, "the default path is the shipped sample"
    assert {p.area for p in prices} >= {"DE-LU", "DE-AT-LU", "FR", "NL", "IT-NORD", "DK1", "AT"}


def test_twelve_hour_clock_and_local_time_to_utc() -> None:
    prices = smard.read_day_ahead(SAMPLE, ["FR"], date(2018, 1, 1), date(2018, 1, 2))
    assert len(prices) == 24
    # "Jan 1, 2018;12:00 AM" is midnight CET = 23:00 UTC the day before; "12:00 PM" is noon = 11:00 UTC.
    assert prices[0].delivery_start_ns == utc_ns("2017-12-31T23:00")
    assert prices[0].price_eur_per_mwh == 6.74
    assert prices[12].delivery_start_ns == utc_ns("2018-01-01T11:00")
    assert all(p.duration_min == 60 and p.source == "smard" for p in prices)


def test_spring_forward_day_has_23_distinct_hours() -> None:
    prices = smard.read_day_ahead(SAMPLE, ["DE-AT-LU"], date(2018, 3, 25), date(2018, 3, 26))
    starts = np.array([p.delivery_start_ns for p in prices])
    assert len(prices) == 23
    assert (np.diff(starts) == NS_PER_HOUR).all()
    assert starts[0] == utc_ns("2018-03-24T23:00")
    assert starts[2] == utc_ns("2018-03-25T01:00")  # 3:00 AM CEST follows 1:00 AM CET
    assert len(smard.day_ahead_anchor(SAMPLE, "DE-LU", date(2018, 3, 25))) == 23


def test_fall_back_day_has_25_distinct_hours_in_file_order() -> None:
    prices = smard.read_day_ahead(SAMPLE, ["DE-LU"], date(2018, 10, 28), date(2018, 10, 29))
    starts = np.array([p.delivery_start_ns for p in prices])
    assert len(prices) == 25
    assert len(set(starts.tolist())) == 25
    assert (np.diff(starts) == NS_PER_HOUR).all()
    # The first 2:00 AM row is CEST (00:00 UTC), the second CET (01:00 UTC).
    by_start = {p.delivery_start_ns: p.price_eur_per_mwh for p in prices}
    assert by_start[utc_ns("2018-10-28T00:00")] == 41.62
    assert by_start[utc_ns("2018-10-28T01:00")] == 41.59
    anchor = smard.day_ahead_anchor(SAMPLE, "DE-LU", date(2018, 10, 28))
    assert anchor.shape == (25,)
    assert anchor[2] == 41.62 and anchor[3] == 41.59


def test_negative_prices_on_new_year_night() -> None:
    anchor = smard.day_ahead_anchor(SAMPLE, "DE-AT-LU", date(2018, 1, 1))
    assert anchor.shape == (24,)
    assert anchor[:14].max() < 0
    assert anchor.min() == -76.01


def test_zone_split() -> None:
    def hours(area: str, day: date) -> int:
        return len(smard.read_day_ahead(SAMPLE, [area], day, date.fromordinal(day.toordinal() + 1)))

    assert hours("DE-LU", date(2018, 9, 30)) == 0
    assert hours("DE-AT-LU", date(2018, 9, 30)) == 24
    assert hours("DE-LU", date(2018, 10, 1)) == 24
    assert hours("DE-AT-LU", date(2018, 10, 1)) == 0
    before = smard.day_ahead_anchor(SAMPLE, "DE-LU", date(2018, 9, 30))
    np.testing.assert_array_equal(before, smard.day_ahead_anchor(SAMPLE, "DE-AT-LU", date(2018, 9, 30)))
    labelled = smard.day_ahead_day(SAMPLE, "DE-LU", date(2018, 9, 30))
    assert {p.area for p in labelled} == {"DE-LU"}
    after = smard.day_ahead_anchor(SAMPLE, "DE-LU", date(2018, 10, 1))
    assert after[0] == 59.53
    with pytest.raises(WattflowError, match="no complete day-ahead prices for DE-AT-LU"):
        smard.day_ahead_anchor(SAMPLE, "DE-AT-LU", date(2018, 10, 1))


def test_missing_values_are_skipped_never_invented() -> None:
    lines = SAMPLE.read_text(encoding="utf-8-sig").splitlines()[1:]
    filled = sum(1 for line in lines for value in line.split(";")[2:] if value != "-")
    assert len(smard.read_day_ahead(SAMPLE)) == filled
    assert smard.read_day_ahead(SAMPLE, ["PL", "BE", "NO2"]) == []


def test_day_not_in_sample_and_unknown_area() -> None:
    with pytest.raises(WattflowError, match="full SMARD export"):
        smard.day_ahead_anchor(None, "DE-LU", date(2018, 7, 1))
    with pytest.raises(ValueError, match="unknown delivery area"):
        smard.read_day_ahead(SAMPLE, ["XX"])


def test_file_without_bom_parses_the_same(tmp_path: Path) -> None:
    plain = tmp_path / "plain.csv"
    plain.write_bytes(SAMPLE.read_bytes()[3:])
    assert smard.read_day_ahead(plain) == smard.read_day_ahead(SAMPLE)


def _with_line(tmp_path: Path, line: str, after: int = 5) -> Path:
    lines = SAMPLE.read_bytes().split(b"\n")
    lines.insert(after, line.encode())
    path = tmp_path / "bad.csv"
    path.write_bytes(b"\n".join(lines))
    return path


@pytest.mark.parametrize(("line", "reason"), [
    ("Jan 1, 2018;5:00 AM;1;2", "BAD_FIELD_COUNT"),
    ("2018-01-01" + ";1:00 AM" + ";-" * 16, "BAD_DATE"),
    ("Jan 1, 2018;13:00 PM" + ";-" * 16, "BAD_TIME"),
    ("Jan 1, 2018;1:30 AM" + ";-" * 16, "BAD_TIME"),
    ("Jan 1, 2018;11:00 PM" + ";abc" + ";-" * 15, "BAD_PRICE"),
    ("Jan 5, 2018;1:00 AM" + ";99999" + ";-" * 15, "PRICE_OUT_OF_RANGE"),
    ("Mar 25, 2018;2:00 AM" + ";-" * 16, "NONEXISTENT_LOCAL_TIME"),
    ("Jan 1, 2018;1:00 AM" + ";-" * 16, "DUPLICATE_ROW"),
    ("Oct 28, 2018;2:00 AM" + ";-" * 16, "DUPLICATE_ROW"),
])
def test_malformed_line_names_file_and_line(tmp_path: Path, line: str, reason: str) -> None:
    lines = SAMPLE.read_text(encoding="utf-8-sig").splitlines()
    after = [i for i, text in enumerate(lines) if text.startswith(line[:20])][-1] + 1 if "Oct 28" in line else 5
    path = _with_line(tmp_path, line, after)
    with pytest.raises(RecordError) as caught:
        smard.read_day_ahead(path)
    error = caught.value
    assert error.reason == reason
    assert error.origin is not None
    assert error.origin.file == str(path.resolve())
    assert error.origin.line == after + 1
    assert f"{path.resolve()}:{after + 1}" in str(error)


def test_bad_header_is_line_one(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("Datum;Uhrzeit;Deutschland[€/MWh]\n", encoding="utf-8")
    with pytest.raises(RecordError) as caught:
        smard.read_day_ahead(path)
    assert caught.value.reason == "BAD_HEADER"
    assert caught.value.origin is not None and caught.value.origin.line == 1


def test_day_ahead_feed_is_stamped_with_publication_time() -> None:
    prices = smard.read_day_ahead(SAMPLE, ["DE-LU", "FR"], date(2018, 10, 28), date(2018, 10, 29))
    frame = day_ahead_feed(prices)
    assert frame.counts_by_type() == {"trade": 0, "book": 0, "dayahead": 50}
    assert (frame.event_type == DAYAHEAD).all()
    # 12:45 CEST on 2018-10-27 for every hour of 2018-10-28 (even the CET ones).
    assert set(frame.ts_ns.tolist()) == {utc_ns("2018-10-27T10:45")}
    assert (frame.ts_ns < frame.delivery_start_ns).all()
    assert frame.seq.tolist() == list(range(50))
