"""Statistics shared by the experiments' analyses (pure functions of tables, no plotting).

* :func:`wilson_interval`: binomial proportions (95% Wilson score intervals).
* :func:`ols`: least squares ``y = slope x + intercept`` with standard errors.
* :func:`crossing`: where a monotone envelope of ``p(m)`` reaches a level.
* :func:`bootstrap_mean`: percentile bootstrap interval of a mean.
* :func:`g_test`: likelihood-ratio test of binomial counts against predicted probabilities.
* :func:`interpolated`, :func:`min_norm`: per-run quantities read from a store's frame.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

Z95 = 1.959963984540054  # two-sided 95% normal quantile
BOOT = 1000  # bootstrap replicates
BOOT_SEED = 20260527  # the bootstrap's own seed (recorded in the report)


def wilson_interval(k: Any, n: Any, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion ``k / n`` (95% by default).

        centre = (p̂ + z²/2n) / (1 + z²/n),
        half   = z sqrt(p̂(1 − p̂)/n + z²/4n²) / (1 + z²/n).

    Unlike the normal interval it stays inside [0, 1] and is not empty at
    ``p̂ = 0`` or 1, where most cells of a threshold grid sit.

    Args:
        k: successes (array-like). n: trials (array-like, same shape). z: normal quantile.
    """
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    p = np.divide(k, n, out=np.full_like(k, np.nan), where=n > 0)
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at p̂ = 0 (1) the lower (upper) end is exactly 0 (1); rounding would leave ~1e-17
    lo = np.where(k == 0, 0.0, np.clip(centre - half, 0.0, 1.0))
    hi = np.where(k == n, 1.0, np.clip(centre + half, 0.0, 1.0))
    return lo, hi


def ols(x: Any, y: Any) -> dict[str, float]:
    """Least squares ``y = slope x + intercept``: coefficients, standard errors, point count.

    Standard errors are the usual ``s² (AᵀA)⁻¹`` with ``s²`` the residual
    variance on ``k − 2`` degrees of freedom (NaN with fewer than 3 points).
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    k = x.size
    if k < 2 or np.ptp(x) == 0:
        return {
            "slope": math.nan,
            "slope_se": math.nan,
            "intercept": math.nan,
            "intercept_se": math.nan,
            "points": int(k),
        }
    A = np.vstack([x, np.ones_like(x)]).T
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    dof = k - 2
    s2 = float(resid @ resid) / dof if dof > 0 else math.nan
    cov = s2 * np.linalg.inv(A.T @ A)
    return {
        "slope": float(coef[0]),
        "slope_se": float(math.sqrt(cov[0, 0])) if dof > 0 else math.nan,
        "intercept": float(coef[1]),
        "intercept_se": float(math.sqrt(cov[1, 1])) if dof > 0 else math.nan,
        "points": int(k),
    }


def crossing(m: Any, p: Any, level: float = 0.5) -> float:
    """Where ``p(m)`` first reaches ``level`` (linear interpolation of its monotone envelope).

    NaN when the level is never reached, or is reached already at the smallest ``m``.
    """
    m = np.asarray(m, float)
    order = np.argsort(m)
    m = m[order]
    p = np.maximum.accumulate(np.asarray(p, float)[order])
    above = np.flatnonzero(p >= level)
    if above.size == 0 or above[0] == 0:
        return math.nan
    k = above[0]
    m0, m1, p0, p1 = m[k - 1], m[k], p[k - 1], p[k]
    return float(m0 + (level - p0) / (p1 - p0) * (m1 - m0)) if p1 > p0 else float(m1)


def bootstrap_mean(x: Any, rng: np.random.Generator) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of ``x`` (``BOOT`` resamples)."""
    x = np.asarray(x, float)
    if x.size < 2:
        return (float(x.mean()) if x.size else math.nan,) * 2
    idx = rng.integers(0, x.size, size=(BOOT, x.size))
    means = x[idx].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def g_test(successes: Any, trials: Any, p: Any) -> dict[str, float]:
    """Likelihood-ratio (G) test of independent binomial counts against predicted probabilities.

        G = 2 Σ_c [ k_c log(k_c / N_c p_c) + (N_c − k_c) log((N_c − k_c) / N_c (1 − p_c)) ],

    asymptotically χ² with one degree of freedom per cell under the prediction
    (the probabilities are not fitted). A cell whose prediction is exactly 0 or
    1 and whose count disagrees makes ``G`` infinite (p-value 0).

    Returns ``G``, ``dof`` (cells) and ``p_value``.
    """
    from scipy.special import xlogy
    from scipy.stats import chi2

    k = np.asarray(successes, float)
    n = np.asarray(trials, float)
    p = np.asarray(p, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = 2.0 * (
            xlogy(k, k) - xlogy(k, n * p) + xlogy(n - k, n - k) - xlogy(n - k, n * (1 - p))
        )
    g = np.where(((p == 0) & (k > 0)) | ((p == 1) & (k < n)), np.inf, np.nan_to_num(g))
    G = float(np.sum(g))
    dof = int(k.size)
    return {"G": G, "dof": dof, "p_value": float(chi2.sf(G, dof)) if dof else math.nan}


def col(df: pd.DataFrame, name: str, default: Any = math.nan) -> pd.Series:
    """Column ``name`` of ``df``, or a constant column when the store has no such key."""
    return df[name] if name in df.columns else pd.Series(default, index=df.index)


def scalar(v: Any) -> float:
    """The first element of ``v`` as a float (0-d stored arrays), NaN when empty."""
    a = np.asarray(v, dtype=float).reshape(-1)
    return float(a[0]) if a.size else math.nan


def interpolated(df: pd.DataFrame) -> pd.Series:
    """Whether each run interpolates: the stored flag, or for a flow without one its final loss.

    A sample the flow never fits keeps its residual ``y_i``, so with ±1 labels
    the final loss of a non-interpolating run is at least ``1/(2n)``; below
    ``1/(4n)`` every sample was fitted.
    """
    flag = col(df, "interpolates", None)
    fallback = col(df, "final_loss") < 0.25 / df["n"].astype(float)
    out = flag.where(flag.notna(), fallback)
    return out.astype(bool)


def min_norm(df: pd.DataFrame) -> pd.Series:
    """``min ‖θ‖²`` per run: the stored value, else from the (regenerated, cheap) labels."""
    from ..data import orthogonal_data
    from ..theory import min_norm_sq

    mn = col(df, "min_norm_sq").astype(float).copy()
    for i in mn.index[mn.isna()]:
        row = df.loc[i]
        d = orthogonal_data(
            int(row["n"]), labels=str(row.get("labels", "balanced")), seed=int(row["seed"])
        )
        mn.loc[i] = min_norm_sq(d.y, d.norms)
    return mn
