"""Exact gradient flow in reduced coordinates, with error control and ReLU kinks as events.

Integrates ``dθ/dt = −∇L(θ)`` in the coordinates ``(a, u = W Xᵀ)`` of
THEORY.md §2 (O(m n²) per evaluation) or §3 (orthogonal data, O(m n)), never
touching ``d``.

Method. Dormand–Prince 5(4) (the tableau of ``scipy.integrate.RK45``) with
its 4th-order dense output, and two choices specific to this problem:

* **Per-neuron relative error control.** The error of neuron ``j``'s
  components is measured against ``atol + rtol · max(|a_j|, max_i |u_ji|)``,
  its own size. A neuron of size λ = 1e-30 is thus integrated to relative
  accuracy ``rtol`` just like an activated one; a global absolute tolerance
  would leave small neurons, which decide every activation time, uncontrolled.
* **Kinks as events.** Over a step the activity mask ``1[u_ji > 0]`` is
  frozen, so the field is polynomial and the step's dense output is the exact
  solution up to the first sign change of a coordinate. That crossing is
  located on the dense output (bisection), the state is taken there, the
  crossed coordinate set to exactly 0 and its mask flipped, and integration
  restarts from that point: a kink is never smeared over a step.
  Coordinates whose crossing lies within a negligible distance (their value
  at the event is below ``1e-3 · rtol`` of their neuron's size) are flipped
  in the same event.
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy.integrate import RK45
from tqdm.auto import tqdm

from . import _validate as V
from ._field import Field
from ._provenance import provenance
from .data import Dataset
from .errors import InputError
from .network import Network
from .trajectory import SolverStats, Trajectory

__all__ = ["gradient_flow"]

ENGINES = ("auto", "numpy", "numba")
# accepted steps per kernel call when a progress bar is shown (the result does not depend on it)
_PROGRESS_CHUNK = 500

_A, _B, _C, _E, _P = RK45.A, RK45.B, RK45.C, RK45.E, RK45.P


def _stop_times(net: Network, t_max: float | None, tau_max: float | None) -> float:
    log_inv = math.log(1.0 / net.scale)
    ends = []
    if t_max is not None:
        ends.append(V.finite_float("t_max", t_max, low=0.0, low_open=True))
    if tau_max is not None:
        if log_inv <= 0:
            raise InputError(
                f"tau_max needs scale < 1 (tau = t / log(1/scale)), got scale = {net.scale}"
            )
        ends.append(V.finite_float("tau_max", tau_max, low=0.0, low_open=True) * log_inv)
    return min(ends) if ends else math.inf


class _Recorder:
    """Collects trajectory samples: a geometric grid in t, every kink event and the end."""

    def __init__(self, data: Dataset, net: Network, points_per_decade: int, t0: float):
        self.data, self.net = data, net
        self.ratio = 10.0 ** (1.0 / points_per_decade)
        self.next_t = t0
        self.t: list[float] = []
        self.loss: list[float] = []
        self.a: list[np.ndarray] = []
        self.w: list[np.ndarray] = []
        self.act: list[np.ndarray] = []
        self.balance0 = net.balance(data)
        self.drift = 0.0

    def add(self, t: float, a: np.ndarray, u: np.ndarray, mask: np.ndarray) -> None:
        sig = u * mask
        r = a @ sig - self.data.y
        wsq = self.net.w_perp_sq + self.data.quad_form(u)
        size = a**2 + wsq
        scale = size.max()
        if scale > 0:
            self.drift = max(self.drift, float(np.abs(a**2 - wsq - self.balance0).max() / scale))
        self.t.append(t)
        self.loss.append(float(r @ r) / (2 * r.shape[0]))
        self.a.append(np.abs(a))
        self.w.append(np.sqrt(np.maximum(wsq, 0.0)))
        self.act.append(mask.sum(axis=1).astype(np.int64))

    def grid_points(self, t_lo: float, t_hi: float) -> list[float]:
        pts = []
        while self.next_t <= t_hi:
            if self.next_t > t_lo:
                pts.append(self.next_t)
            self.next_t *= self.ratio
        return pts


def gradient_flow(
    data: Dataset,
    net: Network,
    *,
    t_max: float | None = None,
    tau_max: float | None = None,
    loss_tol: float | None = None,
    rtol: float = 1e-8,
    atol: float = 0.0,
    stall_rate: float | None = None,
    max_steps: int = 1_000_000,
    points_per_decade: int = 200,
    record_kinks: bool = True,
    progress: bool = False,
    engine: str = "auto",
) -> Trajectory:
    """Integrate gradient flow from ``net`` on ``data`` (THEORY.md §1–3).

    The flow stops at the first of: ``t = t_max`` or ``τ = tau_max``; the loss
    below ``loss_tol``; nothing moving any more (every neuron's relative speed
    ``max|dθ_j/dt| / max|θ_j|`` below ``stall_rate``); ``max_steps`` steps
    (then the result is marked incomplete, ``success=False``).

    Args:
        data: dataset (orthogonal data takes the O(m n) path).
        net: initial network, e.g. from :func:`reluflow.init_network`.
        t_max: stop time in ``t``. tau_max: stop time in ``τ = t / log(1/λ)``.
        loss_tol: stop when the loss is below this (default ``1e-10 · mean(y²)/2``).
        rtol: relative tolerance per neuron, in (0, 1). atol: absolute floor (>= 0).
        stall_rate: the flow counts as stopped when every neuron's relative speed is
            below this (default ``1e-3 · min_i |y_i| ‖x_i‖ / n``, a thousandth of the
            slowest possible growth rate of a neuron in the jump process) and
            ``‖∇L‖² / (min_i |y_i| ‖x_i‖ / n) <= loss_tol`` (the loss cannot fall by
            more than ``loss_tol`` any more).
        max_steps: budget of accepted steps.
        points_per_decade: density of the geometric sampling grid in ``t``.
        record_kinks: also add a trajectory sample at every kink event.
        progress: show a progress bar (steps, τ, loss).
        engine: ``"numba"`` (compiled kernel for orthogonal data, same algorithm and
            results to rounding), ``"numpy"`` (the reference implementation, any data) or
            ``"auto"`` (numba for orthogonal data, numpy otherwise).

    Returns:
        A :class:`Trajectory`; ``success`` is False if the solver stopped on
        its step budget or failed, with the reason in ``status`` and ``message``.
    """
    if net.n != data.n:
        raise InputError(
            f"network and data disagree: the network has n = {net.n} reduced "
            f"coordinates per neuron, the data n = {data.n} samples"
        )
    engine = V.choice("engine", engine, ENGINES)
    if engine == "auto":
        engine = "numba" if data.is_orthogonal else "numpy"
    elif engine == "numba" and not data.is_orthogonal:
        raise InputError(
            f"engine='numba' needs orthogonal data (data.is_orthogonal), got {data!r} with "
            f"coherence {data.coherence:.3e}; use engine='numpy' (or 'auto') for general data"
        )
    rtol = V.tolerance("rtol", rtol)
    atol = V.finite_float("atol", atol, low=0.0, allowed="a finite number >= 0")
    max_steps = V.positive_int("max_steps", max_steps)
    points_per_decade = V.positive_int("points_per_decade", points_per_decade)
    t_end = _stop_times(net, t_max, tau_max)
    y = data.y
    n, m = data.n, net.m
    L0 = float(y @ y) / (2 * n)
    loss_tol = (
        (1e-10 * L0 if L0 > 0 else 0.0)
        if loss_tol is None
        else V.finite_float("loss_tol", loss_tol, low=0.0, allowed="a finite number >= 0")
    )
    weight = np.abs(y) * np.sqrt(data.sq_norms())
    rate_unit = float(weight[weight > 0].min()) / n if (weight > 0).any() else 1.0 / n
    stall_rate = (
        1e-3 * rate_unit
        if stall_rate is None
        else V.finite_float("stall_rate", stall_rate, low=0.0, allowed="a finite number >= 0")
    )
    wall0 = time.perf_counter()
    if engine == "numba":
        return _gradient_flow_numba(
            data,
            net,
            t_end=t_end,
            t_max=t_max,
            tau_max=tau_max,
            loss_tol=loss_tol,
            rtol=rtol,
            atol=atol,
            stall_rate=stall_rate,
            rate_unit=rate_unit,
            max_steps=max_steps,
            points_per_decade=points_per_decade,
            record_kinks=record_kinks,
            progress=progress,
            weight=weight,
            wall0=wall0,
        )

    field = Field(data)
    a = net.a.astype(float).copy()
    u = net.u.astype(float).copy()
    mask = (u > 0).astype(float)
    N = m + m * n
    yv = np.concatenate([a, u.ravel()])
    K = np.empty((7, N))

    # general data only: coordinates held at 0 by a sliding mode (see Field.velocity)
    sliding = np.zeros((m, n), dtype=bool)

    def f(state: np.ndarray, out: np.ndarray) -> np.ndarray:
        da, du, r = field.velocity(
            state[:m], state[m:].reshape(m, n), mask, out_a=out[:m], out_u=out[m:].reshape(m, n),
            sliding=sliding,
        )
        return r

    stats = dict(steps=0, rejected=0, evaluations=0, kinks=0, kink_steps=0, sliding=0)
    kinks_t: list[float] = []
    kinks_j: list[np.ndarray] = []
    kinks_i: list[np.ndarray] = []
    kinks_up: list[np.ndarray] = []

    # characteristic growth time: 1 / (rate of one neuron covering every sample)
    gamma_all = math.sqrt(float((weight**2).sum())) / n or 1.0
    rec = _Recorder(data, net, points_per_decade, t0=1e-3 / gamma_all)
    t = 0.0
    rec.add(t, a, u, mask)

    r = f(yv, K[0])
    stats["evaluations"] += 1
    h = _initial_step(yv, K[0], m, n, rtol, atol, gamma_all)
    status, message = "", ""
    bar = tqdm(total=None, disable=not progress, unit=" steps", desc="flow", leave=False)
    orth = field.orthogonal
    nbr = np.empty(N)
    try:
        while True:
            if t >= t_end:
                status, message = "t_max", f"reached the requested time t = {t:.6g}"
                break
            if stats["steps"] >= max_steps:
                status, message = (
                    "max_steps",
                    (
                        f"stopped after max_steps = {max_steps} steps at t = {t:.6g} "
                        f"(tau = {t / math.log(1 / net.scale) if net.scale < 1 else float('nan'):.4g}) "
                        "before any stopping criterion: the result is incomplete; raise max_steps"
                    ),
                )
                break
            h = min(h, t_end - t)
            # -- one Dormand-Prince trial step with the mask frozen
            for s in range(1, 6):
                np.dot(_A[s, :s] * h, K[:s], out=nbr)
                nbr += yv
                f(nbr, K[s])
            y_new = yv + h * (_B @ K[:6])
            r_new = f(y_new, K[6])
            stats["evaluations"] += 6
            err = h * (_E @ K)
            ratio = _error_ratio(err, yv, y_new, m, n, rtol, atol)
            if not np.isfinite(ratio):
                status, message = (
                    "failed",
                    f"the state became non-finite at t = {t:.6g}: the flow diverged or overflowed",
                )
                break
            if ratio > 1.0:
                stats["rejected"] += 1
                h *= max(0.2, 0.9 * ratio**-0.2)
                if h < 1e-14 * max(t, 1.0):
                    status, message = (
                        "failed",
                        f"step size underflow at t = {t:.6g}: the solver cannot meet rtol = {rtol:g}",
                    )
                    break
                continue
            # -- accepted: look for kinks inside the step
            u_old = yv[m:].reshape(m, n)
            u_new = y_new[m:].reshape(m, n)
            act = mask > 0
            crossed = act & (u_new <= 0)
            if not orth:
                crossed |= ~act & (u_new > 0)
            near = (
                act
                & (u_new > 0)
                & (np.minimum(u_old, u_new) < 0.5 * h * np.abs(K[0, m:].reshape(m, n)))
            )
            cand = np.flatnonzero(crossed | near)
            theta_star = 1.0
            flip = np.zeros(0, dtype=np.int64)
            if cand.size:
                theta_star, flip = _locate_kinks(K, yv, h, m, cand, u_old, act, rtol, atol)
            t_next = t + theta_star * h
            Q = None
            pts = rec.grid_points(t, min(t_next, t_end))
            if pts or flip.size:
                Q = K.T @ _P
            for tp in pts:
                th = (tp - t) / h
                ys = yv + h * (Q @ (th ** np.arange(1, 5)))
                rec.add(tp, ys[:m], ys[m:].reshape(m, n), mask)
            stats["steps"] += 1
            h_prop = h * min(5.0, max(0.2, 0.9 * max(ratio, 1e-10) ** -0.2))
            if flip.size:
                stats["kinks"] += int(flip.size)
                stats["kink_steps"] += 1
                yv = yv + h * (Q @ (theta_star ** np.arange(1, 5)))
                uu = yv[m:]
                was_active = mask.ravel()[flip] > 0
                uu[flip] = 0.0
                mask.ravel()[flip] = np.where(was_active, 0.0, 1.0)
                sliding.ravel()[flip] = False
                t = t_next
                kinks_t.append(t)
                kinks_j.append(flip // n)
                kinks_i.append(flip % n)
                kinks_up.append(~was_active)
                r = f(yv, K[0])
                stats["evaluations"] += 1
                if not orth:
                    # a coordinate that rises while inactive but would fall once active is
                    # in a sliding mode: hold it at 0 (Filippov) instead of chattering
                    up = flip[~was_active]
                    slide = up[K[0, m + up] < 0]
                    if slide.size:
                        mask.ravel()[slide] = 0.0
                        sliding.ravel()[slide] = True
                        stats["sliding"] += int(slide.size)
                        r = f(yv, K[0])
                        stats["evaluations"] += 1
                if record_kinks and (not pts or pts[-1] < t):
                    rec.add(t, yv[:m], yv[m:].reshape(m, n), mask)
                h = max(h_prop, h * (1.0 - theta_star)) if theta_star < 1 else h_prop
            else:
                yv, r, t = y_new, r_new, t + h
                K[0] = K[6]
                h = h_prop
                if sliding.any():
                    # leave the sliding mode where the holding fraction α hits 0 or 1
                    j, i, alpha = field.alpha
                    leave = (alpha <= 0.0) | (alpha >= 1.0)
                    if leave.any():
                        sliding[j[leave], i[leave]] = False
                        mask[j[leave], i[leave]] = (alpha[leave] >= 1.0).astype(float)
                        r = f(yv, K[0])
                        stats["evaluations"] += 1
            bar.update(1)
            loss = float(r @ r) / (2 * n)
            if stats["steps"] % 200 == 0:
                bar.set_postfix(
                    tau=f"{t / math.log(1 / net.scale):.3g}" if net.scale < 1 else "",
                    loss=f"{loss:.3e}",
                )
            if loss <= loss_tol:
                status, message = "loss_tol", f"loss {loss:.3e} <= loss_tol = {loss_tol:.3e}"
                break
            if _stalled(K[0], yv, m, n, stall_rate) and (
                _speed_sq(K[0], data, m, n) <= loss_tol * rate_unit
            ):
                status, message = (
                    "stalled",
                    (
                        "nothing moves any more (every neuron's relative speed < stall_rate and "
                        "the loss can fall by less than loss_tol)"
                    ),
                )
                break
    finally:
        bar.close()

    a_f = yv[:m].copy()
    u_f = yv[m:].reshape(m, n).copy()
    if rec.t[-1] < t:
        rec.add(t, a_f, u_f, mask)
    final = net.with_params(a_f, u_f)
    success = status in ("t_max", "loss_tol", "stalled")
    log_inv = math.log(1.0 / net.scale) if net.scale < 1 else float("nan")
    tt = np.asarray(rec.t)
    prov = provenance(
        dynamics="flow",
        scale=net.scale,
        m=m,
        n=n,
        init=net.init,
        seed=net.seed,
        data=data.describe(),
        rtol=rtol,
        atol=atol,
        t_max=t_max,
        tau_max=tau_max,
        loss_tol=loss_tol,
        stall_rate=stall_rate,
        max_steps=max_steps,
        engine="numpy",
    )
    return Trajectory(
        dynamics="flow",
        t=tt,
        tau=tt / log_inv,
        loss=np.asarray(rec.loss),
        a_abs=np.asarray(rec.a),
        w_norm=np.asarray(rec.w),
        n_active=np.asarray(rec.act),
        final=final,
        initial=net,
        success=success,
        status=status,
        message=message,
        conservation_drift=rec.drift,
        stats=SolverStats(**stats),
        kink_t=np.repeat(np.asarray(kinks_t), [len(j) for j in kinks_j])
        if kinks_t
        else np.zeros(0),
        kink_neuron=np.concatenate(kinks_j) if kinks_j else np.zeros(0, dtype=np.int64),
        kink_sample=np.concatenate(kinks_i) if kinks_i else np.zeros(0, dtype=np.int64),
        kink_up=np.concatenate(kinks_up) if kinks_up else np.zeros(0, dtype=bool),
        wall_s=time.perf_counter() - wall0,
        provenance=prov,
    )


def _gradient_flow_numba(
    data: Dataset,
    net: Network,
    *,
    t_end: float,
    t_max: float | None,
    tau_max: float | None,
    loss_tol: float,
    rtol: float,
    atol: float,
    stall_rate: float,
    rate_unit: float,
    max_steps: int,
    points_per_decade: int,
    record_kinks: bool,
    progress: bool,
    weight: np.ndarray,
    wall0: float,
) -> Trajectory:
    """The loop of :func:`gradient_flow` run by the compiled kernel (orthogonal data only).

    Same algorithm, stopping rules, recording and result as the numpy loop; see
    :mod:`reluflow._flow_numba`.
    """
    from . import _flow_numba as NB

    n, m = data.n, net.m
    y = np.ascontiguousarray(data.y, dtype=float)
    D = np.ascontiguousarray(data.sq_norms(), dtype=float)
    a = np.ascontiguousarray(net.a, dtype=float).copy()
    u = np.ascontiguousarray(net.u, dtype=float).copy()
    act = u > 0
    mask = act.astype(float)
    cnt = act.sum(axis=1).astype(np.int64)
    idx = np.zeros((m, n), dtype=np.int64)
    uc = np.zeros((m, n))
    Ka = np.zeros((7, m))
    Ku = np.zeros((7, m, n))
    # the first field evaluation and step size exactly as the numpy loop
    K0 = np.empty(m + m * n)
    r0 = Field(data).velocity(a, u, mask, out_a=K0[:m], out_u=K0[m:].reshape(m, n))[2]
    yv = np.concatenate([a, u.ravel()])
    gamma_all = math.sqrt(float((weight**2).sum())) / n or 1.0
    h = _initial_step(yv, K0, m, n, rtol, atol, gamma_all)
    Ka[0] = K0[:m]
    du0 = K0[m:].reshape(m, n)
    for j in range(m):
        ii = np.flatnonzero(act[j])
        idx[j, : ii.size] = ii
        uc[j, : ii.size] = u[j, ii]
        Ku[0, j, : ii.size] = du0[j, ii]
    dead = np.where(act, 0.0, u)
    deadmax = np.abs(dead).max(axis=1)
    deadsq = (dead**2 / D).sum(axis=1)
    balance0 = np.ascontiguousarray(net.balance(data), dtype=float)
    w_perp_sq = np.ascontiguousarray(net.w_perp_sq, dtype=float)
    sc0 = _neuron_scale(yv, m, n)
    fs = np.zeros(NB.N_FS)
    fs[NB.F_T], fs[NB.F_H], fs[NB.F_NEXT] = 0.0, h, 1e-3 / gamma_all
    fs[NB.F_LOSS] = float(r0 @ r0) / (2 * n)
    ist = np.zeros(NB.N_IST, dtype=np.int64)
    ist[NB.I_EVALS] = 1
    cap = 64 + 8 * points_per_decade
    bufs = (
        np.empty(cap),
        np.empty(cap),
        np.empty((cap, m)),
        np.empty((cap, m)),
        np.empty((cap, m), dtype=np.int64),
    )
    kcap = min(m * n, 1024)
    kbufs = (np.empty(kcap), np.empty(kcap, dtype=np.int64), np.empty(kcap, dtype=np.int64))
    A, B, E, P = (np.ascontiguousarray(x, dtype=float) for x in (_A, _B, _E, _P))
    grid_ratio = 10.0 ** (1.0 / points_per_decade)
    step_limit = _PROGRESS_CHUNK if progress else 2**62
    log_inv = math.log(1.0 / net.scale) if net.scale < 1 else float("nan")
    bar = tqdm(total=None, disable=not progress, unit=" steps", desc="flow", leave=False)
    try:
        while True:
            before = int(ist[NB.I_STEPS])
            code, *out = NB.run(
                A,
                B,
                E,
                P,
                y,
                D,
                w_perp_sq,
                deadmax,
                deadsq,
                balance0,
                a,
                uc,
                idx,
                cnt,
                u,
                Ka,
                Ku,
                sc0,
                fs,
                ist,
                t_end,
                max_steps,
                step_limit,
                rtol,
                atol,
                loss_tol,
                stall_rate,
                rate_unit,
                grid_ratio,
                bool(record_kinks),
                *bufs,
                *kbufs,
            )
            bufs, kbufs = tuple(out[:5]), tuple(out[5:])
            bar.update(int(ist[NB.I_STEPS]) - before)
            if code != NB.RUNNING:
                break
            bar.set_postfix(
                tau=f"{fs[NB.F_T] / log_inv:.3g}" if net.scale < 1 else "",
                loss=f"{fs[NB.F_LOSS]:.3e}",
            )
    finally:
        bar.close()

    t = float(fs[NB.F_T])
    if code == NB.T_MAX:
        status, message = "t_max", f"reached the requested time t = {t:.6g}"
    elif code == NB.MAX_STEPS:
        status, message = (
            "max_steps",
            (
                f"stopped after max_steps = {max_steps} steps at t = {t:.6g} "
                f"(tau = {t / math.log(1 / net.scale) if net.scale < 1 else float('nan'):.4g}) "
                "before any stopping criterion: the result is incomplete; raise max_steps"
            ),
        )
    elif code == NB.LOSS_TOL:
        status, message = "loss_tol", f"loss {fs[NB.F_LOSS]:.3e} <= loss_tol = {loss_tol:.3e}"
    elif code == NB.STALLED:
        status, message = (
            "stalled",
            (
                "nothing moves any more (every neuron's relative speed < stall_rate and "
                "the loss can fall by less than loss_tol)"
            ),
        )
    elif code == NB.NONFINITE:
        status, message = (
            "failed",
            f"the state became non-finite at t = {t:.6g}: the flow diverged or overflowed",
        )
    else:
        status, message = (
            "failed",
            f"step size underflow at t = {t:.6g}: the solver cannot meet rtol = {rtol:g}",
        )
    nrec, nk = int(ist[NB.I_NREC]), int(ist[NB.I_NKINK])
    rec_t, rec_loss, rec_a, rec_w, rec_act = (b[:nrec].copy() for b in bufs)
    kink_t, kink_j, kink_i = (b[:nk].copy() for b in kbufs)
    stats = SolverStats(
        steps=int(ist[NB.I_STEPS]),
        rejected=int(ist[NB.I_REJ]),
        evaluations=int(ist[NB.I_EVALS]),
        kinks=int(ist[NB.I_KINKS]),
        kink_steps=int(ist[NB.I_KSTEPS]),
    )
    final = net.with_params(a, u)
    success = status in ("t_max", "loss_tol", "stalled")
    prov = provenance(
        dynamics="flow",
        scale=net.scale,
        m=m,
        n=n,
        init=net.init,
        seed=net.seed,
        data=data.describe(),
        rtol=rtol,
        atol=atol,
        t_max=t_max,
        tau_max=tau_max,
        loss_tol=loss_tol,
        stall_rate=stall_rate,
        max_steps=max_steps,
        engine="numba",
    )
    return Trajectory(
        dynamics="flow",
        t=rec_t,
        tau=rec_t / log_inv,
        loss=rec_loss,
        a_abs=rec_a,
        w_norm=rec_w,
        n_active=rec_act,
        final=final,
        initial=net,
        success=success,
        status=status,
        message=message,
        conservation_drift=float(fs[NB.F_DRIFT]),
        stats=stats,
        kink_t=kink_t,
        kink_neuron=kink_j,
        kink_sample=kink_i,
        kink_up=np.zeros(nk, dtype=bool),
        wall_s=time.perf_counter() - wall0,
        provenance=prov,
    )


def _neuron_scale(yv: np.ndarray, m: int, n: int) -> np.ndarray:
    """``max(|a_j|, max_i |u_ji|)`` per neuron."""
    return np.maximum(np.abs(yv[:m]), np.abs(yv[m:].reshape(m, n)).max(axis=1))


def _error_ratio(
    err: np.ndarray, y0: np.ndarray, y1: np.ndarray, m: int, n: int, rtol: float, atol: float
) -> float:
    sc = atol + rtol * np.maximum(_neuron_scale(y0, m, n), _neuron_scale(y1, m, n))
    sc = np.maximum(sc, 1e-300)
    e = np.maximum(np.abs(err[:m]), np.abs(err[m:].reshape(m, n)).max(axis=1))
    return float((e / sc).max())


def _initial_step(
    yv: np.ndarray, f0: np.ndarray, m: int, n: int, rtol: float, atol: float, gamma: float
) -> float:
    sc = np.maximum(atol + rtol * _neuron_scale(yv, m, n), 1e-300)
    speed = np.maximum(np.abs(f0[:m]), np.abs(f0[m:].reshape(m, n)).max(axis=1)) / sc
    s = float(speed.max())
    h = 0.01 * rtol**0.2 / gamma
    if s > 0:
        h = min(h, 0.01 * rtol**0.2 / s * 1e2)
    return max(h, 1e-12)


def _speed_sq(v: np.ndarray, data: Dataset, m: int, n: int) -> float:
    """``‖dθ/dt‖² = Σ_j (da_j/dt)² + ‖dw_j/dt‖²`` (= ``−dL/dt``)."""
    return float(v[:m] @ v[:m] + data.quad_form(v[m:].reshape(m, n)).sum())


def _stalled(v: np.ndarray, yv: np.ndarray, m: int, n: int, stall_rate: float) -> bool:
    size = _neuron_scale(yv, m, n)
    speed = np.maximum(np.abs(v[:m]), np.abs(v[m:].reshape(m, n)).max(axis=1))
    live = size > 0
    return bool((speed[live] <= stall_rate * size[live]).all())


def _locate_kinks(
    K: np.ndarray,
    yv: np.ndarray,
    h: float,
    m: int,
    cand: np.ndarray,
    u_old: np.ndarray,
    act: np.ndarray,
    rtol: float,
    atol: float,
) -> tuple[float, np.ndarray]:
    """First sign change, on the step's dense output, of the candidate coordinates.

    Returns ``(θ*, flat indices to flip)`` with θ* in [0, 1] the fraction of the step.
    """
    idx = m + cand
    Qc = K[:, idx].T @ _P  # (c, 4) dense-output coefficients
    u0 = yv[idx]
    was_active = act.ravel()[cand]
    sgn = np.where(was_active, 1.0, -1.0)  # +: crossing downwards, -: upwards

    def val(th: np.ndarray) -> np.ndarray:  # signed distance to the crossing, > 0 before it
        p = np.stack([th, th**2, th**3, th**4], axis=-1)
        return sgn * (u0 + h * np.einsum("ck,ck->c", Qc, p))

    # bracket the first crossing on a coarse grid, then bisect
    grid = np.linspace(0.0, 1.0, 17)[1:]
    lo = np.zeros(cand.size)
    hi = np.full(cand.size, np.inf)
    prev = np.zeros(cand.size)
    for g in grid:
        v = val(np.full(cand.size, g))
        new = np.isinf(hi) & (v <= 0)
        hi[new] = g
        lo[new] = prev[new]
        prev = np.where(np.isinf(hi), g, prev)
    # an inactive coordinate sitting at 0 that would rise, or an active one at 0: crossing at 0
    at_zero = u0 == 0
    lo[at_zero] = 0.0
    hi[at_zero & np.isinf(hi)] = np.inf
    hit = np.isfinite(hi)
    if not hit.any():
        return 1.0, np.zeros(0, dtype=np.int64)
    lo, hi = lo[hit], hi[hit]
    sub = np.flatnonzero(hit)
    sgn_h, u0_h, Qc_h = sgn[sub], u0[sub], Qc[sub]
    for _ in range(52):
        mid = 0.5 * (lo + hi)
        p = np.stack([mid, mid**2, mid**3, mid**4], axis=-1)
        v = sgn_h * (u0_h + h * np.einsum("ck,ck->c", Qc_h, p))
        pos = v > 0
        lo = np.where(pos, mid, lo)
        hi = np.where(pos, hi, mid)
        if (hi - lo).max() < 1e-15:
            break
    theta = hi
    th_star = float(theta.min())
    # flip every coordinate crossing at th_star, and those whose remaining distance to 0 there
    # is negligible against their neuron's size
    p = np.array([th_star, th_star**2, th_star**3, th_star**4])
    v_star = sgn * (u0 + h * (Qc @ p))
    j = cand // u_old.shape[1]
    neuron_size = np.maximum(np.abs(yv[:m]), np.abs(u_old).max(axis=1))[j]
    close = v_star <= 1e-3 * (atol + rtol * neuron_size)
    crossing_now = np.zeros(cand.size, dtype=bool)
    crossing_now[sub[theta <= th_star]] = True
    flip = cand[crossing_now | (close & np.isin(np.arange(cand.size), sub))]
    return th_star, flip
