"""The initial small-weight phase of the flow on any data, in closed form.

While every output ``f_i = Σ_j a_j σ(u_ji)`` is negligible against the labels the
residual is ``r = −y`` and each neuron evolves alone and linearly
(docs/general-data.md §1). Between two switching events of neuron ``j`` its
coordinates are split into active (``S``), inactive and sliding (``Σ``, held at
``u_ji = 0`` with a fraction of activity ``α_i`` in [0, 1]). With the effective
label vector ``e = y ∘ β`` (``β_i = 1`` on ``S``, ``α_i`` on ``Σ``, 0 elsewhere),

    V = K e / n,   κ² = eᵀ K e / n²,   u_j(t) = U + A(τ) V,   A' = a_j,   a_j'' = κ² a_j,

``τ`` the time since the last event, ``U``, ``a₀`` the state there and
``v₀ = a_j'(0) = e·U / n``:

    a_j(τ) = a₀ cosh κτ + (v₀/κ) sinh κτ,     A(τ) = a₀ sinh(κτ)/κ + v₀ (cosh κτ − 1)/κ².

The sliding fractions keep ``(K e)_Σ = 0`` (``y_Σ ∘ α_Σ = −K_ΣΣ⁻¹ K_ΣS y_S``); with
``r = −y`` they do not depend on ``a_j`` and stay constant between events. The
next sign change of a coordinate, ``U_i + A(τ) V_i = 0``, solves a quadratic in
``w = e^{κτ} − 1``; at it the coordinates of the neuron sitting at 0 are resolved
jointly (inactive, active or sliding) by the box complementarity problem of
:meth:`reluflow._engines.field.Field.resolve_zero_set` with ``r = −y``, and ``e``, ``V``
change by the ``K`` columns of the coordinates whose mode changed. The squared
in-span norm ``q = u_j K⁺ u_jᵀ`` follows ``q(A) = q₀ + 2 A v₀ + A² κ²``, so that
``‖w_j‖`` is recorded without an ``n × n`` product.

The phase ends at the first time ``t₁`` where some ``|f_i|`` reaches ``eps``
times its label (``eps = 1e-2 · rtol``), located on the recorder's grid and then
by bisection, as on orthogonal data (:mod:`reluflow._engines.linear`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..data import Dataset
from ..network import Network
from .dynamics import Recorder
from .field import SLIDE_MARGIN, Field

# relative spread of crossing times flipped in one event of a neuron
_SAME_TIME = 1e-12


@dataclass(frozen=True)
class GeneralPhase:
    """The closed-form phase up to ``t1``: end state with its modes, and its switching events."""

    t1: float
    a: np.ndarray
    u: np.ndarray
    mask: np.ndarray  # (m, n) bool: active coordinates at t1
    sliding: np.ndarray  # (m, n) bool: coordinates held at 0 by a sliding mode at t1
    kink_t: np.ndarray
    kink_flat: np.ndarray
    kink_up: np.ndarray
    kink_sliding: np.ndarray
    sliding_entries: int


def _alpha_a(a0, v0, kap, tau):
    """``(A(τ), a(τ), a'(τ))`` of the segment (arrays of one shape; ``κ = 0`` allowed)."""
    x = kap * tau
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        sh = np.sinh(x)
        ch = np.cosh(x)
        s1 = np.where(x != 0, sh / np.where(x != 0, x, 1.0), 1.0)  # sinh(x)/x
        hx = np.sinh(0.5 * x)
        c1 = np.where(x != 0, 2.0 * hx * hx / np.where(x != 0, x * x, 1.0), 0.5)  # (cosh x − 1)/x²
    A = a0 * tau * s1 + v0 * tau * tau * c1
    a = a0 * ch + v0 * tau * s1
    da = v0 * ch + kap * kap * a0 * tau * s1
    return A, a, da


def _first_root(a0: float, v0: float, kap: float, alpha_star: np.ndarray) -> np.ndarray:
    """Smallest ``τ > 0`` with ``A(τ) = α*`` for each entry (inf where none).

    ``A(τ) = α*`` is ``p w² + 2 (a₀ − κ α*) w − 2 κ α* = 0`` with ``w = e^{κτ} − 1 > 0``
    and ``p = a₀ + v₀/κ`` (from ``sinh x = w(w+2)/2E``, ``cosh x − 1 = w²/2E``, ``E = 1 + w``).
    """
    if kap == 0.0:
        # nothing active: a_j is constant (v₀ = 0) and A = a₀ τ
        with np.errstate(divide="ignore", invalid="ignore"):
            tau = np.where(a0 != 0, alpha_star / a0, np.inf)
        return np.where(tau > 0, tau, np.inf)
    p = a0 + v0 / kap
    B = a0 - kap * alpha_star
    C = -2.0 * kap * alpha_star
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        D = B * B - p * C
        sq = np.sqrt(np.maximum(D, 0.0))
        # roots of p w² + 2 B w + C = 0, in the cancellation-free pair q/p and C/q
        qq = -(B + np.where(B >= 0, sq, -sq))
        if p != 0.0:
            w1 = qq / p
            w2 = np.where(qq != 0, C / qq, np.inf)
        else:
            w1 = np.where(B != 0, -C / (2.0 * B), np.inf)
            w2 = np.full_like(w1, np.inf)
        w1 = np.where((D >= 0) & (w1 > 0), w1, np.inf)
        w2 = np.where((D >= 0) & (w2 > 0), w2, np.inf)
        w = np.minimum(w1, w2)
        return np.log1p(w) / kap


class _Neurons:
    """Per-neuron segment state of the linear phase (rows are neurons)."""

    def __init__(self, data: Dataset, net: Network, field: Field):
        self.field = field
        self.K = field.K
        self.y = np.asarray(data.y, dtype=float)
        self.n, self.m = data.n, net.m
        self.t0 = np.zeros(self.m)
        self.a0 = np.asarray(net.a, dtype=float).copy()
        self.U = np.asarray(net.u, dtype=float).copy()
        self.q0 = data.quad_form(self.U)
        self.w_perp_sq = np.asarray(net.w_perp_sq, dtype=float)
        self.mask = self.U > 0
        self.slid = np.zeros((self.m, self.n), dtype=bool)
        self.E = np.where(self.mask, self.y[None, :], 0.0)
        self.V = (self.E @ self.K) / self.n
        self.kap = np.zeros(self.m)
        self.v0 = np.zeros(self.m)
        self.tnext = np.full(self.m, np.inf)
        # per neuron: its sliding coordinates and K_ΣΣ⁻¹ in that order
        self.sig = [np.zeros(0, dtype=np.int64) for _ in range(self.m)]
        self.minv = [np.zeros((0, 0)) for _ in range(self.m)]
        self.rhs = [np.zeros(0) for _ in range(self.m)]  # −K_ΣS y_S
        self.next_cross: list = [None] * self.m
        for j in range(self.m):
            self._segment(j)

    # -- one neuron
    def _segment(self, j: int) -> None:
        """Constants of neuron ``j``'s current segment and its next crossing time."""
        n = self.n
        self.kap[j] = math.sqrt(max(float(self.E[j] @ self.V[j]) / n, 0.0))
        self.v0[j] = float(self.E[j] @ self.U[j]) / n
        U, V = self.U[j], self.V[j]
        cand = ~self.slid[j] & (V != 0)
        if not cand.any():
            self.tnext[j] = np.inf
            self.next_cross[j] = (np.zeros(0, dtype=np.int64), np.inf)
            return
        ii = np.flatnonzero(cand)
        alpha_star = -U[ii] / V[ii]
        tau = _first_root(self.a0[j], self.v0[j], self.kap[j], alpha_star)
        tmin = float(tau.min(initial=np.inf))
        self.tnext[j] = self.t0[j] + tmin
        self.next_cross[j] = (ii[tau <= tmin * (1.0 + _SAME_TIME)], tmin)

    def _crossing(self, j: int) -> tuple[np.ndarray, float]:
        """Coordinates of neuron ``j`` crossing 0 at its next event, and its time since ``t0``."""
        return self.next_cross[j]

    def state_at(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(a, u, q)`` of every neuron at time ``t`` (no event of any neuron before ``t``)."""
        tau = t - self.t0
        A, a, _ = _alpha_a(self.a0, self.v0, self.kap, tau)
        u = self.U + A[:, None] * self.V
        u[self.slid] = 0.0
        q = self.q0 + 2.0 * A * self.v0 + A * A * self.kap**2
        return a, u, q

    def snapshot(self, j: int) -> tuple:
        return (
            self.t0[j],
            self.a0[j],
            self.U[j].copy(),
            self.q0[j],
            self.mask[j].copy(),
            self.slid[j].copy(),
            self.E[j].copy(),
            self.V[j].copy(),
            self.kap[j],
            self.v0[j],
            self.tnext[j],
            self.sig[j],
            self.minv[j],
            self.rhs[j],
            self.next_cross[j],
        )

    def restore(self, j: int, s: tuple) -> None:
        (
            self.t0[j],
            self.a0[j],
            self.U[j],
            self.q0[j],
            self.mask[j],
            self.slid[j],
            self.E[j],
            self.V[j],
            self.kap[j],
            self.v0[j],
            self.tnext[j],
            self.sig[j],
            self.minv[j],
            self.rhs[j],
            self.next_cross[j],
        ) = s

    def event(self, j: int) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """Advance neuron ``j`` to its next crossing and resolve its zero set there.

        Returns ``(t, coordinates whose mode changed, became active, entered sliding)``.
        """
        n, K, y = self.n, self.K, self.y
        cross, tau = self._crossing(j)
        A, a, _ = _alpha_a(self.a0[j], self.v0[j], self.kap[j], tau)
        U = self.U[j] + A * self.V[j]
        U[self.slid[j]] = 0.0
        U[cross] = 0.0
        q = self.q0[j] + 2.0 * A * self.v0[j] + A * A * self.kap[j] ** 2
        t = self.t0[j] + tau
        self.t0[j], self.a0[j], self.U[j], self.q0[j] = t, a, U, q
        if cross.size == 1:
            done = self._incremental(j, a, int(cross[0]))
            if done is not None:
                self._segment(j)
                return (t, *done)
        Z = np.flatnonzero(self.slid[j] | np.isin(np.arange(n), cross))
        old_act, old_sl = self.mask[j, Z].copy(), self.slid[j, Z].copy()
        if Z.size == 1 and not old_sl[0]:
            act_Z, sl_Z = self._resolve_one(j, a, int(Z[0]))
        else:
            act_Z, sl_Z = self.field.resolve_zero_set(j, a, -y, self.mask[j].astype(float), Z)
        self.mask[j, Z] = act_Z
        self.slid[j, Z] = sl_Z
        # new effective labels on Z: 1 (active), α (sliding), 0 (inactive)
        E_new = self.E[j].copy()
        E_new[Z] = np.where(act_Z, y[Z], 0.0)
        S = np.flatnonzero(self.slid[j])
        self.sig[j] = S
        self.minv[j] = np.linalg.inv(K[np.ix_(S, S)]) if S.size else np.zeros((0, 0))
        act = np.flatnonzero(self.mask[j])
        self.rhs[j] = -(K[np.ix_(S, act)] @ y[act])
        if S.size:
            E_new[S] = self.minv[j] @ self.rhs[j]
        self._set_labels(j, E_new)
        self._segment(j)
        diff = (old_act != act_Z) | (old_sl != sl_Z)
        return t, j * n + Z[diff], act_Z[diff], sl_Z[diff] & ~old_sl[diff]

    def _set_labels(self, j: int, E_new: np.ndarray) -> None:
        """``e ← E_new`` and ``V ← V + K (E_new − e) / n`` over the changed entries."""
        dE = E_new - self.E[j]
        ch = np.flatnonzero(dE)
        if ch.size:
            self.V[j] += (dE[ch] @ self.K[ch]) / self.n
        self.V[j, self.slid[j]] = 0.0
        self.E[j] = E_new

    def _incremental(self, j: int, a: float, i: int):
        """Resolve ``Z = {i} ∪ Σ`` by single principal pivots on a maintained ``K_FF⁻¹``.

        The zero set's modes solve a box complementarity problem (see
        :meth:`Field.resolve_zero_set`): ``F`` (sliding) with ``α`` inside the
        hysteresis band and ``e_F = −K_FF⁻¹ K_F,S y_S``, ``L`` (inactive) with
        velocity ``<= 0``, ``U`` (active) with velocity ``>= 0``. Starting from
        the previous sliding set ``F = Σ`` and ``i`` inactive, each iteration
        moves the violating coordinate of least index to the other side (Murty's
        rule, finite since ``K`` is positive definite), updating ``K_FF⁻¹`` by a
        bordered inverse or its downdate in O(|F|²). A repelling ``i`` (which
        cannot slide) is woken to active only if its velocity is positive with it
        inactive, as in the reference. None (a singular pivot, or no settling)
        sends the event to :meth:`Field.resolve_zero_set`.
        """
        n, K, y = self.n, self.K, self.y
        if y[i] == 0.0:
            return None
        F = list(self.sig[j])
        M = self.minv[j]
        rhs = self.rhs[j].copy()
        E_old = self.E[j]
        sa = np.where(self.mask[j], y, 0.0)  # labels of S ∪ U (active outside Z, then U)
        if self.mask[j, i]:
            sa[i] = 0.0
            rhs = rhs + K[F, i] * y[i]  # i leaves S (it starts in L)
        attract_i = -a * y[i] / n > 0
        L, U = {i}, set()
        lo_b, hi_b = SLIDE_MARGIN / 2, 1.0 - SLIDE_MARGIN / 2
        scale = abs(a) * (np.abs(self.V[j]).max(initial=0.0) + K[i, i] * abs(y[i]) / n)
        tol = 1e-9 * scale
        woken = False
        for _ in range(4 * (len(F) + 2)):
            Fa = np.asarray(F, dtype=np.int64)
            eF = M @ rhs if Fa.size else np.zeros(0)
            E_new = sa.copy()
            E_new[Fa] = eF
            dE = E_new - E_old
            ch = np.flatnonzero(dE)
            fixed = sorted(L | U)
            w = {}
            for k in fixed:  # velocity a (K e)_k / n of the fixed coordinates of Z
                w[k] = a * (self.V[j, k] + (K[k, ch] @ dE[ch]) / n)
            al = eF / y[Fa] if Fa.size else eF
            bad = ~((al > lo_b) & (al < hi_b))
            viol = [int(Fa[bad].min())] if bad.any() else []
            for k in fixed:
                if k in L and w[k] > tol and (k != i or attract_i or not woken):
                    viol.append(k)
                if k in U and w[k] < -tol and (k != i or attract_i):
                    viol.append(k)
            if not viol:
                break
            k = min(viol)
            if k in F:
                p = F.index(k)
                to_up = al[p] >= hi_b
                keep = np.arange(len(F)) != p
                mk = M[keep, p]
                M = M[np.ix_(keep, keep)] - np.outer(mk, mk) / M[p, p]
                rhs = rhs[keep]
                F.pop(p)
                if to_up:
                    U.add(k)
                    sa[k] = y[k]
                    rhs = rhs - K[F, k] * y[k]
                else:
                    L.add(k)
            elif k == i and not attract_i:
                L.discard(i)  # a repelling coordinate pushed upwards activates
                U.add(i)
                sa[i] = y[i]
                rhs = rhs - K[F, i] * y[i]
                woken = True
            else:
                if k in U:
                    U.discard(k)
                    sa[k] = 0.0
                    rhs = rhs + K[F, k] * y[k]
                else:
                    L.discard(k)
                kF = K[F, k]
                mF = M @ kF if F else np.zeros(0)
                sc = K[k, k] - kF @ mF
                if not sc > 1e-12 * K[k, k]:
                    return None
                M2 = np.empty((len(F) + 1, len(F) + 1))
                M2[:-1, :-1] = M + np.outer(mF, mF) / sc
                M2[:-1, -1] = M2[-1, :-1] = -mF / sc
                M2[-1, -1] = 1.0 / sc
                M = M2
                rhs = np.append(rhs, -(K[k] @ sa))
                F.append(k)
        else:
            return None
        Z = np.array(sorted(set(F) | L | U), dtype=np.int64)
        old_act, old_sl = self.mask[j, Z].copy(), self.slid[j, Z].copy()
        Fa = np.asarray(F, dtype=np.int64)
        self.mask[j, Z] = False
        self.slid[j, Z] = False
        self.mask[j, list(U)] = True
        self.slid[j, Fa] = True
        self.sig[j], self.minv[j], self.rhs[j] = Fa, M, rhs
        self._set_labels(j, E_new)
        act_Z, sl_Z = self.mask[j, Z], self.slid[j, Z]
        diff = (old_act != act_Z) | (old_sl != sl_Z)
        return j * n + Z[diff], act_Z[diff], sl_Z[diff] & ~old_sl[diff]

    def _resolve_one(self, j: int, a: float, i: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`Field.resolve_zero_set` for one coordinate, no sliding one in the neuron."""
        n, K, y = self.n, self.K, self.y
        c = -a * y[i] / n
        # velocity of u_ji with i inactive: a (K e')_i / n, e' = e without i
        g0 = a * (self.V[j, i] - K[i, i] * self.E[j, i] / n)
        if c > 0:
            beta = min(max(g0 / K[i, i], 0.0), c)
            hi = beta >= c * (1 - SLIDE_MARGIN / 2)
            lo = beta <= c * (SLIDE_MARGIN / 2)
            return np.array([hi]), np.array([not hi and not lo])
        return np.array([g0 > 0 and c != 0]), np.array([False])


def general_initial_phase(
    data: Dataset, net: Network, field: Field, rec: Recorder, eps: float, t_cap: float
) -> GeneralPhase | None:
    """Solve the flow in closed form up to where the outputs reach ``eps`` of the labels.

    The recorder's grid points in ``(0, t₁]`` and ``t₁`` itself are added to
    ``rec`` (which holds the row at ``t = 0``). Returns None, recording nothing,
    when the phase would be empty (the outputs are not small at the first grid
    point, or ``t_cap`` comes first).
    """
    y = np.asarray(data.y, dtype=float)
    ymax = float(np.abs(y).max(initial=0.0))
    if ymax == 0.0 or rec.next_t >= t_cap:
        return None
    bound = eps * np.maximum(np.abs(y), 1e-3 * ymax)
    nr = _Neurons(data, net, field)
    mask_f = nr.mask  # alias, updated in place
    log: list[tuple[float, np.ndarray, np.ndarray, np.ndarray]] = []
    entries = [0]

    def advance(T: float, saved: dict) -> None:
        """Process every event at times <= T (saving each touched row once)."""
        while True:
            j = int(np.argmin(nr.tnext))
            if not nr.tnext[j] <= T:
                return
            if j not in saved:
                saved[j] = nr.snapshot(j)
            t, flat, up, sl = nr.event(j)
            if flat.size:
                log.append((t, flat, up, sl))
                entries[0] += int(sl.sum())

    def rollback(saved: dict, t_lo: float) -> None:
        for j, s in saved.items():
            nr.restore(j, s)
        while log and log[-1][0] > t_lo:
            _, _, _, sl = log.pop()
            entries[0] -= int(sl.sum())

    def small(t: float) -> tuple[bool, tuple]:
        a, u, q = nr.state_at(t)
        f = a @ np.maximum(u, 0.0)
        return bool(np.all(np.abs(f) <= bound)), (a, u, q, f)

    rows: list[tuple] = []
    lo = 0.0
    t1 = None
    while True:
        T = rec.next_t
        last = T >= t_cap
        if last:
            T = t_cap
        saved: dict = {}
        advance(T, saved)
        ok, st = small(T)
        if ok:
            lo = T
            if not last:
                rows.append((T, st, nr.mask.sum(axis=1)))
                rec.next_t *= rec.ratio
                continue
            t1 = T
            break
        # the outputs reached the bound in (lo, T]: bisect on the state saved at lo
        if lo == 0.0:
            rollback(saved, 0.0)
            return None
        hi = T
        rollback(saved, lo)
        saved = {}
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            advance(mid, saved)
            ok, _ = small(mid)
            if ok:
                lo, saved = mid, {}
            else:
                hi = mid
                rollback(saved, lo)
            if hi - lo <= 1e-9 * hi:
                break
        t1 = lo
        break
    a1, u1, q1 = nr.state_at(t1)
    f1 = a1 @ np.maximum(u1, 0.0)
    rows.append((t1, (a1, u1, q1, f1), nr.mask.sum(axis=1)))
    times = np.array([r[0] for r in rows])
    a_all = np.array([r[1][0] for r in rows])
    wsq = np.array([nr.w_perp_sq + r[1][2] for r in rows])
    res = np.array([r[1][3] for r in rows]) - y[None, :]
    loss = (res * res).sum(axis=1) / (2 * data.n)
    act = np.array([r[2] for r in rows])
    rec.extend(times, loss, a_all, wsq, act)
    if log:
        kt = np.concatenate([np.full(e[1].size, e[0]) for e in log])
        kf = np.concatenate([e[1] for e in log])
        ku = np.concatenate([e[2] for e in log])
        ks = np.concatenate([e[3] for e in log])
    else:
        kt, kf = np.zeros(0), np.zeros(0, dtype=np.int64)
        ku = ks = np.zeros(0, dtype=bool)
    return GeneralPhase(
        t1=float(t1),
        a=a1,
        u=u1,
        mask=mask_f.copy(),
        sliding=nr.slid.copy(),
        kink_t=kt,
        kink_flat=kf.astype(np.int64),
        kink_up=ku.astype(bool),
        kink_sliding=ks.astype(bool),
        sliding_entries=entries[0],
    )
