"""Plateaus of the flow in closed form: the stretches whose length grows like log(1/λ).

On a plateau the visible neurons sit at a critical point and every other
neuron is so small that its outputs are negligible; the residual ``r`` is then
constant and each small neuron evolves alone and linearly (docs/any-scale.md):

    a' = cᵀu,     u' = a v,     c = −(r ∘ M_j) / n,     v = K c   (v = ‖x‖² ∘ c, orthogonal)

with ``M_j`` its activity mask. With ``γ² = cᵀv`` the solution is, exactly,

    a(s) = α e^{γs} + β e^{−γs},     u(s) = (α e^{γs} − β e^{−γs}) v/γ + w,
    α, β = (a ± cᵀu/γ) / 2,          w = u − (cᵀu/γ) v/γ,

(the growing mode, the decaying mode and the part of ``u`` that does not move).
An explicit solver cannot take steps longer than about ``3.3 / (2γ)`` there (the
decaying mode would be unstable), so a plateau of length ``∝ log(1/λ)`` would
cost ``∝ log(1/λ)`` steps; this module crosses it in one step instead, in the
neurons' log-scale representation ``(a, u) = e^{ℓ}(â, û)`` with ``ℓ ← ℓ + γ s``:

    â(s) = α + β e^{−2γs},     û(s) = (α − β e^{−2γs}) v/γ + w e^{−γs}.

Residuals below ``eps`` of their label count as 0 (fitted samples), as the
small outputs do; the error of the stretch is of relative order ``eps``.
The stretch ends at the first of: a small neuron's outputs reaching ``eps`` of
the labels (as at the end of the closed-form initial phase), a coordinate of a
small neuron crossing 0 (the solver then locates that kink), the stop time. A
stretch is not taken while a small neuron has a coordinate in a sliding mode or
at 0 about to move (general data): the solver resolves those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Longest stretch tried, in units of the current step (more is not needed: a
# stretch ends where the outputs of a small neuron become visible).
_MIN_GAIN = 50.0


@dataclass
class Jump:
    """A closed-form stretch of length ``s`` from the current state."""

    s: float
    small: np.ndarray  # (k,) neuron indices evolved in closed form
    gam: np.ndarray  # (k,)
    alpha: np.ndarray
    beta: np.ndarray
    v_over_g: np.ndarray  # (k, n)
    w: np.ndarray  # (k, n)

    def scale(self, ds: float) -> tuple[np.ndarray, np.ndarray]:
        """``(Δℓ, â)`` of the small neurons ``ds`` after the start (``â`` as in :meth:`state`)."""
        g = self.gam
        with np.errstate(under="ignore", over="ignore"):
            e2 = np.exp(-2.0 * g * ds)
        return g * ds, self.alpha + self.beta * e2

    def state(self, ds: float | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(Δℓ, â, û)`` of the small neurons ``ds`` after the start (ds scalar)."""
        g = self.gam
        with np.errstate(under="ignore", over="ignore"):
            e2 = np.exp(-2.0 * g * ds)
            e1 = np.exp(-g * ds)
        a = self.alpha + self.beta * e2
        u = (self.alpha - self.beta * e2)[:, None] * self.v_over_g + e1[:, None] * self.w
        return g * ds, a, u


def plateau_ready(
    *,
    ell: np.ndarray,
    a: np.ndarray,
    u: np.ndarray,
    mask: np.ndarray,
    velocity: np.ndarray,
    bound: np.ndarray,
    eps: float,
    rest_tol: float,
) -> np.ndarray | None:
    """The small neurons when the state is on a plateau, else None.

    Small: ``e^{2ℓ_j} |â_j| σ(û_ji) <= eps · bound_i`` for every ``i``; on a plateau
    every other (visible) neuron is at rest, ``max|F_j| <= rest_tol · max(|â_j|,
    max_i |û_ji|)`` (``velocity``: the true field ``F``, flat ``(a, u)``, in the
    neurons' units). The compiled engine evaluates the same test in its kernel.
    """
    m = a.shape[0]
    with np.errstate(under="ignore", over="ignore"):
        w2 = np.exp(2.0 * ell)
        contrib = w2 * np.abs(a) * (np.maximum(u, 0.0) * mask / bound[None, :]).max(axis=1)
    small = contrib <= eps
    if not small.any():
        return None
    va, vu = velocity[:m], velocity[m:].reshape(m, -1)
    size = np.maximum(np.abs(a), np.abs(u).max(axis=1))
    speed = np.maximum(np.abs(va), np.abs(vu).max(axis=1))
    vis = ~small
    if not (speed[vis] <= rest_tol * size[vis]).all():
        return None
    return small


