"""Real records of every derived topic, for the store tests, and the rows each table must hold for them.

Features and signals are computed by the real operators (``operators.features``, the real models) on a small
feed; order records, execution reports, events, positions and dead letters are made as the flows make them. The
expected rows are written out here from the records themselves (never from the code under test), in the shape
:func:`tests.helpers.fetch` gives rows back: times as integer ns (``cast(ts as long)``), NaN as None.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from connectors.wire.market import decode_batch
from operators.features import FeatureSettings, ProductFeatures
from operators.models import ModelSettings, load_models
from operators.signals import by_product
from operators.validate import ProductWindows, validate_batch
from tests.helpers import OPEN_TS_NS, PRODUCTS, book, nan_as_none, trade
from wattflow.batches import DeadLetter, RawBatch
from wattflow.enums import CancelReason, OrderAction
from wattflow.errors import Origin
from wattflow.events import Event
from wattflow.features import FEATURE_NAMES, FeatureBatch
from wattflow.orders import OrderRecord
from wattflow.positions import TOTAL, PositionRow
from wattflow.signals import FULL_ACCESS, SignalBatch


def area(product: str) -> str:
    return product.split(":", 1)[0] if product else ""


# --- features and signals ---------------------------------------------------------------------------------------


def feature_batches(first_trade_id: int, trades: int = 400, source: str = "store-test") -> list[FeatureBatch]:
    """Features of ``trades`` trades over the helper products, by the real feature operators: trades with ids from
    ``first_trade_id``, book updates before some of them, no day-ahead price (so those columns are NaN) and the
    book still empty at a product's first trades (NaN too)."""
    values = []
    for i in range(trades):
        if i % 3 == 0:
            values.append(book(i, source, level=i % 4))
        price = round(-20.0 + (i * 37 % 900) / 10, 2)  # negative prices too
        values.append(trade(i, source, trade_id=first_trade_id + i, price=price, quantity=0.1 * (1 + i % 7)))
    raw = RawBatch("raw", 0, values, np.arange(len(values), dtype=np.int64),
                   np.full(len(values), OPEN_TS_NS, dtype=np.int64))
    batch = validate_batch(decode_batch(raw), ProductWindows())
    assert not batch.dead, [d.reason for d in batch.dead]
    states: dict[str, ProductFeatures] = {}
    out: list[FeatureBatch] = []
    for product, events in by_product(batch):
        state = states.setdefault(product, ProductFeatures.new(product, FeatureSettings()))
        released = state.on_events(events)
        if released is not None:
            out.append(released)
    for state in states.values():
        released = state.on_end()
        if released is not None:
            out.append(released)
    assert sum(len(b) for b in out) == trades
    return out


def signal_batches(features: Sequence[FeatureBatch]) -> list[SignalBatch]:
    """The real models' signals on these features, and one hand-made batch whose strength, confidence and
    horizon are NaN (the models never emit NaN there, the table must still keep it as NULL)."""
    models = load_models(["mean_reversion", "imbalance_momentum"], ModelSettings())
    out = [model.signals(batch, FULL_ACCESS) for batch in features for model in models]
    first = features[0]
    n = min(5, len(first))
    nan = np.full(n, np.nan)
    out.append(SignalBatch(first.product, "nan_model", first.ts_ns[:n].copy(), first.trade_id[:n].copy(),
                           np.array([1, -1, 0, 1, -1][:n], dtype=np.int8), nan.copy(), np.linspace(-2.5, 2.5, n),
                           nan.copy(), nan.copy(), {"mid_eur_per_mwh": np.array([np.nan, 1.5, -3.25, 0.0, 2.0][:n])}))
    return out


def expected_feature_rows(batches: Sequence[FeatureBatch]) -> list[tuple[Any, ...]]:
    """``ts, product, area, trade_id, <every feature>`` per trade."""
    rows = []
    for b in batches:
        for i in range(len(b)):
            rows.append((int(b.ts_ns[i]), b.product, area(b.product), int(b.trade_id[i]),
                         *(nan_as_none(float(b.values[k][i])) for k in range(len(FEATURE_NAMES)))))
    return rows


