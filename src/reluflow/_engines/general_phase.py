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
``w = e^{κτ} − 1`` (while the neuron has sliding coordinates, the zero of ``a_j``,
``tanh κτ = −a₀κ/v₀``, is an event too: past it every sliding coordinate repels);
at it the coordinates of the neuron sitting at 0 are resolved
jointly (inactive, active or sliding) by the box complementarity problem of
:meth:`reluflow._engines.field.Field.resolve_zero_set` with ``r = −y``, and ``e``, ``V``
change by the ``K`` columns of the coordinates whose mode changed. The squared
in-span norm ``q = u_j K⁺ u_jᵀ`` follows ``q(A) = q₀ + 2 A v₀ + A² κ²``, so that
``‖w_j‖`` is recorded without an ``n × n`` product.

The phase ends at the first time ``t₁`` where some ``|f_i|`` reaches ``eps``
times its label (``eps = 1e-2 · rtol``), located on the recorder's grid and then
by bisection, as on orthogonal data (:mod:`reluflow._engines.linear`).

The event loop, the grid and the zero-set pivots (``K_ΣΣ⁻¹`` kept by bordered
inverses and downdates) run compiled in :mod:`reluflow._engines.general_phase_numba`;
this module holds the state, the bisection and the rare events the pivots do
not settle, which go to :meth:`Field.resolve_zero_set`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import Dataset
from ..network import Network
from . import general_phase_numba as NB
from .dynamics import Recorder
from .field import SLIDE_MARGIN, Field

# initial room (grown on demand): side of the pool's matrices, log entries per sample, grid rows
_POOL_SIDE0 = 16
_LOG_PER_SAMPLE0 = 4
_ROWS0 = 256
# single principal pivots in the kernel (False: every event through Field.resolve_zero_set)
_PIVOTS = True


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


