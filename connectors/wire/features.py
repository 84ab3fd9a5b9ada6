"""The ``features`` topic's format: ``{"product", "kind": "features", "columns": {name: [...]}}``."""

from __future__ import annotations

import orjson

from connectors.kafka.sink import KafkaRecords
from connectors.wire.columns import chunks
from wattflow.features import FEATURE_NAMES, FeatureBatch


def feature_records(features: FeatureBatch, topic: str) -> KafkaRecords:
    """Columnar messages per product and batch, ``{"product", "kind": "features", "columns": {...}}``, at most
    ``MAX_ROWS_PER_MESSAGE`` rows each (so no message nears Kafka's 1 MB limit, whatever the batch)."""
    keys, values, stamps = [], [], []
    for part in chunks(len(features.ts_ns)):
        columns = {"ts_ns": features.ts_ns[part], "trade_id": features.trade_id[part],
                   **{name: features.values[k][part] for k, name in enumerate(FEATURE_NAMES)}}
        values.append(orjson.dumps({"product": features.product, "kind": "features", "columns": columns},
                                   option=orjson.OPT_SERIALIZE_NUMPY))
        keys.append(features.product)
        stamps.append(int(features.ts_ns[part][-1]) // 1_000_000)
    return KafkaRecords(topic, keys, values, stamps)
