"""Events read off a trajectory: activations (saddles left) and loss plateaus.

The detectors take any :class:`~reluflow.trajectory.Trajectory` (flow, descent
or SGD) and use only its sampled ``|a_j|`` and loss, so the same definitions
apply to every dynamics and can be compared with the jump process.

Activation. A neuron *activates* when it leaves the saddle at scale λ and
reaches the O(1) scale of the fitted network: we say it did if its largest
``|a_j|`` over the run is at least ``min_ratio`` times the largest of all
neurons (default ``max(λ^(1/4), 1e-3)``: a neuron stuck at log-scale
``p_j < 0`` stays below it once λ is small), and date the activation at the
first time ``|a_j|`` reaches ``threshold`` (default 1/2) of its maximum over
the run, interpolated in ``log|a_j|`` between samples. As λ → 0 this time,
in ``τ``, converges to the jump process's ``τ`` at which ``p_j`` reaches 0.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .trajectory import Trajectory

__all__ = ["activation_events", "plateaus"]


def activation_events(
    traj: Trajectory, *, threshold: float = 0.5, min_ratio: float | None = None
) -> pd.DataFrame:
    """One row per activated neuron, in order of activation.

    Columns: ``neuron``, ``t``, ``tau``, ``a_final`` (|a_j| at the end),
    ``growth`` (log of max|a_j| / |a_j(0)|, in units of ``log(1/λ)``).
    """
    a = traj.a_abs
    t = traj.t
    log_inv = math.log(1.0 / traj.scale) if traj.scale < 1 else 1.0
    if min_ratio is None:
        min_ratio = max(traj.scale**0.25, 1e-3) if traj.scale < 1 else 0.5
    top = float(a.max()) if a.size else 0.0
    rows = []
    for j in range(a.shape[1]):
        aj = a[:, j]
        a0 = aj[0]
        peak = aj.max()
        if a0 <= 0 or peak <= 0 or peak < min_ratio * top or peak <= 2 * a0:
            continue
        growth = math.log(peak / a0) / log_inv
        level = threshold * peak
        k = int(np.argmax(aj >= level))
        if k == 0:
            tk = t[0]
        else:  # interpolate log|a| linearly in t between samples k-1 and k
            la, lb = math.log(max(aj[k - 1], 1e-300)), math.log(aj[k])
            frac = (math.log(level) - la) / (lb - la) if lb > la else 1.0
            tk = t[k - 1] + frac * (t[k] - t[k - 1])
        rows.append(
            {
                "neuron": j,
                "t": float(tk),
                "tau": float(tk / log_inv),
                "a_final": float(aj[-1]),
                "growth": float(growth),
            }
        )
    df = pd.DataFrame(rows, columns=["neuron", "t", "tau", "a_final", "growth"])
    return df.sort_values("t", kind="stable").reset_index(drop=True)


def plateaus(traj: Trajectory, *, rel_tol: float = 0.01, min_length: float = 0.02) -> pd.DataFrame:
    """Maximal stretches where the loss stays within ``rel_tol`` of its starting level.

    Only stretches lasting at least ``min_length`` of the whole run (in ``τ``, or
    in ``t`` if λ >= 1) are kept. Columns: ``t_start``, ``t_end``, ``tau_start``,
    ``tau_end``, ``loss`` (mean level over the stretch).
    """
    loss, t = traj.loss, traj.t
    x = traj.tau if traj.scale < 1 else t
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
                    "tau_start": float(x[s]) if traj.scale < 1 else float("nan"),
                    "tau_end": float(x[end]) if traj.scale < 1 else float("nan"),
                    "loss": float(np.mean(loss[s : end + 1])),
                }
            )
        s = k
    return pd.DataFrame(rows, columns=["t_start", "t_end", "tau_start", "tau_end", "loss"])