FEATURE_SQL = ("SELECT cast(ts as long), product, area, trade_id, " + ", ".join(FEATURE_NAMES)
               + " FROM features WHERE trade_id BETWEEN {low} AND {high}")


def expected_signal_rows(batches: Sequence[SignalBatch]) -> list[tuple[Any, ...]]:
    rows = []
    for b in batches:
        for i in range(len(b)):
            rows.append((int(b.ts_ns[i]), b.product, area(b.product), b.model, int(b.trade_id[i]),
                         int(b.direction[i]), nan_as_none(float(b.strength[i])),
                         nan_as_none(float(b.target_position_mw[i])), nan_as_none(float(b.confidence[i])),
                         nan_as_none(float(b.horizon_s[i]))))
    return rows


SIGNAL_SQL = ("SELECT cast(ts as long), product, area, model, trade_id, direction, strength, target_position_mw, "
              "confidence, horizon_s FROM signals WHERE trade_id BETWEEN {low} AND {high}")


# --- orders, reports, events, positions, dead letters -----------------------------------------------------------


def order_records(t0: int, tag: str) -> list[OrderRecord]:
    """One command's outcomes as the order sink records them: submitted while the breaker was open (BLOCKED), then
    acknowledged when it closed (same decision time, same id, same action: two rows); an UNKNOWN then RESENT
    order; a cancel; a kill-switch cancel-all; an order never sent (no answer time: NULL); NaN where the record
    has no price."""
    product = PRODUCTS[0]
    blocked = OrderRecord(t0, product, f"{tag}-1", OrderAction.SUBMIT, "BLOCKED", "mean_reversion", 1, 45.5, 1.2,
                          "GTC", 0.25, 45.0, 0.5, t0 - 1_000, 1, 0, "", t0 + 10, t0 + 1_000)
    acked = OrderRecord(t0, product, f"{tag}-1", OrderAction.SUBMIT, "ACKED", "mean_reversion", 1, 45.5, 1.2,
                        "GTC", 0.25, 45.0, 0.5, t0 - 1_000, 1, 2_000_000, "", t0 + 10, t0 + 2_000_010)
    unknown = OrderRecord(t0 + 5, PRODUCTS[1], f"{tag}-2", OrderAction.SUBMIT, "UNKNOWN", "imbalance_momentum", -1,
                          -12.25, 0.4, "IOC", 0.9, -12.0, -0.25, t0 - 5, 4, 900, "TIMEOUT", t0 + 6, t0 + 7_000)
    resent = OrderRecord(0, PRODUCTS[1], f"{tag}-2", OrderAction.RESUBMIT, "RESENT", attempts=1,
                         answered_wall_ns=t0 + 9_000)
    cancel = OrderRecord(t0 + 20, PRODUCTS[0], f"{tag}-1", OrderAction.CANCEL, "CANCELLED",
                         reason=CancelReason.REPRICE, answered_wall_ns=t0 + 21_000)
    cancel_all = OrderRecord(t0 + 30, "", "*", OrderAction.CANCEL_ALL, "CANCELLED_2", reason=CancelReason.HALTED,
                             answered_wall_ns=t0 + 31_000)
    not_sent = OrderRecord(t0 + 25, PRODUCTS[2], f"{tag}-3", OrderAction.SUBMIT, "NOT_SENT", "mean_reversion", 1,
                           50.0, 2.0, "GTC", 0.1, 49.5, 0.5, t0 + 24, reason="KILL_SWITCH_HALTED")
    return [blocked, acked, unknown, resent, cancel, cancel_all, not_sent]


def expected_order_rows(records: Sequence[OrderRecord]) -> list[tuple[Any, ...]]:
    return [(r.ts_ns or r.answered_wall_ns, r.product, area(r.product), r.client_order_id, str(r.action), r.status,
             r.model, r.side, nan_as_none(r.price_eur_per_mwh), nan_as_none(r.quantity_mw), r.tif,
             nan_as_none(r.urgency), nan_as_none(r.arrival_mid_eur_per_mwh),
             nan_as_none(r.estimated_slippage_eur_per_mwh), r.signal_ts_ns, r.attempts, r.latency_ns, str(r.reason),
             r.answered_wall_ns or None) for r in records]


