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


@dataclass(frozen=True)
class InitialPhase:
    """The closed-form phase up to ``t1``: its end state and its kinks (time-ordered)."""

    t1: float
    a: np.ndarray
    u: np.ndarray
    kink_t: np.ndarray
    kink_flat: np.ndarray
    segments: _Segments

    def state(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """``(a, u)`` at a time ``t <= t1``."""
        return self.segments.state(t)

    def record(self, rec: Recorder) -> None:
        """Add the recorder's grid points in ``(0, t1]`` and the end point ``t1``."""
        times = rec.grid_points(0.0, self.t1)
        if not times or times[-1] < self.t1:
            times.append(self.t1)
        self.segments.record(rec, np.asarray(times))


class _Segments:
    """Per-neuron piecewise closed form (padded arrays, one row per neuron)."""

    def __init__(self, data: Dataset, net: Network):
        y = np.asarray(data.y, dtype=float)
        x_sq = np.asarray(data.sq_norms(), dtype=float)
        n, m = data.n, net.m
        self.n, self.m = n, m
        a0 = np.asarray(net.a, dtype=float)
        self.u0 = np.asarray(net.u, dtype=float)
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
        at = np.abs(a0)
        a_sq = np.empty((m, K + 1))
        a_sq[:, 0] = at**2
        for k in range(K):
            lo, hi = b_lo[:, k], b_lo[:, k + 1]
            step = self.g2[:, k] * (hi - lo) * (hi + lo) + 2.0 * self.c[:, k] * (hi - lo)
            a_sq[:, k + 1] = np.where(self.deaths[:, k], a_sq[:, k] + step, np.nan)
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
        self.z_lo = z
        with np.errstate(divide="ignore", invalid="ignore"):
            self.kappa = self.a_lo**2 - np.where(self.g2 > 0, self.v_lo**2 / self.g2, 0.0)

    def _a_and_b(
        self, j: np.ndarray, k: np.ndarray, t: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``ã`` and ``B`` of neurons ``j`` in their segments ``k`` at times ``t`` (same shape)."""
        g, g2 = self.gam[j, k], self.g2[j, k]
        a_k, v_k, dt = self.a_lo[j, k], self.v_lo[j, k], t - self.t_lo[j, k]
        a, db = a_k.copy(), a_k * dt  # γ = 0: ã constant (nothing live), B grows linearly
        grow = g > 0
        if grow.any():
            gg = g[grow]
            kap = self.kappa[j, k][grow]
            z = self.z_lo[j, k][grow] * np.exp(gg * dt[grow])
            v = (z * z - gg * gg * kap) / (2.0 * z)
            a[grow] = (z * z + gg * gg * kap) / (2.0 * gg * z)
            db[grow] = (v - v_k[grow]) / g2[grow]
        return a, self.b_lo[j, k] + db

    def record(self, rec: Recorder, times: np.ndarray) -> None:
        """Append rows at ``times`` to ``rec`` without forming ``u`` at each time.

        Along the phase, per neuron, ``‖w_j‖²``, ``Σ_i y_i σ(u_ji)`` and the active
        count are quadratic, linear and constant in ``B`` over the coordinates
        alive at ``B`` (suffix sums over the death order). The loss is
        ``(Σ y² − 2 Σ_j a_j Σ_i y_i σ(u_ji)) / 2n``: the dropped ``Σ f_i²`` is
        below ``eps²`` of it, under the rounding of the loss.
        """
        y, x_sq, net = rec.data.y, rec.data.sq_norms(), rec.net
        T = times.size
        a_all, wsq_all = np.empty((T, self.m)), np.empty((T, self.m))
        act_all = np.empty((T, self.m), dtype=np.int64)
        fy = np.zeros(T)
        for j in range(self.m):
            k = np.searchsorted(self.t_lo[j], times, side="right") - 1
            at, b = self._a_and_b(np.full(T, j), k, times)
            live, u0, sl = self.live[j], self.u0[j], self.slope[j]
            neg = np.isfinite(self.level[j])
            keep = live & ~neg  # right-sign coordinates: alive throughout
            # terms of u² / ‖x‖² = (u0 + sl B)² / ‖x‖² and of y u = y (u0 + sl B)
            q0, q1, q2 = u0**2 / x_sq, 2 * u0 * sl / x_sq, sl**2 / x_sq
            p0, p1 = y * u0, y * sl
            const_sq = float((u0**2 / x_sq)[~live].sum())
            const_y = float((y * np.maximum(u0, 0.0))[~live].sum())
            const_act = int(np.count_nonzero(keep) + np.count_nonzero((u0 > 0) & ~live))
            kj = int(self.deaths[j].sum())
            idx = self.order[j, :kj]
            lev = self.level[j, idx]

            def suffix(v: np.ndarray, idx: np.ndarray = idx) -> np.ndarray:
                return np.concatenate([np.cumsum(v[idx][::-1])[::-1], [0.0]])

            first = np.searchsorted(lev, b, side="right")  # first death still to come
            wsq = (
                net.w_perp_sq[j]
                + const_sq
                + q0[keep].sum()
                + b * q1[keep].sum()
                + b * b * q2[keep].sum()
                + suffix(q0)[first]
                + b * suffix(q1)[first]
                + b * b * suffix(q2)[first]
            )
            ys = (
                const_y
                + p0[keep].sum()
                + b * p1[keep].sum()
                + suffix(p0)[first]
                + b * suffix(p1)[first]
            )
            a_all[:, j] = self.sign[j] * at
            wsq_all[:, j] = wsq
            act_all[:, j] = const_act + (kj - first)
            fy += self.sign[j] * at * ys
        loss = (float(y @ y) - 2.0 * fy) / (2 * self.n)
        rec.extend(times, loss, a_all, wsq_all, act_all)

    def state(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """``(a, u)`` of every neuron at time ``t`` (exact for the linear dynamics)."""
        rows = np.arange(self.m)
        k = (self.t_lo <= t).sum(axis=1) - 1  # current segment
        a, b = self._a_and_b(rows, k, np.full(self.m, t))
        alive = self.live & (self.level > b[:, None])
        u = np.where(alive, self.u0 + self.slope * b[:, None], np.where(self.live, 0.0, self.u0))
        return self.sign * a, u

    def kinks(self, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Times and flat indices ``j n + i`` of the deaths before ``t1``, in time order."""
        t = self.t_lo[:, 1:]
        hit = self.deaths & (t < t1)
        j = np.nonzero(hit)[0]
        i = self.order[hit]
        tt = t[hit]
        srt = np.argsort(tt, kind="stable")
        return tt[srt], (j * self.n + i)[srt]


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
    bound = eps * np.maximum(np.abs(y), 1e-3 * ymax)

    def small(t: float) -> bool:
        a, u = seg.state(t)
        f = a @ np.maximum(u, 0.0)
        return bool(np.all(np.abs(f) <= bound))

    ratio = 10.0 ** (1.0 / _SCAN_PER_DECADE)
    lo, hi = 0.0, t_start
    for _ in range(_SCAN_PER_DECADE * _SCAN_DECADES):
        if hi >= t_cap:
            hi = t_cap
            if small(hi):
                lo = hi
            break
        if not small(hi):
            break
        lo, hi = hi, hi * ratio
    else:
        return None  # never left the linear regime within the scan: nothing grows
    if lo == 0.0:
        return None
    if lo < hi:
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            if small(mid):
                lo = mid
            else:
                hi = mid
            if hi - lo <= 1e-6 * hi:
                break
    t1 = lo
    a, u = seg.state(t1)
    kt, kf = seg.kinks(t1)
    return InitialPhase(t1=t1, a=a, u=u, kink_t=kt, kink_flat=kf, segments=seg)
