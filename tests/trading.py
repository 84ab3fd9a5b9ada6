"""Shared pieces of the execution tests: a paper venue over a hand-made book, signal records, env for flows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from pydantic import SecretStr

from connectors.feeds.files import write_feed
from connectors.kafka.reader import read_topic
from paper.handmade import BookEvent, TradeEvent, handmade_feed
from paper.server import VenueServer, serve
from wattflow.domain import NS_PER_SECOND, Side, datetime_to_ns, gate_closure_ns
from wattflow.settings import Settings
from wattflow.signals import MARKET_COLUMNS, SignalBatch
from wattflow.stack.process import free_port

if TYPE_CHECKING:
    from connectors.venue.adapter import VenueAdapter

KEY = "DE-LU:2018-10-28T12:00Z:PT60M"
T0 = datetime_to_ns(datetime(2018, 10, 28, 10, 0, tzinfo=UTC))
API, ADMIN = "exec-key", "exec-admin"


def start_venue(directory: Path, products: Sequence[str] = (KEY,), *, depth_mw: float = 30.0) -> VenueServer:
    """A venue whose book shows 49/51 EUR/MWh with ``depth_mw`` on each side of every product, clock at T0 + 1 s;
    one hour later a seller trades through the bids at 45."""
    events: list[BookEvent | TradeEvent] = []
    for product in products:
        events += [BookEvent(T0, product, Side.BUY, 0, 49.0, depth_mw),
                   BookEvent(T0, product, Side.SELL, 0, 51.0, depth_mw)]
    events += [TradeEvent(T0 + 3600 * NS_PER_SECOND, product, Side.SELL, 45.0, 1.0) for product in products]
    path = write_feed(handmade_feed(events), directory / "feed.jsonl")
    server = serve(path, free_port(), API, admin_key=ADMIN, rate_limit_per_s=100_000, background=True)
    server.set_clock(T0 + NS_PER_SECOND)
    return server


def venue_settings(settings: Settings, server: VenueServer, **execution: Any) -> Settings:
    """These settings pointed at ``server``, with execution settings overridden."""
    return settings.model_copy(update={
        "venue": settings.venue.model_copy(update={"port": server.port, "api_key": SecretStr(API), "timeout_s": 1.0}),
        "execution": settings.execution.model_copy(update=execution),
    })


def signals(targets: Sequence[float], *, first_trade: int, gap_s: float = 30, bid: float = 49.0, ask: float = 51.0,
            product: str = KEY, start_ns: int = T0, depth_mw: float = 30.0) -> SignalBatch:
    """One model's signals for ``product``: one row per target, ``gap_s`` apart, over a steady book."""
    n = len(targets)
    ts = start_ns + (np.arange(1, n + 1) * gap_s * NS_PER_SECOND).astype(np.int64)
    close = gate_closure_ns(product)
    market = {"minutes_to_gate_closure": (close - ts) / 60e9, "best_bid_eur_per_mwh": np.full(n, bid),
              "best_ask_eur_per_mwh": np.full(n, ask), "mid_eur_per_mwh": np.full(n, (bid + ask) / 2),
              "bid_depth_near_mid_mw": np.full(n, depth_mw), "ask_depth_near_mid_mw": np.full(n, depth_mw),
              "volume_mw": np.full(n, 100.0), "feed_access": np.full(n, 1.0), "fill_probability": np.full(n, np.nan)}
    assert set(market) == set(MARKET_COLUMNS)
    return SignalBatch(product, "mean_reversion", ts, np.arange(first_trade, first_trade + n, dtype=np.int64),
                       np.sign(np.asarray(targets)).astype(np.int8), np.abs(np.asarray(targets)) / 10,
                       np.asarray(targets, dtype=np.float64), np.full(n, 0.5), np.full(n, 60.0), market)


def orders(settings: Settings, idle_timeout_s: float = 3) -> list[dict[str, Any]]:
    """Every record on the orders topic."""
    return [orjson.loads(item.raw)
            for item in read_topic(settings.kafka, settings.topics.orders, idle_timeout_s=idle_timeout_s)]


def acks_at_venue(server: VenueServer) -> list[str]:
    """Client order ids the venue created an order for (one ack each: a replayed id makes none)."""
    with server.lock:
        return [r.client_order_id for r in server.exchange.reports if r.kind == "ack"]


@contextmanager
def reports_adapter(settings: Settings) -> Iterator[VenueAdapter]:
    """The feed adapter's reports stream (the venue's execution reports into Kafka), as in production."""
    from connectors.venue.adapter import VenueAdapter

    adapter = VenueAdapter(settings, market=False, reports=True, api_key=API)
    adapter.start()
    try:
        yield adapter
    finally:
        adapter.stop()
        adapter.join(30)


def keyed_signals(settings: Settings) -> tuple[dict[tuple[Any, ...], tuple[Any, ...]], int]:
    """Every signal on the settings' signals topic: (product, model, ts, trade id) -> every other field of the
    row (direction, strength, target, confidence, horizon, the market snapshot; NaN as "nan" so that equal rows
    compare equal), and how many rows were read in all. A key read twice with different fields fails here: an
    at-least-once replay may repeat a row, never change it. Keyed, so a lost row is a missing key and a made-up
    one an extra key (never a set of hashes, which would hide both)."""
    import math

    def plain(value: Any) -> Any:
        return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else value

    out: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    rows = 0
    # The reader yields a columnar message once per row: one per (partition, offset) is the message itself.
    messages = {(item.partition, item.offset): item.raw
                for item in read_topic(settings.kafka, settings.topics.signals, idle_timeout_s=3)}
    for raw in messages.values():
        message = orjson.loads(raw)
        columns, market = message["columns"], message.get("market") or {}
        names = [name for name in columns if name not in ("ts_ns", "trade_id")]
        for i, (ts, trade) in enumerate(zip(columns["ts_ns"], columns["trade_id"], strict=True)):
            rows += 1
            key = (message["product"], message["model"], ts, trade)
            value = (*(plain(columns[name][i]) for name in names),
                     *(plain(market[name][i]) for name in sorted(market)))
            assert out.setdefault(key, value) == value, f"signal {key} read twice with different fields"
    return out, rows


def keyed_differences(expected: dict[Any, Any], got: dict[Any, Any]) -> tuple[list[Any], list[Any], list[Any]]:
    """(missing keys, extra keys, keys whose fields differ), each sorted."""
    missing = sorted(set(expected) - set(got), key=repr)
    extra = sorted(set(got) - set(expected), key=repr)
    changed = sorted((key for key in expected.keys() & got.keys() if expected[key] != got[key]), key=repr)
    return missing, extra, changed