ORDER_SQL = ("SELECT cast(ts as long), product, area, client_order_id, action, status, model, side, price_eur_per_mwh, "
             "quantity_mw, tif, urgency, arrival_mid_eur_per_mwh, estimated_slippage_eur_per_mwh, "
             "cast(signal_ts as long), attempts, latency_ns, reason, cast(answered_ts as long) FROM orders "
             "WHERE ts BETWEEN {low} AND {high}")


def reports(t0: int, tag: str) -> list[dict[str, Any]]:
    """Execution reports as the venue adapter publishes them (the venue's JSON plus ``"source": "venue"``), and
    one the order sink makes for an order the venue never saw (``exec_id`` 0)."""
    product = PRODUCTS[0]
    base = {"client_order_id": f"{tag}-1", "order_id": 7, "product": product, "side": 1, "price_eur_per_mwh": 45.5,
            "source": "venue"}
    return [
        {**base, "exec_id": 1, "kind": "ack", "ts_ns": t0, "status": "NEW", "last_price_eur_per_mwh": None,
         "last_quantity_mw": 0.0, "cum_quantity_mw": 0.0, "leaves_quantity_mw": 1.2, "liquidity": None,
         "reason": None},
        {**base, "exec_id": 2, "kind": "fill", "ts_ns": t0 + 1_000, "status": "PARTIALLY_FILLED",
         "last_price_eur_per_mwh": 45.5, "last_quantity_mw": 0.7, "cum_quantity_mw": 0.7, "leaves_quantity_mw": 0.5,
         "liquidity": "MAKER", "reason": None},
        {**base, "exec_id": 3, "kind": "fill", "ts_ns": t0 + 1_000, "status": "FILLED",
         "last_price_eur_per_mwh": 45.25, "last_quantity_mw": 0.5, "cum_quantity_mw": 1.2, "leaves_quantity_mw": 0.0,
         "liquidity": "MAKER", "reason": None},
        {"exec_id": 0, "kind": "cancel", "ts_ns": t0 + 2_000, "client_order_id": f"{tag}-3", "product": PRODUCTS[2],
         "side": 1, "status": "CANCELLED", "last_quantity_mw": 0.0, "reason": "CANCELLED_UNSENT",
         "source": "order_sink"},
    ]


