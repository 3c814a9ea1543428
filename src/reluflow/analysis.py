"""Events read off a trajectory: activations (saddles left) and loss plateaus.

Activation (docs/any-scale.md). A neuron *activates* when it leaves its saddle
and reaches the O(1) scale of the fitted network. Precisely: at the first time
its output weight reaches the level

    L = ½ min_i sqrt(|y_i| / ‖x_i‖)        (over the samples with y_i ≠ 0),

half the smallest ``|a_j|`` an activated neuron can end with in the λ → 0 limit
(a neuron fitting the single sample ``i`` ends with ``a_j⁴ = y_i² / ‖x_i‖²``).
Every neuron the jump process activates crosses ``L``; a neuron that stays at
its saddle (log-scale ``p_j < 0``) never does, and as λ → 0 the crossing time,
in ``τ = t / log(1/λ)``, converges to the jump process's (at rate
``O(1/log(1/λ))``: the crossing happens ``O(1)`` in ``t`` after ``p_j`` reaches 0).

The flow locates this crossing on its solver's dense output during the
integration, like a kink (:attr:`Trajectory.activation_t`): a root of
``ln|a_j(t)| − ln L``, to 1e-15 of a step. Dynamics that do not locate it
(gradient descent, SGD) get it from their samples, interpolating ``ln|a_j|``
linearly in ``t`` between the two samples around the crossing.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .trajectory import Trajectory

__all__ = ["activation_events", "plateaus"]


def activation_events(traj: Trajectory) -> pd.DataFrame:
    """One row per activated neuron, in order of activation (see the module docstring).

    Columns: ``neuron``, ``t``, ``tau``, ``a_final`` (|a_j| at the end),
    ``growth`` (``ln(max|a_j| / |a_j(0)|)`` in units of ``log(1/λ)``: about 1 for a
    neuron that went from scale λ to O(1)), ``located`` (True when the time was
    located on the solver's dense output, False when interpolated between samples).
    """
    la = np.asarray(traj.log_abs_a, dtype=float)
    t = traj.t
    log_inv = traj.log_inv_scale
    if not (log_inv > 0):
        log_inv = 1.0
    if traj.activation_t is not None:
        times = np.asarray(traj.activation_t, dtype=float)
        located = True
    else:
        times = _crossings(t, la, math.log(traj.activation_level))
        located = False
    rows = []
    for j in np.flatnonzero(np.isfinite(times)):
        with np.errstate(invalid="ignore"):
            growth = float(la[:, j].max() - la[0, j]) / log_inv
        rows.append(
            {
                "neuron": int(j),
                "t": float(times[j]),
                "tau": float(times[j] / log_inv),
                "a_final": float(np.exp(la[-1, j])),
                "growth": growth,
                "located": located,
            }
        )
    df = pd.DataFrame(rows, columns=["neuron", "t", "tau", "a_final", "growth", "located"])
    return df.sort_values("t", kind="stable").reset_index(drop=True)


def _crossings(t: np.ndarray, la: np.ndarray, level: float) -> np.ndarray:
    """First time each column of ``la`` reaches ``level`` (linear interpolation; NaN: never)."""
    out = np.full(la.shape[1], np.nan)
    if not math.isfinite(level):
        return out
    for j in range(la.shape[1]):
        hit = np.flatnonzero(la[:, j] >= level)
        if hit.size == 0:
            continue
        k = int(hit[0])
        if k == 0:
            out[j] = t[0]
            continue
        lo, hi = la[k - 1, j], la[k, j]
        frac = (level - lo) / (hi - lo) if np.isfinite(lo) and hi > lo else 1.0
        out[j] = t[k - 1] + frac * (t[k] - t[k - 1])
    return out


def plateaus(traj: Trajectory, *, rel_tol: float = 0.01, min_length: float = 0.02) -> pd.DataFrame:
    """Maximal stretches where the loss stays within ``rel_tol`` of its starting level.

    Only stretches lasting at least ``min_length`` of the whole run (in ``τ``, or
    in ``t`` if λ >= 1) are kept. Columns: ``t_start``, ``t_end``, ``tau_start``,
    ``tau_end``, ``loss`` (mean level over the stretch).
    """
    loss, t = traj.loss, traj.t
    small = traj.log10_scale < 0
    x = traj.tau if small else t
    span = x[-1] - x[0]
    rows = []
    s = 0
    T = len(loss)
    for k in range(1, T + 1):
        if k < T and abs(loss[k] - loss[s]) <= rel_tol * abs(loss[s]) + 1e-300:
            continue
        end = k - 1
        if end > s and x[end] - x[s] >= min_length * span:
            rows.append(
                {
                    "t_start": float(t[s]),
                    "t_end": float(t[end]),
                    "tau_start": float(x[s]) if small else float("nan"),
                    "tau_end": float(x[end]) if small else float("nan"),
                    "loss": float(np.mean(loss[s : end + 1])),
                }
            )
        s = k
    return pd.DataFrame(rows, columns=["t_start", "t_end", "tau_start", "tau_end", "loss"])
