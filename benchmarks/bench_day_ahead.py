"""Day-ahead prices of an area nobody trades, through the trading flow's partition step and the signals flow's
product step: time, feature states made and snapshot size, against the way it was done before (a feature state
for every product a price covers), in the same run.

A recorded feed carries day-ahead prices of every hour of every area it covers; most of the products they cover
never trade. ``--prices`` hourly prices of one area (default 87,838: ten years), fed in batches of 5,000.

    python -m benchmarks.bench_day_ahead [--prices 87838] [--baseline-prices 20000]
"""

from __future__ import annotations

import argparse
import pickle
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np

from benchmarks.common import console, machine_info, print_table, write_results
from operators.features import FeatureSettings, ProductFeatures
from operators.models import ModelSettings, load_models
from operators.signals import _FeatureLogic, _PartitionLogic, by_product
from wattflow.batches import BookBatch, DayAheadBatch, IngestBatch, TickBatch

BATCH = 5_000


def prices(n: int) -> DayAheadBatch:
    start = int(datetime(2015, 1, 1, tzinfo=UTC).timestamp()) * 10**9
    hours = np.arange(n, dtype=np.int64) * 3600 * 10**9
    return DayAheadBatch(ts_ns=hours + start - 86_400 * 10**9, recv_ns=hours + start,
                         area=np.array(["FR"] * n, dtype=object), delivery_start_ns=hours + start,
                         duration_min=np.full(n, 60, dtype=np.int64), price_eur_per_mwh=np.full(n, 40.0),
                         source=np.array(["smard"] * n, dtype=object), seq=np.arange(n, dtype=np.int64),
                         offset=np.arange(n, dtype=np.int64), index=np.zeros(n, dtype=np.int64),
                         wire=np.array([None] * n, dtype=object))


def batches(n: int) -> list[IngestBatch]:
    every = prices(n)
    return [IngestBatch(TickBatch.empty(), BookBatch.empty(), every.take(np.arange(c, min(n, c + BATCH))), [],
                        "md.raw", 0) for c in range(0, n, BATCH)]


def trading_flow(n: int) -> dict[str, Any]:
    """The partition step as it is: prices kept by delivery period."""
    logic = _PartitionLogic(None, FeatureSettings(in_log_order=True),
                            load_models(["mean_reversion", "imbalance_momentum"], ModelSettings()), (15, 60))
    started = time.perf_counter()
    for batch in batches(n):
        logic.on_item(batch)
    seconds = time.perf_counter() - started
    blob = pickle.dumps(logic.snapshot())
    return {"prices": n, "seconds": seconds, "states": len(logic.state.products), "snapshot_mb": len(blob) / 1e6}


def signals_flow(n: int) -> dict[str, Any]:
    """The signals flow's keyed step as it is: a bare price per product until it trades."""
    settings = FeatureSettings()
    logics: dict[str, _FeatureLogic] = {}
    started = time.perf_counter()
    for batch in batches(n):
        for key, events in by_product(batch, (15, 60)):
            logic = logics.get(key) or logics.setdefault(key, _FeatureLogic(None, settings))
            logic.on_item(events)
    seconds = time.perf_counter() - started
    blob = pickle.dumps([logic.snapshot() for logic in logics.values()])
    states = sum(1 for logic in logics.values() if logic.state is not None)
    return {"prices": n, "seconds": seconds, "states": states, "snapshot_mb": len(blob) / 1e6}


def before(n: int) -> dict[str, Any]:
    """Baseline, the way it was done before: a feature state for every product a price covers."""
    settings = FeatureSettings(in_log_order=True)
    states: dict[str, ProductFeatures] = {}
    started = time.perf_counter()
    for batch in batches(n):
        for key, events in by_product(batch, (15, 60)):
            state = states.get(key) or states.setdefault(key, ProductFeatures.new(key, settings))
            state.on_events(events)
    seconds = time.perf_counter() - started
    blob = pickle.dumps(states)
    return {"prices": n, "seconds": seconds, "states": len(states), "snapshot_mb": len(blob) / 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prices", type=int, default=87_838)
    parser.add_argument("--baseline-prices", type=int, default=20_000,
                        help="prices for the baseline (it grows linearly; the full count takes minutes)")
    args = parser.parse_args(argv)
    machine = machine_info()
    rows = {"trading flow (prices by period)": trading_flow(args.prices),
            "signals flow (bare price per product)": signals_flow(args.prices),
            "before: a state per covered product": before(args.baseline_prices)}
    for row in rows.values():
        row["us_per_price"] = row["seconds"] / row["prices"] * 1e6
    print_table("day-ahead prices of an untraded area", ["variant", "prices", "s", "us/price", "states", "snapshot MB"],
                [[name, r["prices"], r["seconds"], r["us_per_price"], r["states"], r["snapshot_mb"]]
                 for name, r in rows.items()])
    expected_states = {"trading flow (prices by period)": 0, "signals flow (bare price per product)": 0,
                       "before: a state per covered product": args.baseline_prices * 5}
    counted = {name: (r["states"], expected_states[name]) for name, r in rows.items()}
    console.print("states made (made, expected): " + ", ".join(f"{k}: {v}" for k, v in counted.items()))
    write_results("bench_day_ahead", vars(args), rows, machine=machine,
                  notes=["baseline run on fewer prices: its time and snapshot grow linearly with them",
                         f"states made vs expected: {counted}"])
    return 0 if all(made == want for made, want in counted.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
