"""The ``features`` topic's format, both ways: ``{"product", "kind": "features", "columns": {name: [...]}}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec
import numpy as np
import orjson

from connectors.kafka.sink import KafkaRecords
from connectors.wire.columns import Float, Int64, chunks, float_column, int_column
from wattflow.features import ACCESS_FEATURES, FEATURE_NAMES, FeatureBatch


def feature_records(features: FeatureBatch, topic: str) -> KafkaRecords:
    """Columnar messages per product and batch, ``{"product", "kind": "features", "columns": {...}}``, at most
    ``MAX_ROWS_PER_MESSAGE`` rows each (so no message nears Kafka's 1 MB limit, whatever the batch)."""
    keys, values = [], []
    for part in chunks(len(features.ts_ns)):
        columns = {"ts_ns": features.ts_ns[part], "trade_id": features.trade_id[part],
                   **{name: features.values[k][part] for k, name in enumerate(FEATURE_NAMES)}}
        values.append(orjson.dumps({"product": features.product, "kind": "features", "columns": columns},
                                   option=orjson.OPT_SERIALIZE_NUMPY))
        keys.append(features.product)
    # Stamped with the time they are written (the default), not their event time: a replayed 2018 day
    # stamped in 2018 would be deleted by the broker's retention at its next check. Event time is in the payload.
    return KafkaRecords(topic, keys, values)


#: A message's columns: exactly ts_ns, trade_id and every feature (an unknown or missing column is an error), except
#: the access columns, added later: a message written before them reads them as NaN (not measured).
_Columns: Any = msgspec.defstruct(
    "FeatureColumns",
    [("ts_ns", list[Int64]), ("trade_id", list[Int64]),
     *((name, list[Float]) for name in FEATURE_NAMES if name not in ACCESS_FEATURES),
     *((name, list[Float] | None, None) for name in ACCESS_FEATURES)],
    forbid_unknown_fields=True)
_Message: Any = msgspec.defstruct(
    "FeaturesMessage", [("product", str), ("kind", Literal["features"]), ("columns", _Columns)],
    forbid_unknown_fields=True)
_decoder = msgspec.json.Decoder(_Message)


def decode_features(value: bytes | Mapping[str, Any]) -> FeatureBatch:
    """A ``features`` message back as the :class:`FeatureBatch` it was written from: every value exact, ``null``
    (a NaN) back as NaN. Strict: a missing or unknown column, a wrong type or columns of unequal length raise
    ``ValueError`` (``msgspec.ValidationError`` is one)."""
    message = _decoder.decode(value) if isinstance(value, bytes | bytearray | memoryview) else msgspec.convert(
        value, _Message)
    columns = message.columns
    n = len(columns.ts_ns)
    values = np.empty((len(FEATURE_NAMES), n), dtype=np.float64)
    for k, name in enumerate(FEATURE_NAMES):
        column = getattr(columns, name)
        values[k] = np.nan if column is None else float_column(column, n, name)
    return FeatureBatch(message.product, int_column(columns.ts_ns, n, "ts_ns"),
                        int_column(columns.trade_id, n, "trade_id"), values)