def expected_report_rows(items: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    def get(r: dict[str, Any], name: str, default: Any = None) -> Any:
        return default if r.get(name) is None else r[name]

    return [(r["ts_ns"], r["product"], area(r["product"]), r["client_order_id"], get(r, "exec_id", 0),
             get(r, "kind", ""), get(r, "status", ""), get(r, "side", 0), get(r, "price_eur_per_mwh"),
             get(r, "last_price_eur_per_mwh"), get(r, "last_quantity_mw", 0.0), get(r, "cum_quantity_mw", 0.0),
             get(r, "leaves_quantity_mw", 0.0), get(r, "liquidity", ""), get(r, "reason", ""),
             get(r, "source", "venue")) for r in items]


REPORT_SQL = ("SELECT cast(ts as long), product, area, client_order_id, exec_id, kind, status, side, "
              "price_eur_per_mwh, last_price_eur_per_mwh, last_quantity_mw, cum_quantity_mw, leaves_quantity_mw, "
              "liquidity, reason, source FROM execution_reports WHERE ts BETWEEN {low} AND {high}")


def events(t0: int) -> list[tuple[Event, str]]:
    """Events and the component that recorded each: two of one kind at one moment with different details, the
    same event recorded by two components, a detail with NaN and nested values."""
    risk = {"reason": "MAX_TOTAL_POSITION", "limit_mw": 100.0, "position_mw": 99.5}
    return [
        (Event(t0, "RISK_DENIED", PRODUCTS[0], "WARNING", risk), "execution"),
        (Event(t0, "RISK_DENIED", PRODUCTS[0], "WARNING", {**risk, "position_mw": 101.0}), "execution"),
        (Event(t0, "RISK_DENIED", PRODUCTS[0], "WARNING", risk), "trading"),
        (Event(t0 + 1, "BREAKER_OPEN", "", "WARNING", {"failures": 5, "nested": {"a": [1, 2.5, None]},
                                                      "ratio": float("nan")}), "order_sink"),
        (Event(t0 + 2, "venue_stream_disconnected", "", "INFO", {"stream": "market", "resume_from": 42}),
         "venue_adapter.market"),
    ]


EVENT_SQL = ("SELECT cast(ts as long), kind, source, product, severity, detail FROM events "
             "WHERE ts BETWEEN {low} AND {high}")


def expected_event_rows(items: Sequence[tuple[Event, str]]) -> list[tuple[Any, ...]]:
    """The detail column holds the detail as JSON with sorted keys (NaN as null): compared as parsed JSON."""
    import orjson

    return [(e.ts_ns, e.kind, source, e.product, e.severity,
             orjson.loads(orjson.dumps(e.detail, option=orjson.OPT_SORT_KEYS)).__repr__()) for e, source in items]


def positions(t0: int) -> list[PositionRow]:
    """Position rows: a long position, a flat one (average price and mark unknown: NaN), the account total."""
    return [
        PositionRow(t0, PRODUCTS[0], 1.2, 45.4, 46.0, 0.0, 0.72, 0.72, 1.2, 1.2, False, "ACTIVE"),
        PositionRow(t0, PRODUCTS[1], 0.0, float("nan"), float("nan"), -3.5, 0.0, -3.5, 0.8, 0.0, True, "ACTIVE"),
        PositionRow(t0, TOTAL, 1.2, float("nan"), float("nan"), -3.5, 0.72, -2.78, 2.0, 1.2, False, "ACTIVE"),
        PositionRow(t0 + 1_000, PRODUCTS[0], 0.0, float("nan"), 46.5, 1.32, 0.0, 1.32, 2.4, 0.0, False, "HALTED"),
    ]


def expected_position_rows(rows: Sequence[PositionRow]) -> list[tuple[Any, ...]]:
    return [(r.ts_ns, r.product, "ALL" if r.product == TOTAL else area(r.product), r.position_mw,
             nan_as_none(r.avg_price_eur_per_mwh), nan_as_none(r.mark_eur_per_mwh), r.realised_pnl_eur,
             r.unrealised_pnl_eur, r.pnl_eur, r.traded_mw, r.imbalance_exposure_mw, r.gate_closed, r.trading_state)
            for r in rows]


POSITION_SQL = ("SELECT cast(ts as long), product, area, position_mw, avg_price_eur_per_mwh, mark_eur_per_mwh, "
                "realised_pnl_eur, unrealised_pnl_eur, pnl_eur, traded_mw, imbalance_exposure_mw, gate_closed, "
                "trading_state FROM positions WHERE ts BETWEEN {low} AND {high}")


def dead_letters(t0: int, topics: Sequence[str]) -> list[DeadLetter]:
    """Dead letters other flows publish: a signals message the execution flow could not read, an event inside a
    packed clean-topic message, a file line."""
    signals_topic, ticks_topic = topics
    return [
        DeadLetter(t0, Origin(signals_topic, 1, 17), "BAD_SIGNALS_MESSAGE", "KeyError: 'columns'", b'{"product":1}'),
        DeadLetter(t0 + 1_000_000, Origin(ticks_topic, 0, 5, index=3), "WRONG_TYPE", "Expected `int`",
                   b'{"type":"trade","ts_ns":"x"}'),
        DeadLetter(t0 + 2_000_000, Origin(file=f"/feeds/{signals_topic}.jsonl", line=12), "MALFORMED_JSON",
                   "unexpected character", b"\xff\xfe not utf-8"),
    ]


def expected_dead_letter_rows(letters: Sequence[DeadLetter]) -> list[tuple[Any, ...]]:
    return [(d.ts_ns, str(d.origin), d.origin.topic or "",
             -1 if d.origin.partition is None else d.origin.partition,
             -1 if d.origin.offset is None else d.origin.offset, d.reason, d.error,
             d.payload.decode("utf-8", errors="replace")) for d in letters]


DLQ_SQL = ("SELECT cast(ts as long), origin, topic, kafka_partition, kafka_offset, reason, error, payload FROM dlq "
           "WHERE {where}")
