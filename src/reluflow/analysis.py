"""Events read off a trajectory: activations (saddles left) and loss plateaus.

Activation (docs/any-scale.md). A neuron *activates* when it leaves its saddle
and reaches the O(1) scale of the fitted network. Two questions: which neurons
did, and when.

*Which.* Neuron ``j`` has left the small-weight regime when its largest
``|a_j|`` over the run, ``A_j``, reached

    A_j >= L · max(10⁻³, sqrt(λ))        (``L``: the activation level below).

A neuron the λ → 0 jump process activates ends at ``O(1)``: at least ``2L``
if it activates alone, a share ``O(1)`` in λ of that if it shares its fit with a
tie (below). A neuron that stays at its saddle, or stops growing partway
(log-scale ``p_j = ln A_j / ln(1/λ) < 0``), ends at ``A_j ≈ λ^{−p_j}``, which falls
below any fixed fraction of ``L`` as λ → 0. The fraction ``10⁻³`` (a tie member
ends below it only if its part of the group's ``|a|`` is below 5·10⁻⁴) is capped by the geometric midpoint
``sqrt(λ)`` between the initial scale and ``L``, so at moderate λ a neuron
still at ``O(λ)`` is never counted (at ``λ >= 1`` the rule is ``A_j >= L``).
Between those scales there is a grey zone at moderate λ (a neuron stopped at
``p_j = −0.4`` has ``A_j ≈ 6e-4`` at λ = 1e-8) that only smaller λ resolves.

*When.* At the first time ``|a_j|`` reaches

    L_j = min(L, A_j / 2),   L = ½ min_i sqrt(|y_i| / ‖x_i‖)   (over the samples with y_i ≠ 0).

``2L`` is the smallest ``|a_j|`` a neuron that fits the single sample ``i`` alone
can end with in the λ → 0 limit (``a_j⁴ = y_i² / ‖x_i‖²``), so every neuron that
activates alone crosses ``L``. Neurons that activate *together* (a tie: the same
rate, e.g. many neurons with one activation pattern on orthogonal data) grow in
proportion and share the fit, ``Σ_group a_j² = |y_i| / ‖x_i‖``: each ends smaller,
possibly far below ``L``, by the ratio of its initial growing component to the
group's. ``A_j / 2`` is then its level: it is crossed ``O(1)`` in ``t`` before the
neuron saturates, as ``L`` is, so in ``τ = t / log(1/λ)`` every such time
converges to the jump process's event time at rate ``O(1/log(1/λ))``, and the
members of a tie get events within ``O(1/log(1/λ))`` of each other in ``τ``.

The flow locates the crossing of ``L`` on its solver's dense output during the
integration, like a kink (:attr:`Trajectory.activation_t`): a root of
``ln|a_j(t)| − ln L``, to 1e-15 of a step; those times are used where
``L_j = L`` (``located`` True). Otherwise (``L_j < L``, or dynamics that do not
locate it: gradient descent, SGD) the time comes from the samples,
interpolating ``ln|a_j|`` linearly in ``t`` between the two samples around the
crossing (``located`` False).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .trajectory import Trajectory

__all__ = ["activation_events", "plateaus"]

# the smallest share of L, in logs, at which a neuron counts as activated (module docstring)
_SHARE = math.log(1e3)


def activation_events(traj: Trajectory) -> pd.DataFrame:
    """One row per activated neuron, in order of activation (see the module docstring).

    Columns: ``neuron``, ``t``, ``tau``, ``a_final`` (|a_j| at the end),
    ``growth`` (``ln(max|a_j| / |a_j(0)|)`` in units of ``log(1/λ)``: about 1 for a
    neuron that went from scale λ to O(1)), ``level`` (the level ``L_j`` whose
    crossing gives the time), ``located`` (True when the time was located on the
    solver's dense output, False when interpolated between samples).
    """
    la = np.asarray(traj.log_abs_a, dtype=float)
    t = traj.t
    log_inv = traj.log_inv_scale
    small = bool(log_inv > 0)
    if not small:
        log_inv = 1.0
    log_L = math.log(traj.activation_level) if traj.activation_level > 0 else -math.inf
    with np.errstate(invalid="ignore"):
        peak = la.max(axis=0)
    threshold = log_L - min(_SHARE, 0.5 * log_inv) if small else log_L
    active = np.isfinite(peak) & (peak >= threshold) & math.isfinite(log_L)
    log_level = np.minimum(log_L, peak - math.log(2.0))
    times = _crossings(t, la, log_level)
    located = np.zeros(la.shape[1], dtype=bool)
    if traj.activation_t is not None:
        loc = np.asarray(traj.activation_t, dtype=float)
        use = np.isfinite(loc) & (log_level >= log_L)
        times[use], located[use] = loc[use], True
    rows = []
    for j in np.flatnonzero(active & np.isfinite(times)):
        with np.errstate(invalid="ignore"):
            growth = float(peak[j] - la[0, j]) / log_inv
        rows.append(
            {
                "neuron": int(j),
                "t": float(times[j]),
                "tau": float(times[j] / log_inv),
                "a_final": float(np.exp(la[-1, j])),
                "growth": growth,
                "level": float(np.exp(log_level[j])),
                "located": bool(located[j]),
            }
        )
    cols = ["neuron", "t", "tau", "a_final", "growth", "level", "located"]
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["t", "neuron"], kind="stable").reset_index(drop=True)


def _crossings(t: np.ndarray, la: np.ndarray, level: np.ndarray) -> np.ndarray:
    """First time column ``j`` of ``la`` reaches ``level[j]``, between samples (NaN: never).

    Between the samples ``k − 1`` and ``k`` around the crossing, the earlier of the
    chord (linear interpolation of ``ln|a_j|``) and the continued exponential growth
    of the previous interval (``ln|a_j|`` extended linearly from ``k − 2, k − 1``),
    never before ``t_{k−1}``. While a neuron saturates ``ln|a_j|`` is concave and the
    crossing lies between the two: the chord is off by up to the sample spacing,
    which grows like ``t`` on the geometric grid (``∝ log(1/λ)`` at an activation),
    the continued growth by ``O(1)`` in ``t`` (the saturation's own time scale).
    """
    out = np.full(la.shape[1], np.nan)
    for j in range(la.shape[1]):
        if not math.isfinite(level[j]):
            continue
        hit = np.flatnonzero(la[:, j] >= level[j])
        if hit.size == 0:
            continue
        k = int(hit[0])
        if k == 0:
            out[j] = t[0]
            continue
        lo, hi = la[k - 1, j], la[k, j]
        frac = (level[j] - lo) / (hi - lo) if np.isfinite(lo) and hi > lo else 1.0
        out[j] = t[k - 1] + frac * (t[k] - t[k - 1])
        if k >= 2 and np.isfinite(lo) and np.isfinite(la[k - 2, j]):
            slope = (lo - la[k - 2, j]) / (t[k - 1] - t[k - 2])
            if slope > 0:
                out[j] = max(t[k - 1], min(out[j], t[k - 1] + (level[j] - lo) / slope))
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
