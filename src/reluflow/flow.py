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
* **Sliding modes (general data).** With correlated samples a coordinate at 0
  can rise while inactive and fall once active; ``σ'(0) = 0`` alone would make
  it chatter. Such a coordinate is held at 0 with the fraction of activity
  ``α ∈ [0, 1]`` that keeps it there (Filippov's solution, the limit of gradient
  descent as its step goes to 0). At every kink the coordinates of the neuron
  that sit at 0 are resolved jointly (inactive, active or sliding: a box
  complementarity problem, convex for the attracting coordinates; see
  ``Field.resolve_zero_set``), and a sliding coordinate leaves its mode at the
  located point where its ``α`` reaches 0 or 1. Every step is then again
  smooth. Orthogonal data has no sliding modes (an inactive coordinate never
  moves).
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy.integrate import RK45
from tqdm.auto import tqdm

from . import _events as E
from . import _memory
from . import _validate as V
from ._dynamics import (
    STALLED_MESSAGE,
    KinkLog,
    Recorder,
    StopRules,
    log_inv_scale,
    make_trajectory,
    max_steps_message,
    neuron_scale,
    run_provenance,
)
from ._field import Field
from ._linear import InitialPhase, initial_phase
from ._loss import LossConvention
from ._weight_field import WeightField
from .data import ArrayData, Dataset
from .errors import InputError
from .network import Network
from .trajectory import SolverStats, Trajectory

__all__ = ["gradient_flow"]

ENGINES = ("auto", "numpy", "numba", "weight")
# smallest initialisation scale the general-data compiled engine accepts
GENERAL_MIN_SCALE = 1e-150
# accepted steps per kernel call when a progress bar is shown (the result does not depend on it)
_PROGRESS_CHUNK = 500