class _Neurons:
    """Per-neuron segment state of the linear phase, advanced by the compiled kernel.

    The arrays are those of :mod:`reluflow._engines.general_phase_numba` (its docstring
    gives the layout); the events that the kernel's pivots do not settle come
    back here (:meth:`_fallback`).
    """

    def __init__(self, data: Dataset, net: Network, field: Field):
        self.field = field
        self.K = np.ascontiguousarray(field.K, dtype=float)
        self.y = np.ascontiguousarray(data.y, dtype=float)
        n, m = self.n, self.m = data.n, net.m
        U0 = np.asarray(net.u, dtype=float)
        self.w_perp_sq = np.asarray(net.w_perp_sq, dtype=float)
        self.P = np.zeros((m, NB.N_P))
        self.P[:, NB.A0] = np.asarray(net.a, dtype=float)
        self.P[:, NB.Q0] = data.quad_form(U0)
        self.R = np.zeros((3, m, n))
        self.U, self.E, self.V = self.R[0], self.R[1], self.R[2]
        self.U[:] = U0
        self.B = np.zeros((2, m, n), dtype=bool)
        self.mask, self.slid = self.B[0], self.B[1]
        self.mask[:] = U0 > 0
        self.E[:] = np.where(self.mask, self.y[None, :], 0.0)
        self.V[:] = (self.E @ self.K) / n
        self.X = np.zeros((2, m, n), dtype=np.int64)  # sliding set in M's order, next crossing
        self.C = np.zeros((m, 2), dtype=np.int64)  # their counts
        self.RHS = np.zeros((m, n))  # −K_ΣS y_S
        # K_ΣΣ⁻¹ of each neuron in a pool row (empty at first), m + 2 rows to start with
        self.pool = np.zeros((m + 2, min(n, _POOL_SIDE0) ** 2))
        self.mr = np.full((2, m), -1, dtype=np.int64)
        self.mr[0] = np.arange(m)
        self.free = np.arange(m + 1, m - 1, -1, dtype=np.int64)
        # snapshots for rollback
        self.sP, self.sR, self.sB = (np.zeros_like(x) for x in (self.P, self.R, self.B))
        self.sX, self.sC, self.sRHS = (np.zeros_like(x) for x in (self.X, self.C, self.RHS))
        self.sflag = np.zeros(m, dtype=bool)
        self.msaved = np.zeros(m, dtype=bool)
        # event log: time, flat index j n + i, activated, entered sliding; (count, sliding entries)
        cap = _LOG_PER_SAMPLE0 * n + 1
        self.Lt, self.Lf = np.zeros(cap), np.zeros(cap, dtype=np.int64)
        self.Lu, self.Ls = np.zeros(cap, dtype=bool), np.zeros(cap, dtype=bool)
        # counts: log entries, sliding entries among them, free pool rows, recorded rows
        self.ctr = np.array([0, 0, self.free.size, 0], dtype=np.int64)
        self._rows(_ROWS0)
        self.w = NB.work(n)
        self.pivots = _PIVOTS
        self._no_bound = np.full(n, np.inf)
        for j in range(m):
            self._segment(j)

    def _rows(self, cap: int) -> None:
        """Room for ``cap`` recorded grid rows (time, a, in-span ‖w‖², loss, active counts)."""
        k, m = int(self.ctr[3]), self.m
        old = getattr(self, "rt", None)
        new = (np.zeros(cap), np.zeros((cap, m)), np.zeros((cap, m)), np.zeros(cap),
               np.zeros((cap, m), dtype=np.int64))  # fmt: skip
        if old is not None:
            for a, b in zip(new, (self.rt, self.ra, self.rq, self.rl, self.rc), strict=True):
                a[:k] = b[:k]
        self.rt, self.ra, self.rq, self.rl, self.rc = new

    def _act(self, code: int, j: int) -> None:
        """Make room (log, pool) or resolve an unsettled event, as the kernel asked."""
        if code == NB.LOG_FULL:
            k, cap = int(self.ctr[0]), 2 * self.Lt.size + self.n
            for name in ("Lt", "Lf", "Lu", "Ls"):
                old = getattr(self, name)
                new = np.zeros(cap, dtype=old.dtype)
                new[:k] = old[:k]
                setattr(self, name, new)
        elif code == NB.GROW:
            self._grow(int(self.C[j, 0]) + 1)
        elif code == NB.FALLBACK:
            self._fallback(j)
        else:
            raise AssertionError(f"unexpected kernel code {code}")

    def _grid(self, gs, t_cap, bound, resume, ratio=1.0) -> tuple[int, int]:
        return NB.grid(
            gs, float(ratio), float(t_cap), bound, bool(resume), bool(self.pivots), self.K, self.y, self.P, self.R, self.B,
            self.X, self.C, self.RHS, self.pool, self.mr, self.sP, self.sR, self.sB, self.sX,
            self.sC, self.sRHS, self.sflag, self.msaved, self.free, self.Lt, self.Lf, self.Lu,
            self.Ls, self.ctr, self.w, self.rt, self.ra, self.rq, self.rl, self.rc,
        )  # fmt: skip

    def run_grid(self, rec: Recorder, t_cap: float, bound: np.ndarray) -> tuple[bool, float, float]:
        """Follow the recorder's grid while the outputs stay small (:func:`NB.grid`).

        Returns ``(reached_cap, lo, T)``: small up to ``t_cap`` (then ``lo = T = t_cap``),
        or the bound reached in ``(lo, T]`` with the state at ``T``. Advances
        ``rec.next_t`` past the recorded grid points.
        """
        gs = np.array([rec.next_t, 0.0, 0.0])
        resume = False
        while True:
            code, j = self._grid(gs, t_cap, bound, resume, rec.ratio)
            if code == NB.ROWS_FULL:
                self._rows(2 * self.rt.size)
                resume = False
            elif code in (NB.NOT_SMALL, NB.AT_CAP):
                rec.next_t = float(gs[0])
                return code == NB.AT_CAP, float(gs[1]), float(gs[2])
            else:
                self._act(code, j)
                resume = True

    def _segment(self, j: int) -> None:
        NB.segment(j, self.K, self.P, self.R, self.B, self.X, self.C, self.w.wb, self.w.tb)

    def advance(self, T: float) -> None:
        """Process every event at times <= T (snapshotting each touched neuron once)."""
        gs = np.array([T, 0.0, 0.0])
        while True:
            code, j = self._grid(gs, T, self._no_bound, True)
            if code in (NB.NOT_SMALL, NB.AT_CAP):
                return
            self._act(code, j)

    def _grow(self, side: int) -> None:
        """Room in the pool for a ``side × side`` matrix and two free rows."""
        rows, cap = self.pool.shape
        nfree = int(self.ctr[2])
        if side * side <= cap and nfree >= 2:
            return
        # matrices grow by ~13 % a side: little room unused, a few dozen copies at most
        cap2 = cap if side * side <= cap else min(max(side * side, int(1.27 * cap)), self.n**2)
        rows2 = rows if nfree >= 2 else rows + max(2, self.m // 2)
        pool = np.zeros((rows2, cap2))
        pool[:rows, :cap] = self.pool
        self.pool = pool
        if rows2 > rows:
            free = np.zeros(rows2, dtype=np.int64)
            free[:nfree] = self.free[:nfree]
            free[nfree : nfree + rows2 - rows] = np.arange(rows2 - 1, rows - 1, -1)
            self.free = free
            self.ctr[2] = nfree + rows2 - rows

    def clear(self) -> None:
        """Forget the snapshots: the current state is the new rollback point."""
        NB.clear(self.sflag, self.msaved, self.mr, self.free, self.ctr)

    def rollback(self, t_lo: float) -> None:
        """Back to the snapshots (the state at ``t_lo``), dropping later log entries."""
        NB.rollback(
            t_lo, self.P, self.R, self.B, self.X, self.C, self.RHS, self.mr, self.sP, self.sR,
            self.sB, self.sX, self.sC, self.sRHS, self.sflag, self.msaved, self.free, self.Lt,
            self.Ls, self.ctr,
        )  # fmt: skip

    def state_at(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(a, u, q, f)`` of every neuron at time ``t`` (no event of any neuron before ``t``)."""
        return NB.state_at(t, self.P, self.R, self.B)

    def _fallback(self, j: int) -> None:
        """Resolve neuron ``j``'s event (the kernel moved it there) by ``Field.resolve_zero_set``."""
        n, K, y = self.n, self.K, self.y
        cross = self.X[1, j, : self.C[j, 1]].copy()
        a, t = float(self.P[j, NB.A0]), float(self.P[j, NB.T0])
        if cross.size == 0:
            # a_j changes sign here (NB.segment): its sliding coordinates turn repelling.
            # a_j = 0 exactly from now on; the modes are decided just past, where a_j has
            # the sign of a_j' = e·U / n (U_Σ = 0: the same whatever Σ becomes), and the
            # resolution is homogeneous in a_j
            self.P[j, NB.A0] = 0.0
            a = float(self.E[j] @ self.U[j]) / n
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
        minv = np.linalg.inv(K[np.ix_(S, S)]) if S.size else np.zeros((0, 0))
        act = np.flatnonzero(self.mask[j])
        rhs = -(K[np.ix_(S, act)] @ y[act])
        if S.size:
            E_new[S] = minv @ rhs
        self.X[0, j, : S.size] = S
        self.C[j, 0] = S.size
        self.RHS[j, : S.size] = rhs
        self._grow(max(S.size, 1))
        NB.set_m(j, np.ascontiguousarray(minv).ravel(), self.pool, self.mr, self.sflag,
                 self.msaved, self.free, self.ctr)  # fmt: skip
        # e ← E_new, V ← V + K (E_new − e) / n over the changed entries
        dE = E_new - self.E[j]
        ch = np.flatnonzero(dE)
        if ch.size:
            self.V[j] += (dE[ch] @ K[ch]) / n
        self.V[j, self.slid[j]] = 0.0
        self.E[j] = E_new
        self._segment(j)
        diff = (old_act != act_Z) | (old_sl != sl_Z)
        k, d = int(self.ctr[0]), int(diff.sum())
        self.Lt[k : k + d] = t
        self.Lf[k : k + d] = j * n + Z[diff]
        self.Lu[k : k + d] = act_Z[diff]
        self.Ls[k : k + d] = sl_Z[diff] & ~old_sl[diff]
        self.ctr[0] += d
        self.ctr[1] += int(self.Ls[k : k + d].sum())

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

    def log(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """The switching events so far: times, flat indices, activations, sliding entries, count."""
        k = int(self.ctr[0])
        return (
            self.Lt[:k].copy(),
            self.Lf[:k].copy(),
            self.Lu[:k].copy(),
            self.Ls[:k].copy(),
            int(self.ctr[1]),
        )


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

    def small(t: float) -> bool:
        return bool(np.all(np.abs(nr.state_at(t)[3]) <= bound))

    at_cap, lo, hi = nr.run_grid(rec, t_cap, bound)
    if at_cap:
        t1 = lo
    elif lo == 0.0:
        # not small at the first grid point: no phase
        nr.rollback(0.0)
        return None
    else:
        # the outputs reached the bound in (lo, hi]: bisect on the state saved at lo
        nr.rollback(lo)
        nr.clear()
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            nr.advance(mid)
            if small(mid):
                lo = mid
                nr.clear()
            else:
                hi = mid
                nr.rollback(lo)
            if hi - lo <= 1e-9 * hi:
                break
        t1 = lo
    k = int(nr.ctr[3])
    a1, u1, q1, f1 = nr.state_at(t1)
    r1 = f1 - y
    times = np.append(nr.rt[:k], t1)
    a_all = np.vstack([nr.ra[:k], a1])
    wsq = np.vstack([nr.rq[:k], q1]) + nr.w_perp_sq
    loss = np.append(nr.rl[:k], (r1 @ r1) / (2 * data.n))
    act = np.vstack([nr.rc[:k], nr.mask.sum(axis=1)])
    rec.extend(times, loss, a_all, wsq, act)
    kt, kf, ku, ks, entries = nr.log()
    return GeneralPhase(
        t1=float(t1),
        a=a1,
        u=u1,
        mask=nr.mask.copy(),
        sliding=nr.slid.copy(),
        kink_t=kt,
        kink_flat=kf,
        kink_up=ku,
        kink_sliding=ks,
        sliding_entries=entries,
    )
