"""Switching events of the flow: ReLU kinks and sliding modes, located on a step's dense output.

A Dormand–Prince step (``K``: its seven stages, ``_P``: the dense-output
coefficients) is smooth while the activity mask is frozen; these helpers find
where it stops being valid (a coordinate changes sign, or a sliding
coordinate's activity fraction leaves [0, 1]) and decide the new modes there.
Used by :mod:`reluflow.flow`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.integrate import RK45

from .field import SLIDE_MARGIN, Field

_P = RK45.P

# The band within which coordinates switch together at an event: `1e-3 (atol + rtol·size)`
# with rtol capped here. A looser step tolerance must not widen it: at rtol = 1e-3 a band of
# 1e-6 of a neuron's size flipped coordinates that were only close to 0, which crossed back
# at once (2 848 steps instead of 645 at rtol = 1e-4 on Gaussian n = 100, m = 16).
EVENT_RTOL = 1e-8


def detection_band(a: np.ndarray, r: np.ndarray, h: float, kappa: float) -> np.ndarray:
    """How far a coordinate of each neuron may go to the wrong side of 0 over a step before
    it counts as crossing (shape (m,)):

        b_j = SLIDE_MARGIN · h · κ · |a_j| · max_i |r_i|,     κ = max_i Σ_k |K_ik| / n,

    with ``a`` and ``r`` at the step's end: the drift, over the step, of a coordinate whose
    mode the zero-set resolution decided within its margin (:meth:`Field.resolve_zero_set`
    rounds each fraction ``α_k`` of the zero set to 0 or 1 within ``SLIDE_MARGIN / 2``,
    which moves a velocity by at most ``SLIDE_MARGIN/2 · Σ_k |K_ik| |a_j r_k| / n``;
    rounding in the field, relative ``10⁻¹⁶`` of the same terms, adds far less). Such a
    coordinate, resolved into (or back into) a mode at 0, would otherwise end the next
    step a hair past 0, be cut there and resolved back again, forever
    (docs/general-data.md §4). A coordinate driven across 0 moves at the speed of the
    field's terms themselves, ``10⁹`` times this, and leaves the band at once.
    """
    rmax = float(np.max(np.abs(r), initial=0.0))
    return SLIDE_MARGIN * h * kappa * np.abs(a) * rmax


def gram_row_bound(K: np.ndarray) -> float:
    """``κ = max_i Σ_k |K_ik| / n`` of :func:`detection_band`."""
    return float(np.abs(K).sum(axis=1).max(initial=0.0)) / max(K.shape[0], 1)


def crossing_candidates(
    u0: np.ndarray,
    u1: np.ndarray,
    du0: np.ndarray,
    act: np.ndarray,
    sliding: np.ndarray,
    h: float,
    band: np.ndarray,
) -> np.ndarray:
    """The coordinates whose crossing :func:`locate_kinks` must look for (boolean (m, n)).

    An active coordinate that ends the step more than its neuron's band below 0, an
    inactive non-sliding one that ends more than the band above 0, and an active one that
    ends less than the band below 0 but came within half a step's motion ``h |du0|`` of 0
    (it may have left the band inside the step). ``band``: :func:`detection_band`, shape
    (m,) (0: the sign alone, as on orthogonal data, where a coordinate reaching 0 stays).
    """
    b = np.reshape(band, (-1, 1))
    crossed = (act & (u1 <= -b)) | (~act & ~sliding & (u1 > b))
    near = act & (u1 > -b) & (np.minimum(u0, u1) < 0.5 * h * np.abs(du0))
    return crossed | near


def locate_kinks(
    K: np.ndarray,
    yv: np.ndarray,
    h: float,
    m: int,
    cand: np.ndarray,
    u_old: np.ndarray,
    act: np.ndarray,
    rtol: float,
    atol: float | np.ndarray,
    band: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """First crossing, on the step's dense output, of the candidate coordinates.

    ``atol``: absolute tolerance, a number or one per neuron (shape (m,)). ``band``: the
    detection band of each neuron (:func:`detection_band`, shape (m,); None: 0). A
    candidate crosses only if it goes past its band, ``sgn·u_ji <= −b_j``, at one of the
    16 grid points of the step. Its crossing is then located (bracketed by the first grid
    point past it, bisected) at its zero if it started the step on the right side of 0,
    as without a band; if it started at 0 or inside the band on the wrong side, where it
    leaves the band. Such a coordinate was set to 0 by a zero-set resolution and departs
    from 0 the wrong way tangentially (velocity 0 within the resolution's margin, an
    acceleration across): at its zero, θ = 0, the resolution would see the same
    velocity and keep the same mode, step after step; where it leaves the band its
    velocity has grown past the margin. The flip sets it to 0 there, a move of ``b_j``.

    Returns ``(θ*, flat indices to flip)`` with θ* in [0, 1] the fraction of the step.
    """
    idx = m + cand
    Qc = K[:, idx].T @ _P  # (c, 4) dense-output coefficients
    u0 = yv[idx]
    was_active = act.ravel()[cand]
    sgn = np.where(was_active, 1.0, -1.0)  # +: crossing downwards, -: upwards

    j = cand // u_old.shape[1]
    b = band[j] if band is not None else np.zeros(cand.size)
    # where the crossing is located: at 0, or at the band's edge for a coordinate that
    # starts the step at 0 or inside the band
    depth = np.where(sgn * u0 <= 0, b, 0.0)

    def val(th: np.ndarray) -> np.ndarray:  # signed distance to 0, > 0 on the right side
        p = np.stack([th, th**2, th**3, th**4], axis=-1)
        return sgn * (u0 + h * np.einsum("ck,ck->c", Qc, p))

    # bracket the first crossing on a coarse grid, then bisect; a candidate counts only if
    # it goes past its band
    grid = np.linspace(0.0, 1.0, 17)[1:]
    lo = np.zeros(cand.size)
    hi = np.full(cand.size, np.inf)
    prev = np.zeros(cand.size)
    past = np.zeros(cand.size, dtype=bool)
    for g in grid:
        d = val(np.full(cand.size, g))
        new = np.isinf(hi) & (d + depth <= 0)
        hi[new] = g
        lo[new] = prev[new]
        prev = np.where(np.isinf(hi), g, prev)
        past |= d + b <= 0
    hi[~past] = np.inf
    # an inactive coordinate sitting at 0 that would rise, or an active one at 0: crossing at 0
    at_zero = u0 == 0
    lo[at_zero] = 0.0
    hi[at_zero & np.isinf(hi)] = np.inf
    hit = np.isfinite(hi)
    if not hit.any():
        return 1.0, np.zeros(0, dtype=np.int64)
    lo, hi = lo[hit], hi[hit]
    sub = np.flatnonzero(hit)
    sgn_h, u0_h, Qc_h, depth_h = sgn[sub], u0[sub], Qc[sub], depth[sub]
    for _ in range(52):
        mid = 0.5 * (lo + hi)
        p = np.stack([mid, mid**2, mid**3, mid**4], axis=-1)
        v = sgn_h * (u0_h + h * np.einsum("ck,ck->c", Qc_h, p)) + depth_h
        pos = v > 0
        lo = np.where(pos, mid, lo)
        hi = np.where(pos, hi, mid)
        if (hi - lo).max() < 1e-15:
            break
    theta = hi
    th_star = float(theta.min())
    # flip every coordinate crossing at th_star, and those whose remaining distance to their
    # crossing there is negligible against their neuron's size
    p = np.array([th_star, th_star**2, th_star**3, th_star**4])
    v_star = sgn * (u0 + h * (Qc @ p)) + depth
    neuron_size = np.maximum(np.abs(yv[:m]), np.abs(u_old).max(axis=1))[j]
    atol_j = atol[j] if np.ndim(atol) else atol  # per neuron when in log-scale units
    close = v_star <= 1e-3 * (atol_j + min(rtol, EVENT_RTOL) * neuron_size)
    crossing_now = np.zeros(cand.size, dtype=bool)
    crossing_now[sub[theta <= th_star]] = True
    flip = cand[crossing_now | (close & np.isin(np.arange(cand.size), sub))]
    return th_star, flip


def exited(alpha: np.ndarray) -> np.ndarray:
    """Which sliding fractions have left [0, 1] (by more than the hysteresis margin)."""
    return (alpha < -SLIDE_MARGIN) | (alpha > 1.0 + SLIDE_MARGIN)


def outside_unit(alpha: np.ndarray) -> bool:
    """Whether any sliding fraction has left [0, 1]."""
    return bool(exited(alpha).any())


def locate_sliding_exit(
    f: Callable[[np.ndarray, np.ndarray, float], np.ndarray],
    K: np.ndarray,
    yv: np.ndarray,
    h: float,
    theta_max: float,
    field: Field,
    scratch: np.ndarray,
) -> float | None:
    """First θ in (0, θ_max] where a sliding coordinate's activity fraction α leaves [0, 1].

    α is a smooth function of the state along the step; it is evaluated on the
    step's dense output (one field evaluation per point, ``f(state, out, time
    offset within the step)``), bracketed on a grid
    and refined by the Illinois method to ``1e-13`` of the step. Returns the upper end of the final bracket (just past the
    exit, where the new mode is unambiguous), or None if α stays in [0, 1]
    up to θ_max.
    """
    Q = K.T @ _P
    lo_b, hi_b = -SLIDE_MARGIN, 1.0 + SLIDE_MARGIN

    def excess(th: float) -> float:
        """How far the furthest α is outside its band (> 0: outside)."""
        f(yv + h * (Q @ (th ** np.arange(1, 5))), scratch, th * h)
        al = field.alpha[2]
        return float(np.max(np.maximum(lo_b - al, al - hi_b)))

    return first_exit(excess, theta_max)


def first_exit(excess: Callable[[float], float], theta_max: float) -> float | None:
    """First θ in (0, θ_max] where ``excess(θ)`` (how far the furthest sliding fraction is
    outside its band) becomes positive: bracketed on a grid of 4, then the Illinois variant
    of regula falsi (α is smooth in θ) to ``1e-13``; the upper end of the final bracket, or
    None if it stays ≤ 0 on the grid."""
    lo, g_lo, hi, g_hi = 0.0, excess(0.0), None, 0.0
    for g in np.linspace(0.0, theta_max, 5)[1:]:
        e = excess(float(g))
        if e > 0:
            hi, g_hi = float(g), e
            break
        lo, g_lo = float(g), e
    if hi is None:
        return None
    side = 0
    for _ in range(100):
        if hi - lo <= 1e-13 * max(hi, 1e-300) + 1e-300:
            break
        mid = hi - g_hi * (hi - lo) / (g_hi - g_lo) if g_hi != g_lo else 0.5 * (lo + hi)
        if not lo < mid < hi:
            mid = 0.5 * (lo + hi)
        e = excess(mid)
        if e > 0:
            hi, g_hi = mid, e
            if side == 1:
                g_lo *= 0.5
            side = 1
        else:
            lo, g_lo = mid, e
            if side == -1:
                g_hi *= 0.5
            side = -1
    return hi


def locate_sign_change(
    a0: np.ndarray, C: np.ndarray, h: float, theta_max: float, sliding_rows: np.ndarray
) -> tuple[float, np.ndarray]:
    """First zero in (0, θ_max] of an output weight ``a_j`` whose neuron has sliding coordinates.

    A sliding mode needs ``a_j r_i < 0`` (the coordinate attracted to 0 from both sides);
    where ``a_j`` changes sign its sliding coordinates turn repelling and the sliding
    solution stops being the flow's (docs/general-data.md, rank-deficient data). On the
    step's dense output ``a_j(θ) = a0_j + h Σ_q C_jq θ^{q+1}`` (``C = Kaᵀ P``, shape
    (m, 4)), the zero of each neuron of ``sliding_rows`` whose sign differs between 0 and
    θ_max is bisected to the last bit and the upper end taken, so that ``a_j`` already has
    its new sign there.

    Returns ``(θ_a, released)``: the first such zero (``inf`` if none) and the neurons
    whose sign has changed at it.
    """
    m = a0.size

    def val(th: float) -> np.ndarray:
        return a0 + h * (C @ np.array([th, th**2, th**3, th**4]))

    end = val(theta_max)
    cand = np.flatnonzero(sliding_rows & (a0 != 0.0) & (a0 * end <= 0.0))
    if cand.size == 0:
        return np.inf, np.zeros(m, dtype=bool)
    best = np.inf
    for j in cand:
        lo, hi = 0.0, theta_max
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if not lo < mid < hi:
                break
            if a0[j] * val(mid)[j] > 0.0:
                lo = mid
            else:
                hi = mid
        best = min(best, hi)
    released = np.zeros(m, dtype=bool)
    released[cand] = a0[cand] * val(best)[cand] <= 0.0
    return best, released


def switch(
    field: Field,
    f: Callable[[np.ndarray, np.ndarray], np.ndarray],
    yv: np.ndarray,
    buf: np.ndarray,
    m: int,
    n: int,
    mask: np.ndarray,
    sliding: np.ndarray,
    flip: np.ndarray,
    released: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-decide the mode of every coordinate at 0 in the neurons touched by an event.

    Touched: the neurons of the crossing coordinates ``flip``, those whose
    sliding fraction α has left [0, 1] and the ``released`` ones (whose output weight
    changed sign while sliding: :func:`locate_sign_change`). For each, the set ``Z`` of its
    coordinates at 0 (crossing or sliding) is set to exactly 0 and resolved
    jointly (:meth:`Field.resolve_zero_set`). ``mask`` and ``sliding`` are
    updated in place. Returns the flat indices whose mode changed, whether
    each became active, and whether each entered a sliding mode.

    Raises:
        FloatingPointError: a zero set without a consistent assignment.
    """
    u = yv[m:].reshape(m, n)
    u.ravel()[flip] = 0.0
    r = f(yv, buf)
    left = np.zeros(m, dtype=bool)
    if sliding.any():
        j_s, _, alpha = field.alpha
        left[j_s[exited(alpha)]] = True
    if released is not None:
        left |= released
    return resolve(field, r, left, yv, m, n, mask, sliding, flip)


