"""Exact gradient flow in reduced coordinates, with error control and ReLU kinks as events.

Integrates ``dθ/dt = −∇L(θ)`` in the coordinates ``(a, u = W Xᵀ)`` of
docs/model.md (O(m n²) per evaluation; O(m n) on orthogonal data, docs/orthogonal-flow.md), never
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
  smooth. A sign change counts there only once the coordinate is past 0 by
  more than a detection band, the drift the resolution's margin allows over
  the step (``events.detection_band``): a coordinate resolved at 0 would
  otherwise cut every following step a rounding past 0 (docs/general-data.md
  §4). Orthogonal data has no sliding modes (an inactive coordinate never
  moves) and no band.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
from scipy.integrate import RK45
from tqdm.auto import tqdm

from . import _memory
from . import _validate as V
from ._engines import events as E
from ._engines.dynamics import (
    MAX_STUCK,
    STALLED_MESSAGE,
    KinkLog,
    Recorder,
    StopRules,
    activation_level,
    make_trajectory,
    max_steps_message,
    neuron_scale,
    run_provenance,
    stuck_message,
)
from ._engines.field import Field
from ._engines.linear import InitialPhase, initial_phase
from ._engines.plateau import Jump, plateau_ready, try_jump
from ._engines.weight_field import WeightField
from ._loss import LossConvention
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
_LN2 = math.log(2.0)
# accepted steps without a plateau check after a stretch was refused (too short, or a
# kink ahead): 8, doubling with each refusal up to 1024, back to 8 after a stretch
_SKIP_AFTER_REFUSAL = 8
_MAX_SKIP = 1024
# neurons below this fraction of the largest one are integrated in a growth frame
_LOG_GROWTH_FRAME_BELOW = math.log(0.1)


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
    """Integrate gradient flow from ``net`` on ``data`` (docs/model.md, docs/orthogonal-flow.md).

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
        if general:
            # the general-data kernel works in float64 coordinates: below GENERAL_MIN_SCALE
            # the initial state is not representable there (λ² underflows); the numpy
            # engine carries per-neuron log-scales (docs/any-scale.md)
            engine = "numpy" if _below(net, GENERAL_MIN_SCALE) else "numba"
        else:
            # the orthogonal kernel carries per-neuron log-scales: any scale
            engine = "numba"
    elif engine == "numba" and general and _below(net, GENERAL_MIN_SCALE):
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
        from ._engines.general import gradient_flow_general

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
    log_coordinates: bool = True,
    weight_space: bool = False,
) -> Trajectory:
    """The reference loop of :func:`gradient_flow` (any data).

    ``log_coordinates=False`` integrates the float64 parameters themselves (no
    log-scales, no projection): the plain engine of moderate scales, kept as an
    independent reference for the tests (it refuses networks below 1e-100).
    ``weight_space``: evaluate the field through ``X`` (O(m n d), see
    :mod:`reluflow._engines.weight_field`) instead of through ``K`` (O(m n²)).
    """
    n, m = data.n, net.m
    rtol, atol, max_steps = options["rtol"], options["atol"], options["max_steps"]
    t_end = rules.t_end
    field = WeightField(data) if weight_space else Field(data)
    orth = field.orthogonal
    if not log_coordinates and net.exact is not None:
        raise InputError(
            f"log_coordinates=False integrates float64 parameters and cannot hold lambda = "
            f"{V.format_scale(net.log10_scale)}: use the default (log-scale) engine"
        )
    rec, kinks, t, ell, a, u = _begin(data, net, rules, start, points_per_decade)
    if not log_coordinates:
        a, u = np.exp(ell) * a, np.exp(ell)[:, None] * u
        ell = np.zeros(m)
    mask = (u > 0).astype(float)
    N = m + m * n
    yv = np.concatenate([a, u.ravel()])
    K = np.empty((7, N))

    # general data only: coordinates held at 0 by a sliding mode (see Field.velocity), and
    # the Gram bound of the kinks' detection band (events.detection_band)
    sliding = np.zeros((m, n), dtype=bool)
    kappa = 0.0 if orth else E.gram_row_bound(field.K)

    # growth frame: a neuron much smaller than the largest one is integrated in units
    # that grow with it, ℓ_j(t) = ℓ_j + g_j (t − t_n) over a step, g_j its Rayleigh
    # growth rate at the step's start (docs/any-scale.md); its O(1) part is then
    # nearly stationary and the steps are long. Exact for any g: (e^{ℓ} x)' = F.
    g = np.zeros(m)
    C = RK45.C
    # orthogonal data: a coordinate with u < 0 never moves (THEORY.md §3); in a growth
    # frame it is set exactly after each step rather than integrated
    frozen = frozen_log = None
    if orth and log_coordinates:
        frozen = u < 0
        with np.errstate(divide="ignore"):
            frozen_log = np.where(frozen, np.log(np.abs(u)) + ell[:, None], -np.inf)

    def f(state: np.ndarray, out: np.ndarray, dt: float = 0.0) -> np.ndarray:
        """The field at ``state`` (neuron ``j`` in units of ``e^{ℓ_j + g_j dt}``), minus ``g x``."""
        weight = None
        if log_coordinates:
            with np.errstate(under="ignore", over="ignore"):
                weight = np.exp(2.0 * (ell + g * dt))
        r = field.velocity(
            state[:m],
            state[m:].reshape(m, n),
            mask,
            out_a=out[:m],
            out_u=out[m:].reshape(m, n),
            sliding=sliding,
            neuron_weight=weight,
        )[2]
        if log_coordinates and growing.any():
            out[:m] -= g * state[:m]
            ou = out[m:].reshape(m, n)
            ou[growing] -= g[growing, None] * state[m:].reshape(m, n)[growing]
        return r

    growing = np.zeros(m, dtype=bool)

    def true_velocity() -> np.ndarray:
        """``F`` at the current state (``K_0 + g x``), flat ``(a, u)``, in each neuron's units."""
        if not growing.any():
            return K[0]
        v = K[0].copy()
        v[:m] += g * yv[:m]
        vu = v[m:].reshape(m, n)
        vu[growing] += g[growing, None] * yv[m:].reshape(m, n)[growing]
        return v

    def atol_units() -> float | np.ndarray:
        """``atol`` in each neuron's units: ``atol e^{−ℓ_j}`` (inf: no absolute control)."""
        if atol == 0.0 or not log_coordinates:
            return atol
        with np.errstate(over="ignore"):
            return atol * np.exp(-ell)

    def renormalise(k0: np.ndarray) -> None:
        nonlocal ell
        ell = _renormalise_rows(ell, yv[:m], yv[m:].reshape(m, n), k0[:m], k0[m:].reshape(m, n))

    def retune() -> None:
        _retune_rows(
            ell,
            g,
            growing,
            yv[:m],
            yv[m:].reshape(m, n),
            K[0, :m],
            K[0, m:].reshape(m, n),
            mask if orth else None,
        )

    stats = dict(steps=0, rejected=0, evaluations=0, kinks=len(kinks), kink_steps=0, sliding=0)
    stats["closed_form_t"] = t
    stats["plateau_jumps"] = 0
    # plateaus in closed form (see reluflow._engines.plateau): outputs below eps of the labels
    # count as negligible, as in the closed-form initial phase
    eps_out = 1e-2 * rtol
    ymax = float(np.abs(data.y).max(initial=0.0))
    bound = np.maximum(np.abs(data.y), 1e-3 * ymax)
    rest_tol = rtol * rules.rate_unit
    skip_checks = 0  # accepted steps before the next plateau check
    backoff = _SKIP_AFTER_REFUSAL // 2  # doubles with each refusal, reset by a stretch
    scratch = np.empty(N)
    stuck = 0  # successive events that did not advance time
    stall = rules.stall_watch()
    log_level = math.log(activation_level(data))
    act_t = _initial_activations(start, ell, yv[:m], log_level)

    r = f(yv, K[0])
    stats["evaluations"] += 1
    if log_coordinates:
        renormalise(K[0])
        retune()
    h = _initial_step(yv, K[0], m, n, rtol, atol_units(), rules.gamma_all)
    status, message = "", ""
    bar = tqdm(total=None, disable=not progress, unit=" steps", desc="flow", leave=False)
    nbr = np.empty(N)
    fails = 0  # successive trial steps with a non-finite state (rejected, h shrinks)
    try:
        while True:
            if t >= t_end:
                status, message = "t_max", f"reached the requested time t = {t:.6g}"
                break
            if stats["steps"] >= max_steps:
                status, message = "max_steps", max_steps_message(max_steps, t, net)
                break
            h = min(h, t_end - t)
            atol_j = atol_units()
            # -- one Dormand-Prince trial step with the mask frozen
            with np.errstate(over="ignore", invalid="ignore"):
                for s in range(1, 6):
                    np.dot(_A[s, :s] * h, K[:s], out=nbr)
                    nbr += yv
                    f(nbr, K[s], C[s] * h)
                y_new = yv + h * (_B @ K[:6])
                r_new = f(y_new, K[6], h)
                stats["evaluations"] += 6
                err = h * (_E @ K)
                ratio = _error_ratio(err, yv, y_new, m, n, rtol, atol_j)
            if not np.isfinite(ratio):
                # a trial step so long that a log-scale overflowed in a stage: shorter
                fails += 1
                if fails > 60 or h < 1e-14 * max(t, 1.0):
                    status, message = (
                        "failed",
                        f"the state became non-finite at t = {t:.6g}: the flow diverged or overflowed",
                    )
                    break
                stats["rejected"] += 1
                h *= 0.2
                continue
            fails = 0
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
            # general data: a coordinate crosses once it is past 0 by more than the drift its
            # mode decision allows (docs/general-data.md §4); orthogonal data: at 0 (there an
            # inactive coordinate does not move and is never a candidate)
            band = np.zeros(m) if orth else E.detection_band(y_new[:m], r_new, h, kappa)
            du0 = K[0, m:].reshape(m, n)
            cand = np.flatnonzero(E.crossing_candidates(u_old, u_new, du0, act, sliding, h, band))
            theta_star = 1.0
            flip = np.zeros(0, dtype=np.int64)
            if cand.size:
                theta_star, flip = E.locate_kinks(
                    K, yv, h, m, cand, u_old, act, rtol, atol_j, band
                )
            exit_slide = False
            if sliding.any() and E.outside_unit(field.alpha[2]):
                th = E.locate_sliding_exit(f, K, yv, h, theta_star, field, scratch)
                if th is not None:
                    if th < theta_star:
                        flip = flip[:0]
                    theta_star, exit_slide = th, True
            released = None
            if not orth and sliding.any():
                Qa = K[:, :m].T @ _P
                th_a, rel = E.locate_sign_change(
                    yv[:m], Qa, h, theta_star, sliding.any(axis=1)
                )
                if th_a < theta_star:
                    theta_star, flip, exit_slide, released = th_a, flip[:0], False, rel
                elif th_a == theta_star:
                    released = rel
            event = flip.size > 0 or exit_slide or released is not None
            t_next = t + theta_star * h
            # activations inside the step (located on the dense output)
            Qa = K[:, :m].T @ _P
            a_end = y_new[:m] if not event else yv[:m] + h * (Qa @ _powers(theta_star))
            _locate_activations(act_t, t, h, theta_star, ell, g, yv[:m], a_end, Qa, log_level)
            pts = rec.grid_points(t, min(t_next, t_end))
            Q = K.T @ _P if pts or event else None
            for tp in pts:
                th = (tp - t) / h
                ys = yv + h * (Q @ _powers(th))
                rec.add_scaled(tp, ell + g * (tp - t), ys[:m], ys[m:].reshape(m, n), mask)
            stats["steps"] += 1
            h_prop = h * min(5.0, max(0.2, 0.9 * max(ratio, 1e-10) ** -0.2))
            if event:
                stats["kink_steps"] += 1
                stuck = stuck + 1 if theta_star * h <= 1e-13 * max(t, 1.0) else 0
                yv = yv + h * (Q @ _powers(theta_star))
                ell = ell + g * (theta_star * h)
                t = t_next
                if orth:  # an active coordinate reached 0 and stays there (docs/orthogonal-flow.md)
                    switched = flip
                    yv[m + flip] = 0.0
                    mask.ravel()[flip] = 0.0
                    up = slid = np.zeros(flip.size, dtype=bool)
                else:
                    try:
                        switched, up, slid = E.switch(
                            field, f, yv, K[0], m, n, mask, sliding, flip, released
                        )
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
                if stuck > MAX_STUCK:
                    status, message = "failed", stuck_message(t, stuck)
                    break
                if record_kinks and rec.t[-1] < t:
                    rec.add_scaled(t, ell, yv[:m], yv[m:].reshape(m, n), mask)
                h = max(h_prop, h * (1.0 - theta_star)) if theta_star < 1 else h_prop
            else:
                stuck = 0
                yv, r, t = y_new, r_new, t + h
                ell = ell + g * h
                K[0] = K[6]
                h = h_prop
            if log_coordinates:
                if frozen is not None and growing.any():
                    fr = frozen & growing[:, None]
                    yv[m:].reshape(m, n)[fr] = -np.exp(
                        frozen_log[fr] - np.broadcast_to(ell[:, None], (m, n))[fr]
                    )
                renormalise(K[0])
                retune()
            bar.update(1)
            loss = float(r @ r) / (2 * n)
            if stats["steps"] % 200 == 0:
                bar.set_postfix(
                    tau=f"{t / net.log_inv_scale:.3g}" if net.log10_scale < 0 else "",
                    loss=f"{loss:.3e}",
                )
            if loss <= rules.loss_tol:
                status = "loss_tol"
                message = f"loss {loss:.3e} <= loss_tol = {rules.loss_tol:.3e}"
                break
            with np.errstate(under="ignore"):
                weight = np.exp(2.0 * ell)
            if stall.check(true_velocity(), yv, data, m, t, loss, weight):
                status, message = "stalled", STALLED_MESSAGE
                break
            skip_checks = max(skip_checks - 1, 0)
            small = None
            if log_coordinates and not event and skip_checks == 0:
                small = plateau_ready(
                    ell=ell,
                    a=yv[:m],
                    u=yv[m:].reshape(m, n),
                    mask=mask,
                    velocity=true_velocity(),
                    bound=bound,
                    eps=eps_out,
                    rest_tol=rest_tol,
                )
            if small is not None and sliding[small].any():
                small = None  # a small neuron slides: refused
                backoff = min(2 * backoff, _MAX_SKIP)
                skip_checks = backoff
            if small is not None:
                jump = try_jump(
                    small=small,
                    ell=ell,
                    a=yv[:m],
                    u=yv[m:].reshape(m, n),
                    mask=mask,
                    r=r,
                    n=n,
                    gram=field.K,
                    D=field.D,
                    bound=bound,
                    eps=eps_out,
                    h=h,
                    s_max=t_end - t,
                )
                if jump is None:
                    backoff = min(2 * backoff, _MAX_SKIP)
                    skip_checks = backoff
                else:
                    backoff = _SKIP_AFTER_REFUSAL // 2
                    ell, t = _take_jump(jump, t, ell, yv, m, n, mask, rec, act_t, log_level)
                    stats["plateau_jumps"] += 1
                    g[:] = 0.0
                    growing[:] = False
                    r = f(yv, K[0])
                    stats["evaluations"] += 1
                    renormalise(K[0])
                    retune()
    finally:
        bar.close()

    a_f = yv[:m].copy()
    u_f = yv[m:].reshape(m, n).copy()
    if rec.t[-1] < t:
        rec.add_scaled(t, ell, a_f, u_f, mask)
    final = net.with_log_params(ell, a_f, u_f) if log_coordinates else net.with_params(a_f, u_f)
    if orth:
        final = _keep_frozen(final, net)
    return make_trajectory(
        "flow",
        data=data,
        net=net,
        final=final,
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
        activation_t=act_t,
    )


