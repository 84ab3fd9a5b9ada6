"""The store flow against the real servers: every derived topic into its table exactly, dead letters once.

Every check compares the rows a table holds with the rows expected from the messages the test produced (keyed,
content and all, each row counted: :func:`tests.helpers.keyed_diff`), never a count against a count. Each check
was shown red once by hand, by changing the expected rows (the test input) as each docstring says.
"""

from __future__ import annotations

import subprocess
from typing import Any

import orjson
import pytest

from connectors.kafka.reader import read_topic
from connectors.questdb.sql import QuestDBClient
from connectors.questdb.tables import UPGRADES, upgrade_table
from connectors.wire.dead_letters import dead_letter_records
from connectors.wire.events import encode_event
from connectors.wire.features import feature_records
from connectors.wire.orders import encode_order_record
from connectors.wire.positions import encode_position
from connectors.wire.signals import signal_records
from tests import store_data as data
from tests.helpers import (
    Delivered,
    book,
    fetch,
    flow_env,
    keyed_diff,
    produce,
    produce_with_origins,
    python,
    run_store,
    trade,
    wal_applied,
    with_topics,
)
from wattflow.batches import DeadLetter
from wattflow.errors import Origin
from wattflow.settings import Settings

pytestmark = pytest.mark.stack

#: 2031-01-01T00:00Z: each test's execution records live in a window of their own after it.
T_BASE = 1_924_992_000_000_000_000


def _windows(unique: str) -> tuple[int, int]:
    """A trade-id base and a time base of this test's own (so that tests sharing the tables never meet)."""
    n = int(unique[:6], 16) + 1
    return n * 100_000, T_BASE + n * 10_000_000_000


