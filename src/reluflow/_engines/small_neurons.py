"""Kinks in bulk: small neurons integrated one at a time inside a step of the solver.

A neuron whose outputs ``a_j σ(u_ji)`` stay below ``eps·|y_i|`` (``eps = 10⁻² rtol``,
as in the closed-form initial phase) does not change anybody else's velocity beyond
a relative ``eps``: over a step of the solver, the residual ``r(t)`` it sees is the
one of the step's dense output, and its own dynamics given ``r`` is linear in its
state,

    du_j/dt = −(a_j/n) K (r(t) ∘ 1[u_j > 0])   (with the Filippov hold on its sliding set),
    da_j/dt = −(1/n) Σ_i r_i(t) σ(u_ji).

So when the only switching events of an accepted step belong to small neurons, the
step is kept for every other neuron, and each small neuron with an event is
integrated again over the step, alone, with its own Dormand–Prince sub-steps (the
same per-neuron error control as the solver's), against ``r(t)`` taken from the
step's dense output; its kinks are located on its own sub-steps' dense output
(:func:`reluflow._engines.general_numba.locate`), its sliding exits by the same
Illinois search as the solver's, and its modes decided by the solver's own
:func:`reluflow._engines.events.resolve`. See docs/general-data.md §4.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import RK45

from . import events as E
from . import general_numba as NB
from .field import SLIDE_MARGIN, Field

_C = np.ascontiguousarray(RK45.C, dtype=float)


def small_set(
    a0: np.ndarray, u0: np.ndarray, a1: np.ndarray, u1: np.ndarray, bound: np.ndarray
) -> np.ndarray:
    """Neurons whose outputs together stay below ``bound`` over a step (boolean, shape (m,)).

    Neuron ``j``'s share is ``c_j = max_i |a_j|max · max(u_ji)₊max / bound_i`` with the
    maxima over the step's two ends doubled (a step changes a state by a few
    percent at most); the small set is the largest set of least shares with
    ``Σ c_j <= 1``, so that their summed outputs stay below ``bound`` at every sample.
    """
    amax = np.maximum(np.abs(a0), np.abs(a1))
    umax = np.maximum(np.maximum(u0, u1), 0.0)
    c = 2.0 * amax * np.max(umax / bound, axis=1)
    order = np.argsort(c, kind="stable")
    small = np.zeros(a0.size, dtype=bool)
    small[order[np.cumsum(c[order]) <= 1.0]] = True
    return small


def event_neurons(
    u0: np.ndarray,
    u1: np.ndarray,
    ku0: np.ndarray,
    mask: np.ndarray,
    sliding: np.ndarray,
    alpha: np.ndarray,
    scnt: np.ndarray,
    h: float,
    band: np.ndarray,
) -> np.ndarray:
    """Neurons with a kink candidate in the step or a sliding fraction outside [0, 1] at its end.

    Kink candidates as in the kernel (:func:`reluflow._engines.events.crossing_candidates`,
    ``band`` the step's detection band per neuron): a coordinate past 0 on the wrong side
    of its mode by more than the band at the end, or an active one that came within half a
    step's motion of 0.
    """
    ev = E.crossing_candidates(u0, u1, ku0, mask, sliding, h, band).any(axis=1)
    for j in np.flatnonzero(scnt):
        ev[j] |= bool(E.exited(alpha[j, : scnt[j]]).any())
    return ev


class StepResidual:
    """``y_eff(θ) = y − Σ_{k≠j} a_k(θ) u_k(θ) 1[mask_k]`` on one step's dense output.

    With ``y_eff`` in place of the labels, the one-neuron field of
    :func:`reluflow._engines.general_numba.evaluate` is neuron ``j``'s field given the
    residual of the whole network along the step.
    """

    def __init__(self, P, h, a0, u0, Ka, Ku, mask, y):
        self.h = h
        self.a0, self.u0, self.mask, self.y = a0, u0, mask, y
        self.Qa = Ka.T @ P  # (m, 4)
        self.Qu = np.einsum("smi,sq->miq", Ku, P)  # (m, n, 4)

    def output_terms(self, th: float) -> np.ndarray:
        pw = th ** np.arange(1, 5)
        a = self.a0 + self.h * (self.Qa @ pw)
        u = self.u0 + self.h * (self.Qu @ pw)
        return a[:, None] * u * self.mask

    def y_eff(self, th: float, j: int) -> np.ndarray:
        terms = self.output_terms(th)
        return self.y - (terms.sum(axis=0) - terms[j])


class NeuronIntegrator:
    """Dormand–Prince sub-steps of one neuron against a step's residual (see the module)."""

    def __init__(self, field: Field, Kg: np.ndarray, rtol: float, atol: float):
        self.field, self.Kg = field, Kg
        self.n = Kg.shape[0]
        self.rtol, self.atol = rtol, atol
        self.kappa = E.gram_row_bound(Kg)  # for the kinks' detection band
        self.A = np.ascontiguousarray(RK45.A, dtype=float)
        self.B = np.ascontiguousarray(RK45.B, dtype=float)
        self.E = np.ascontiguousarray(RK45.E, dtype=float)
        self.P = np.ascontiguousarray(RK45.P, dtype=float)
        self.substeps = 0
        self.rejected = 0
        self.evaluations = 0

    # ---- one-neuron helpers
    def _slide(self, sliding: np.ndarray, cache: dict) -> tuple:
        from .general import _sliding_arrays

        return _sliding_arrays(self.Kg, sliding, cache)

    def _eval(self, a, u, ka, ku, kz, yv, mask, sl, r=None) -> float:
        """The one-neuron field (``r``: where to leave the residual, else discarded)."""
        cnt, idx, inv, alpha = sl
        self.evaluations += 1
        return NB.evaluate(
            a, u, ka, ku, kz, yv, self.Kg, mask, 1.0 / self.n, cnt, idx, inv, alpha,
            np.empty(self.n) if r is None else r, np.empty((1, self.n)),
            np.empty((1, max(1, idx.shape[1]))),
        )  # fmt: skip

    def _alpha(self, a, u, yv, mask, sl) -> np.ndarray:
        cnt, idx, inv, alpha = sl
        r = np.empty(self.n)
        NB.sliding_alpha(
            a, u, yv, self.Kg, mask, 1.0 / self.n, cnt, idx, inv, alpha, r,
            np.empty((1, max(1, idx.shape[1]))),
        )  # fmt: skip
        return r

    def integrate(self, j, a, u, mask, sliding, res: StepResidual, cache: dict, events: list):
        """Advance neuron ``j`` (``a`` shape (1,), ``u``, ``mask``, ``sliding`` shape (1, n),
        updated in place) over the whole step of ``res``; switching events are appended to
        ``events`` as ``(θ, flat indices j·n + i, became active, entered sliding)``.

        Raises:
            FloatingPointError: a zero set without a consistent assignment, or a
                sub-step that cannot meet the tolerance.
        """
        n, H = self.n, res.h
        A, B, Ev, P = self.A, self.B, self.E, self.P
        Ka, Ku, Kz = np.zeros((7, 1)), np.zeros((7, 1, n)), np.zeros((7, 1, n))
        sa, su = np.empty(1), np.empty((1, n))
        r1 = np.empty(n)  # the residual at the sub-step's end
        sl = self._slide(sliding, cache)
        s = 0.0  # time offset within the step
        self._eval(a, u, Ka[0], Ku[0], Kz[0], res.y_eff(0.0, j), mask, sl)
        hs = H
        stuck = 0
        flips = np.empty(n, dtype=np.int64)
        while s < H * (1.0 - 1e-14):
            hs = min(hs, H - s)
            for st in range(1, 7):
                coef = A[st, :st] if st < 6 else B[:6]
                sa[:] = a + hs * (coef @ Ka[:st])
                su[:] = u + hs * np.tensordot(coef, Ku[:st], axes=1)
                th = min(1.0, (s + (_C[st] if st < 6 else 1.0) * hs) / H)
                self._eval(sa, su, Ka[st], Ku[st], Kz[st], res.y_eff(th, j), mask, sl, r1)
            na, nu = sa.copy(), su.copy()
            e = max(abs(hs * (Ev @ Ka[:, 0])), float(np.max(np.abs(hs * (Ev @ Ku[:, 0])))))
            s0 = max(abs(a[0]), float(np.max(np.abs(u))))
            s1 = max(abs(na[0]), float(np.max(np.abs(nu))))
            ratio = e / max(self.atol + self.rtol * max(s0, s1), 1e-300)
            if not np.isfinite(ratio):
                raise FloatingPointError(f"non-finite sub-step of neuron {j}")
            if ratio > 1.0:
                self.rejected += 1
                hs *= max(0.2, 0.9 * ratio**-0.2)
                if hs < 1e-14 * H:
                    raise FloatingPointError(f"sub-step underflow for neuron {j}")
                continue
            self.substeps += 1
            h_prop = hs * min(5.0, max(0.2, 0.9 * max(ratio, 1e-10) ** -0.2))
            # kink candidates of this sub-step (as the kernel)
            m0, u0r = mask[0], u[0]
            band = E.detection_band(na, r1, hs, self.kappa)
            cand = np.flatnonzero(
                E.crossing_candidates(u, nu, Ku[0], mask, sliding, hs, band)[0]
            ).astype(np.int64)
            theta, nflip = 1.0, 0
            if cand.size:
                Q = np.ascontiguousarray(Ku[:, 0, cand].T @ P)
                sgn = np.where(m0[cand], 1.0, -1.0)
                theta, nflip = NB.locate(
                    cand, cand.size, sgn, np.ascontiguousarray(u0r[cand]), Q, hs,
                    np.array([s0]), n, min(self.rtol, E.EVENT_RTOL), self.atol, flips, band,
                )  # fmt: skip
            flip = flips[:nflip].copy()
            cnt, _, _, alpha = sl
            exit_slide = False
            if cnt[0] and E.exited(alpha[0, : cnt[0]]).any():
                th = self._locate_exit(j, a, u, Ka, Ku, hs, s, theta, mask, sl, res)
                if th >= 0:
                    if th < theta:
                        flip = flip[:0]
                    theta, exit_slide = th, True
            if flip.size == 0 and not exit_slide:
                a[:], u[:] = na, nu
                Ka[0], Ku[0], Kz[0] = Ka[6], Ku[6], Kz[6]
                s += hs
                hs = h_prop
                stuck = 0
                continue
            # ---- an event at s + θ hs: move there, re-decide the modes
            stuck = stuck + 1 if theta * hs <= 1e-13 * H else 0
            if stuck > 200:
                raise FloatingPointError(f"neuron {j} is stuck at a switching point")
            pw = theta ** np.arange(1, 5)
            a[:] = a + hs * (Ka[:, 0] @ P @ pw)
            u[0] = u[0] + hs * (Ku[:, 0].T @ (P @ pw))
            s += theta * hs
            th_g = min(1.0, s / H)
            yv = res.y_eff(th_g, j)
            yflat = np.concatenate([a, u.ravel()])
            yflat[1:][flip] = 0.0
            u[0, flip] = 0.0
            r = self._alpha(a, u, yv, mask, sl)
            left = np.zeros(1, dtype=bool)
            if cnt[0]:
                left[0] = bool(E.exited(sl[3][0, : cnt[0]]).any())
            maskf = mask.astype(float)
            switched, up, slid = E.resolve(
                self.field, r.copy(), left, yflat, 1, n, maskf, sliding, flip
            )
            u[0] = yflat[1:]
            mask[...] = maskf > 0
            if switched.size:
                events.append((th_g, j * n + switched, up, slid))
            sl = self._slide(sliding, cache)
            self._eval(a, u, Ka[0], Ku[0], Kz[0], yv, mask, sl)
            hs = max(h_prop, hs * (1.0 - theta)) if theta < 1 else h_prop

    def _locate_exit(self, j, a, u, Ka, Ku, hs, s, theta_max, mask, sl, res) -> float:
        """First θ (fraction of the sub-step) where a sliding fraction leaves its band; −1: none.

        The solver's search (grid of 4, then Illinois to ``1e-13``) on the sub-step's
        dense output, with the residual at each point from the step's dense output.
        """
        P, H = self.P, res.h
        cnt = sl[0]
        lo_b, hi_b = -SLIDE_MARGIN, 1.0 + SLIDE_MARGIN

        def excess(th: float) -> float:
            pw = th ** np.arange(1, 5)
            sa = a + hs * (Ka[:, 0] @ P @ pw)
            su = u + hs * (Ku[:, 0].T @ (P @ pw))[None, :]
            self._alpha(sa, su, res.y_eff(min(1.0, (s + th * hs) / H), j), mask, sl)
            al = sl[3][0, : cnt[0]]
            return float(np.max(np.maximum(lo_b - al, al - hi_b)))

        th = E.first_exit(excess, theta_max)
        return -1.0 if th is None else th
