"""The initial small-weight phase of the flow on orthogonal data, in closed form.

While every output ``f_i = Σ_j a_j σ(u_ji)`` is negligible against the labels,
the residual is ``r = −y`` and each neuron evolves alone and linearly
(docs/orthogonal-flow.md with ``r = −y``; the same computation as the jump process's
alignment amplitude, :func:`reluflow.limit._alignment_amplitude`). With
``s = sign(a_j)``, ``ã = s a_j > 0``, ``ỹ = s y`` and ``B(t) = ∫_0^t ã``:

* a coordinate with ``u_ji(0) <= 0`` or ``ỹ_i = 0`` never moves;
* a live one follows ``u_ji = u_ji(0) + ỹ_i ‖x_i‖² B / n``: the wrong-sign ones
  (``ỹ_i < 0``) die, one after the other, when ``B`` reaches their level
  ``u_ji(0) n / (|ỹ_i| ‖x_i‖²)``;
* between two deaths ``ã'' = γ² ã`` with ``ã' = v = γ² B + C`` (``γ``, ``C``
  sums over the live coordinates), so ``Z = γ ã + v`` grows like ``e^{γ t}``
  and, with the invariant ``κ = ã² − v²/γ²``,
  ``v = (Z² − γ²κ) / (2Z)`` and ``ã = (Z² + γ²κ) / (2γZ)``.

Any scale. The phase is homogeneous of degree 1 in each neuron's initial state,
so it is solved for ``(â_j, û_j) = e^{−ℓ_j}(a_j, u_j)(0)`` (O(1)) and every
quantity is returned relative to ``ã``: ``ln ã`` (from ``ln Z = ln Z_k + γ Δt``,
which never overflows although ``Z`` reaches ``1/λ``) and ``u / ã``, ``B / ã``,
``v / ã = γ (1 − q)/(1 + q)`` with ``q = γ²κ / Z²``. The true state is
``e^{ℓ_j + ln ã}`` times O(1) numbers at λ = 1e-10000 as at λ = 1e-8.

The phase ends at the first time ``t₁`` where some ``|f_i|`` reaches ``eps``
times its label (``eps = 1e-2 · rtol`` in :func:`reluflow.gradient_flow`): the
neglected term then changes any velocity by a relative ``eps`` at most, below
the solver's own tolerance. Every kink of this phase (there are ``≈ m n / 4``
of them with balanced labels, all before the first plateau ends) gets its
exact time, and the solver starts at ``t₁`` with none of them left to locate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._dynamics import Recorder
from .data import Dataset
from .network import Network

# geometric scan for the end of the phase: points per decade, most decades
_SCAN_PER_DECADE = 10
_SCAN_DECADES = 60
_SCAN_BLOCK = 32


@dataclass(frozen=True)
class InitialPhase:
    """The closed-form phase up to ``t1``: its end state and its kinks (time-ordered).

    The end state is ``(a, u) = e^{ℓ_j} (â_j, û_j)`` per neuron (``ell``,
    ``a_hat``, ``u_hat``; :attr:`a` and :attr:`u` are the float64 values, which
    underflow below 1e-308).
    """

    t1: float
    ell: np.ndarray
    a_hat: np.ndarray
    u_hat: np.ndarray
    kink_t: np.ndarray
    kink_flat: np.ndarray
    segments: _Segments

    @property
    def a(self) -> np.ndarray:
        return np.exp(self.ell) * self.a_hat

    @property
    def u(self) -> np.ndarray:
        return np.exp(self.ell)[:, None] * self.u_hat

    def state(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ℓ, â, û)`` at a time ``t <= t1``."""
        return self.segments.state(t)

    def record(self, rec: Recorder) -> None:
        """Add the recorder's grid points in ``(0, t1]`` and the end point ``t1``."""
        times = rec.grid_points(0.0, self.t1)
        if not times or times[-1] < self.t1:
            times.append(self.t1)
        self.segments.record(rec, np.asarray(times))

    def activation_times(self, log_level: float) -> np.ndarray:
        """Per neuron, the first ``t <= t1`` where ``ln |a_j| = log_level`` (NaN if none).

        ``|a_j| = e^{ℓ0_j} ã_j`` is located by bisection on the closed form (to
        ``1e-14`` relative), for the neurons above the level at ``t1``.
        """
        out = np.full(self.ell.shape[0], np.nan)
        seg = self.segments
        above = np.flatnonzero(self.ell + np.log(np.abs(self.a_hat)) >= log_level)
        for j in above:
            rows = np.array([j])

            def la(t: float, rows: np.ndarray = rows, j: int = j) -> float:
                k = np.searchsorted(seg.t_lo[j], [t], side="right") - 1
                return float(seg.ell0[j] + seg._log_a_and_b(rows, k, np.array([t]))[0][0])

            if la(0.0) >= log_level:
                out[j] = 0.0
                continue
            lo, hi = 0.0, self.t1
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                if la(mid) >= log_level:
                    hi = mid
                else:
                    lo = mid
                if hi - lo <= 1e-14 * hi:
                    break
            out[j] = hi
        return out