def try_jump(
    *,
    small: np.ndarray,
    ell: np.ndarray,
    a: np.ndarray,
    u: np.ndarray,
    mask: np.ndarray,
    r: np.ndarray,
    n: int,
    gram: np.ndarray | None,
    D: np.ndarray,
    bound: np.ndarray,
    eps: float,
    h: float,
    s_max: float,
) -> Jump | None:
    """The closed-form stretch from a plateau (``small``: from :func:`plateau_ready`), or None.

    Args:
        small: the small neurons. ell, a, u: the state ``(a, u) = e^{ℓ}(â, û)``.
        mask: activity (float 0/1). r: the residual.
        gram: the Gram matrix (None for orthogonal data). D: ``‖x_i‖²``.
        bound, eps: as in :func:`plateau_ready`.
        h: the solver's current step; a stretch shorter than 50 h is not taken.
        s_max: the time left before the stop time.
    """
    idx = np.flatnonzero(small)
    # residuals within eps of a fitted sample count as 0, like the small outputs: a
    # tiny residual left by the solver would otherwise drive the coordinates of small
    # neurons on fitted samples (relative effect <= eps)
    r = np.where(np.abs(r) <= eps * bound, 0.0, r)
    c = -(r[None, :] * mask[idx]) / n
    v = c @ gram if gram is not None else c * D[None, :]
    if ((u[idx] == 0) & (v != 0)).any():
        return None  # a coordinate at 0 that would move at once: the solver resolves it
    g2 = np.einsum("ki,ki->k", c, v)
    gam = np.sqrt(np.maximum(g2, 0.0))
    if not (gam > 0).any():
        return None  # nothing grows: the flow has ended (the stall rule decides)
    safe = np.where(gam > 0, gam, 1.0)
    au, uu = a[idx], u[idx]
    cu = np.einsum("ki,ki->k", c, uu) / safe
    alpha = np.where(gam > 0, 0.5 * (au + cu), au)
    beta = np.where(gam > 0, 0.5 * (au - cu), 0.0)
    vg = np.where(gam[:, None] > 0, v / safe[:, None], 0.0)
    w = uu - np.where(gam > 0, cu, 0.0)[:, None] * vg
    del c, v  # (k, n) each: the peak memory of a run is here
    jump = Jump(s_max, idx, gam, alpha, beta, vg, w)
    ell_s = ell[idx]
    # before the first kink no coordinate changes sign, so σ(û(s)) keeps the coordinates
    # positive at the start: the outputs are f(s) = Σ_k e^{2(ℓ_k + γ_k s)} â_k(s)
    # ((α_k − β_k e^{−2γ_k s}) (v/γ)⁺_k + e^{−γ_k s} w⁺_k), two products with fixed arrays
    vg_on = np.where(uu > 0, mask[idx], 0.0)
    w_on = w * vg_on
    vg_on *= vg
    limit = eps * bound
    m2g, mg = -2.0 * gam, -gam

    def visible(s: float) -> bool:
        e2 = np.exp(m2g * s)
        wa = np.exp(2.0 * (ell_s + gam * s)) * (alpha + beta * e2)
        f = (wa * (alpha - beta * e2)) @ vg_on + (wa * np.exp(mg * s)) @ w_on
        return not bool(np.all(np.abs(f) <= limit))

    with np.errstate(under="ignore", over="ignore", invalid="ignore"):
        if s_max <= 10.0 * h or visible(10.0 * h):
            # the scan below would stop at its first point, 10 h or a kink before it, and
            # the stretch be refused as shorter than 50 h: known before locating the kink
            return None

    # first sign change of a coordinate that moves: u(s) e^{γs}-units = A X + B/X + C, X = e^{γs}
    s_kink = _first_crossing(alpha[:, None] * vg, -beta[:, None] * vg, w, gam, uu, vg)
    s_cap = min(s_max, s_kink)

    # geometric scan, then bisection, for the first time the small outputs reach eps
    lo, hi = 0.0, min(s_cap, 10.0 * h)
    with np.errstate(under="ignore", over="ignore", invalid="ignore"):
        for _ in range(200):
            if hi >= s_cap or visible(hi):
                break
            lo, hi = hi, min(s_cap, 4.0 * hi)
        else:
            return None  # nothing becomes visible: the flow has ended (the stall rule decides)
        if hi < _MIN_GAIN * h:
            return None  # the stretch would end before hi: too short
        if hi >= s_cap and not visible(s_cap):
            if math.isinf(s_cap):
                return None
            lo = s_cap
        else:
            for _ in range(60):
                if hi - lo <= 1e-9 * hi:
                    break
                mid = 0.5 * (lo + hi)
                if visible(mid):
                    hi = mid
                else:
                    lo = mid
    if lo < _MIN_GAIN * h:
        return None
    if lo == s_kink:
        lo = s_kink * (1.0 - 1e-9)  # stop just before the kink: the solver locates it
    jump.s = lo
    return jump


def _first_crossing(
    A: np.ndarray, B: np.ndarray, C: np.ndarray, gam: np.ndarray, u0: np.ndarray, vg: np.ndarray
) -> float:
    """Smallest ``s > 0`` where some ``A X + B / X + C`` (``X = e^{γ s}``) changes sign.

    Only coordinates that move (``v ≠ 0``) can cross; roots of ``A X² + C X + B = 0``
    with ``X > 1``.
    """
    moving = (vg != 0) & (gam[:, None] > 0)
    if not moving.any():
        return math.inf
    A, B, C = A[moving], B[moving], C[moving]
    g = np.broadcast_to(gam[:, None], moving.shape)[moving]
    disc = C * C - 4.0 * A * B
    best = math.inf
    ok = disc >= 0
    sq = np.sqrt(np.where(ok, disc, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        for root in ((-C + sq) / (2.0 * A), (-C - sq) / (2.0 * A)):
            lin = A == 0  # C X + B = 0
            root = np.where(lin, -B / C, root)
            good = ok & np.isfinite(root) & (root > 1.0)
            if good.any():
                best = min(best, float((np.log(root[good]) / g[good]).min()))
    return best
