"""The reduced-coordinate vector field ``−∇L`` shared by the flow and gradient descent.

docs/model.md, with ``M`` the activity mask ``1[u_ji > 0]`` (σ'(0) = 0):

    r_i     = Σ_j a_j σ(u_ji) − y_i
    da_j/dt = −(1/n) Σ_i r_i σ(u_ji)
    du_j/dt = −(1/n) a_j Σ_i r_i M_ji K_i·        (general data, O(m n²))
    du_ji/dt = −(1/n) a_j r_i ‖x_i‖² M_ji         (orthogonal data, O(m n))

The mask is an argument rather than recomputed from ``u``: the flow freezes
it over a step so that the field is smooth there and a kink (a coordinate
crossing 0) can be located exactly on the step's dense output.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy.linalg import solve_triangular
from scipy.optimize import lsq_linear

from ..data import Dataset

# A sliding coordinate leaves its mode when its activity fraction α leaves
# [−SLIDE_MARGIN, 1 + SLIDE_MARGIN]; a zero set is resolved accepting α within half
# that margin. The gap between the two makes the switching logic hysteretic, so
# that rounding cannot bounce a coordinate between modes at one point in time.
SLIDE_MARGIN = 1e-9


class Field:
    """``−∇L`` in reduced coordinates for one dataset."""

    def __init__(self, data: Dataset):
        self.y = data.y
        self.n = data.n
        self.orthogonal = bool(data.is_orthogonal)
        self.D = data.sq_norms()
        self.K = None if self.orthogonal else data.gram()
        self.alpha: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._hold_cache: dict[int, tuple[bytes, np.ndarray, np.ndarray]] = {}

    def velocity(
        self,
        a: np.ndarray,
        u: np.ndarray,
        mask: np.ndarray,
        weights: np.ndarray | float | None = None,
        out_a: np.ndarray | None = None,
        out_u: np.ndarray | None = None,
        sliding: np.ndarray | None = None,
        neuron_weight: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(da/dt, du/dt, r)`` at ``(a, u)`` with activity ``mask`` (float 0/1 array).

        Args:
            weights: per-sample loss weights (default ``1/n``); a minibatch uses
                ``1/|B|`` on its samples and 0 elsewhere.
            out_a, out_u: optional output buffers.
            sliding: (general data only) coordinates held at ``u_ji = 0`` by a
                sliding mode (inactive they would rise, active they would fall). Their
                Filippov velocity is 0: each carries the fraction of activity ``α``
                that keeps it at 0 (solved jointly per neuron, not clipped, so that
                the caller can locate where ``α`` leaves [0, 1]); :attr:`alpha` holds
                ``(rows, cols, α)`` after the call.
            neuron_weight: ``e^{2ℓ_j}`` when neuron ``j`` is given as ``(a_j, u_j) =
                e^{−ℓ_j}`` times its true value (docs/any-scale.md): the outputs are
                ``Σ_j e^{2ℓ_j} a_j σ(u_ji)`` and, the field of a neuron being
                homogeneous of degree 1 in ``(a_j, u_j)`` for a fixed residual, the
                returned velocities are then in the same units as ``(a, u)``.
        """
        sig = u * mask
        r = (a if neuron_weight is None else a * neuron_weight) @ sig - self.y
        rw = r * (1.0 / self.n if weights is None else weights)
        da = np.matmul(sig, rw, out=out_a)
        np.negative(da, out=da)
        if self.orthogonal:
            g = rw * self.D
            du = np.multiply(np.multiply.outer(-a, g), mask, out=out_u)
        else:
            du = np.matmul(mask * rw, self.K, out=out_u)
            du *= -a[:, None]
            if sliding is not None and sliding.any():
                self.alpha = self._hold(a, rw, du, sliding)
        return da, du, r

    def _hold(
        self, a: np.ndarray, rw: np.ndarray, du: np.ndarray, sliding: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Filippov velocity of the sliding coordinates, neuron by neuron.

        For neuron j with sliding set S, the activity fractions α_S solve
        ``du_jS(α) = g₀_S − a_j K_SS diag(rw_S) α_S = 0`` (all of S held at 0
        together, ``g₀``: their velocity when inactive). With
        ``q = K_SS⁻¹ g₀_S`` this is ``α = q / (a_j rw_S)``, and the feedback on the
        whole row is ``−q K_S·``, which also sets ``du_jS`` to exactly 0.
        ``K_SS⁻¹`` is cached per neuron while its sliding set stays the same.
        """
        rows, cols, alphas = [], [], []
        for j in np.flatnonzero(sliding.any(axis=1)):
            S = np.flatnonzero(sliding[j])
            key = S.tobytes()
            hit = self._hold_cache.get(j)
            if hit is None or hit[0] != key:
                KS = self.K[S]
                hit = (key, np.linalg.inv(KS[:, S]), KS)
                self._hold_cache[j] = hit
            _, Kinv, KS = hit
            q = Kinv @ du[j, S]
            du[j] -= q @ KS
            du[j, S] = 0.0  # held exactly at 0 (removes rounding)
            with np.errstate(divide="ignore", invalid="ignore"):
                al = q / (a[j] * rw[S])
            rows.append(np.full(S.size, j))
            cols.append(S)
            alphas.append(np.nan_to_num(al, nan=np.inf))
        return np.concatenate(rows), np.concatenate(cols), np.concatenate(alphas)

    def resolve_zero_set(
        self, j: int, a_j: float, r: np.ndarray, mask_j: np.ndarray, Z: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mode of neuron ``j``'s coordinates sitting at ``u_jZ = 0`` (general data).

        Each coordinate of ``Z`` is inactive (``α = 0``, velocity ``<= 0``),
        active (``α = 1``, velocity ``>= 0``) or sliding (``α`` in (0, 1),
        velocity 0), the velocities ``w = g₀_Z − K_ZZ β`` being coupled through
        ``K`` (``β_i = a_j r_i α_i / n``, ``g₀``: the velocities with all of ``Z``
        inactive). For the attracting coordinates (``c_i = a_j r_i / n > 0``) this
        complementarity problem is the KKT system of the convex program

            minimise ½ βᵀ K_ZZ β − g₀ᵀ β   subject to 0 <= β_i <= c_i,

        solved exactly as a bounded least-squares problem (BVLS) on the Cholesky
        factor of ``K_ZZ``. Repelling coordinates (``c_i < 0``) cannot slide:
        they stay inactive (the ``σ'(0) = 0`` convention) unless their velocity
        is then positive, in which case they activate. A coordinate with
        ``c_i = 0`` (``r_i = 0``, e.g. a zero label) changes no velocity; it is
        decided last, active iff its velocity is positive. An attracting
        coordinate rounded to a bound whose velocity there points out of that
        mode slides with its unrounded α. The caller evaluates just past a
        switching point, where the assignment is unique (docs/sliding-modes.md).

        Args:
            j: neuron. a_j: its output weight. r: residuals (they do not depend on
                ``Z``, since ``σ(0) = 0``). mask_j: activity of row ``j`` (``Z``'s
                entries are ignored). Z: sample indices at 0.

        Returns:
            ``(active, sliding)`` boolean arrays over ``Z``.

        Raises:
            FloatingPointError: the assignment found is not consistent (``K_ZZ``
                numerically singular).
        """
        c = a_j * r[Z] / self.n
        m_j = mask_j.astype(float)  # a copy
        m_j[Z] = 0.0
        g0 = -a_j * (self.K[Z] @ (m_j * r / self.n))  # K symmetric: rows, not columns
        KZ = self.K[Z[:, None], Z]
        attract = c > 0
        repel = c < 0
        # c_i = 0 (r_i = 0: a zero label on a sample no neuron is active on, or the
        # linear phase's r = −y): the coordinate's activity changes no velocity, so it
        # is decided last, by the sign of its velocity (docs/sliding-modes.md)
        inert = ~attract & ~repel
        beta = np.zeros(Z.size)
        woke = np.zeros(Z.size, dtype=bool)
        for _ in range(Z.size + 1):
            g = g0 - KZ[:, ~attract] @ beta[~attract]
            if attract.any():
                beta[attract] = _box_qp(KZ[attract][:, attract], g[attract], c[attract])
            w = g0 - KZ @ beta
            wake = repel & ~woke & (w > 0.0)
            if not wake.any():
                break
            woke |= wake
            beta[wake] = c[wake]  # a repelling coordinate pushed upwards activates
        active = woke.copy()
        sliding = np.zeros(Z.size, dtype=bool)
        hi = attract & (beta >= c * (1 - SLIDE_MARGIN / 2))
        lo = attract & (beta <= c * (SLIDE_MARGIN / 2))
        active[hi] = True
        sliding[attract & ~hi & ~lo] = True
        al = np.where(active, 1.0, 0.0)
        al[sliding] = beta[sliding] / c[sliding]
        w = g0 - KZ @ (al * c)
        # An attracting coordinate rounded to a bound while its velocity there points away
        # from that mode would be flipped back by the solver at once (an inactive one
        # rising, an active one falling): its α is small but real (e.g. a neuron active
        # only on zero-label samples, whose residuals are still tiny). It slides, with
        # its α from the box QP; un-rounding it changes the others' velocities: repeat.
        # (Coordinates the QP itself put at a bound keep it: they are inconsistent only
        # through the rounding of others.)
        rounded = (lo | hi) & (beta > 0.0) & (beta < c)
        for _ in range(Z.size):
            wrong = rounded & ~sliding & ((lo & (w > 0.0)) | (hi & (w < 0.0)))
            if not wrong.any():
                break
            active[wrong] = False
            sliding[wrong] = True
            al[wrong] = beta[wrong] / c[wrong]
            w = g0 - KZ @ (al * c)
        active |= inert & (w > 0.0)
        # verify the complementarity conditions on the rounded assignment
        tol = 1e-9 * float(np.abs(g0).max(initial=0.0) + np.abs(KZ @ c).max(initial=0.0))
        inact = ~active & ~sliding
        if (w[inact] > tol).any() or (w[active] < -tol).any() or (np.abs(w[sliding]) > tol).any():
            raise FloatingPointError(
                f"no consistent sliding assignment for neuron {j} on {Z.size} coordinates "
                f"(velocities {w}, tolerance {tol:.3e})"
            )
        return active, sliding


def _box_qp(K: np.ndarray, g: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``argmin ½ βᵀKβ − gᵀβ`` over ``0 <= β <= c`` (K symmetric positive definite).

    Block principal pivoting first (exact, a few ``k × k`` solves); bounded least
    squares (BVLS) on the Cholesky factor when it does not settle.
    """
    if K.shape[0] == 1:
        return np.clip(g / K[0], 0.0, c)
    beta = _box_qp_pivoting(K, g, c)
    if beta is not None:
        return beta
    try:
        L = np.linalg.cholesky(K)
    except np.linalg.LinAlgError as exc:
        raise FloatingPointError("Gram matrix of the zero set is not positive definite") from exc
    # ½‖Lᵀβ − L⁻¹g‖² = ½ βᵀKβ − gᵀβ + const, in units of max(c) so that BVLS's
    # tolerances are relative to the problem
    unit = float(c.max())
    res = lsq_linear(
        L.T,
        solve_triangular(L, g / unit, lower=True),
        bounds=(0.0, c / unit),
        method="bvls",
        tol=1e-15,
    )
    beta = np.clip(res.x * unit, 0.0, c)
    # polish: with the bounds BVLS found, solve the free coordinates exactly
    free = (beta > 0.0) & (beta < c)
    if free.any():
        fixed = ~free
        exact = _solve(K[np.ix_(free, free)], g[free] - K[np.ix_(free, fixed)] @ beta[fixed])
        if ((exact >= 0.0) & (exact <= c[free])).all():
            beta[free] = exact
    return beta


def _box_qp_pivoting(K: np.ndarray, g: np.ndarray, c: np.ndarray) -> np.ndarray | None:
    """Block principal pivoting (Júdice and Pires) for the box QP of :func:`_box_qp`.

    Optimality: ``w = Kβ − g`` with ``w_i >= 0`` where ``β_i = 0``, ``w_i <= 0`` where
    ``β_i = c_i`` and ``w_i = 0`` in between. Each iteration solves the free block
    exactly (Cholesky) and moves every violating coordinate to the other side; after
    three iterations without fewer violations it moves only the violating coordinate of
    largest index (Murty's rule, finite for positive definite ``K``). Returns None
    if it has not settled after ``10 k + 10`` iterations, or if a free block is not
    numerically positive definite.
    """
    K = np.ascontiguousarray(K, dtype=float)
    g = np.ascontiguousarray(g, dtype=float)
    c = np.ascontiguousarray(c, dtype=float)
    beta = np.empty(g.size)
    return beta if _pivoting(K, g, c, beta) else None


@njit(cache=True)
def _pivoting(K, g, c, beta):  # pragma: no cover - compiled
    """:func:`_box_qp_pivoting` into ``beta``; returns whether it settled."""
    k = g.size
    lo = np.zeros(k, dtype=np.bool_)  # at 0
    up = np.zeros(k, dtype=np.bool_)  # at c
    bad_lo = np.zeros(k, dtype=np.bool_)
    bad_up = np.zeros(k, dtype=np.bool_)
    bad_l = np.zeros(k, dtype=np.bool_)
    bad_u = np.zeros(k, dtype=np.bool_)
    fi = np.empty(k, dtype=np.int64)
    fx = np.empty(k, dtype=np.int64)
    L = np.empty((k, k))
    x = np.empty(k)
    w = np.empty(k)
    gmax = 0.0
    for i in range(k):
        gmax = max(gmax, abs(g[i]))
    best, stalled = k + 1, 0
    for _ in range(10 * k + 10):
        nf = 0
        nx = 0
        for i in range(k):
            beta[i] = c[i] if up[i] else 0.0
            if lo[i] or up[i]:
                fx[nx] = i
                nx += 1
            else:
                fi[nf] = i
                nf += 1
        if nf > 0:
            # K_ff β_f = g_f − K_fx β_x by Cholesky (K_ff is positive definite)
            for a in range(nf):
                ia = fi[a]
                acc = g[ia]
                for b in range(nx):
                    acc -= K[ia, fx[b]] * beta[fx[b]]
                x[a] = acc
                for b in range(a + 1):
                    v = K[ia, fi[b]]
                    for q in range(b):
                        v -= L[a, q] * L[b, q]
                    if a == b:
                        if not v > 0.0:
                            return False
                        L[a, a] = np.sqrt(v)
                    else:
                        L[a, b] = v / L[b, b]
            for a in range(nf):
                acc = x[a]
                for q in range(a):
                    acc -= L[a, q] * x[q]
                x[a] = acc / L[a, a]
            for a in range(nf - 1, -1, -1):
                acc = x[a]
                for q in range(a + 1, nf):
                    acc -= L[q, a] * x[q]
                x[a] = acc / L[a, a]
            for a in range(nf):
                beta[fi[a]] = x[a]
        nbad = 0
        # the rounding scale of w = Kβ − g at this β (not max|K c|: when g is far
        # below the pull K c, the solution is a tiny β whose w must still be resolved)
        kbmax = 0.0
        for i in range(k):
            acc = 0.0
            mag = 0.0
            for q in range(k):
                acc += K[i, q] * beta[q]
                mag += abs(K[i, q] * beta[q])
            w[i] = acc - g[i]
            kbmax = max(kbmax, mag)
        tol = 1e-13 * (gmax + kbmax)
        for i in range(k):
            free = not lo[i] and not up[i]
            bad_lo[i] = free and beta[i] < 0.0
            bad_up[i] = free and beta[i] > c[i]
            bad_l[i] = lo[i] and w[i] < -tol
            bad_u[i] = up[i] and w[i] > tol
            if bad_lo[i] or bad_up[i] or bad_l[i] or bad_u[i]:
                nbad += 1
        if nbad == 0:
            for i in range(k):
                beta[i] = min(max(beta[i], 0.0), c[i])
            return True
        if nbad < best:
            best, stalled = nbad, 0
        else:
            stalled += 1
        last = -1
        if stalled >= 3:
            for i in range(k):
                if bad_lo[i] or bad_up[i] or bad_l[i] or bad_u[i]:
                    last = i
        for i in range(k):
            if last >= 0 and i != last:
                continue
            lo[i] = (lo[i] and not bad_l[i]) or bad_lo[i]
            up[i] = (up[i] and not bad_u[i]) or bad_up[i]
    return False


def _solve(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    try:
        x = np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        x = np.linalg.lstsq(A, b, rcond=None)[0]
    return np.nan_to_num(x)
