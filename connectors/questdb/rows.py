"""Batches as QuestDB rows: the column layout of the ``ticks``, ``book``, ``dayahead`` and ``dlq`` tables."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from connectors.questdb.sink import TableRows
from wattflow.batches import BookBatch, DayAheadBatch, DeadLetter, TickBatch
from wattflow.domain import product_area
from wattflow.features import FEATURE_NAMES, FeatureBatch
from wattflow.signals import SignalBatch

_SIDE_CATEGORIES = pd.CategoricalDtype(["SELL", "BUY"])


def _timestamps(ns: np.ndarray) -> np.ndarray:
    return ns.astype(np.int64).view("datetime64[ns]")


def _sides(side: np.ndarray) -> pd.Categorical:
    # -1 -> 0 (SELL), +1 -> 1 (BUY)
    return pd.Categorical.from_codes((side.astype(np.int64) + 1) // 2, dtype=_SIDE_CATEGORIES)


def _products_and_areas(products: np.ndarray) -> tuple[pd.Categorical, pd.Categorical]:
    codes, uniques = pd.factorize(products)
    areas = pd.Categorical([product_area(key) for key in uniques.tolist()])
    area_codes = np.asarray(areas.codes, dtype=np.int64)[codes]
    return (pd.Categorical.from_codes(codes, categories=pd.Index(uniques)),
            pd.Categorical.from_codes(area_codes, categories=areas.categories))


def tick_rows(ticks: TickBatch, table: str = "ticks") -> TableRows:
    product, area = _products_and_areas(ticks.product)
    frame = pd.DataFrame({
        "ts": _timestamps(ticks.ts_ns), "product": product, "area": area,
        "price_eur_per_mwh": ticks.price_eur_per_mwh, "quantity_mw": ticks.quantity_mw,
        "side": _sides(ticks.side), "trade_id": ticks.trade_id, "source": pd.Categorical(ticks.source),
        "seq": ticks.seq, "recv_ts": _timestamps(ticks.recv_ns),
    })
    return TableRows(table, frame, ("product", "area", "side", "source"))


def book_rows(book: BookBatch, table: str = "book") -> TableRows:
    product, area = _products_and_areas(book.product)
    frame = pd.DataFrame({
        "ts": _timestamps(book.ts_ns), "product": product, "area": area, "side": _sides(book.side),
        "level": book.level.astype(np.int32), "price_eur_per_mwh": book.price_eur_per_mwh,
        "quantity_mw": book.quantity_mw, "source": pd.Categorical(book.source), "seq": book.seq,
        "recv_ts": _timestamps(book.recv_ns),
    })
    return TableRows(table, frame, ("product", "area", "side", "source"))


def dayahead_rows(prices: DayAheadBatch, table: str = "dayahead") -> TableRows:
    frame = pd.DataFrame({
        "ts": _timestamps(prices.delivery_start_ns), "area": pd.Categorical(prices.area),
        "duration_min": prices.duration_min.astype(np.int32), "price_eur_per_mwh": prices.price_eur_per_mwh,
        "source": pd.Categorical(prices.source), "published_ts": _timestamps(prices.ts_ns),
    })
    return TableRows(table, frame, ("area", "source"))


def dead_letter_rows(letters: list[DeadLetter], table: str = "dlq") -> TableRows:
    frame = pd.DataFrame({
        "ts": _timestamps(np.array([d.ts_ns for d in letters], dtype=np.int64)),
        "origin": pd.Categorical([str(d.origin) for d in letters]),
        "topic": pd.Categorical([d.origin.topic or "" for d in letters]),
        "kafka_partition": np.array([d.origin.partition if d.origin.partition is not None else -1
                                     for d in letters], dtype=np.int32),
        "kafka_offset": np.array([d.origin.offset if d.origin.offset is not None else -1 for d in letters],
                                 dtype=np.int64),
        "reason": pd.Categorical([d.reason for d in letters]),
        "error": pd.array([d.error for d in letters], dtype="string"),
        "payload": pd.array([d.payload.decode("utf-8", errors="replace")[:4096] for d in letters], dtype="string"),
    })
    return TableRows(table, frame, ("origin", "topic", "reason"))


def _repeated(values: list[str], counts: list[int]) -> pd.Categorical:
    """``values[k]`` repeated ``counts[k]`` times, as a categorical (a SYMBOL column)."""
    codes, uniques = pd.factorize(pd.Index(values))
    return pd.Categorical.from_codes(np.repeat(codes, counts), categories=pd.Index(uniques))


def feature_rows(features: FeatureBatch | Sequence[FeatureBatch], table: str = "features") -> TableRows:
    """One row per trade: the wide feature table (one DOUBLE column per feature); one frame for many batches."""
    batches = [features] if isinstance(features, FeatureBatch) else list(features)
    products, counts = [b.product for b in batches], [len(b) for b in batches]
    values = (np.concatenate([b.values for b in batches], axis=1) if batches
              else np.empty((len(FEATURE_NAMES), 0), dtype=np.float64))
    frame = pd.DataFrame({
        "ts": _timestamps(_concat([b.ts_ns for b in batches], np.int64)),
        "product": _repeated(products, counts),
        "area": _repeated([product_area(p) for p in products], counts),
        "trade_id": _concat([b.trade_id for b in batches], np.int64),
        **{name: values[k] for k, name in enumerate(FEATURE_NAMES)},
    })
    return TableRows(table, frame, ("product", "area"))


def signal_rows(signals: SignalBatch | Sequence[SignalBatch], table: str = "signals") -> TableRows:
    """One row per trade and model; one frame for many batches."""
    batches = [signals] if isinstance(signals, SignalBatch) else list(signals)
    products, counts = [b.product for b in batches], [len(b) for b in batches]

    def floats(name: str) -> np.ndarray:
        return _concat([getattr(b, name) for b in batches], np.float64)

    frame = pd.DataFrame({
        "ts": _timestamps(_concat([b.ts_ns for b in batches], np.int64)),
        "product": _repeated(products, counts),
        "area": _repeated([product_area(p) for p in products], counts),
        "model": _repeated([b.model for b in batches], counts),
        "trade_id": _concat([b.trade_id for b in batches], np.int64),
        "direction": _concat([b.direction for b in batches], np.int8).astype(np.int32),
        "strength": floats("strength"), "target_position_mw": floats("target_position_mw"),
        "confidence": floats("confidence"), "horizon_s": floats("horizon_s"),
    })
    return TableRows(table, frame, ("product", "area", "model"))


def _concat(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.empty(0, dtype=dtype)
