"""Fit and show the calibration of the predicted fill probability (``operators.access_prediction``).

    python -m cli.access_calibration [--out reports/results]

1. simulates a DE-LU delivery day (2018-10-28, seed 7) with its day-ahead prices and silences the book of every
   fifth product for 20-40 minutes within its last four hours before gate closure (``paper.feed_faults``);
2. computes the trading flow's features on it offline, in log order (``operators.signals``: the same code);
3. labels each trade with what happened next (``fill_labels``) and fits the logistic coefficients
   (``fit_logistic``);
4. replays another day (seed 11, other outages) and compares predicted with observed per decile of prediction:
   ``access_calibration.png`` and ``access_calibration.json`` (coefficients, table, Brier score) in ``--out``.

The coefficients printed are the ones to copy into ``operators.access_prediction.COEFFICIENTS``.
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import date
from pathlib import Path

import numpy as np

from connectors.feeds.files import FeedFrame, day_ahead_feed, json_lines
from connectors.feeds.smard import day_ahead_day
from connectors.wire.market import decode_batch
from operators.access_prediction import (
    COEFFICIENTS,
    access_regressors,
    calibration_table,
    fill_labels,
    fit_logistic,
    logistic,
)
from operators.features import FeatureSettings
from operators.models import ModelSettings, load_models
from operators.signals import _PartitionLogic
from paper.feed_faults import Silence, silence
from paper.simulator import simulate_day
from wattflow.batches import RawBatch
from wattflow.domain import NS_PER_MINUTE, gate_closure_ns
from wattflow.features import FeatureBatch

AREA = "DE-LU"
DAY = date(2018, 10, 28)


def faulted_day(seed: int, *, scale: float = 0.1, every: int = 5) -> tuple[FeedFrame, list[Silence]]:
    """A simulated day and its day-ahead prices, with the book of every ``every``-th product silenced for 20-40
    minutes at a random moment of its last four hours before gate closure (seeded)."""
    frame = FeedFrame.concat([day_ahead_feed(day_ahead_day(None, AREA, DAY)),
                              simulate_day(AREA, DAY, seed=seed, scale=scale, durations_min=(15, 60))])
    rng = random.Random(seed)
    faults = []
    for product in frame.products()[::every]:
        close = gate_closure_ns(product)
        start = close - rng.randint(30, 240) * NS_PER_MINUTE
        faults.append(Silence(product, start, start + rng.randint(20, 40) * NS_PER_MINUTE))
    faulted, _ = silence(frame.sort_by_time(), faults)
    return faulted, faults


def offline_features(frame: FeedFrame, batch_size: int = 5_000) -> list[FeatureBatch]:
    """The trading flow's features of a feed on one partition, in log order, without Kafka (the same operator)."""
    values: list[bytes | None] = list(json_lines(frame))
    logic = _PartitionLogic(None, FeatureSettings(in_log_order=True), load_models([], ModelSettings()), (15, 60))
    out: list[FeatureBatch] = []
    for start in range(0, len(values), batch_size):
        chunk = values[start:start + batch_size]
        batch = decode_batch(RawBatch("calibration", 0, chunk, np.arange(start, start + len(chunk), dtype=np.int64),
                                      np.zeros(len(chunk), dtype=np.int64)))
        steps, _ = logic.on_item(batch)
        for step in steps:
            out += step.features
    return out


def sample(features: list[FeatureBatch]) -> tuple[np.ndarray, np.ndarray]:
    """Regressors and labels of every trade of the day, product by product."""
    by_product: dict[str, list[FeatureBatch]] = {}
    for batch in features:
        by_product.setdefault(batch.product, []).append(batch)
    xs, ys = [], []
    for product, batches in sorted(by_product.items()):
        values = np.hstack([b.values for b in batches])
        whole = FeatureBatch(product, np.concatenate([b.ts_ns for b in batches]),
                             np.concatenate([b.trade_id for b in batches]), values)
        minutes = whole.column("minutes_to_gate_closure")
        open_rows = minutes > 0
        ys.append(fill_labels(whole.ts_ns, whole.column("quantity_mw"), whole.column("feed_access"),
                              gate_closure_ns(product))[open_rows])
        xs.append(access_regressors(whole.column("feed_access"), minutes,
                                    whole.column("bid_depth_near_mid_mw") + whole.column("ask_depth_near_mid_mw"),
                                    whole.column("trades_per_min"))[:, open_rows])
    return np.hstack(xs), np.concatenate(ys)


def plot(table: list[tuple[float, float, float, int]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5))
    predicted = [row[1] for row in table]
    observed = [row[2] for row in table]
    counts = [row[3] for row in table]
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
    sizes = [max(10.0, 400 * c / max(counts)) for c in counts]
    ax.scatter(predicted, observed, s=sizes, label="bin of 0.1 (size: trades)")
    ax.plot(predicted, observed, color="C0")
    ax.set_xlabel("predicted fill probability before gate closure")
    ax.set_ylabel("observed share filled (1 MW within 15 min, while seen)")
    ax.set_title(title, fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("reports/results"))
    parser.add_argument("--scale", type=float, default=0.1)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    fit_frame, fit_faults = faulted_day(7, scale=args.scale)
    x_fit, y_fit = sample(offline_features(fit_frame))
    beta = fit_logistic(x_fit, y_fit)
    check_frame, check_faults = faulted_day(11, scale=args.scale)
    x_check, y_check = sample(offline_features(check_frame))
    results = {}
    for name, coefficients in (("fitted", beta), ("in_code", np.asarray(COEFFICIENTS))):
        predicted = logistic(x_check, coefficients)
        results[name] = {"coefficients": [round(float(b), 4) for b in coefficients],
                         "brier": float(np.mean((predicted - y_check) ** 2)),
                         "table": calibration_table(predicted, y_check)}
    base_rate = float(y_check.mean())
    summary = {"fit_day": {"seed": 7, "trades": len(y_fit), "outages": len(fit_faults)},
               "check_day": {"seed": 11, "trades": len(y_check), "outages": len(check_faults),
                             "observed_rate": base_rate, "brier_of_base_rate": base_rate * (1 - base_rate)},
               **results}
    (args.out / "access_calibration.json").write_text(json.dumps(summary, indent=1))
    fitted = results["fitted"]
    plot(fitted["table"], args.out / "access_calibration.png",  # type: ignore[arg-type]
         f"fit on {AREA} {DAY} seed 7, shown on seed 11 ({len(y_check)} trades, {len(check_faults)} book outages)\n"
         f"Brier {fitted['brier']:.3f} (base rate alone {base_rate * (1 - base_rate):.3f})")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
