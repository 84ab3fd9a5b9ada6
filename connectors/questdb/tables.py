"""QuestDB table definitions: WAL tables with DEDUP UPSERT KEYS, created by SQL before any ingestion.

ILP would auto-create a table without dedup; creating them first is what makes a replay or a retry
idempotent. The application only ever appends: it never updates or deletes. Timestamps are TIMESTAMP_NS:
with microsecond TIMESTAMP two events a few ns apart would share a dedup key and one would vanish.
"""

from __future__ import annotations

from connectors.questdb.sql import QuestDBClient
from wattflow.features import FEATURE_NAMES

_FEATURE_COLUMNS = ", ".join(f"{name} DOUBLE" for name in FEATURE_NAMES)

TABLES: dict[str, str] = {
    "ticks": """
        CREATE TABLE IF NOT EXISTS ticks (
            ts TIMESTAMP_NS, product SYMBOL CAPACITY 4096, area SYMBOL, price_eur_per_mwh DOUBLE,
            quantity_mw DOUBLE, side SYMBOL, trade_id LONG, source SYMBOL, seq LONG, recv_ts TIMESTAMP_NS
        ) TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, product, trade_id)""",
    "book": """
        CREATE TABLE IF NOT EXISTS book (
            ts TIMESTAMP_NS, product SYMBOL CAPACITY 4096, area SYMBOL, side SYMBOL, level INT,
            price_eur_per_mwh DOUBLE, quantity_mw DOUBLE, source SYMBOL, seq LONG, recv_ts TIMESTAMP_NS
        ) TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, product, side, level, seq)""",
    "dayahead": """
        CREATE TABLE IF NOT EXISTS dayahead (
            ts TIMESTAMP_NS, area SYMBOL, duration_min INT, price_eur_per_mwh DOUBLE, source SYMBOL,
            published_ts TIMESTAMP_NS
        ) TIMESTAMP(ts) PARTITION BY MONTH WAL DEDUP UPSERT KEYS(ts, area, duration_min)""",
    "features": f"""
        CREATE TABLE IF NOT EXISTS features (
            ts TIMESTAMP_NS, product SYMBOL CAPACITY 4096, area SYMBOL, trade_id LONG, {_FEATURE_COLUMNS}
        ) TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, product, trade_id)""",
    "signals": """
        CREATE TABLE IF NOT EXISTS signals (
            ts TIMESTAMP_NS, product SYMBOL CAPACITY 4096, area SYMBOL, model SYMBOL, trade_id LONG,
            direction INT, strength DOUBLE, target_position_mw DOUBLE, confidence DOUBLE, horizon_s DOUBLE
        ) TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, product, model, trade_id)""",
    "events": """
        CREATE TABLE IF NOT EXISTS events (
            ts TIMESTAMP_NS, kind SYMBOL, source SYMBOL, product SYMBOL, severity SYMBOL, detail VARCHAR,
            event_id LONG
        ) TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, kind, source, product, event_id)""",
    "orders": """
        CREATE TABLE IF NOT EXISTS orders (
            ts TIMESTAMP_NS, product SYMBOL CAPACITY 4096, area SYMBOL, client_order_id VARCHAR, action SYMBOL,
            status SYMBOL, model SYMBOL, side INT, price_eur_per_mwh DOUBLE, quantity_mw DOUBLE, tif SYMBOL,
            urgency DOUBLE, arrival_mid_eur_per_mwh DOUBLE, estimated_slippage_eur_per_mwh DOUBLE,
            signal_ts TIMESTAMP_NS, attempts INT, latency_ns LONG, reason VARCHAR, answered_ts TIMESTAMP_NS
        ) TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, client_order_id, action, status, answered_ts)""",
    "execution_reports": """
        CREATE TABLE IF NOT EXISTS execution_reports (
            ts TIMESTAMP_NS, product SYMBOL CAPACITY 4096, area SYMBOL, client_order_id VARCHAR, exec_id LONG,
            kind SYMBOL, status SYMBOL, side INT, price_eur_per_mwh DOUBLE, last_price_eur_per_mwh DOUBLE,
            last_quantity_mw DOUBLE, cum_quantity_mw DOUBLE, leaves_quantity_mw DOUBLE, liquidity SYMBOL,
            reason SYMBOL, source SYMBOL
        ) TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, client_order_id, exec_id)""",
    "positions": """
        CREATE TABLE IF NOT EXISTS positions (
            ts TIMESTAMP_NS, product SYMBOL CAPACITY 4096, area SYMBOL, position_mw DOUBLE,
            avg_price_eur_per_mwh DOUBLE, mark_eur_per_mwh DOUBLE, realised_pnl_eur DOUBLE,
            unrealised_pnl_eur DOUBLE, pnl_eur DOUBLE, traded_mw DOUBLE, imbalance_exposure_mw DOUBLE,
            gate_closed BOOLEAN, trading_state SYMBOL
        ) TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, product)""",
    "dlq": """
        CREATE TABLE IF NOT EXISTS dlq (
            ts TIMESTAMP_NS, origin SYMBOL, topic SYMBOL, kafka_partition INT, kafka_offset LONG,
            reason SYMBOL, error VARCHAR, payload VARCHAR
        ) TIMESTAMP(ts) PARTITION BY DAY WAL DEDUP UPSERT KEYS(ts, origin)""",
}


#: Columns added to a table after its first version, and its dedup keys now: a table created before gets them
#: from :func:`upgrade_table` (``ALTER TABLE``; rows already stored keep what the old keys made of them).
UPGRADES: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    # One row per command *and outcome*: keyed on (ts, client_order_id, action) only, a later outcome of the same
    # command (BLOCKED, then ACKED when the breaker closes) overwrote the earlier one.
    "orders": ({"answered_ts": "TIMESTAMP_NS"}, ("ts", "client_order_id", "action", "status", "answered_ts")),
}


def ensure_tables(client: QuestDBClient, names: list[str] | None = None) -> list[str]:
    """Create the tables that do not exist yet, and upgrade those that do (:data:`UPGRADES`); returns the names
    created."""
    created = []
    for name in names or list(TABLES):
        if not client.table_exists(name):
            client.execute(TABLES[name])
            created.append(name)
        elif name in UPGRADES:
            upgrade_table(client, name)
    return created


def upgrade_table(client: QuestDBClient, name: str, table: str | None = None) -> list[str]:
    """Give an existing table (``table``, default ``name``) the columns and dedup keys of :data:`UPGRADES`
    ``[name]``; returns the statements run (none when it has them already)."""
    table = table or name
    columns, keys = UPGRADES[name]
    have = {row["column"]: row for row in client.query(f"SELECT * FROM table_columns('{table}')")}
    statements = [f"ALTER TABLE {table} ADD COLUMN {column} {kind}"
                  for column, kind in columns.items() if column not in have]
    if statements or {column for column, row in have.items() if row["upsertKey"]} != set(keys):
        statements.append(f"ALTER TABLE {table} DEDUP ENABLE UPSERT KEYS({', '.join(keys)})")
    for statement in statements:
        client.execute(statement)
    return statements
