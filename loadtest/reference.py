"""The truth a load test counts against: what the flows must make of the messages sent, computed offline by
the same pure operators (decode, validate, features, models, the engine) under the flows' settings.

* **stored**: every valid event, keyed by its ``seq`` (ticks, book) or its dedup key (day-ahead), and every
  invalid message as a dead letter keyed by its place in the load;
* **orders**: every client order id the engine must send, with the product and the event time of the trade
  that caused it. Fills are not fed back and no limit binds (``processes.FREE_ENGINE``), so each decision
  follows from the raw messages alone; a product's decisions depend on its own messages only, so the
  interleaving of products across partitions does not change them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import orjson

from loadtest.load import Load


@dataclass(frozen=True)
class ExpectedStore:
    ticks_seq: frozenset[int]
    book_seq: frozenset[int]
    dayahead: int  # distinct (ts, area, duration) keys
    dead_rows: frozenset[int]  # indices into the load that must become dead letters
    dead_reasons: dict[str, int]

    @property
    def rows(self) -> int:
        return len(self.ticks_seq) + len(self.book_seq) + self.dayahead


@dataclass(frozen=True)
class ExpectedOrder:
    product: str
    signal_ts_ns: int


def settings_from_env(env: dict[str, str]) -> object:
    from wattflow.settings import Settings

    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return Settings.load(os.devnull)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _validated(load: Load) -> object:
    from connectors.wire.market import decode_batch
    from operators.validate import ProductWindows, validate_batch
    from wattflow.batches import RawBatch

    n = len(load)
    raw = RawBatch("loadtest", 0, list(load.values), np.arange(n, dtype=np.int64), np.zeros(n, np.int64))
    return validate_batch(decode_batch(raw), ProductWindows())


def expected_store(load: Load) -> ExpectedStore:
    batch = _validated(load)
    dead_rows: set[int] = set()
    reasons: dict[str, int] = {}
    for letter in batch.dead:  # type: ignore[attr-defined]
        dead_rows.add(int(letter.origin.offset))
        reasons[letter.reason] = reasons.get(letter.reason, 0) + 1
    ticks: dict[tuple[int, str, int], int] = {}
    book: set[int] = set()
    dayahead: set[tuple[int, str, int]] = set()
    for row in range(len(load)):
        if row in dead_rows:
            continue
        kind = int(load.kind[row])
        if kind == 0:
            ticks[(int(load.ts_ns[row]), str(load.product[row]), int(load.trade_id[row]))] = int(load.seq[row])
        elif kind == 1:
            book.add(int(load.seq[row]))
        elif kind == 2:
            price = orjson.loads(load.values[row])
            dayahead.add((int(price["delivery_start_ns"]), str(price["area"]), int(price["duration_min"])))
    return ExpectedStore(frozenset(ticks.values()), frozenset(book), len(dayahead), frozenset(dead_rows), reasons)


def expected_orders(load: Load, env: dict[str, str], *, in_log_order: bool = True) -> dict[str, ExpectedOrder]:
    """Client order id -> (product, event time of the trade that caused it) for every order the flows must
    send for this load (in send order = each product's log order); features in log order (the trading flow)
    or in event time (the signals flow of the three-flow chain)."""
    from operators.execution import EngineSettings, ExecutionEngine
    from operators.features import FeatureSettings, ProductFeatures
    from operators.models import ModelSettings, load_models
    from operators.signals import by_product, market_step
    from wattflow.orders import Submit

    settings = settings_from_env(env)
    signal_settings = settings.signals  # type: ignore[attr-defined]
    models = load_models(signal_settings.model_names(), ModelSettings(max_position_mw=signal_settings.max_position_mw))
    batch = _validated(load)
    states: dict[str, ProductFeatures] = {}
    features = []
    for key, events in by_product(batch, signal_settings.durations()):  # type: ignore[arg-type]
        state = states.setdefault(key, ProductFeatures.new(key, FeatureSettings(in_log_order=in_log_order)))
        produced = state.on_events(events)
        if produced is not None:
            features.append(produced)
    rows = market_step(features, models).rows
    engine = ExecutionEngine(EngineSettings.from_settings(settings.execution))  # type: ignore[attr-defined]
    out = engine.on_signals(rows)
    return {c.client_order_id: ExpectedOrder(c.plan.product, c.plan.signal_ts_ns) for c in out.commands
            if isinstance(c, Submit)}
