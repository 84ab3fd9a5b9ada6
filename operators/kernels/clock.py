"""Time to gate closure: how long a product can still be traded, per event.

``time_to_gate_closure_min = (gate_closure_ns - ts_ns) / 60e9`` (minutes, float64): positive while the
gate is open, 0 at closure, negative for an event after it (a late or replayed record says so rather than
being clipped). Which gate is meant is the caller's choice: the cross-border closure (60 minutes before
delivery), the area closure (30) or the control-area closure (5); :func:`wattflow.domain.gate_closure_ns` looks it up.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from wattflow.domain import NS_PER_MINUTE, gate_closure_ns

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
__all__ = ["gate_closure_ns", "time_to_gate_closure_kernel", "time_to_gate_closure_min"]


@njit(cache=True)
def time_to_gate_closure_kernel(ts_ns: I64, gate_closure_ns: int, out_min: F64) -> None:
    """``out_min[i] = (gate_closure_ns - ts_ns[i]) / 60e9`` (minutes). The difference is taken in integer ns
    first, so the result is exact to float64 rounding whatever the epoch."""
    for i in range(ts_ns.shape[0]):
        out_min[i] = (gate_closure_ns - ts_ns[i]) / NS_PER_MINUTE


def time_to_gate_closure_min(ts_ns: I64, gate_closure_ns: int) -> F64:
    """Minutes from each event to the product's gate closure (module docstring)."""
    out = np.empty(len(ts_ns))
    time_to_gate_closure_kernel(ts_ns, int(gate_closure_ns), out)
    return out