def _take_jump(
    jump: Jump,
    t: float,
    ell: np.ndarray,
    yv: np.ndarray,
    m: int,
    n: int,
    mask: np.ndarray,
    rec: Recorder,
    act_t: np.ndarray,
    log_level: float,
) -> tuple[np.ndarray, float]:
    """Cross a plateau in closed form: record its grid points and activations, move the state.

    Updates ``yv`` in place; returns the new ``(ℓ, t)``.
    """
    idx = jump.small
    a, u = yv[:m], yv[m:].reshape(m, n)

    def full(ds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        dl, ah, uh = jump.state(ds)
        e, aa, uu = ell.copy(), a.copy(), u.copy()
        e[idx] += dl
        aa[idx] = ah
        uu[idx] = uh
        return e, aa, uu

    for tp in rec.grid_points(t, t + jump.s):
        rec.add_scaled(tp, *full(tp - t), mask)
    # activations inside the stretch: ln|a_j(s)| = ℓ_j + γ_j s + ln|α_j + β_j e^{−2γ_j s}|
    for k, j in enumerate(idx):
        if not np.isnan(act_t[j]):
            continue

        def phi(ds: float, k: int = k, j: int = j) -> float:
            dl, ah = jump.scale(ds)
            return ell[j] + dl[k] + math.log(abs(ah[k])) - log_level if ah[k] else -math.inf

        if phi(jump.s) < 0:
            continue
        lo, hi = 0.0, jump.s
        for _ in range(200):
            if hi - lo <= 1e-15 * hi:
                break
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if phi(mid) >= 0 else (mid, hi)
        act_t[j] = t + hi
    e, aa, uu = full(jump.s)
    a[:] = aa
    u[:] = uu
    return e, t + jump.s


def _renormalise_rows(
    ell: np.ndarray, a: np.ndarray, u: np.ndarray, ka: np.ndarray, ku: np.ndarray
) -> np.ndarray:
    """Scale every neuron whose size left [1/4, 4] by an exact power of two (in place).

    ``(â_j, û_j)`` and its velocity are divided by ``2^e`` and ``ℓ_j`` grows by
    ``e ln 2``: no rounding, the same network. (The field of neuron ``j`` is
    homogeneous of degree 1 in its own parameters for a fixed residual, which the
    output weights ``e^{2ℓ_j}`` keep fixed.) Returns the new ``ℓ``.
    """
    size = np.maximum(np.abs(a), np.abs(u).max(axis=1, initial=0.0))
    off = (size > 4.0) | ((size < 0.25) & (size > 0))
    if not off.any():
        return ell
    e = np.frexp(size[off])[1] - 1  # size = mant 2^(e+1), mant in [0.5, 1)
    fac = np.ldexp(1.0, -e)
    a[off] *= fac
    u[off] *= fac[:, None]
    ka[off] *= fac
    ku[off] *= fac[:, None]
    ell = ell.copy()
    ell[off] += e * _LN2
    return ell


def _retune_rows(
    ell: np.ndarray,
    g: np.ndarray,
    growing: np.ndarray,
    a: np.ndarray,
    u: np.ndarray,
    ka: np.ndarray,
    ku: np.ndarray,
    moving: np.ndarray | None,
) -> None:
    """Growth rates of the next step and ``K_0`` re-projected (in place).

    ``K_0 = F − g x`` on entry; ``g_j ←`` the Rayleigh quotient ``⟨x_j, F_j⟩ /
    ⟨x_j, x_j⟩`` (over ``a_j`` and the ``moving`` coordinates: the active ones on
    orthogonal data, all otherwise) for the neurons below ``_LOG_GROWTH_FRAME_BELOW``
    of the largest (in absolute size), 0 for the others; ``K_0 ← F − g x``.
    """
    va = ka + g * a
    vu = ku + g[:, None] * u
    wm = 1.0 if moving is None else moving
    num = a * va + (wm * u * vu).sum(axis=1)
    den = a * a + (wm * u * u).sum(axis=1)
    size = np.maximum(np.abs(a), np.abs(u).max(axis=1, initial=0.0))
    with np.errstate(divide="ignore"):
        ls = ell + np.log(size)
    small = ls <= ls.max() + _LOG_GROWTH_FRAME_BELOW
    g_new = np.where(small, np.divide(num, den, out=np.zeros_like(num), where=den > 0), 0.0)
    ka[:] = va - g_new * a
    ku[:] = vu - g_new[:, None] * u
    g[:] = g_new
    growing[:] = g_new != 0


def _keep_frozen(final: Network, net: Network) -> Network:
    """On orthogonal data a coordinate with ``u_ji(0) < 0`` never moves (THEORY.md §3):
    give it back its initial value exactly (the solver carries it in units of its
    neuron's moving log-scale, which rounds it)."""
    frozen = net.u < 0
    if not frozen.any():
        return final
    u = final.u.copy()
    u[frozen] = net.u[frozen]
    out = dataclasses.replace(final, u=u)
    if final.exact is not None:
        p0, p = net.log_params, final.exact
        u_hat = p.u_hat.copy()
        shift = np.broadcast_to((p0.ell - p.ell)[:, None], u_hat.shape)
        u_hat[frozen] = p0.u_hat[frozen] * np.exp(shift[frozen])
        out = dataclasses.replace(out, exact=p._replace(u_hat=u_hat))
    return out


def _below(net: Network, scale: float) -> bool:
    """Whether the network's λ is below ``scale`` (exactly, also below float64's range)."""
    return bool(net.log10_scale < math.log10(scale))


def _powers(th: float) -> np.ndarray:
    """``(θ, θ², θ³, θ⁴)``: the dense output is ``y0 + h Σ_q Q_q θ^(q+1)``."""
    return th ** np.arange(1, 5)


def _initial_activations(
    start: InitialPhase | None, ell: np.ndarray, a_hat: np.ndarray, log_level: float
) -> np.ndarray:
    """Activation times already known when the solver starts (NaN: not yet)."""
    if start is not None:
        return start.activation_times(log_level)
    with np.errstate(divide="ignore"):
        la = ell + np.log(np.abs(a_hat))
    return np.where(la >= log_level, 0.0, np.nan)


def _locate_activations(
    act_t: np.ndarray,
    t: float,
    h: float,
    theta_end: float,
    ell: np.ndarray,
    g: np.ndarray,
    a0: np.ndarray,
    a_end: np.ndarray,
    Qa: np.ndarray,
    log_level: float,
) -> None:
    """Set ``act_t[j]`` for the neurons whose ``ln|a_j|`` reaches ``log_level`` in ``[0, θ_end]``.

    ``ln|a_j(θ)| = ℓ_j + g_j θ h + ln|â_j(θ)|`` with ``â_j`` the step's dense
    output; its first crossing is bracketed on 16 points and bisected to 1e-15 of
    the step (the same location rule as a kink).
    """
    with np.errstate(divide="ignore"):
        la_end = ell + g * (theta_end * h) + np.log(np.abs(a_end))
    for j in np.flatnonzero(np.isnan(act_t) & (la_end >= log_level)):

        def phi(th: float, j: int = j) -> float:
            aj = a0[j] + h * float(Qa[j] @ _powers(th))
            with np.errstate(divide="ignore"):
                return ell[j] + g[j] * th * h + math.log(abs(aj)) - log_level if aj else -math.inf

        lo, hi = 0.0, theta_end
        for gi in range(1, 17):
            th = theta_end * gi / 16
            if phi(th) >= 0:
                hi = th
                break
            lo = th
        for _ in range(60):
            if hi - lo <= 1e-15:
                break
            mid = 0.5 * (lo + hi)
            if phi(mid) >= 0:
                hi = mid
            else:
                lo = mid
        act_t[j] = t + hi * h


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
    :mod:`reluflow._engines.orthogonal_numba`. The kernel stops at every plateau candidate; the
    closed-form stretch itself (:mod:`reluflow._engines.plateau`) is taken here.
    """
    from ._engines import orthogonal_numba as NB

    n, m = data.n, net.m
    rtol, atol, max_steps = options["rtol"], options["atol"], options["max_steps"]
    y = np.ascontiguousarray(data.y, dtype=float)
    D = np.ascontiguousarray(data.sq_norms(), dtype=float)
    field = Field(data)
    rec, kinks0, t0, ell, a, u = _begin(data, net, rules, start, points_per_decade)
    ell, a, u = (np.ascontiguousarray(x, dtype=float).copy() for x in (ell, a, u))
    # the frozen coordinates (u < 0 never moves) and the constants, through their logs
    frozen = u < 0
    with np.errstate(divide="ignore"):
        flog = np.where(frozen, np.log(np.abs(u)) + ell[:, None], -np.inf)
        ldmax = flog.max(axis=1, initial=-np.inf)
        ldsq = _logsumexp_rows(2.0 * flog - np.log(D)[None, :])
        p0 = net.log_params
        lwps = np.log(p0.w_perp_sq_hat) + 2.0 * p0.ell
        b0 = p0.a_hat**2 - p0.w_perp_sq_hat - data.quad_form(p0.u_hat)
        lb0 = np.log(np.abs(b0)) + 2.0 * p0.ell
    sb0 = np.sign(b0)
    frozen_flat = np.flatnonzero(frozen)
    flog_frozen = flog.ravel()[frozen_flat]
    lwps, ldmax, ldsq, lb0 = (np.where(np.isnan(x), -np.inf, x) for x in (lwps, ldmax, ldsq, lb0))
    log_level = math.log(activation_level(data))
    act_t = _initial_activations(start, ell, a, log_level)
    g = np.zeros(m)
    growing = np.zeros(m, dtype=bool)
    Ka = np.zeros((7, m))
    Ku = np.zeros((7, m, n))
    idx = np.zeros((m, n), dtype=np.int32)
    uc = np.zeros((m, n))
    cnt = np.zeros(m, dtype=np.int64)
    sc0 = np.zeros(m)

    def load(ell: np.ndarray, a: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Field (weights e^{2ℓ}), renormalisation and growth frame as the numpy loop;
        fill the kernel's arrays. Returns ``(ℓ, r)``."""
        mask = (u > 0).astype(float)
        ka, ku = np.empty(m), np.empty((m, n))
        with np.errstate(under="ignore", over="ignore"):
            w = np.exp(2.0 * ell)
        r = field.velocity(a, u, mask, out_a=ka, out_u=ku, neuron_weight=w)[2]
        ell = _renormalise_rows(ell, a, u, ka, ku)
        g[:] = 0.0
        growing[:] = False
        _retune_rows(ell, g, growing, a, u, ka, ku, mask)
        Ka[0] = ka
        # the active coordinates of each neuron, in sample order, at the front of its row
        rows, cols = np.nonzero(u > 0)
        cnt[:] = np.bincount(rows, minlength=m)
        pos = np.arange(rows.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        idx[rows, pos] = cols
        uc[rows, pos] = u[rows, cols]
        Ku[0, rows, pos] = ku[rows, cols]
        sc0[:] = np.maximum(np.abs(a), np.abs(u).max(axis=1, initial=0.0))
        return ell, r

    def unload() -> np.ndarray:
        """The full ``û`` of the kernel's state (frozen coordinates from their logs)."""
        full = np.zeros((m, n))
        with np.errstate(under="ignore"):
            full.ravel()[frozen_flat] = -np.exp(flog_frozen - ell[frozen_flat // n])
        return _scatter_rows(uc, idx, cnt, n, out=full)

    ell, r0 = load(ell, a, u)
    yv = np.concatenate([a, u.ravel()])
    K0 = np.concatenate([Ka[0], _scatter_rows(Ku[0], idx, cnt, n).ravel()])
    with np.errstate(over="ignore"):
        atol0 = atol * np.exp(-ell) if atol > 0 else atol
    h = _initial_step(yv, K0, m, n, rtol, atol0, rules.gamma_all)
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
    A, B, C, E, P = (np.ascontiguousarray(x, dtype=float) for x in (_A, _B, RK45.C, _E, _P))
    grid_ratio = 10.0 ** (1.0 / points_per_decade)
    step_limit = _PROGRESS_CHUNK if progress else 2**62
    log_inv = net.log_inv_scale
    eps_out = 1e-2 * rtol
    ymax = float(np.abs(y).max(initial=0.0))
    bound = np.maximum(np.abs(y), 1e-3 * ymax)
    rest_tol = rtol * rules.rate_unit
    backoff = _SKIP_AFTER_REFUSAL // 2
    jumps = 0
    # the kernel's rows start at index 1 (row 0 repeats the recorder's last one)
    bufs[0][0] = rec.t[-1]
    ist[NB.I_NREC] = 1
    bar = tqdm(total=None, disable=not progress, unit=" steps", desc="flow", leave=False)
    try:
        while True:
            before = int(ist[NB.I_STEPS])
            code, *out = NB.run(
                A, B, C, E, P, y, D, lwps, ldmax, ldsq, lb0, sb0,
                ell, g, a, uc, idx, cnt, Ka, Ku, sc0, act_t, fs, ist,
                rules.t_end, max_steps, step_limit, rtol, atol, rules.loss_tol,
                rules.stall_rate, rules.rate_unit, grid_ratio, bool(record_kinks),
                log_level, _LOG_GROWTH_FRAME_BELOW, True, 1.0 / bound, eps_out, rest_tol,
                _SKIP_AFTER_REFUSAL, *bufs, *kbufs,
            )  # fmt: skip
            bufs, kbufs = tuple(out[:5]), tuple(out[5:])
            bar.update(int(ist[NB.I_STEPS]) - before)
            if code == NB.PLATEAU:
                u = unload()
                mask = (u > 0).astype(float)
                v = np.concatenate([Ka[0] + g * a, _scatter_rows(Ku[0], idx, cnt, n).ravel()])
                vu = v[m:].reshape(m, n)
                vu += g[:, None] * u * mask  # the true field (frozen coordinates: 0)
                small = plateau_ready(
                    ell=ell, a=a, u=u, mask=mask, velocity=v, bound=bound, eps=eps_out,
                    rest_tol=rest_tol,
                )  # fmt: skip
                jump = None
                if small is not None:
                    with np.errstate(under="ignore", over="ignore"):
                        r = (np.exp(2.0 * ell) * a) @ (u * mask) - y
                    jump = try_jump(
                        small=small, ell=ell, a=a, u=u, mask=mask, r=r, n=n, gram=None, D=D,
                        bound=bound, eps=eps_out, h=float(fs[NB.F_H]),
                        s_max=rules.t_end - float(fs[NB.F_T]),
                    )  # fmt: skip
                if jump is None:
                    backoff = min(2 * backoff, _MAX_SKIP)
                    ist[NB.I_SKIP] = backoff
                    continue
                backoff = _SKIP_AFTER_REFUSAL // 2
                tmp = Recorder(data, net, points_per_decade, t0=float(fs[NB.F_NEXT]))
                yv = np.concatenate([a, u.ravel()])
                ell, t_new = _take_jump(
                    jump, float(fs[NB.F_T]), ell, yv, m, n, mask, tmp, act_t, log_level
                )
                jumps += 1
                bufs, nrec = _append_rows(bufs, int(ist[NB.I_NREC]), tmp)
                ist[NB.I_NREC] = nrec
                fs[NB.F_DRIFT] = max(fs[NB.F_DRIFT], tmp.drift)
                fs[NB.F_NEXT] = tmp.next_t
                fs[NB.F_T] = t_new
                a = yv[:m].copy()
                u = yv[m:].reshape(m, n).copy()
                ell, r = load(ell, a, u)
                ist[NB.I_EVALS] += 1
                continue
            if code != NB.RUNNING:
                break
            bar.set_postfix(
                tau=f"{fs[NB.F_T] / log_inv:.3g}" if net.log10_scale < 0 else "",
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
    prev = rec.samples()
    samples = {
        key: np.concatenate([prev[key], b[1:nrec]])
        for key, b in zip(("t", "loss", "log_abs_a", "w_norm", "n_active"), bufs, strict=True)
    }
    with np.errstate(under="ignore"):
        samples["a_abs"] = np.exp(samples["log_abs_a"])
    kink_t, kink_j, kink_i = (b[:nk] for b in kbufs)
    kinks0.add_many(kink_t, kink_j * n + kink_i, np.zeros(nk, dtype=bool))
    stats = SolverStats(
        steps=int(ist[NB.I_STEPS]),
        rejected=int(ist[NB.I_REJ]),
        evaluations=int(ist[NB.I_EVALS]),
        kinks=len(kinks0),
        kink_steps=int(ist[NB.I_KSTEPS]),
        closed_form_t=t0,
        plateau_jumps=jumps,
    )
    final = _keep_frozen(net.with_log_params(ell, a.copy(), unload()), net)
    return make_trajectory(
        "flow",
        data=data,
        net=net,
        final=final,
        samples=samples,
        status=status,
        message=message,
        drift=float(fs[NB.F_DRIFT]),
        stats=stats,
        kinks=kinks0.arrays(),
        wall0=wall0,
        provenance=run_provenance("flow", data, net, **options, engine="numba"),
        activation_t=act_t,
    )


def _logsumexp_rows(x: np.ndarray) -> np.ndarray:
    """``log Σ_i e^{x_ji}`` per row (−inf for an empty or all −inf row)."""
    top = x.max(axis=1, initial=-np.inf)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore", under="ignore"):
        return np.where(
            np.isfinite(top), safe + np.log(np.exp(x - safe[:, None]).sum(axis=1)), -np.inf
        )


def _scatter_rows(
    vals: np.ndarray, idx: np.ndarray, cnt: np.ndarray, n: int, out: np.ndarray | None = None
) -> np.ndarray:
    """The (m, n) array with ``vals[j, :cnt[j]]`` at columns ``idx[j, :cnt[j]]`` (into ``out``,
    else 0 elsewhere)."""
    if out is None:
        out = np.zeros((vals.shape[0], n))
    on = np.arange(idx.shape[1]) < cnt[:, None]
    out[np.nonzero(on)[0], idx[on]] = vals[on]
    return out


def _append_rows(bufs: tuple, nrec: int, tmp: Recorder) -> tuple[tuple, int]:
    """Append the rows recorded in ``tmp`` to the kernel's buffers (grown when full)."""
    k = len(tmp.t)
    if k == 0:
        return bufs, nrec
    s = tmp.samples()
    need = nrec + k
    if need > bufs[0].shape[0]:
        cap = 2 * need + 16
        bufs = tuple(
            np.concatenate([b[:nrec], np.empty((cap - nrec, *b.shape[1:]), dtype=b.dtype)])
            for b in bufs
        )
    for b, key in zip(bufs, ("t", "loss", "log_abs_a", "w_norm", "n_active"), strict=True):
        b[nrec:need] = s[key]
    return bufs, need


def _begin(
    data: Dataset,
    net: Network,
    rules: StopRules,
    start: InitialPhase | None,
    points_per_decade: int,
) -> tuple[Recorder, KinkLog, float, np.ndarray, np.ndarray, np.ndarray]:
    """Recorder, kink log, start time and state ``(ℓ, â, û)`` of the solver.

    The state is the network's log-scale representation, ``(a, u) = e^{ℓ}(â, û)``
    per neuron, after the closed-form phase when ``start`` is given. The recorder
    holds the row at ``t = 0`` and, with ``start``, the grid points of the
    closed-form phase and its end; the kink log its kinks.
    """
    rec = Recorder(data, net, points_per_decade, t0=1e-3 / rules.gamma_all)
    p = net.log_params
    a0, u0 = np.asarray(p.a_hat, float), np.asarray(p.u_hat, float)
    ell0 = np.asarray(p.ell, float)
    rec.add_scaled(0.0, ell0, a0, u0, (u0 > 0).astype(float))
    kinks = KinkLog(data.n)
    if start is None:
        return rec, kinks, 0.0, ell0.copy(), a0.copy(), u0.copy()
    start.record(rec)
    kinks.add_many(start.kink_t, start.kink_flat, np.zeros(start.kink_t.size, dtype=bool))
    return rec, kinks, start.t1, start.ell.copy(), start.a_hat.copy(), start.u_hat.copy()


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