_A, _B, _C, _E, _P = RK45.A, RK45.B, RK45.C, RK45.E, RK45.P
# successive zero-length kink events after which the solver gives up (chattering)
_MAX_STUCK = 200


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
    closed_form_start: bool = True,
    loss: str = "half_mean",
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
            Known limit: at rtol >= 1e-4 the solver's own noise on a final plateau can
            keep the stall rule from firing; the run then ends at ``max_steps``, marked
            incomplete (rtol <= 1e-6 is tested to end as ``"stalled"``).
        stall_rate: the flow counts as stopped when every neuron's relative speed is
            below this (default ``1e-3 · min_i |y_i| ‖x_i‖ / n``, a thousandth of the
            slowest possible growth rate of a neuron in the jump process) and
            ``‖∇L‖² / (min_i |y_i| ‖x_i‖ / n) <= loss_tol`` (the loss cannot fall by
            more than ``loss_tol`` any more).
        max_steps: budget of accepted steps.
        points_per_decade: density of the geometric sampling grid in ``t``.
        record_kinks: also add a trajectory sample at every kink event (the kinks of
            the closed-form initial phase are listed, not sampled).
        progress: show a progress bar (steps, τ, loss).
        engine: ``"numba"`` (compiled kernels, same algorithm and results to rounding as
            the reference: the O(m n) one for orthogonal data, a BLAS one for general data,
            docs/general-data.md; on general data it needs ``scale >= 1e-150``),
            ``"numpy"`` (the reference implementation, any data) or ``"auto"`` (numba, except
            numpy for general data below that scale).
        closed_form_start: solve the initial phase in closed form (orthogonal data: both
            engines; general data: the numba engine, see docs/general-data.md)
            (while every output is below ``1e-2 · rtol`` of its label the residual is
            ``−y`` and each neuron evolves alone and linearly; its ≈ m n / 4 kinks,
            wrong-sign coordinates dying, then get exact times instead of one solver
            restart each) and start the solver where the outputs become visible.
            False integrates from ``t = 0`` (slower, same result within ``rtol``).
        loss: ``"half_mean"`` (``L = (1/2n) Σ r²``, default) or ``"mean"``
            (``(1/n) Σ r²``, PyTorch's ``MSELoss``): the "mean" flow at time ``t`` is the
            half-mean flow at ``2t``; ``t_max``, ``tau_max``, ``loss_tol``, ``stall_rate``
            and the returned times and losses are in the chosen convention
            (docs/field-setups.md).

    Returns:
        A :class:`Trajectory`; ``success`` is False if the solver stopped on
        its step budget or failed, with the reason in ``status`` and ``message``.
    """
    if net.n != data.n:
        raise InputError(
            f"network and data disagree: the network has n = {net.n} reduced "
            f"coordinates per neuron, the data n = {data.n} samples"
        )
    conv = LossConvention(loss)
    if conv.name != "half_mean":
        user = dict(t_max=t_max, tau_max=tau_max, loss_tol=loss_tol, stall_rate=stall_rate)
        traj = gradient_flow(
            data,
            net,
            t_max=conv.time_in(t_max),
            tau_max=conv.time_in(tau_max),
            loss_tol=conv.loss_in(loss_tol),
            stall_rate=conv.rate_in(stall_rate),
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
            points_per_decade=points_per_decade,
            record_kinks=record_kinks,
            progress=progress,
            engine=engine,
            closed_form_start=closed_form_start,
        )
        return conv.trajectory(traj, user)
    engine = V.choice("engine", engine, ENGINES)
    general = not data.is_orthogonal
    if engine == "weight" and not (general and isinstance(data, ArrayData)):
        raise InputError(
            f"engine='weight' needs general data with explicit inputs X (array_data), got "
            f"{data!r}; use engine='auto'"
        )
    if engine == "auto":
        # the general-data kernel works in float64 coordinates: below GENERAL_MIN_SCALE
        # the initial state is not representable there (λ² underflows)
        engine = "numpy" if general and net.scale < GENERAL_MIN_SCALE else "numba"
    elif engine == "numba" and general and net.scale < GENERAL_MIN_SCALE:
        raise InputError(
            f"engine='numba' on general data needs scale >= {GENERAL_MIN_SCALE:g} (float64 "
            f"coordinates), got scale = {net.scale:g}; use engine='numpy' or 'auto'"
        )
    rtol = V.tolerance("rtol", rtol)
    atol = V.finite_float("atol", atol, low=0.0, allowed="a finite number >= 0")
    max_steps = V.positive_int("max_steps", max_steps)
    points_per_decade = V.positive_int("points_per_decade", points_per_decade)
    _memory.check_dynamics("the gradient flow", data.n, net.m, data.is_orthogonal)
    rules = StopRules.build(data, net, t_max, tau_max, loss_tol, stall_rate)
    options = dict(
        rtol=rtol,
        atol=atol,
        t_max=t_max,
        tau_max=tau_max,
        loss_tol=rules.loss_tol,
        stall_rate=rules.stall_rate,
        max_steps=max_steps,
    )
    wall0 = time.perf_counter()
    start = None
    if closed_form_start and data.is_orthogonal:
        start = initial_phase(
            data, net, eps=1e-2 * rtol, t_start=1e-3 / rules.gamma_all, t_cap=rules.t_end
        )
    options["closed_form_start"] = bool(closed_form_start)
    options["loss"] = "half_mean"
    if engine == "numba" and general:
        from ._flow_general import gradient_flow_general

        return gradient_flow_general(
            data,
            net,
            rules,
            options,
            closed_form_start=bool(closed_form_start),
            points_per_decade=points_per_decade,
            record_kinks=record_kinks,
            progress=progress,
            wall0=wall0,
        )
    if engine == "numba":
        return _gradient_flow_numba(
            data,
            net,
            rules,
            options,
            start,
            points_per_decade=points_per_decade,
            record_kinks=record_kinks,
            progress=progress,
            wall0=wall0,
        )
    return _gradient_flow_numpy(
        data,
        net,
        rules,
        options,
        start,
        points_per_decade=points_per_decade,
        record_kinks=record_kinks,
        progress=progress,
        wall0=wall0,
        weight_space=engine == "weight",
    )


def _gradient_flow_numpy(
    data: Dataset,
    net: Network,
    rules: StopRules,
    options: dict,
    start: InitialPhase | None,
    *,
    points_per_decade: int,
    record_kinks: bool,
    progress: bool,
    wall0: float,
    weight_space: bool = False,
) -> Trajectory:
    """The reference loop of :func:`gradient_flow` (any data).

    ``weight_space``: evaluate the field through ``X`` (O(m n d), see
    :mod:`reluflow._weight_field`) instead of through ``K`` (O(m n²)).
    """
    n, m = data.n, net.m
    rtol, atol, max_steps = options["rtol"], options["atol"], options["max_steps"]
    t_end = rules.t_end
    field = WeightField(data) if weight_space else Field(data)
    rec, kinks, t, a, u = _begin(data, net, rules, start, points_per_decade)
    mask = (u > 0).astype(float)
    N = m + m * n
    yv = np.concatenate([a, u.ravel()])
    K = np.empty((7, N))

    # general data only: coordinates held at 0 by a sliding mode (see Field.velocity)
    sliding = np.zeros((m, n), dtype=bool)

    def f(state: np.ndarray, out: np.ndarray) -> np.ndarray:
        da, du, r = field.velocity(
            state[:m],
            state[m:].reshape(m, n),
            mask,
            out_a=out[:m],
            out_u=out[m:].reshape(m, n),
            sliding=sliding,
        )
        return r

    stats = dict(steps=0, rejected=0, evaluations=0, kinks=len(kinks), kink_steps=0, sliding=0)
    stats["closed_form_t"] = t
    scratch = np.empty(N)
    stuck = 0  # successive events that did not advance time
    stall = rules.stall_watch()

    r = f(yv, K[0])
    stats["evaluations"] += 1
    h = _initial_step(yv, K[0], m, n, rtol, atol, rules.gamma_all)
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
                status, message = "max_steps", max_steps_message(max_steps, t, net)
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
            # -- accepted: look for kinks (and sliding exits) inside the step
            u_old = yv[m:].reshape(m, n)
            u_new = y_new[m:].reshape(m, n)
            act = mask > 0
            crossed = act & (u_new <= 0)
            if not orth:
                crossed |= ~act & ~sliding & (u_new > 0)
            near = (
                act
                & (u_new > 0)
                & (np.minimum(u_old, u_new) < 0.5 * h * np.abs(K[0, m:].reshape(m, n)))
            )
            cand = np.flatnonzero(crossed | near)
            theta_star = 1.0
            flip = np.zeros(0, dtype=np.int64)
            if cand.size:
                theta_star, flip = E.locate_kinks(K, yv, h, m, cand, u_old, act, rtol, atol)
            exit_slide = False
            if sliding.any() and E.outside_unit(field.alpha[2]):
                th = E.locate_sliding_exit(f, K, yv, h, theta_star, field, scratch)
                if th is not None:
                    if th < theta_star:
                        flip = flip[:0]
                    theta_star, exit_slide = th, True
            event = flip.size > 0 or exit_slide
            t_next = t + theta_star * h
            Q = None
            pts = rec.grid_points(t, min(t_next, t_end))
            if pts or event:
                Q = K.T @ _P
            for tp in pts:
                th = (tp - t) / h
                ys = yv + h * (Q @ (th ** np.arange(1, 5)))
                rec.add(tp, ys[:m], ys[m:].reshape(m, n), mask)
            stats["steps"] += 1
            h_prop = h * min(5.0, max(0.2, 0.9 * max(ratio, 1e-10) ** -0.2))
            if event:
                stats["kink_steps"] += 1
                stuck = stuck + 1 if theta_star * h <= 1e-13 * max(t, 1.0) else 0
                yv = yv + h * (Q @ (theta_star ** np.arange(1, 5)))
                t = t_next
                if orth:  # an active coordinate reached 0 and stays there (THEORY.md §3)
                    switched = flip
                    yv[m + flip] = 0.0
                    mask.ravel()[flip] = 0.0
                    up = slid = np.zeros(flip.size, dtype=bool)
                else:
                    try:
                        switched, up, slid = E.switch(field, f, yv, K[0], m, n, mask, sliding, flip)
                    except FloatingPointError as exc:
                        status, message = (
                            "failed",
                            f"could not resolve a sliding mode at t = {t:.6g}: {exc}",
                        )
                        break
                    stats["sliding"] += int(slid.sum())
                stats["kinks"] += int(switched.size)
                kinks.add(t, switched, up, slid)
                r = f(yv, K[0])
                stats["evaluations"] += 1
                if stuck > _MAX_STUCK:
                    status, message = (
                        "failed",
                        (
                            f"the flow is stuck at a switching point at t = {t:.6g}: "
                            f"{stuck} successive kink events without progress in time "
                            "(chattering the sliding-mode solver could not resolve)"
                        ),
                    )
                    break
                if record_kinks and (not pts or pts[-1] < t):
                    rec.add(t, yv[:m], yv[m:].reshape(m, n), mask)
                h = max(h_prop, h * (1.0 - theta_star)) if theta_star < 1 else h_prop
            else:
                stuck = 0
                yv, r, t = y_new, r_new, t + h
                K[0] = K[6]
                h = h_prop
            bar.update(1)
            loss = float(r @ r) / (2 * n)
            if stats["steps"] % 200 == 0:
                bar.set_postfix(
                    tau=f"{t / math.log(1 / net.scale):.3g}" if net.scale < 1 else "",
                    loss=f"{loss:.3e}",
                )
            if loss <= rules.loss_tol:
                status = "loss_tol"
                message = f"loss {loss:.3e} <= loss_tol = {rules.loss_tol:.3e}"
                break
            if stall.check(K[0], yv, data, m, t, loss):
                status, message = "stalled", STALLED_MESSAGE
                break
    finally:
        bar.close()

    a_f = yv[:m].copy()
    u_f = yv[m:].reshape(m, n).copy()
    if rec.t[-1] < t:
        rec.add(t, a_f, u_f, mask)
    return make_trajectory(
        "flow",
        data=data,
        net=net,
        final=net.with_params(a_f, u_f),
        samples=rec.samples(),
        status=status,
        message=message,
        drift=rec.drift,
        stats=SolverStats(**stats),
        kinks=kinks.arrays(),
        wall0=wall0,
        provenance=run_provenance(
            "flow", data, net, **options, engine="weight" if weight_space else "numpy"
        ),
    )


def _gradient_flow_numba(
    data: Dataset,
    net: Network,
    rules: StopRules,
    options: dict,
    start: InitialPhase | None,
    *,
    points_per_decade: int,
    record_kinks: bool,
    progress: bool,
    wall0: float,
) -> Trajectory:
    """The loop of :func:`gradient_flow` run by the compiled kernel (orthogonal data only).

    Same algorithm, stopping rules, recording and result as the numpy loop; see
    :mod:`reluflow._flow_numba`.
    """
    from . import _flow_numba as NB

    n, m = data.n, net.m
    rtol, atol, max_steps = options["rtol"], options["atol"], options["max_steps"]
    y = np.ascontiguousarray(data.y, dtype=float)
    D = np.ascontiguousarray(data.sq_norms(), dtype=float)
    rec, kinks0, t0, a, u = _begin(data, net, rules, start, points_per_decade)
    a = np.ascontiguousarray(a, dtype=float).copy()
    u = np.ascontiguousarray(u, dtype=float).copy()
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
    h = _initial_step(yv, K0, m, n, rtol, atol, rules.gamma_all)
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
    sc0 = neuron_scale(yv, m, n)
    fs = np.zeros(NB.N_FS)
    fs[NB.F_T], fs[NB.F_H], fs[NB.F_NEXT] = t0, h, rec.next_t
    fs[NB.F_DRIFT] = rec.drift
    fs[NB.F_LOSS] = float(r0 @ r0) / (2 * n)
    fs[NB.F_MARK_T] = -1.0  # no stall mark yet
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
    log_inv = log_inv_scale(net)
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
                rules.t_end,
                max_steps,
                step_limit,
                rtol,
                atol,
                rules.loss_tol,
                rules.stall_rate,
                rules.rate_unit,
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
        status, message = "max_steps", max_steps_message(max_steps, t, net)
    elif code == NB.LOSS_TOL:
        status = "loss_tol"
        message = f"loss {fs[NB.F_LOSS]:.3e} <= loss_tol = {rules.loss_tol:.3e}"
    elif code == NB.STALLED:
        status, message = "stalled", STALLED_MESSAGE
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
    # the kernel's first row (at its start time) repeats the recorder's last one
    samples = {
        key: np.concatenate([before, b[1:nrec]])
        for (key, before), b in zip(rec.samples().items(), bufs, strict=True)
    }
    kink_t, kink_j, kink_i = (b[:nk] for b in kbufs)
    kinks0.add_many(kink_t, kink_j * n + kink_i, np.zeros(nk, dtype=bool))
    stats = SolverStats(
        steps=int(ist[NB.I_STEPS]),
        rejected=int(ist[NB.I_REJ]),
        evaluations=int(ist[NB.I_EVALS]),
        kinks=len(kinks0),
        kink_steps=int(ist[NB.I_KSTEPS]),
        closed_form_t=t0,
    )
    return make_trajectory(
        "flow",
        data=data,
        net=net,
        final=net.with_params(a, u),
        samples=samples,
        status=status,
        message=message,
        drift=float(fs[NB.F_DRIFT]),
        stats=stats,
        kinks=kinks0.arrays(),
        wall0=wall0,
        provenance=run_provenance("flow", data, net, **options, engine="numba"),
    )


def _begin(
    data: Dataset,
    net: Network,
    rules: StopRules,
    start: InitialPhase | None,
    points_per_decade: int,
) -> tuple[Recorder, KinkLog, float, np.ndarray, np.ndarray]:
    """Recorder, kink log, start time and state of the solver (after the closed-form phase).

    The recorder holds the row at ``t = 0`` and, when ``start`` is given, the
    grid points of the closed-form phase and its end; the kink log its kinks.
    """
    rec = Recorder(data, net, points_per_decade, t0=1e-3 / rules.gamma_all)
    a0, u0 = net.a.astype(float), net.u.astype(float)
    rec.add(0.0, a0, u0, (u0 > 0).astype(float))
    kinks = KinkLog(data.n)
    if start is None:
        return rec, kinks, 0.0, a0.copy(), u0.copy()
    start.record(rec)
    kinks.add_many(start.kink_t, start.kink_flat, np.zeros(start.kink_t.size, dtype=bool))
    return rec, kinks, start.t1, start.a.copy(), start.u.copy()


def _error_ratio(
    err: np.ndarray, y0: np.ndarray, y1: np.ndarray, m: int, n: int, rtol: float, atol: float
) -> float:
    sc = atol + rtol * np.maximum(neuron_scale(y0, m, n), neuron_scale(y1, m, n))
    sc = np.maximum(sc, 1e-300)
    e = np.maximum(np.abs(err[:m]), np.abs(err[m:].reshape(m, n)).max(axis=1))
    return float((e / sc).max())


def _initial_step(
    yv: np.ndarray, f0: np.ndarray, m: int, n: int, rtol: float, atol: float, gamma: float
) -> float:
    sc = np.maximum(atol + rtol * neuron_scale(yv, m, n), 1e-300)
    speed = np.maximum(np.abs(f0[:m]), np.abs(f0[m:].reshape(m, n)).max(axis=1)) / sc
    s = float(speed.max())
    h = 0.01 * rtol**0.2 / gamma
    if s > 0:
        h = min(h, 0.01 * rtol**0.2 / s * 1e2)
    return max(h, 1e-12)
