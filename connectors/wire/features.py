"""The ``features`` topic's format: ``{"product", "kind": "features", "columns": {name: [...]}}``."""

from __future__ import annotations

import orjson

from connectors.kafka.sink import KafkaRecords
from connectors.wire.columns import chunks
from wattflow.features import FEATURE_NAMES, FeatureBatch


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