def resolve(
    field: Field,
    r: np.ndarray,
    left: np.ndarray,
    yv: np.ndarray,
    m: int,
    n: int,
    mask: np.ndarray,
    sliding: np.ndarray,
    flip: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The body of :func:`switch` given the residuals ``r`` at the event and ``left``,
    the neurons one of whose sliding fractions has left [0, 1] there (for a caller that
    evaluates the field itself, e.g. a compiled kernel: the exit it located and the
    neurons it resolves then come from the same arithmetic)."""
    u = yv[m:].reshape(m, n)
    u.ravel()[flip] = 0.0
    crossing = np.zeros((m, n), dtype=bool)
    crossing.ravel()[flip] = True
    touched = crossing.any(axis=1) | left
    changed, ups, slides = [], [], []
    a = yv[:m]
    for j in np.flatnonzero(touched):
        Z = np.flatnonzero(crossing[j] | sliding[j])
        u[j, Z] = 0.0
        act_Z, slide_Z = field.resolve_zero_set(j, float(a[j]), r, mask[j], Z)
        old_act, old_slide = mask[j, Z] > 0, sliding[j, Z]
        mask[j, Z] = act_Z
        sliding[j, Z] = slide_Z
        diff = (old_act != act_Z) | (old_slide != slide_Z)
        changed.append(j * n + Z[diff])
        ups.append(act_Z[diff])
        slides.append(slide_Z[diff] & ~old_slide[diff])
    if not changed:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
    return np.concatenate(changed), np.concatenate(ups), np.concatenate(slides)