class _Segments:
    """Per-neuron piecewise closed form (padded arrays, one row per neuron)."""

    def __init__(self, data: Dataset, net: Network):
        y = np.asarray(data.y, dtype=float)
        x_sq = np.asarray(data.sq_norms(), dtype=float)
        n, m = data.n, net.m
        self.n, self.m = n, m
        # each neuron at its own O(1) scale: (a, u)(0) = e^{ℓ0} (â0, û0)
        p = net.log_params
        self.ell0 = np.asarray(p.ell, dtype=float)
        self.wps_hat = np.asarray(p.w_perp_sq_hat, dtype=float)
        a0 = np.asarray(p.a_hat, dtype=float)
        self.u0 = np.asarray(p.u_hat, dtype=float)
        self.sign = np.where(a0 > 0, 1.0, -1.0)
        yt = self.sign[:, None] * y[None, :]
        live = (self.u0 > 0) & (yt != 0) & (a0[:, None] != 0)
        pos, neg = live & (yt > 0), live & (yt < 0)
        self.slope = yt * x_sq[None, :] / n  # du/dB of a live coordinate
        self.live = live
        with np.errstate(divide="ignore", invalid="ignore"):
            level = np.where(neg, self.u0 / -self.slope, np.inf)
        self.level = level
        K = int(neg.sum(axis=1).max(initial=0))
        self.K = K
        order = np.argsort(level, axis=1, kind="stable")[:, :K]
        lev = np.take_along_axis(level, order, axis=1)  # (m, K), inf-padded
        self.order, self.deaths = order, np.isfinite(lev)
        g2_pos = ((yt**2 * x_sq[None, :] / n**2) * pos).sum(axis=1)
        c_pos = ((yt * self.u0 / n) * pos).sum(axis=1)
        d_g2 = np.where(self.deaths, np.take_along_axis(yt**2 * x_sq / n**2, order, axis=1), 0.0)
        d_c = np.where(self.deaths, np.take_along_axis(yt * self.u0 / n, order, axis=1), 0.0)
        # segment k (k = 0..K) runs from B_lo[k] with every coordinate dying after it alive
        suffix_g2 = np.cumsum(d_g2[:, ::-1], axis=1)[:, ::-1]
        suffix_c = np.cumsum(d_c[:, ::-1], axis=1)[:, ::-1]
        self.g2 = np.concatenate([g2_pos[:, None] + suffix_g2, g2_pos[:, None]], axis=1)
        self.c = np.concatenate([c_pos[:, None] + suffix_c, c_pos[:, None]], axis=1)
        b_lo = np.concatenate([np.zeros((m, 1)), np.where(self.deaths, lev, np.nan)], axis=1)
        self.b_lo = b_lo
        # ã at each segment start: ã² = ã_k² + γ²(B² − B_k²) + 2C(B − B_k) along segment k
        # (a running sum, in segment order: NaN from a neuron's last death on)
        at = np.abs(a0)
        lo, hi = b_lo[:, :-1], b_lo[:, 1:]
        step = self.g2[:, :K] * (hi - lo) * (hi + lo) + 2.0 * self.c[:, :K] * (hi - lo)
        a_sq = np.cumsum(np.concatenate([(at**2)[:, None], step], axis=1), axis=1)
        a_sq[:, 1:][~self.deaths] = np.nan
        self.valid = bool(np.all((a_sq > 0) | np.isnan(a_sq)))
        self.a_lo = np.sqrt(np.where(a_sq > 0, a_sq, np.nan))
        self.v_lo = self.g2 * b_lo + self.c
        gam = np.sqrt(self.g2)
        self.gam = gam
        z = gam * self.a_lo + self.v_lo
        # durations of the segments 0..K-1 (each ends with a death); v = ã' is continuous
        # across a death (the dying coordinate is 0 there), Z is not (γ changes)
        z_end = gam[:, :-1] * self.a_lo[:, 1:] + self.v_lo[:, 1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            dur = np.log(z_end / z[:, :-1]) / gam[:, :-1]
        dur = np.where(self.deaths, dur, np.nan)
        ok = ~self.deaths | (np.isfinite(dur) & (dur >= 0) & (z[:, :-1] > 0))
        rows, last = np.arange(m), self.deaths.sum(axis=1)  # each neuron's final segment
        final_ok = (z[rows, last] > 0) | (gam[rows, last] == 0)
        self.valid = self.valid and bool(ok.all()) and bool(final_ok.all())
        self.t_lo = np.concatenate(
            [np.zeros((m, 1)), np.cumsum(np.nan_to_num(dur), axis=1)], axis=1
        )
        self.t_lo[:, 1:][~self.deaths] = np.inf
        with np.errstate(divide="ignore", invalid="ignore"):
            self.kappa = self.a_lo**2 - np.where(self.g2 > 0, self.v_lo**2 / self.g2, 0.0)
            logs = [np.log(self.a_lo), np.log(z), np.log(2.0 * gam)]
        # the segments' numbers in one array, gathered at once by _log_a_and_b (the
        # attributes are views into it)
        self._per_segment = np.stack(
            [gam, self.g2, self.a_lo, self.v_lo, self.t_lo, b_lo, self.kappa, *logs]
        )
        self.gam, self.g2, self.a_lo, self.v_lo, self.t_lo, self.b_lo, self.kappa = (
            self._per_segment[:7]
        )

    def segment(self, t: float) -> np.ndarray:
        """Each neuron's segment at time ``t``."""
        return (self.t_lo <= t).sum(axis=1) - 1

    def _log_a_and_b(
        self, j: np.ndarray, k: np.ndarray, t: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``ln ã``, ``B / ã`` and ``1 / ã`` of neurons ``j`` in their segments ``k`` at times ``t``.

        Relative to ã, so that nothing overflows when ``Z ~ e^{γ t}`` exceeds float64:
        ``1/ã = 2γ e^{−ln Z} / (1 + q)``, ``v/ã = γ (1 − q)/(1 + q)`` with ``q = γ²κ e^{−2 ln Z}``
        and ``B/ã = (B_k − v_k/γ²)/ã + (v/ã)/γ²``.
        """
        g, g2, a_k, v_k, t_k, b_k, kap_k, la, lz_k, l2g_k = self._per_segment[:, j, k]
        dt = t - t_k
        grow = g > 0
        if grow.all():  # (the usual case: no masks)
            return self._growing(g, g2, v_k, b_k, kap_k, lz_k, l2g_k, dt)
        # γ = 0: ã constant (nothing live), B grows linearly
        inv_a = 1.0 / a_k
        b_over_a = b_k / a_k + dt
        if grow.any():
            la[grow], b_over_a[grow], inv_a[grow] = self._growing(
                *(x[grow] for x in (g, g2, v_k, b_k, kap_k, lz_k, l2g_k, dt))
            )
        return la, b_over_a, inv_a

    @staticmethod
    def _growing(
        g: np.ndarray,
        g2: np.ndarray,
        v_k: np.ndarray,
        b_k: np.ndarray,
        kap: np.ndarray,
        lz_k: np.ndarray,
        l2g: np.ndarray,
        dt: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`_log_a_and_b` where ``γ > 0``."""
        lz = lz_k + g * dt
        with np.errstate(over="ignore", under="ignore"):
            q = g * g * kap * np.exp(-2.0 * lz)
        inv = 2.0 * g * np.exp(-lz) / (1.0 + q)
        v_over_a = g * (1.0 - q) / (1.0 + q)
        return lz - l2g + np.log1p(q), (b_k - v_k / g2) * inv + v_over_a / g2, inv

    def record(self, rec: Recorder, times: np.ndarray) -> None:
        """Append rows at ``times`` to ``rec`` without forming ``u`` at each time.

        Along the phase, per neuron, ``‖w_j‖²``, ``Σ_i y_i σ(u_ji)`` and the active
        count are quadratic, linear and constant in ``B`` over the coordinates
        alive at ``B`` (suffix sums over the death order); they are evaluated
        relative to ``ã`` (``‖w‖²/ã²``, ``Σ y σ(u)/ã``, from ``B/ã`` and ``1/ã``).
        The loss is ``(Σ y² − 2 Σ_j a_j Σ_i y_i σ(u_ji)) / 2n``: the dropped
        ``Σ f_i²`` is below ``eps²`` of it, under the rounding of the loss.
        """
        y, x_sq = rec.data.y, rec.data.sq_norms()
        T, m, K = times.size, self.m, self.K
        cols = np.arange(m)
        k = np.empty((T, m), dtype=np.intp)
        for j in range(m):
            k[:, j] = np.searchsorted(self.t_lo[j], times, side="right") - 1
        la, bo, ia = (
            x.reshape(T, m)
            for x in self._log_a_and_b(np.tile(cols, T), k.ravel(), np.repeat(times, m))
        )
        live, u0, sl = self.live, self.u0, self.slope
        keep = live & ~np.isfinite(self.level)  # right-sign coordinates: alive throughout
        const_sq = np.array([(u0[j] ** 2 / x_sq)[~live[j]].sum() for j in range(m)])
        const_sq = const_sq + self.wps_hat
        const_y = np.array([(y * np.maximum(u0[j], 0.0))[~live[j]].sum() for j in range(m)])
        const_act = keep.sum(axis=1) + ((u0 > 0) & ~live).sum(axis=1)
        kj = self.deaths.sum(axis=1)
        lev = np.where(self.deaths, np.take_along_axis(self.level, self.order, axis=1), np.inf)
        # B itself only orders the deaths: B = (B/ã) ã, compared in the sign of B/ã
        # against the levels (B and the levels are O(1) while deaths happen)
        with np.errstate(over="ignore"):
            b = bo * np.exp(la)
        first = np.empty((T, m), dtype=np.intp)  # first death still to come
        for j in range(m):
            first[:, j] = np.searchsorted(lev[j, : kj[j]], b[:, j], side="right")

        def alive(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """Sums of ``v`` (m, n) over the coordinates alive throughout (per neuron, in
            sample order) and over those still to die at each time (suffix sums in death
            order, 0 after the last), (m,) and (T, m)."""
            kept = np.array([v[j, keep[j]].sum() for j in range(m)])
            dying = np.where(self.deaths, np.take_along_axis(v, self.order, axis=1), 0.0)
            suffix = np.zeros((m, K + 1))
            suffix[:, :K] = np.cumsum(dying[:, ::-1], axis=1)[:, ::-1]
            return kept, suffix[cols, first]

        # terms of u² / ‖x‖² = (u0 + sl B)² / ‖x‖² and of y u = y (u0 + sl B)
        kept, later = alive(u0**2 / x_sq)
        c0 = const_sq + kept + later
        c1, c2, s1 = (np.add(*alive(v)) for v in (2 * u0 * sl / x_sq, sl**2 / x_sq, y * sl))
        kept, later = alive(y * u0)
        s0 = const_y + kept + later
        wsq = c0 * ia * ia + bo * c1 * ia + bo * bo * c2
        ys = s0 * ia + bo * s1
        ell = self.ell0 + la
        with np.errstate(under="ignore"):
            fys = self.sign * np.exp(2.0 * ell) * ys
        fy = np.zeros(T)
        for j in range(m):
            fy += fys[:, j]
        loss = (float(y @ y) - 2.0 * fy) / (2 * self.n)
        a_hat = np.broadcast_to(self.sign, (T, m))
        rec.extend_scaled(times, loss, ell, a_hat, wsq, const_act + (kj - first))

    def state(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ℓ, â, û)`` of every neuron at time ``t``, ``(a, u) = e^{ℓ}(â, û)``, ``|â| = 1``."""
        rows = np.arange(self.m)
        la, bo, ia = self._log_a_and_b(rows, self.segment(t), np.full(self.m, t))
        with np.errstate(over="ignore"):
            b = bo * np.exp(la)
        alive = self.live & ((self.level > b[:, None]) | np.isinf(self.level))
        u_hat = np.where(
            alive,
            self.u0 * ia[:, None] + self.slope * bo[:, None],
            np.where(self.live, 0.0, self.u0 * ia[:, None]),
        )
        return self.ell0 + la, self.sign.copy(), u_hat

    def kinks(self, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Times and flat indices ``j n + i`` of the deaths before ``t1``, in time order."""
        t = self.t_lo[:, 1:]
        hit = self.deaths & (t < t1)
        j = np.nonzero(hit)[0]
        i = self.order[hit]
        tt = t[hit]
        srt = np.argsort(tt, kind="stable")
        return tt[srt], (j * self.n + i)[srt]


class _SmallOutputs:
    """Whether every output of the phase is within its bound at time ``t``: ``|f_i| <= b_i``.

    ``f_i = Σ_j s_j e^{2ℓ_j} σ(u_ji)/ã_j`` with ``u_ji/ã_j = u0_ji (1/ã_j) + s_ji (B_j/ã_j)``,
    ``s_ji`` the slope of a live coordinate (0 for the others): positive exactly while the
    coordinate is alive (a wrong-sign one dies where ``u0 + s B`` reaches 0, and the
    formula stays negative after). A sufficient test
    comes first, in O(m): ``σ(u_ji)/ã_j <= u0⁺_ji/ã_j + |s_ji| |B_j/ã_j|``, so
    ``max_i |f_i|/b_i <= Σ_j e^{2ℓ_j} (p_j/ã_j + q_j |B_j/ã_j|)`` with
    ``p_j = max_i u0⁺_ji/b_i``, ``q_j = max_i |s_ji|/b_i``; below 1/2 (far above any
    rounding of the exact test) the outputs are small. Most of the scan for the end
    of the phase sits there, decades before the outputs approach their bound.
    """

    def __init__(self, seg: _Segments, bound: np.ndarray):
        self.seg, self.bound = seg, bound
        inv = 1.0 / bound
        self.p = (np.maximum(seg.u0, 0.0) * inv).max(axis=1, initial=0.0)
        self.s = np.where(seg.live, seg.slope, 0.0)
        self.q = (np.abs(self.s) * inv).max(axis=1, initial=0.0)
        self.rows = np.arange(seg.m)
        self.u: np.ndarray | None = None  # work arrays of the exact test
        self.tmp: np.ndarray | None = None

    def surely(self, times: np.ndarray) -> np.ndarray:
        """The sufficient test alone, at several times at once."""
        return self.bound_ratio(times) <= 0.5

    def bound_ratio(self, times: np.ndarray) -> np.ndarray:
        """The upper bound ``Σ_j e^{2ℓ_j} (p_j/ã_j + q_j |B_j/ã_j|)`` on ``max_i |f_i|/b_i``."""
        seg = self.seg
        T, m = times.size, seg.m
        k = np.empty((T, m), dtype=np.intp)
        for j in range(m):
            k[:, j] = np.searchsorted(seg.t_lo[j], times, side="right") - 1
        la, bo, ia = (
            x.reshape(T, m)
            for x in seg._log_a_and_b(np.tile(self.rows, T), k.ravel(), np.repeat(times, m))
        )
        with np.errstate(under="ignore", over="ignore", invalid="ignore"):
            w = np.exp(2.0 * (seg.ell0 + la))
            return (w * (ia * self.p + np.abs(bo) * self.q)).sum(axis=1)

    def __call__(self, t: float) -> bool:
        seg = self.seg
        la, bo, ia = seg._log_a_and_b(self.rows, seg.segment(t), np.full(seg.m, t))
        with np.errstate(under="ignore", over="ignore", invalid="ignore"):
            w = np.exp(2.0 * (seg.ell0 + la))
            if float((w * (ia * self.p + np.abs(bo) * self.q)).sum()) <= 0.5:
                return True
            if self.u is None:
                self.u, self.tmp = np.empty((seg.m, seg.n)), np.empty((seg.m, seg.n))
            u, tmp = self.u, self.tmp
            np.multiply(seg.u0, ia[:, None], out=u)
            np.multiply(self.s, bo[:, None], out=tmp)
            u += tmp
            np.maximum(u, 0.0, out=u)
            f = (w * seg.sign) @ u
        return bool(np.all(np.abs(f) <= self.bound))  # False on NaN (an overflowed output)


def initial_phase(
    data: Dataset, net: Network, eps: float, t_start: float, t_cap: float
) -> InitialPhase | None:
    """Solve the flow in closed form up to where the outputs reach ``eps`` of the labels.

    Args:
        data: orthogonal data. net: the initial network.
        eps: relative size of the neglected outputs, ``|f_i| <= eps · max(|y_i|, 1e-3 max|y|)``.
        t_start: first time to try (the sampling grid's start).
        t_cap: never go past this time (the requested stop time).

    Returns:
        None when the phase would be empty or the closed form does not apply
        (an output weight changing sign while its wrong-sign coordinates die,
        possible with ``init="independent"``); the solver then starts at 0.
    """
    if not data.is_orthogonal or t_start >= t_cap:
        return None
    seg = _Segments(data, net)
    if not seg.valid:
        return None
    y = np.asarray(data.y, dtype=float)
    ymax = float(np.abs(y).max(initial=0.0))
    if ymax == 0.0:
        return None
    small = _SmallOutputs(seg, eps * np.maximum(np.abs(y), 1e-3 * ymax))

    ratio = 10.0 ** (1.0 / _SCAN_PER_DECADE)
    lo, hi = 0.0, t_start
    # the scan's points, tested in blocks by the sufficient test first (the points where
    # it passes need nothing more)
    sure = np.zeros(0, dtype=bool)
    for step in range(_SCAN_PER_DECADE * _SCAN_DECADES):
        if hi >= t_cap:
            hi = t_cap
            if small(hi):
                lo = hi
            break
        if step == sure.size:
            block = [hi]
            while len(block) < _SCAN_BLOCK and block[-1] * ratio < t_cap:
                block.append(block[-1] * ratio)
            sure = np.concatenate([sure, small.surely(np.array(block))])
        if not (sure[step] or small(hi)):
            break
        lo, hi = hi, hi * ratio
    else:
        return None  # never left the linear regime within the scan: nothing grows
    if lo == 0.0:
        return None
    if lo < hi:
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if small(mid):
                lo = mid
            else:
                hi = mid
            if hi - lo <= 1e-6 * hi:
                break
    t1 = lo
    ell, a_hat, u_hat = seg.state(t1)
    # each neuron to its O(1) size max(|â|, max|û|) (|â| = 1 here)
    size = np.maximum(1.0, np.abs(u_hat).max(axis=1, initial=0.0))
    kt, kf = seg.kinks(t1)
    return InitialPhase(
        t1=t1,
        ell=ell + np.log(size),
        a_hat=a_hat / size,
        u_hat=u_hat / size[:, None],
        kink_t=kt,
        kink_flat=kf,
        segments=seg,
    )
