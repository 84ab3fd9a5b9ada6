"""Market access, predicted: the chance that an order placed now can still be worked and filled before gate closure.

At each trade, ``fill_probability = 1 / (1 + exp(-(b . x)))`` (a probability, dimensionless) with

    x = (1, feed_access, log(1 + minutes_to_gate_closure+), log(1 + depth_near_mid_mw), log(1 + trades_per_min))

``feed_access`` the measured access (``operators.access``, in [0, 1]), ``minutes_to_gate_closure+`` the minutes
left (0 after the gate), ``depth_near_mid_mw`` both sides' depth within the band around mid (MW; 0 without a
book), ``trades_per_min`` the recent trade intensity. The coefficients :data:`COEFFICIENTS` are a logistic fit
(:func:`fit_logistic`, iteratively reweighted least squares) on a replayed simulated day with injected book
outages, against the label of :func:`fill_labels`: did the product, while we saw it (``feed_access >=
MIN_SEEN_ACCESS``), trade at least ``CLIP_MW`` within ``HORIZON_MIN`` minutes and before its gate closure? The
script that fits them and plots predicted against observed is ``python -m cli.access_calibration``
(``reports/access_calibration.png``); its numbers are in the README.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

#: Fitted by ``python -m cli.access_calibration`` (simulated DE-LU day 2018-10-28, seed 7, scale 0.1, 25 book outages;
#: shown on seed 11: Brier 0.141 against 0.180 for the base rate alone).
COEFFICIENTS: tuple[float, ...] = (0.3962, 0.4684, -0.3478, 0.3311, 1.3992)
#: The label: an order of this size (MW) ...
CLIP_MW = 1.0
#: ... filled within this many minutes (and before the gate) ...
HORIZON_MIN = 15.0
#: ... counting only the trades we saw (feed access at least this).
MIN_SEEN_ACCESS = 0.5


def access_regressors(feed_access: F64, minutes_to_gate_closure: F64, depth_near_mid_mw: F64,
                      trades_per_min: F64) -> F64:
    """The regressors ``x`` (rows: one per term of the module docstring's formula, columns: one per trade)."""
    access = np.nan_to_num(np.asarray(feed_access, dtype=np.float64), nan=1.0)
    minutes = np.log1p(np.fmax(np.nan_to_num(np.asarray(minutes_to_gate_closure, dtype=np.float64)), 0.0))
    depth = np.log1p(np.fmax(np.nan_to_num(np.asarray(depth_near_mid_mw, dtype=np.float64)), 0.0))
    rate = np.log1p(np.fmax(np.nan_to_num(np.asarray(trades_per_min, dtype=np.float64)), 0.0))
    return np.vstack([np.ones_like(access), access, minutes, depth, rate])


def logistic(x: F64, coefficients: tuple[float, ...] | F64) -> F64:
    """``1 / (1 + exp(-(b . x)))`` per column of ``x``. The sum is taken term by term, in order, not as a matrix
    product: BLAS rounds differently by batch size, and a trade's value must not depend on its batch."""
    z = np.zeros(x.shape[1])
    for b, term in zip(np.asarray(coefficients, dtype=np.float64).tolist(), x, strict=True):
        z = z + b * term
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))


def fill_probability(feed_access: F64, minutes_to_gate_closure: F64, depth_near_mid_mw: F64,
                     trades_per_min: F64, coefficients: tuple[float, ...] = COEFFICIENTS) -> F64:
    """The predicted chance (see the module docstring) at each trade; 0 once the gate has closed."""
    p = logistic(access_regressors(feed_access, minutes_to_gate_closure, depth_near_mid_mw, trades_per_min),
                 coefficients)
    return np.where(np.asarray(minutes_to_gate_closure) > 0, p, 0.0)


def fill_labels(ts_ns: I64, quantity_mw: F64, feed_access: F64, gate_closure_ns: int, *, clip_mw: float = CLIP_MW,
                horizon_min: float = HORIZON_MIN, min_seen_access: float = MIN_SEEN_ACCESS) -> F64:
    """What happened after each trade of one product (1.0 / 0.0): the volume of the later trades we saw (feed
    access at least ``min_seen_access``) in ``(t, min(t + horizon, gate closure)]`` reached ``clip_mw``."""
    seen_volume = np.where(np.nan_to_num(feed_access, nan=1.0) >= min_seen_access, quantity_mw, 0.0)
    cumulative = np.concatenate([[0.0], np.cumsum(seen_volume)])
    end_ns = np.minimum(ts_ns + int(horizon_min * 60e9), gate_closure_ns)
    first = np.searchsorted(ts_ns, ts_ns, side="right")
    last = np.searchsorted(ts_ns, end_ns, side="right")
    volume = cumulative[np.maximum(last, first)] - cumulative[first]
    return (volume >= clip_mw - 1e-9).astype(np.float64)


def fit_logistic(x: F64, y: F64, *, iterations: int = 50, ridge: float = 1e-6) -> F64:
    """Maximum-likelihood logistic coefficients by iteratively reweighted least squares (Newton's method), with a
    tiny ridge for a separable or collinear sample. ``x``: regressors (terms x samples), ``y``: 0/1 labels."""
    beta = np.zeros(x.shape[0])
    for _ in range(iterations):
        p = logistic(x, beta)
        w = np.clip(p * (1.0 - p), 1e-9, None)
        hessian = (x * w) @ x.T + ridge * np.eye(x.shape[0])
        step = np.linalg.solve(hessian, x @ (y - p) - ridge * beta)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta


def calibration_table(predicted: F64, observed: F64, bins: int = 10) -> list[tuple[float, float, float, int]]:
    """Per bin of predicted probability: (bin low, mean predicted, observed frequency, count); empty bins left out."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(predicted, edges) - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        rows = index == b
        if rows.any():
            out.append((float(edges[b]), float(predicted[rows].mean()), float(observed[rows].mean()), int(rows.sum())))
    return out