def _event_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Event rows with the detail parsed (compared as JSON, not as text)."""
    return [(*row[:5], repr(orjson.loads(row[5]))) for row in rows]


def _produce_derived(s: Settings, trade_base: int, t0: int) -> dict[str, list[tuple[Any, ...]]]:
    """Produce known messages on every derived topic with the real encoders; return the rows each table must
    then hold (from the records, not from the code under test)."""
    features = data.feature_batches(trade_base)
    signals = data.signal_batches(features)
    orders = data.order_records(t0, f"o{trade_base}")
    reports = data.reports(t0, f"o{trade_base}")
    events = data.events(t0)
    positions = data.positions(t0)
    letters = data.dead_letters(t0, [s.topics.signals, s.topics.ticks])
    for records in [feature_records(b, s.topics.features) for b in features]:
        produce(s, records.topic, records.values, records.keys)  # type: ignore[arg-type]
    for records in [signal_records(b, s.topics.signals) for b in signals]:
        produce(s, records.topic, records.values, records.keys)  # type: ignore[arg-type]
    produce(s, s.topics.orders, [encode_order_record(r) for r in orders], [r.client_order_id for r in orders])
    produce(s, s.topics.execution_reports, [orjson.dumps(r) for r in reports], [r["client_order_id"] for r in reports])
    produce(s, s.topics.events, [encode_event(e, source) for e, source in events], [e.kind for e, _ in events])
    produce(s, s.topics.positions, [encode_position(r) for r in positions], [r.product for r in positions])
    dlq = dead_letter_records(letters, s.topics.dlq)
    produce(s, dlq.topic, dlq.values, dlq.keys)  # type: ignore[arg-type]
    return {
        "features": data.expected_feature_rows(features), "signals": data.expected_signal_rows(signals),
        "orders": data.expected_order_rows(orders), "execution_reports": data.expected_report_rows(reports),
        "events": data.expected_event_rows(events), "positions": data.expected_position_rows(positions),
        "dlq": data.expected_dead_letter_rows(letters),
    }


def _stored(s: Settings, trade_base: int, t0: int) -> dict[str, list[tuple[Any, ...]]]:
    ids = {"low": trade_base, "high": trade_base + 99_999}
    window = {"low": t0, "high": t0 + 9_999_999_999}
    return {
        "features": fetch(s, data.FEATURE_SQL.format(**ids)), "signals": fetch(s, data.SIGNAL_SQL.format(**ids)),
        "orders": fetch(s, data.ORDER_SQL.format(**window)),
        "execution_reports": fetch(s, data.REPORT_SQL.format(**window)),
        "events": _event_rows(fetch(s, data.EVENT_SQL.format(**window))),
        "positions": fetch(s, data.POSITION_SQL.format(**window)),
        "dlq": fetch(s, data.DLQ_SQL.format(where=f"ts BETWEEN {window['low']} AND {window['high']}")),
    }


def test_every_derived_topic_lands_in_its_table_exactly_and_a_second_run_adds_nothing(
        settings: Settings, unique: str) -> None:
    """Known messages on features, signals, orders, execution.reports, events, positions and dlq (real encoders,
    features and signals from the real operators, NaN in several columns); after the store flow each table holds
    exactly the rows of those messages, content compared; run again over the same topics, still exactly those.

    Red by hand: with one order record (the NOT_SENT one) left out of the expected rows the orders check failed
    with ``missing 0 []; extra 1 [(..., 'NOT_SENT', ...) x1]``; with a position row expected twice the positions
    check failed with ``missing 1 [(...) x1]; extra 0 []``."""
    s = with_topics(settings, unique)
    trade_base, t0 = _windows(unique)
    expected = _produce_derived(s, trade_base, t0)
    assert {table: len(rows) for table, rows in expected.items()} == {
        "features": 400, "signals": 805, "orders": 7, "execution_reports": 4, "events": 5, "positions": 4, "dlq": 3}
    for run in (1, 2):
        run_store(s)
        stored = _stored(s, trade_base, t0)
        for table, rows in expected.items():
            diff = keyed_diff(rows, stored[table])
            assert diff.same, f"run {run}, {table}: {diff}"
        print(f"\nstore run {run}: " + ", ".join(f"{t} {len(r)} rows = expected" for t, r in stored.items()))
    # History of one command: BLOCKED then ACKED are two rows (the orders table's dedup keys before this branch
    # folded them into one).
    statuses = sorted(row[5] for row in stored["orders"] if row[3] == f"o{trade_base}-1" and row[4] == "SUBMIT")
    assert statuses == ["ACKED", "BLOCKED"]


def _malformed(s: Settings) -> dict[str, list[bytes]]:
    """Per derived topic, messages the store cannot store, each broken differently."""
    return {
        s.topics.features: [b'{"product":"DE-LU:2018-10-28T01:00Z:PT15M","kind":"features","columns":{"ts_ns":[1]}}'],
        s.topics.signals: [b'{"product":"p","model":"m","kind":"signals","columns":{"ts_ns":[1],"trade_id":[1],'
                           b'"direction":[5],"strength":[1],"target_position_mw":[1],"confidence":[1],'
                           b'"horizon_s":[1]}}'],
        s.topics.orders: [b'{"ts_ns":1,"product":"p","client_order_id":"c","action":"FLY","status":"ACKED"}'],
        s.topics.execution_reports: [b'{"client_order_id":"c","product":"p","kind":"fill","ts_ns":"soon"}'],
        s.topics.events: [b"\xff\xfe"],
        s.topics.positions: [b'{"ts_ns":1,"product":"p"}'],
        s.topics.dlq: [b"{broken"],
    }


def test_a_malformed_message_on_each_derived_topic_ends_in_the_dlq_table_once_with_its_origin(
        settings: Settings, unique: str) -> None:
    """One malformed message per derived topic (and a good one after it): each is a row of ``dlq`` with reason
    BAD_<KIND>_MESSAGE and its origin ``topic[partition]@offset`` as the broker placed it, exactly once, after one
    run and after a second; each is on the ``dlq`` topic once per run, except the one that came from ``dlq``
    (never published back: no loop); the good messages are stored.

    Red by hand: with the features dead letter expected twice the check failed with it as missing x1."""
    s = with_topics(settings, unique)
    trade_base, t0 = _windows(unique)
    sent: list[tuple[Delivered, str]] = []
    kinds = {s.topics.features: "FEATURES", s.topics.signals: "SIGNALS", s.topics.orders: "ORDERS",
             s.topics.execution_reports: "REPORTS", s.topics.events: "EVENTS", s.topics.positions: "POSITIONS",
             s.topics.dlq: "DLQ"}
    for topic, values in _malformed(s).items():
        sent += [(d, f"BAD_{kinds[topic]}_MESSAGE") for d in produce_with_origins(s, topic, values)]
    good = data.positions(t0)[:1]
    produce(s, s.topics.positions, [encode_position(good[0])])
    expected = [(d.timestamp_ms * 1_000_000, d.origin, d.topic, d.partition, d.offset, reason,
                 d.value.decode("utf-8", errors="replace")) for d, reason in sent]
    where = "topic IN (" + ", ".join(f"'{t}'" for t in kinds) + ")"
    sql = ("SELECT cast(ts as long), origin, topic, kafka_partition, kafka_offset, reason, payload FROM dlq "
           f"WHERE {where}")
    for run in (1, 2):
        run_store(s)
        rows = fetch(s, sql)
        diff = keyed_diff(expected, rows)
        assert diff.same, f"run {run}: {diff}"
        assert all(error for (error,) in fetch(s, f"SELECT error FROM dlq WHERE {where}"))
        published = [e.event for e in read_topic(s.kafka, s.topics.dlq, idle_timeout_s=2)
                     if e.event.get("topic") in kinds]
        want = [d.origin for d, _ in sent if d.topic != s.topics.dlq] * run
        assert keyed_diff(want, [e["origin"] for e in published]).same, run
    assert keyed_diff(data.expected_position_rows(good),
                      fetch(s, data.POSITION_SQL.format(low=t0, high=t0 + 9_999_999_999))).same
    del trade_base


def test_a_raw_dead_letter_is_one_row_whichever_path_writes_it(settings: Settings, unique: str) -> None:
    """The store writes its raw dead letters itself, publishes them on ``dlq``, and reads them back from ``dlq``;
    another flow (the trading flow validating the same raw message) may publish the same dead letter too. The
    ``dlq`` table holds each raw dead letter once, keyed by the broker's origin of the raw message.

    Red by hand: with one raw dead letter expected twice the check failed with it as missing x1."""
    s = with_topics(settings, unique)
    source = f"dl-{unique}"
    bad = [b"not json", trade(90_001, source, price=-10_000.0), trade(90_002, source, quantity=0.05),
           b'{"type":"quote","ts_ns":1}']
    good = [trade(i, source) for i in range(50)]
    delivered = produce_with_origins(s, s.topics.raw, [*good, *bad])
    bad_origins = {d.origin: d for d in delivered if d.value in bad}
    reasons = {b"not json": "MALFORMED_JSON", bad[1]: "PRICE_OUT_OF_RANGE", bad[2]: "QUANTITY_NOT_ON_STEP",
               bad[3]: "UNKNOWN_TYPE"}
    # The same dead letter, as another flow would publish it for the same raw message.
    first = next(iter(bad_origins.values()))
    twin = DeadLetter(first.timestamp_ms * 1_000_000, Origin(first.topic, first.partition, first.offset),
                      reasons[first.value], "another flow's words for it", first.value)
    twin_records = dead_letter_records([twin], s.topics.dlq)
    produce(s, s.topics.dlq, twin_records.values, twin_records.keys)  # type: ignore[arg-type]
    expected = [(d.timestamp_ms * 1_000_000, origin, s.topics.raw, reasons[d.value])
                for origin, d in bad_origins.items()]
    sql = f"SELECT cast(ts as long), origin, topic, reason FROM dlq WHERE topic = '{s.topics.raw}'"
    for run in (1, 2):
        run_store(s)
        diff = keyed_diff(expected, fetch(s, sql))
        assert diff.same, f"run {run}: {diff}"
    ticks = fetch(s, f"SELECT trade_id FROM ticks WHERE source = '{source}'")
    assert keyed_diff([(i,) for i in range(50)], ticks).same


def test_the_store_flow_on_two_processes_stores_everything_once(settings: Settings, unique: str) -> None:
    """`wattflow run store --no-tail --processes 2`: the raw topic and the derived topics split over two Bytewax
    processes (Kafka partitions the unit); every tick, book update and derived record stored once.

    Red by hand: with trade 0 left out of the expected ticks the check failed with ``extra 1 [(0,) x1]``."""
    s = with_topics(settings, unique)
    trade_base, t0 = _windows(unique)
    source = f"pp-{unique}"
    produce(s, s.topics.raw, [trade(i, source) for i in range(3_000)] + [book(i, source, level=i % 5)
                                                                          for i in range(2_000)])
    expected = _produce_derived(s, trade_base, t0)
    ran = subprocess.run([python(), "-m", "cli", "run", "store", "--no-tail", "--processes", "2"],
                         env={**flow_env(s), "COLUMNS": "200"}, capture_output=True, text=True, timeout=300,
                         check=False)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert keyed_diff([(i,) for i in range(3_000)],
                      fetch(s, f"SELECT trade_id FROM ticks WHERE source = '{source}'")).same
    assert keyed_diff([(i, i % 5) for i in range(2_000)],
                      fetch(s, f"SELECT seq, level FROM book WHERE source = '{source}'")).same
    stored = _stored(s, trade_base, t0)
    for table, rows in expected.items():
        diff = keyed_diff(rows, stored[table])
        assert diff.same, f"{table}: {diff}"


def test_an_orders_table_made_before_gets_the_new_column_and_keys(settings: Settings, unique: str) -> None:
    """A stack created before this branch keeps its tables: `stack init` (ensure_tables) adds ``answered_ts``
    to ``orders`` and makes it and ``status`` dedup keys, so that two outcomes of one command are two rows.

    Red by hand: with the ACKED row expected twice the check failed with ``missing 1 [('ACKED', 9) x1]``."""
    client = QuestDBClient(settings.questdb)
    table = f"orders_old_{unique}"
    client.execute(f"""CREATE TABLE {table} (ts TIMESTAMP_NS, product SYMBOL, client_order_id VARCHAR,
                       action SYMBOL, status SYMBOL) TIMESTAMP(ts) PARTITION BY DAY WAL
                       DEDUP UPSERT KEYS(ts, client_order_id, action)""")
    assert upgrade_table(client, "orders", table) != []
    wal_applied(settings)
    columns = {row["column"]: row for row in client.query(f"SELECT * FROM table_columns('{table}')")}
    assert columns["answered_ts"]["type"] == "TIMESTAMP_NS"
    assert {name for name, row in columns.items() if row["upsertKey"]} == set(UPGRADES["orders"][1])
    assert upgrade_table(client, "orders", table) == []  # idempotent
    client.execute(f"INSERT INTO {table} (ts, client_order_id, action, status, answered_ts) VALUES "
                   f"(1, 'c', 'SUBMIT', 'BLOCKED', 5), (1, 'c', 'SUBMIT', 'ACKED', 9), (1, 'c', 'SUBMIT', 'ACKED', 9)")
    rows = fetch(settings, f"SELECT status, cast(answered_ts as long) FROM {table}")
    assert keyed_diff([("BLOCKED", 5), ("ACKED", 9)], rows).same
    client.execute(f"DROP TABLE {table}")


def test_the_orders_table_keeps_every_outcome_of_a_command_as_history(settings: Settings, unique: str) -> None:
    """``orders`` is history, not last state: one row per command *and outcome* (dedup keys ``ts,
    client_order_id, action, status, answered_ts``). One order's SUBMIT blocked (breaker open, no answer), then
    UNKNOWN (answered by a timeout), then ACKED, then its CANCEL confirmed, each a record on the orders topic, go
    through the store flow (twice: a replay adds nothing); the table must hold all four rows, keyed against the
    records sent. Red if a later outcome overwrote an earlier one: shown on this run's own rows with the BLOCKED
    row dropped (what an overwrite leaves) and with a row stored twice."""
    from tests.checks import mutations_go_red
    from wattflow.enums import OrderAction
    from wattflow.orders import OrderRecord

    s = with_topics(settings, unique, partitions=1)
    t0 = 1_987_000_000_000_000_000 + (int(unique[:6], 16) + 1) * 100_000_000_000  # 2032 on: a window of its own
    cid = f"hist-{unique}"
    product = "DE-LU:2018-10-28T12:00Z:PT60M"
    outcomes = [(t0, OrderAction.SUBMIT, "BLOCKED", 0), (t0, OrderAction.SUBMIT, "UNKNOWN", t0 + 5_000),
                (t0, OrderAction.SUBMIT, "ACKED", t0 + 9_000), (t0 + 60_000, OrderAction.CANCEL, "CANCELLED",
                                                                  t0 + 61_000)]
    records = [OrderRecord(ts, product, cid, action, status, "mean_reversion", 1, 49.0, 4.0, "GTC", 0.2, 50.0, -1.0,
                           t0 - 1, 1, 0, "", answered_wall_ns=answered) for ts, action, status, answered in outcomes]
    produce(s, s.topics.orders, [encode_order_record(r) for r in records], [cid] * len(records))
    expected = [(ts, str(action.value), status, answered or None) for ts, action, status, answered in outcomes]
    sql = (f"SELECT cast(ts as long), action, status, cast(answered_ts as long) FROM orders "
           f"WHERE client_order_id = '{cid}'")
    run_store(s)
    first = fetch(s, sql)
    run_store(s)  # a replay of the same records
    stored = fetch(s, sql)
    diff = keyed_diff(expected, stored)
    assert keyed_diff(expected, first).same, f"after the first run: {keyed_diff(expected, first)}"
    assert diff.same, f"after a replay: {diff}"
    red = mutations_go_red(lambda rows: keyed_diff(expected, rows), stored,
                           at=next(i for i, row in enumerate(stored) if row[2] == "BLOCKED"))
    print(f"\norders history: {len(records)} outcomes of one order's commands, {len(stored)} rows: {diff}\n"
          f"orders history red by hand: {red}")
