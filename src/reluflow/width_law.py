"""How the limit's implicit-bias constant falls with the width ``m``.

On balanced ±1 data each sign class has ``N ≈ n/2`` samples. The jump
process's ratio ``‖θ‖² / min ‖θ‖²`` depends on ``m`` only through the
*coverage depth*

    z = log₂ m / N,

the fraction of a class that the luckiest neuron covers at the last saddle:
among ``m/2`` neurons of one sign, some neuron's random sign pattern covers
all of ``k`` remaining samples once ``k ≲ log₂ m``. Measured from ``n = 128``
to ``10⁶`` and ``m`` from the interpolation threshold to thousands, the ratio
follows (docs/finite-scale.md)

    ratio(n, m) ≈ 1 + √2 − c √z,        c ≈ 2.1   (z ≲ 0.2),

and it reaches exactly 1 once ``z ≥ 1`` (``m ≳ 2^N``: one neuron per class
covers every sample of its sign at the first saddle).

The *halving heuristic* explains the form: if each activating neuron fitted
half of the remaining same-sign samples, the ``k``-th would fit ``N 2^{−k}``
and cost ``2 √(N 2^{−k})``, summing to ``(1 + √2)`` times the minimal norm;
with ``m`` neurons the chain stops after ``log₂(N / log₂ m)`` halvings, when one
neuron covers the ``log₂ m`` samples left, which gives
:func:`halving_ratio` ``= 1 + √2 (1 − √z)``. It is a heuristic: the measured
``c`` is larger than its ``√2`` (neurons fit a little less than half on average,
with fluctuations), and it is reported beside the fit, not in place of it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _validate as V
from .errors import InputError

__all__ = ["HALVING_LIMIT", "coverage_depth", "fit_width_law", "halving_ratio"]

HALVING_LIMIT = 1.0 + math.sqrt(2.0)


def coverage_depth(n: Any, m: Any) -> np.ndarray:
    """``z = log₂ m / (n/2)``: the collapse variable of the ratio over ``(n, m)``.

    Args:
        n: number of samples (balanced labels: ``n/2`` per class), >= 2.
        m: width, >= 1. Arrays broadcast.
    """
    n = np.asarray(n, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    if (n < 2).any() or (m < 1).any() or not (np.isfinite(n).all() and np.isfinite(m).all()):
        raise InputError("coverage_depth needs n >= 2 and m >= 1 (finite)")
    return np.log2(m) / (n / 2.0)


def halving_ratio(n: Any, m: Any) -> np.ndarray:
    """The halving heuristic's ratio ``1 + √2 (1 − √z)`` for ``z < 1``, 1 beyond (module docstring)."""
    z = coverage_depth(n, m)
    return np.where(z >= 1.0, 1.0, 1.0 + math.sqrt(2.0) * (1.0 - np.sqrt(np.minimum(z, 1.0))))


def fit_width_law(n: Any, m: Any, ratio: Any, *, z_max: float = 0.2) -> dict[str, float]:
    """Least-squares ``c`` of ``ratio ≈ 1 + √2 − c √z`` over the runs with ``z <= z_max``.

    The fit is through the origin in ``(√z, 1 + √2 − ratio)``; its standard error
    is the usual one of a one-parameter regression.

    Args:
        n, m, ratio: one entry per run (interpolating runs of the jump process).
        z_max: largest coverage depth used (the law is for small ``z``).

    Returns:
        ``c``, ``c_se``, ``points`` (runs used), ``z_min``, ``z_max`` (their range),
        ``rms`` (root-mean-square residual of the ratio), and the free-exponent fit
        ``1 + √2 − ratio ≈ c_free z^beta`` (least squares on the logs, runs below
        ``1 + √2``): ``beta``, ``beta_se``, ``c_free``.
    """
    z_max = V.finite_float("z_max", z_max, low=0.0, low_open=True)
    z = coverage_depth(n, m)
    r = np.asarray(ratio, dtype=np.float64)
    if r.shape != z.shape:
        raise InputError(f"ratio must have one entry per (n, m), got {r.shape} and {z.shape}")
    ok = np.isfinite(r) & (z <= z_max)
    if ok.sum() < 2:
        return {"c": math.nan, "c_se": math.nan, "points": int(ok.sum()), "z_min": math.nan,
                "z_max": math.nan, "rms": math.nan, "beta": math.nan, "beta_se": math.nan,
                "c_free": math.nan}
    x, y = np.sqrt(z[ok]), HALVING_LIMIT - r[ok]
    c = float((x @ y) / (x @ x))
    res = y - c * x
    dof = max(int(ok.sum()) - 1, 1)
    c_se = float(math.sqrt((res @ res) / dof / (x @ x)))
    out = {"c": c, "c_se": c_se, "points": int(ok.sum()), "z_min": float(z[ok].min()),
           "z_max": float(z[ok].max()), "rms": float(math.sqrt((res @ res) / ok.sum())),
           "beta": math.nan, "beta_se": math.nan, "c_free": math.nan}
    pos = y > 0
    lz = np.log(z[ok][pos])
    if pos.sum() >= 3 and np.ptp(lz) > 0:
        A = np.vstack([lz, np.ones_like(lz)]).T
        coef, *_ = np.linalg.lstsq(A, np.log(y[pos]), rcond=None)
        rr = np.log(y[pos]) - A @ coef
        cov = (rr @ rr) / max(int(pos.sum()) - 2, 1) * np.linalg.inv(A.T @ A)
        out.update(beta=float(coef[0]), beta_se=float(math.sqrt(cov[0, 0])),
                   c_free=float(math.exp(coef[1])))
    return out
