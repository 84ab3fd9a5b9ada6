"""Parser for SMARD day-ahead price exports (Bundesnetzagentur / SMARD.de, CC BY 4.0).

The file is read as SMARD publishes it, because that is what a user downloads: ``;``-separated, UTF-8
with a byte-order mark, English dates (``Jan 1, 2018``), a 12-hour clock (``1:00 PM``), ``-`` for a
missing price, and local wall-clock time of Europe/Berlin. Local time is converted to UTC here, once:
the spring-forward day has no 2:00 AM row (23 hours) and the fall-back day has two 2:00 AM rows (25
hours), of which the first is summer time (CEST) and the second winter time (CET), in file order.

A bad line raises :class:`~wattflow.errors.RecordError` with the file and line as its origin; a missing
price is skipped, never invented.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from wattflow.domain import (
    AREAS,
    DAY_AHEAD_PRICE_MAX_EUR_PER_MWH,
    DAY_AHEAD_PRICE_MIN_EUR_PER_MWH,
    DayAheadPrice,
    datetime_to_ns,
    delivery_day_bounds_ns,
    ns_to_datetime,
)
from wattflow.errors import Origin, RecordError, WattflowError

#: Where the shipped, derived samples live: ``data/`` at the repository root, so that a fresh clone
#: works without the full data files.
DATA_DIR = Path(__file__).resolve().parents[2] / "data"
SAMPLE_DAY_AHEAD_FILE = DATA_DIR / "smard_day_ahead_2018_sample.csv"

#: ``source`` of the day-ahead prices read here.
SMARD_SOURCE = "smard"

#: SMARD publishes in German local time, whatever the bidding zone.
SMARD_TIMEZONE = "Europe/Berlin"

#: SMARD column names (without the unit) -> wattflow area codes.
SMARD_COLUMN_AREAS: dict[str, str] = {
    "Germany/Luxembourg": "DE-LU",
    "Germany/Austria/Luxembourg": "DE-AT-LU",
    "Austria": "AT",
    "France": "FR",
    "Netherlands": "NL",
    "Belgium": "BE",
    "Switzerland": "CH",
    "Czech Republic": "CZ",
    "Poland": "PL",
    "Hungary": "HU",
    "Slovenia": "SI",
    "Denmark 1": "DK1",
    "Denmark 2": "DK2",
    "Sweden 4": "SE4",
    "Norway 2": "NO2",
    "Northern Italy": "IT-NORD",
}

#: Before the German-Austrian zone split (delivery from 2018-10-01) Germany, Luxembourg and Austria
#: were one zone, so their price is the DE-AT-LU price.
ZONE_SPLIT_FALLBACK: dict[str, str] = {"DE-LU": "DE-AT-LU", "AT": "DE-AT-LU"}
ZONE_SPLIT_DAY = date(2018, 10, 1)

_MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}
_DATE_RE = re.compile(r"^([A-Z][a-z]{2}) (\d{1,2}), (\d{4})$")
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2}) ([AP]M)$")
_NUMBER_RE = re.compile(r"^-?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")
_HEADER_RE = re.compile(r"^(.*)\[(.*)\]$")
_PRICE_UNIT = "€/MWh"


@dataclass(frozen=True, slots=True)
class DayAheadTable:
    """A parsed SMARD file, columnar: per area the UTC delivery starts and prices of its filled hours."""

    delivery_start_ns: dict[str, NDArray[np.int64]]
    price_eur_per_mwh: dict[str, NDArray[np.float64]]


def _bad(reason: str, message: str, path: Path, line: int) -> RecordError:
    return RecordError(reason, message, origin=Origin(file=str(path), line=line))


def _parse_header(fields: list[str], path: Path) -> list[str | None]:
    """Area code per price column (None for a column wattflow does not know, which is skipped)."""
    if len(fields) < 3 or fields[0] != "Date" or fields[1] != "Time of day":
        raise _bad("BAD_HEADER", f"expected 'Date;Time of day;<zone>[€/MWh];...', got {';'.join(fields)!r}",
                   path, 1)
    areas: list[str | None] = []
    for name in fields[2:]:
        match = _HEADER_RE.match(name)
        if match is None or match.group(2) != _PRICE_UNIT:
            raise _bad("BAD_HEADER", f"column {name!r} is not a price in {_PRICE_UNIT}", path, 1)
        areas.append(SMARD_COLUMN_AREAS.get(match.group(1).strip()))
    return areas


def _local_wall_time(date_text: str, time_text: str, path: Path, line: int) -> datetime:
    date_match = _DATE_RE.match(date_text)
    time_match = _TIME_RE.match(time_text)
    if date_match is None or date_match.group(1) not in _MONTHS:
        raise _bad("BAD_DATE", f"date {date_text!r} is not like 'Jan 1, 2018'", path, line)
    if time_match is None:
        raise _bad("BAD_TIME", f"time {time_text!r} is not like '1:00 PM'", path, line)
    hour, minute = int(time_match.group(1)), int(time_match.group(2))
    if not 1 <= hour <= 12 or minute != 0:
        raise _bad("BAD_TIME", f"time {time_text!r} is not a full hour on a 12-hour clock", path, line)
    hour = hour % 12 + (12 if time_match.group(3) == "PM" else 0)
    try:
        year, day = int(date_match.group(3)), int(date_match.group(2))
        return datetime(year, _MONTHS[date_match.group(1)], day, hour)
    except ValueError as error:
        raise _bad("BAD_DATE", f"{date_text!r} {time_text!r}: {error}", path, line) from None


def _to_utc_ns(wall: datetime, fold: int, path: Path, line: int) -> int:
    """UTC ns of a Berlin wall-clock time; a wall time that does not exist (spring forward) is an error."""
    zone = ZoneInfo(SMARD_TIMEZONE)
    aware = wall.replace(tzinfo=zone, fold=fold)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
        raise _bad("NONEXISTENT_LOCAL_TIME", f"{wall:%Y-%m-%d %H:%M} does not exist in {SMARD_TIMEZONE} "
                   "(clocks jump forward)", path, line)
    return datetime_to_ns(aware)


def _is_ambiguous(wall: datetime) -> bool:
    zone = ZoneInfo(SMARD_TIMEZONE)
    return wall.replace(tzinfo=zone, fold=0).utcoffset() != wall.replace(tzinfo=zone, fold=1).utcoffset()


def _parse_price(text: str, path: Path, line: int, column: str) -> float | None:
    if text in {"-", ""}:
        return None
    if _NUMBER_RE.match(text) is None:
        raise _bad("BAD_PRICE", f"{column}: {text!r} is not a number", path, line)
    value = float(text.replace(",", ""))
    if not DAY_AHEAD_PRICE_MIN_EUR_PER_MWH <= value <= DAY_AHEAD_PRICE_MAX_EUR_PER_MWH:
        raise _bad("PRICE_OUT_OF_RANGE", f"{column}: {value} EUR/MWh outside the day-ahead limits "
                   f"[{DAY_AHEAD_PRICE_MIN_EUR_PER_MWH}, {DAY_AHEAD_PRICE_MAX_EUR_PER_MWH}]", path, line)
    return value


def parse_day_ahead_file(path: str | Path) -> DayAheadTable:
    """Parse a whole SMARD file (cached while the file is unchanged)."""
    resolved = Path(path).resolve()
    try:
        stat = resolved.stat()
    except OSError as error:
        raise WattflowError(f"cannot read day-ahead file {resolved}: {error.strerror}",
                            hint="pass an existing SMARD export, or no path for the shipped sample") from None
    return _parse_cached(str(resolved), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _parse_cached(path_text: str, _mtime_ns: int, _size: int) -> DayAheadTable:
    path = Path(path_text)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        text = handle.read()
    lines = text.splitlines()
    if not lines:
        raise _bad("BAD_HEADER", "empty file", path, 1)
    areas = _parse_header(lines[0].split(";"), path)
    width = len(areas) + 2
    starts: dict[str, list[int]] = {area: [] for area in areas if area is not None}
    prices: dict[str, list[float]] = {area: [] for area in areas if area is not None}
    seen_ns: set[int] = set()
    folds_used: dict[datetime, int] = {}
    for line_number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(";")
        if len(fields) != width:
            raise _bad("BAD_FIELD_COUNT", f"{len(fields)} fields, the header has {width}", path, line_number)
        wall = _local_wall_time(fields[0].strip(), fields[1].strip(), path, line_number)
        fold = 0
        if _is_ambiguous(wall):
            # The repeated hour of the fall-back day: the first row is summer time, the second winter time.
            fold = folds_used.get(wall, -1) + 1
            if fold > 1:
                raise _bad("DUPLICATE_ROW", f"{wall:%Y-%m-%d %H:%M} appears more than twice", path,
                           line_number)
            folds_used[wall] = fold
        start_ns = _to_utc_ns(wall, fold, path, line_number)
        if start_ns in seen_ns:
            raise _bad("DUPLICATE_ROW", f"{wall:%Y-%m-%d %H:%M} appears twice", path, line_number)
        seen_ns.add(start_ns)
        for area, text_value in zip(areas, fields[2:], strict=True):
            if area is None:
                continue
            price = _parse_price(text_value.strip(), path, line_number, area)
            if price is not None:
                starts[area].append(start_ns)
                prices[area].append(price)
    start_arrays: dict[str, NDArray[np.int64]] = {}
    price_arrays: dict[str, NDArray[np.float64]] = {}
    for area, area_starts in starts.items():
        area_start_ns = np.asarray(area_starts, dtype=np.int64)
        order = np.argsort(area_start_ns, kind="stable")
        start_arrays[area] = area_start_ns[order]
        price_arrays[area] = np.asarray(prices[area], dtype=np.float64)[order]
    return DayAheadTable(start_arrays, price_arrays)


def _bound_ns(moment: date | datetime | None) -> int | None:
    """A date is local midnight in Berlin (the SMARD clock); a datetime must be aware."""
    if moment is None:
        return None
    if isinstance(moment, datetime):
        return datetime_to_ns(moment)
    return datetime_to_ns(datetime(moment.year, moment.month, moment.day, tzinfo=ZoneInfo(SMARD_TIMEZONE)))


def read_day_ahead(
    path: str | Path | None = None,
    areas: list[str] | tuple[str, ...] | None = None,
    start: date | datetime | None = None,
    end: date | datetime | None = None,
) -> list[DayAheadPrice]:
    """Day-ahead prices, one per area and delivery hour, ordered by delivery start then area.

    ``start`` is inclusive and ``end`` exclusive (delivery start); a date means local midnight in
    Europe/Berlin. ``areas`` defaults to every area with a price in the file. Missing prices are skipped.
    """
    table = parse_day_ahead_file(path if path is not None else SAMPLE_DAY_AHEAD_FILE)
    wanted = list(areas) if areas is not None else list(table.delivery_start_ns)
    for area in wanted:
        if area not in AREAS:
            raise ValueError(f"unknown delivery area {area!r}: known areas are {', '.join(sorted(AREAS))}")
        if area not in table.delivery_start_ns:
            raise WattflowError(f"the day-ahead file has no column for {area}",
                                hint=f"columns map to areas as {SMARD_COLUMN_AREAS}")
    start_ns, end_ns = _bound_ns(start), _bound_ns(end)
    result: list[DayAheadPrice] = []
    for area in wanted:
        area_starts = table.delivery_start_ns[area]
        area_prices = table.price_eur_per_mwh[area]
        mask = np.ones(len(area_starts), dtype=bool)
        if start_ns is not None:
            mask &= area_starts >= start_ns
        if end_ns is not None:
            mask &= area_starts < end_ns
        result.extend(
            DayAheadPrice(area, int(start_ns_value), 60, float(price), SMARD_SOURCE)
            for start_ns_value, price in zip(area_starts[mask], area_prices[mask], strict=True)
        )
    result.sort(key=lambda price: (price.delivery_start_ns, wanted.index(price.area)))
    return result


def day_ahead_day(path: str | Path | None, area: str, day: date) -> list[DayAheadPrice]:
    """The day-ahead prices of one area's local delivery day, every hour present, in UTC order.

    DE-LU (and AT) had no own price before the zone split of 2018-10-01; their price then was the
    DE-AT-LU price, which is returned instead, labelled with the area asked for.
    """
    table = parse_day_ahead_file(path if path is not None else SAMPLE_DAY_AHEAD_FILE)
    first_ns, end_ns = delivery_day_bounds_ns(area, day)
    expected_hours = (end_ns - first_ns) // (3600 * 10**9)
    candidates = [area]
    if area in ZONE_SPLIT_FALLBACK and day < ZONE_SPLIT_DAY:
        candidates.append(ZONE_SPLIT_FALLBACK[area])
    for column in candidates:
        if column not in table.delivery_start_ns:
            continue
        starts = table.delivery_start_ns[column]
        mask = (starts >= first_ns) & (starts < end_ns)
        if int(mask.sum()) == expected_hours:
            return [DayAheadPrice(area, int(start_ns), 60, float(price), SMARD_SOURCE)
                    for start_ns, price in zip(starts[mask], table.price_eur_per_mwh[column][mask], strict=True)]
    shown = ns_to_datetime(first_ns)
    raise WattflowError(
        f"no complete day-ahead prices for {area} on {day.isoformat()} ({expected_hours} hours from "
        f"{shown:%Y-%m-%d %H:%M}Z) in {path or SAMPLE_DAY_AHEAD_FILE}",
        hint="the shipped sample holds only a few days of 2018; pass the full SMARD export "
        "(e.g. --prices-file) or an anchor array",
    )


def day_ahead_anchor(path: str | Path | None, area: str, day: date) -> NDArray[np.float64]:
    """The hourly day-ahead prices of one local delivery day, in UTC order (23, 24 or 25 entries).

    Used to anchor simulated intraday prices; see :func:`day_ahead_day` for the zone-split fallback.
    """
    return np.array([price.price_eur_per_mwh for price in day_ahead_day(path, area, day)], dtype=np.float64)
