"""Closed-form predictions of docs/limit.md: the interpolation threshold and the minimal norm.

* :func:`interpolation_probability`: probability that the λ → 0 jump process
  (docs/limit.md) interpolates orthogonal data from a Gaussian initialisation,
* :func:`width_for_probability`: the smallest width reaching a given probability,
* :func:`min_norm_sq`: the smallest ``‖θ‖²`` of any interpolating network.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import gammaln, logsumexp

from . import _validate as V
from .errors import InputError

__all__ = ["interpolation_probability", "min_norm_sq", "width_for_probability"]

# Widths beyond this are never needed for n <= 2**64 samples and p < 1 - 1e-15;
# the search refuses to go further rather than loop.
_MAX_WIDTH = 1 << 16


def _count(name: str, value: Any) -> int:
    """A non-negative integer count (floats such as ``1e9`` are accepted when integral)."""
    return V.positive_int(name, value, minimum=0)


def _counts(n_pos: Any, n_neg: Any) -> tuple[int, int]:
    """``n_pos, n_neg >= 0`` with at least one sample, as every dataset (``n >= 1``)."""
    n_pos, n_neg = _count("n_pos", n_pos), _count("n_neg", n_neg)
    if n_pos + n_neg == 0:
        raise InputError(
            "n_pos + n_neg must be >= 1 (the number of samples; datasets need n >= 1), "
            "got n_pos = 0 and n_neg = 0"
        )
    return n_pos, n_neg


def _log_probability(n_pos: int, n_neg: int, m: int) -> float:
    """``log P(interpolation)`` for width ``m`` (see :func:`interpolation_probability`)."""
    k = np.arange(m + 1, dtype=np.float64)
    log_binom = gammaln(m + 1.0) - gammaln(k + 1.0) - gammaln(m - k + 1.0) - m * math.log(2.0)
    # log(1 - 2^-k) = log1p(-2^-k): exact for large k, where 1 - 2^-k rounds to 1
    # and a plain log would lose the whole term (that is the n = 1e9 regime).
    # The k = 0 factor (1 - 2^0)^n is 0 for n > 0 and 1 for n = 0 (0^0): written
    # out explicitly, since n * log1p(-1) = n * (-inf) is nan when n = 0.
    with np.errstate(divide="ignore"):
        log_pos = np.log1p(-np.exp2(-k))  # -inf at k = 0
        log_neg = np.log1p(-np.exp2(-(m - k)))  # -inf at k = m
    term_pos = np.where(
        k == 0, 0.0 if n_pos == 0 else -np.inf, n_pos * np.where(k == 0, 0.0, log_pos)
    )
    term_neg = np.where(
        k == m, 0.0 if n_neg == 0 else -np.inf, n_neg * np.where(k == m, 0.0, log_neg)
    )
    terms = log_binom + term_pos + term_neg
    if np.all(np.isneginf(terms)):
        return -math.inf
    return float(logsumexp(terms))


def interpolation_probability(n_pos: int, n_neg: int, m: int) -> float:
    """Probability that the λ → 0 jump process interpolates (docs/limit.md).

    With Gaussian initial weights on orthogonal data the signs of ``u_ji(0)``
    are independent fair coins and the output signs ``s_j`` fair ±1; sample
    ``i`` is fitted iff some neuron has ``s_j = sign(y_i)`` and ``u_ji(0) > 0``.
    Conditioning on the number ``k`` of positive neurons,

        P = Σ_{k=0..m} C(m,k) 2^(−m) (1 − 2^(−k))^(n₊) (1 − 2^(−(m−k)))^(n₋).

    Each term is summed in log space (``gammaln`` for the binomial, ``log1p``
    for the coverage factors, ``logsumexp`` for the sum), so the result is
    accurate to a few ulps for any width up to thousands and any counts up
    to ``1e15``, with no overflow and no cancellation.

    Args:
        n_pos: number of samples with ``y_i > 0`` (integer >= 0).
        n_neg: number of samples with ``y_i < 0`` (integer >= 0); ``n_pos + n_neg >= 1``.
        m: width (integer >= 1).

    Returns:
        The probability, in [0, 1].
    """
    n_pos, n_neg = _counts(n_pos, n_neg)
    m = V.positive_int("m", m)
    if m > _MAX_WIDTH:
        raise InputError(f"m must be an integer in [1, {_MAX_WIDTH}], got {m}")
    lp = _log_probability(n_pos, n_neg, m)
    return float(min(1.0, math.exp(lp))) if lp > -math.inf else 0.0


def width_for_probability(n_pos: int, n_neg: int, p: float) -> int:
    """Smallest width ``m`` with ``interpolation_probability(n_pos, n_neg, m) >= p``.

    The probability is non-decreasing in ``m`` (adding a neuron can only cover
    more samples: couple the widths by drawing the extra neuron independently),
    so the smallest such ``m`` is found by doubling, then bisection on the
    bracket. The monotonicity is checked on the points visited; a violation
    (which would mean a numerical failure) raises ``RuntimeError``.

    Args:
        n_pos: number of positive labels (>= 0). n_neg: number of negative labels (>= 0);
            ``n_pos + n_neg >= 1``.
        p: target probability, in (0, 1).

    Returns:
        The smallest width (>= 1) reaching ``p``.
    """
    n_pos, n_neg = _counts(n_pos, n_neg)
    p = V.finite_float(
        "p",
        p,
        low=0.0,
        high=1.0,
        low_open=True,
        high_open=True,
        allowed="a probability in (0, 1), e.g. 0.95",
    )
    log_p = math.log(p)
    seen: dict[int, float] = {}

    def logprob(m: int) -> float:
        if m not in seen:
            seen[m] = _log_probability(n_pos, n_neg, m)
        return seen[m]

    hi = 1
    while logprob(hi) < log_p:
        if hi >= _MAX_WIDTH:
            raise InputError(
                f"no width up to {_MAX_WIDTH} reaches probability p = {p!r} "
                f"with n_pos = {n_pos}, n_neg = {n_neg}; use a smaller p"
            )
        hi *= 2
    lo = hi // 2  # logprob(lo) < log_p (or lo = 0, below every width)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if logprob(mid) >= log_p:
            hi = mid
        else:
            lo = mid
    widths = sorted(seen)
    values = [seen[w] for w in widths]
    # Allow a few ulps of rounding between neighbouring widths (the log terms
    # differ by less than that once P has saturated at 1).
    if any(b < a - 1e-12 for a, b in zip(values, values[1:], strict=False)):
        raise RuntimeError(f"interpolation_probability is not monotone in m on {dict(seen)}")
    return hi


def min_norm_sq(y: Any, x_norm: Any) -> float:
    """Smallest ``‖θ‖²`` of an interpolating network on orthogonal data (docs/limit.md).

        min ‖θ‖² = 2 ( sqrt(Σ_{y_i>0} y_i²/‖x_i‖²) + sqrt(Σ_{y_i<0} y_i²/‖x_i‖²) ),

    reached by one positive and one negative balanced neuron.

    Args:
        y: labels, shape (n,).
        x_norm: sample norms ``‖x_i‖`` (not squared), shape (n,) or a positive scalar.

    Returns:
        The minimal squared parameter norm.
    """
    y = V.finite_array("y", y, ndim=1)
    if np.ndim(x_norm) == 0:
        nrm = np.full(y.shape, V.finite_float("x_norm", x_norm, low=0.0, low_open=True))
    else:
        nrm = V.finite_array("x_norm", x_norm, ndim=1)
        if nrm.shape != y.shape:
            raise InputError(
                f"x_norm must have one entry per label (n = {y.shape[0]}), got {nrm.shape[0]}"
            )
        if (nrm <= 0).any():
            raise InputError(f"x_norm must be > 0 everywhere, got min {nrm.min():g}")
    q = (y / nrm) ** 2
    return float(2.0 * (math.sqrt(q[y > 0].sum()) + math.sqrt(q[y < 0].sum())))


def _norm_ratio(norm_sq: float, min_norm_sq: float, interpolates: bool) -> tuple[float, str]:
    """``‖θ‖² / min ‖θ‖²`` and, where it is undefined (NaN), why.

    The ratio compares an interpolating network with the smallest interpolating
    one, so it is at least 1 when defined. It is NaN when the network does not
    interpolate (a network that fits fewer samples can be smaller than every
    interpolator, so the ratio could fall below 1 and would mean nothing), when
    the minimal norm is 0 (every label is 0) and when ``‖θ‖²`` is unknown.

    Returns:
        ``(ratio, "")`` when defined, ``(nan, reason)`` otherwise.
    """
    if not interpolates:
        return math.nan, "does not interpolate (the ratio compares interpolators)"
    if not math.isfinite(norm_sq):
        return math.nan, "|theta|^2 unknown (ties left unresolved)"
    if math.isnan(min_norm_sq):
        return math.nan, "no closed-form minimal norm (it is known for orthogonal data)"
    if not min_norm_sq > 0:
        return math.nan, "the minimal norm is 0 (every label is 0)"
    return norm_sq / min_norm_sq, ""
