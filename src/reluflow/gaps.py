"""How small λ must be for the flow to follow the λ → 0 limit: the competitor gap.

When a neuron activates in the jump process (docs/limit.md), every neuron that
loses samples to it is a *competitor*; a competitor at log-scale ``p_j = −δ`` is
``e^{−δ L}`` times smaller than the activating neuron (``L = log(1/λ)``) at the
moment the latter fits its samples. At finite λ it therefore keeps a share of
order ``e^{−δ L}`` of the samples it loses, and the learned network differs from
the limit's by that much. Summed over the events (docs/finite-scale.md):

    E(L) = Σ_{events e} Σ_{competitors j} w_ej e^{−δ_ej L},       w_ej = q_ej / Q,

with ``q_ej = Σ y_i²/‖x_i‖²`` over the samples ``j`` loses at ``e`` and ``Q`` the
same sum over all samples (the share of the minimal-norm mass that changes hands).
:func:`predicted_error` evaluates ``E(L)`` and :func:`predicted_log_inv_scale`
the ``L*`` at which it falls to a tolerance: a prediction of how small λ must be,
from the limit alone. Its premise, that a competitor at gap ``δ`` moves the
flow's norm by ``∝ e^{−δ L}``, is tested against the flow; its weights are a
first-order model, and the measured ``L*`` is reported beside it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import logsumexp

from . import _validate as V
from .limit import LimitResult

__all__ = ["competitor_gaps", "log_inv_scale_for", "predicted_error", "predicted_log_inv_scale"]


def competitor_gaps(res: LimitResult) -> pd.DataFrame:
    """Every (event, competitor) pair of a jump process, one row each.

    Columns: ``event``, ``tau`` (the event time), ``neuron`` (the competitor),
    ``gap`` (its ``δ = −p_j(τ)``), ``lost_q`` (``Σ y_i²/‖x_i‖²`` of the samples it
    loses), ``weight`` (``lost_q / Q``) and ``nearest`` (whether it is the event's
    nearest competitor, ``LimitResult.competitor``).
    """
    rv = res.rivals
    ev = rv[:, 0].astype(np.int64)
    q_total = float((res._y**2 / res._x_sq).sum())
    neuron = rv[:, 1].astype(np.int64)
    return pd.DataFrame(
        {
            "event": ev,
            "tau": res.tau[ev] if ev.size else np.zeros(0),
            "neuron": neuron,
            "gap": rv[:, 2],
            "lost_q": rv[:, 3],
            "weight": rv[:, 3] / q_total if q_total > 0 else np.zeros(len(rv)),
            "nearest": res.competitor[ev] == neuron if ev.size else np.zeros(0, dtype=bool),
        }
    )


def _log_terms(res: LimitResult) -> tuple[np.ndarray, np.ndarray]:
    g = competitor_gaps(res)
    return _terms(g["gap"].to_numpy(), g["weight"].to_numpy())


def _terms(gap: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gap, weight = np.asarray(gap, dtype=np.float64), np.asarray(weight, dtype=np.float64)
    ok = weight > 0
    return np.log(weight[ok]), gap[ok]


def predicted_error(res: LimitResult, log_inv_scale: float) -> float:
    """``E(L) = Σ w e^{−δ L}`` over every (event, competitor) pair (module docstring).

    Args:
        res: a jump process. log_inv_scale: ``L = log(1/λ)`` (> 0, natural log).

    Returns:
        The predicted relative deviation of the flow's ``‖θ‖²`` from the limit's
        (0 when no event has a competitor).
    """
    L = V.finite_float("log_inv_scale", log_inv_scale, low=0.0, low_open=True)
    lw, gap = _log_terms(res)
    if lw.size == 0:
        return 0.0
    return float(math.exp(logsumexp(lw - gap * L)))


def predicted_log_inv_scale(res: LimitResult, tol: float = 0.05) -> float:
    """The ``L = log(1/λ)`` at which :func:`predicted_error` falls to ``tol``.

    ``E(L)`` is a sum of decreasing exponentials, so the root is unique; it is
    0 when ``E`` is below ``tol`` from the start (``E(0) = Σ w``).

    Args:
        res: a jump process. tol: relative tolerance on ``‖θ‖²``, in (0, 1).
    """
    lw, gap = _log_terms(res)
    return log_inv_scale_for(gap, np.exp(lw), tol)


def log_inv_scale_for(gap: np.ndarray, weight: np.ndarray, tol: float = 0.05) -> float:
    """:func:`predicted_log_inv_scale` from the pairs' gaps and weights (e.g. as stored by a sweep).

    Args:
        gap: ``δ`` of every (event, competitor) pair (> 0). weight: their ``w`` (>= 0).
        tol: relative tolerance on ``‖θ‖²``, in (0, 1).
    """
    tol = V.finite_float(
        "tol", tol, low=0.0, high=1.0, low_open=True, high_open=True,
        allowed="a relative tolerance in (0, 1), e.g. 0.05",
    )
    lw, gap = _terms(gap, weight)
    target = math.log(tol)
    if lw.size == 0 or logsumexp(lw) <= target:
        return 0.0
    if (gap <= 0).any() and logsumexp(lw[gap <= 0]) >= target:
        return math.inf

    def excess(L: float) -> float:
        return float(logsumexp(lw - gap * L)) - target

    hi = 1.0
    while excess(hi) > 0:
        hi *= 2.0
    return float(brentq(excess, 0.0, hi, xtol=1e-9 * hi, rtol=1e-12))
