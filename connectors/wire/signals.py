"""The ``signals`` topic's format, both ways: a :class:`SignalBatch` as columnar messages, and a message back
as the :class:`SignalRow` s execution acts on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from connectors.kafka.sink import KafkaRecords
from connectors.wire.columns import chunks
from wattflow.signals import MARKET_COLUMNS, MarketSnapshot, SignalBatch, SignalRow


def signal_records(signals: SignalBatch, topic: str) -> KafkaRecords:
    """Columnar messages per product, model and batch: ``{"product", "model", "kind": "signals",
    "columns": {...}, "market": {...}}``; ``market`` holds the sizing inputs at each signal (NaN as null). At
    most ``MAX_ROWS_PER_MESSAGE`` rows each."""
    keys, values = [], []
    for part in chunks(len(signals.ts_ns)):
        columns = {"ts_ns": signals.ts_ns[part], "trade_id": signals.trade_id[part],
                   "direction": signals.direction[part], "strength": signals.strength[part],
                   "target_position_mw": signals.target_position_mw[part], "confidence": signals.confidence[part],
                   "horizon_s": signals.horizon_s[part]}
        market = {name: column[part] for name, column in signals.market.items()}
        values.append(orjson.dumps({"product": signals.product, "model": signals.model, "kind": "signals",
                                    "columns": columns, "market": market}, option=orjson.OPT_SERIALIZE_NUMPY))
        keys.append(signals.product)
    # Stamped with the time they are written (the default), not their event time: a replayed 2018 day
    # stamped in 2018 would be deleted by the broker's retention at its next check. Event time is in the payload.
    return KafkaRecords(topic, keys, values)


def signal_rows(message: Mapping[str, Any]) -> list[SignalRow]:
    """The rows of one ``signals`` topic message (written by :func:`signal_records`)."""
    columns, market = message["columns"], message.get("market") or {}
    n = len(columns["ts_ns"])
    # Whole columns to Python floats at once (null -> NaN), then one zip over the rows.
    snapshot = zip(*(np.asarray(market.get(name, [None] * n), dtype=np.float64).tolist() for name in MARKET_COLUMNS),
                   strict=True)
    targets = np.asarray(columns["target_position_mw"], dtype=np.float64).tolist()
    product, model = str(message["product"]), str(message["model"])
    return [SignalRow(product, model, int(ts), int(trade_id), target, MarketSnapshot(*values))
            for ts, trade_id, target, values in zip(columns["ts_ns"], columns["trade_id"], targets, snapshot,
                                                    strict=True)]
