"""The main job on its local default: a simulated trading day, traded live.

1. simulate the intraday market of one delivery day (DE-LU, 2018-10-28: the 25-hour day) anchored on the
   real SMARD day-ahead prices, plus the day-ahead results themselves and a few malformed messages;
2. trade it live (``cli.trading_day``): the paper venue plays the day at a speed that fits it in a few
   minutes, the feed adapter streams it into Kafka, the trading flow goes from each tick to its orders at the
   venue under pre-trade risk, and the store flow writes everything to QuestDB beside it;
3. summarise from QuestDB: stored rows, dead letters, signals per product with their hash (equal for equal
   feeds), example queries, orders, fills, fill ratio, slippage, PnL, risk denials and events, and plots.

One outage is injected so that a user sees market access at work (:func:`demo_outage`): the book of the day's
busiest product is silenced for 20 minutes of market time (``paper.feed_faults``), from 100 minutes before its
gate closure. It is a function of the feed alone, so two runs inject the same outage; the summary says which
outage and what access did (:func:`outage_effect`, from the features and events tables).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from cli.trading_day import DayProgress, TradingDay
from connectors.feeds.files import BOOK, TRADE, FeedFrame, json_lines, read_feed, write_feed
from connectors.questdb.sql import QuestDBClient
from paper.feed_faults import Silence, silence
from reports.trading import TradingSummary, event_detail
from wattflow.domain import NS_PER_MINUTE, gate_closure_ns, ns_to_datetime
from wattflow.settings import Settings

DEMO_AREA = "DE-LU"
DEMO_DAY = date(2018, 10, 28)
DEMO_SEED = 7
#: The demo's injected outage: a book silenced this long, from this long before the product's gate closure.
OUTAGE_MIN, OUTAGE_BEFORE_GATE_MIN = 20, 100


@dataclass
class OutageEffect:
    """The injected outage and what market access did over it (from QuestDB after the run)."""

    silence: Silence
    dropped_book_updates: int
    trades: int = 0                     # the product's trades from the silence's start to 10 min after its end
    trades_blind: int = 0               # ... of them with feed access below 0.5
    min_feed_access: float = float("nan")
    feed_gaps: list[dict[str, Any]] = field(default_factory=list)  # FEED_GAP_ENDED details of the product's book
    access_changes: list[tuple[str, str, float]] = field(default_factory=list)  # (kind, time, market access)

    def lines(self) -> list[str]:
        s = self.silence
        start, end = ns_to_datetime(s.start_ns), ns_to_datetime(s.end_ns)
        out = [f"injected outage: the book of {s.product} silenced {start:%H:%M}-{end:%H:%M} UTC "
               f"({OUTAGE_MIN} min of market time, {self.dropped_book_updates} book updates dropped)"]
        gaps = ", ".join(f"{g.get('silent_s', 0) / 60:.1f} min silent (tolerance {g.get('tolerance_s', 0) / 60:.1f} "
                         f"min)" for g in self.feed_gaps) or "none"
        out.append(f"  feed gaps seen (FEED_GAP_ENDED): {gaps}")
        out.append(f"  feed access: {self.trades_blind} of {self.trades} trades of the product below 0.5 "
                   f"(min {self.min_feed_access:.2f}); models scaled confidence and target by it")
        changes = ", ".join(f"{kind} {at} (access {access:.2f})" for kind, at, access in self.access_changes)
        out.append(f"  the engine: {changes or 'no access change'} (no new exposure while below 0.5)")
        return out


def demo_outage(frame: FeedFrame) -> tuple[FeedFrame, OutageEffect]:
    """The frame with the busiest product's book silenced (the product with the most trades between 100 and 60
    minutes before its gate closure; ties: the first), and the outage."""
    keys, trades = frame.key_strings(), frame.event_type == TRADE
    counts = {p: int(((keys == p) & trades & (frame.ts_ns >= gate_closure_ns(p) - OUTAGE_BEFORE_GATE_MIN
                                              * NS_PER_MINUTE)
                      & (frame.ts_ns < gate_closure_ns(p) - 60 * NS_PER_MINUTE)).sum()) for p in frame.products()}
    product = max(counts, key=lambda p: counts[p])
    start = gate_closure_ns(product) - OUTAGE_BEFORE_GATE_MIN * NS_PER_MINUTE
    fault = Silence(product, start, start + OUTAGE_MIN * NS_PER_MINUTE, (BOOK,))
    faulted, dropped = silence(frame, [fault])
    return faulted, OutageEffect(fault, dropped)


def outage_effect(client: QuestDBClient, effect: OutageEffect) -> OutageEffect:
    """What access did over the outage, from the features and events tables (events of the product between the
    silence's start and 30 minutes after its end, each (time, kind) once: two runs store the same events)."""
    s = effect.silence
    stamp = ns_to_datetime
    window = (f"product = '{s.product}' AND ts >= '{stamp(s.start_ns):%Y-%m-%dT%H:%M:%S}Z' AND ts < "
              f"'{stamp(s.end_ns + 10 * NS_PER_MINUTE):%Y-%m-%dT%H:%M:%S}Z'")
    rows = client.query(f"SELECT count() n, sum(CASE WHEN feed_access < 0.5 THEN 1 ELSE 0 END) blind, "
                        f"min(feed_access) low FROM features WHERE {window}")
    if rows:
        effect.trades, effect.trades_blind = int(rows[0]["n"] or 0), int(rows[0]["blind"] or 0)
        effect.min_feed_access = float(rows[0]["low"]) if rows[0]["low"] is not None else float("nan")
    later = (f"product = '{s.product}' AND ts >= '{stamp(s.start_ns):%Y-%m-%dT%H:%M:%S}Z' AND ts < "
             f"'{stamp(s.end_ns + 30 * NS_PER_MINUTE):%Y-%m-%dT%H:%M:%S}Z'")
    seen: set[tuple[str, str]] = set()
    for row in client.query(f"SELECT ts, kind, detail FROM events WHERE {later} AND kind IN ('FEED_GAP_ENDED', "
                            f"'ACCESS_LOST', 'ACCESS_RESTORED') ORDER BY ts"):
        key = (str(row["ts"]), str(row["kind"]))
        if key in seen:
            continue
        seen.add(key)
        detail = event_detail(row["detail"])
        if row["kind"] == "FEED_GAP_ENDED":
            if detail.get("stream") == "book":
                effect.feed_gaps.append(detail)
        else:
            effect.access_changes.append((str(row["kind"]), str(row["ts"])[11:16],
                                          float(detail.get("access", float("nan")))))
    return effect


@dataclass
class DemoReport:
    feed_path: Path
    counts_by_type: dict[str, int]
    bad_messages: int
    day: TradingDay
    stored: dict[str, int] = field(default_factory=dict)
    dead_by_reason: dict[str, int] = field(default_factory=dict)
    queries: list[tuple[str, str, list[dict[str, Any]]]] = field(default_factory=list)
    signals_hash: str = ""
    signals_count: int = 0
    signals_table: list[dict[str, Any]] = field(default_factory=list)
    plot_path: Path | None = None
    trading: TradingSummary | None = None
    trading_plots: list[Path] = field(default_factory=list)
    outage: OutageEffect | None = None
    calibration_plot: Path | None = None


def demo_feed(settings: Settings, *, area: str = DEMO_AREA, day: date = DEMO_DAY, seed: int = DEMO_SEED,
              scale: float = 1.0) -> tuple[Path, FeedFrame]:
    """The simulated day (cached under the state directory: the simulator is deterministic for a seed)."""
    from connectors.feeds.files import day_ahead_feed
    from connectors.feeds.smard import day_ahead_day
    from paper.simulator import read_generation, simulate_day

    path = settings.state_dir / "feeds" / f"{area}_{day}_seed{seed}_x{scale:g}.parquet"
    if path.exists():
        return path, _tagged(read_feed(path), seed, scale)
    intraday = simulate_day(area, day, seed, scale, generation=read_generation())
    frame = _tagged(FeedFrame.concat([day_ahead_feed(day_ahead_day(None, area, day)), intraday]).sort_by_time(),
                    seed, scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_feed(frame, path)
    return path, frame


def demo_source(seed: int = DEMO_SEED, scale: float = 1.0) -> str:
    """The source tag of the demo's simulated events: days simulated at other scales or seeds share the
    products and times, and the tag keeps them apart in the store."""
    return f"sim-s{seed}-x{scale:g}"


def _tagged(frame: FeedFrame, seed: int, scale: float) -> FeedFrame:
    import dataclasses

    sources = tuple(demo_source(seed, scale) if name.startswith("sim") else name for name in frame.sources)
    return dataclasses.replace(frame, sources=sources)


def bad_messages(frame: FeedFrame) -> list[bytes]:
    """A handful of malformed messages, of the kinds real feeds send, to show the dead-letter path."""
    import numpy as np

    first_trade = np.flatnonzero(frame.event_type == 0)[:1]
    first = orjson.loads(json_lines(frame.take(first_trade))[0])
    closed = {**first, "ts_ns": first["ts_ns"] + 3 * 86_400 * 10**9, "trade_id": 1}
    return [
        b'{"type":"trade","ts_ns":15406',  # truncated
        b"\x00\x01binary junk",
        orjson.dumps({**first, "price_eur_per_mwh": "45.12", "trade_id": 2}),  # a string price
        orjson.dumps({**first, "price_eur_per_mwh": 12_345.0, "trade_id": 3}),  # beyond +9999
        orjson.dumps({**first, "quantity_mw": 0.05, "trade_id": 4}),  # below the 0.1 MW step
        orjson.dumps({**first, "product": "DE-LU:2018-10-28T01:10Z:PT15M", "trade_id": 5}),  # no such product
        orjson.dumps(closed),  # after gate closure
        orjson.dumps({"type": "quote", "ts_ns": first["ts_ns"]}),  # unknown type
    ]


def demo_speed(frame: FeedFrame, minutes: float) -> float:
    """The replay speed that plays the feed's market time in ``minutes`` of wall time."""
    span_s = (int(frame.ts_ns.max()) - int(frame.ts_ns.min())) / 1e9
    return max(span_s / (minutes * 60.0), 1.0)


def run_demo(settings: Settings, *, scale: float = 1.0, minutes: float = 1.5,
             progress: Callable[[DayProgress], None] | None = None, status: Any = None) -> DemoReport:
    from cli.trading_day import run_trading_day
    from connectors.questdb.tables import ensure_tables
    from reports.signals import area_and_span, busiest_products, plot_signals, signals_by_product, signals_digest
    from reports.trading import trading_summary
    from reports.trading_plots import trading_plots

    def say(text: str) -> None:
        if status is not None:
            status(text)

    say("simulating the trading day (cached after the first run)...")
    path, frame = demo_feed(settings, scale=scale)
    frame, outage = demo_outage(frame)
    bad = bad_messages(frame)
    speed = demo_speed(frame, minutes)
    say(f"trading the day live at x{speed:,.0f}: paper venue -> adapter -> Kafka -> trading flow -> venue, "
        "the store flow beside it...")
    client = QuestDBClient(settings.questdb)
    ensure_tables(client)
    day = run_trading_day(settings, frame, speed=speed, bad=bad, progress=progress)
    run = day.settings

    say("summarising from QuestDB...")
    client.wait_applied(["ticks", "book", "dayahead", "dlq", "features", "signals", "orders", "execution_reports",
                         "positions", "events"])
    report = DemoReport(path, frame.counts_by_type(), len(bad), day, outage=outage)
    span = int(frame.ts_ns.min()), int(frame.ts_ns.max())
    report.signals_hash, report.signals_count = signals_digest(client, DEMO_AREA, span)
    report.signals_table = signals_by_product(client, DEMO_AREA, between_ns=span)
    reports = settings.state_dir / "reports"
    report.plot_path = plot_signals(client, busiest_products(client, DEMO_AREA, between_ns=span),
                                    reports / f"signals_{DEMO_AREA}_{DEMO_DAY}.png")
    where = area_and_span(DEMO_AREA, span)
    # Only the rows this run stored (received after it began): a second run is never judged by the first's rows.
    since = ns_to_datetime(day.started_ns).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for table in ("ticks", "book"):
        report.stored[table] = int(client.scalar(
            f"SELECT count() FROM {table} WHERE {where} AND source = '{demo_source(DEMO_SEED, scale)}' "
            f"AND recv_ts >= '{since}'"))
    report.stored["dayahead"] = int(client.scalar(f"SELECT count() FROM dayahead WHERE area = '{DEMO_AREA}'"))
    report.dead_by_reason = {row["reason"]: int(row["count"]) for row in client.query(
        f"SELECT reason, count() count FROM dlq WHERE topic = '{run.topics.raw}' ORDER BY count DESC")}
    report.queries = [(title, sql, client.query(sql)) for title, sql in example_queries()]
    products = frame.products()
    report.trading = trading_summary(settings, products=products)
    busy = [outage.silence.product, *(row["product"] for row in report.trading.products
                                      if row["orders"] or row["fills"])]
    report.trading_plots = trading_plots(settings, reports, products=products, figures=list(dict.fromkeys(busy))[:4])
    report.outage = outage_effect(client, outage)
    report.calibration_plot = copy_calibration(reports)
    return report


def copy_calibration(reports: Path) -> Path | None:
    """The fill-probability calibration plot (``cli.access_calibration`` makes it; shipped in
    ``reports/results``) copied beside the day's plots; None if it is not there."""
    import shutil

    shipped = Path(__file__).resolve().parent.parent / "reports" / "results" / "access_calibration.png"
    if not shipped.exists():
        return None
    reports.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(shipped, reports / "access_calibration.png"))


def example_queries() -> list[tuple[str, str]]:
    hourly = "DE-LU:2018-10-28T12:00Z:PT60M"
    return [
        ("15-minute OHLC and volume of one hourly product (SAMPLE BY)",
         f"SELECT ts, first(price_eur_per_mwh) open, max(price_eur_per_mwh) high, min(price_eur_per_mwh) low, "
         f"last(price_eur_per_mwh) close, sum(quantity_mw) volume_mw, count() trades FROM ticks "
         f"WHERE product = '{hourly}' SAMPLE BY 15m ALIGN TO CALENDAR"),
        ("last trade of each product (LATEST ON)",
         "SELECT product, ts, price_eur_per_mwh, quantity_mw FROM ticks "
         "LATEST ON ts PARTITION BY product ORDER BY product LIMIT 8"),
        ("volume-weighted price and traded volume per hourly product",
         "SELECT product, sum(price_eur_per_mwh * quantity_mw) / sum(quantity_mw) vwap_eur_per_mwh, "
         "sum(quantity_mw) volume_mw, count() trades FROM ticks WHERE area = 'DE-LU' AND product LIKE '%PT60M' "
         "GROUP BY product ORDER BY product LIMIT 6"),
        ("dead letters with their reason and origin",
         "SELECT origin, reason, left(error, 70) error FROM dlq ORDER BY ts DESC LIMIT 8"),
    ]
