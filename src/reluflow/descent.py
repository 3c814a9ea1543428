"""Gradient descent and minibatch SGD in reduced coordinates: a dynamics of its own.

Full-batch descent with step ``η`` is the explicit Euler discretisation of the
flow, ``θ_{k+1} = θ_k − η ∇L(θ_k)``, and is exact in reduced coordinates:
``u_{k+1} = W_{k+1} Xᵀ = u_k − η ∇_W L Xᵀ`` (docs/model.md), with
σ'(0) = 0. Its time is ``t_k = k η``. Minibatch SGD replaces ``L`` by
``(1/2|B|) Σ_{i∈B} r_i²`` over a batch ``B`` drawn without replacement, one
epoch after another, from its own seed.

Minibatch SGD never becomes still: it ends hovering at a noise floor, where the
flow's stall rule (speeds below a threshold) never fires. It stops by a rule of
its own, :class:`_NoiseFloor`: the run is cut into windows of ``W`` steps
(at least 8 epochs and a time ``W η >= 2 / rate_unit``, long enough for the
slowest neuron leaving a saddle to grow by a factor ``e²``), each split into 8
blocks whose means give the window's mean loss and its standard error. SGD
stops (``status="noise_floor"``, a success) after 3 windows in a row in which
the mean loss fell by no more than twice the standard error of the difference
and no neuron's mean ``log|a_j|`` grew by more than half of that slowest rate's
growth (plus twice its own standard error): the loss has stopped improving and
no neuron is escaping a saddle, so it will not fall further.

Full-batch descent stops like the flow when nothing moves any more, and also
when nothing moves *on average*: where the flow slides along a kink (docs/sliding-modes.md)
the steps cross it at every step or few, the gradient alternates and never becomes
small, and the iterate hovers at ``O(η)`` from the flow's sliding state. Over
windows of steps in which ``t`` doubles, the mean velocity (the displacement over
the window) and the window's mean loss against the previous window's (within
twice its standard error, or ``loss_tol``) decide instead
(:class:`~reluflow._dynamics.ChatterWatch`).

Descent is stable only while ``η < 2 / sharpness`` (top Hessian eigenvalue);
the sharpness grows as neurons activate, so it is measured along the run
(:func:`sharpness`) and a :class:`~reluflow.errors.StabilityWarning` is issued,
without refusing, when the step exceeds the bound.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from . import _memory
from . import _validate as V
from ._dynamics import (
    STALLED_MESSAGE,
    ChatterWatch,
    KinkLog,
    Minibatches,
    Recorder,
    StepBar,
    StopRules,
    descent_stop,
    make_trajectory,
    noise_floor_message,
    run_provenance,
)
from ._field import Field
from ._loss import LossConvention
from ._weight_space import prefers_weight_space, weight_space_descent
from .data import ArrayData, Dataset
from .errors import InputError, StabilityWarning
from .network import Network
from .trajectory import SolverStats, Trajectory

__all__ = ["gradient_descent", "sharpness"]

ENGINES = ("auto", "reduced", "weight")


def _gram_root(data: Dataset, K: np.ndarray) -> np.ndarray:
    """``T`` with ``Tᵀ T = K`` (from ``eigh``), computed once per dataset: descent
    measures the sharpness at steps 1, 2, 4, … and ``K`` does not change."""
    T = data.__dict__.get("_gram_root")
    if T is None:
        lam, vec = np.linalg.eigh(K)
        T = np.sqrt(np.maximum(lam, 0.0))[:, None] * vec.T  # (n, n)
        data.__dict__["_gram_root"] = T
    return T


def sharpness(data: Dataset, net: Network, loss: str = "half_mean") -> float:
    """Top eigenvalue of the Hessian of ``L`` at ``net`` (full parameters, σ'' = 0 off kinks).

    ``loss="mean"`` gives the Hessian of ``(1/n) Σ r²``, twice the half-mean one.

    With the activity mask fixed, ``r_i = Σ_j a_j M_ji u_ji − y_i`` is bilinear, so
    ``H = (1/n) (Jᵀ J + Σ_i r_i ∇²r_i)`` exactly, with ``∂²r_i/∂a_j∂u_ji = M_ji``.
    The first layer is written in orthonormal coordinates ``c`` of the data span
    (``u = c T`` with ``Tᵀ T = K``), where the Hessian is the full-parameter one
    restricted to the only directions it does not annihilate.
    """
    factor = LossConvention(loss).factor
    field = Field(data)
    m, n = net.m, net.n
    a, u = net.a, net.u
    M = (u > 0).astype(float)
    sig = u * M
    r = a @ sig - data.y
    if field.orthogonal:
        tn = np.sqrt(field.D)

        def to_u(c: np.ndarray) -> np.ndarray:
            return c * tn

        def from_u(g: np.ndarray) -> np.ndarray:
            return g * tn
    else:
        T = _gram_root(data, field.K)

        def to_u(c: np.ndarray) -> np.ndarray:
            return c @ T

        def from_u(g: np.ndarray) -> np.ndarray:
            return g @ T.T

    def hvp(v: np.ndarray) -> np.ndarray:
        da, dc = v[:m], v[m:].reshape(m, n)
        du = to_u(dc)
        dr = da @ sig + (a[:, None] * M * du).sum(axis=0)
        ga = (sig @ dr + (M * du) @ r) / n
        gu = (a[:, None] * M * dr[None, :] + M * r[None, :] * da[:, None]) / n
        return np.concatenate([ga, from_u(gu).ravel()])

    N = m * (n + 1)
    if N <= 400:  # small: dense eigendecomposition
        H = np.column_stack([hvp(e) for e in np.eye(N)])
        return factor * float(np.linalg.eigvalsh(0.5 * (H + H.T))[-1])
    op = LinearOperator((N, N), matvec=hvp, dtype=float)
    v0 = np.concatenate([np.abs(a) + 1e-300, np.abs(to_u(u)).ravel() + 1e-300])
    try:
        return factor * float(eigsh(op, k=1, which="LA", v0=v0, tol=1e-6, maxiter=2000)[0][0])
    except ArpackNoConvergence as exc:  # pragma: no cover - rare; best estimate so far
        return factor * (float(exc.eigenvalues.max()) if exc.eigenvalues.size else float("nan"))


class _NoiseFloor:
    """SGD's stopping rule: the windowed mean loss stops improving beyond its own noise.

    See the module docstring. ``add(loss, a)`` is called once per step and returns True
    when SGD has settled. ``windows_settled`` counts the consecutive settled windows.
    """

    BLOCKS = 8  # blocks per window (their means give the standard errors)
    PATIENCE = 3  # consecutive settled windows before stopping

    def __init__(self, rate_unit: float, lr: float, n: int, batch_size: int, m: int):
        epoch = math.ceil(n / batch_size)
        steps = max(8 * epoch, math.ceil(2.0 / (rate_unit * lr)), 8 * self.BLOCKS)
        self.block = math.ceil(steps / self.BLOCKS)
        self.window = self.block * self.BLOCKS
        # growth of log|a_j| over one window by the slowest neuron leaving a saddle
        self.growth = rate_unit * lr * self.window
        self._loss = 0.0
        self._loga = np.zeros(m)
        self._count = 0
        self._blocks_loss: list[float] = []
        self._blocks_loga: list[np.ndarray] = []
        self._prev: tuple[float, float, np.ndarray, np.ndarray] | None = None
        self.windows_settled = 0

    @property
    def earliest_stop(self) -> int:
        """The fewest steps before the rule can fire (if every coming window settles)."""
        done = len(self._blocks_loss) * self.block + self._count
        windows = self.PATIENCE - self.windows_settled + (1 if self._prev is None else 0)
        return windows * self.window - done

    def add(self, loss: float, a: np.ndarray) -> bool:
        self._loss += loss
        self._loga += np.log(np.abs(a) + 1e-300)
        self._count += 1
        if self._count < self.block:
            return False
        self._blocks_loss.append(self._loss / self._count)
        self._blocks_loga.append(self._loga / self._count)
        self._loss, self._loga, self._count = 0.0, np.zeros_like(self._loga), 0
        if len(self._blocks_loss) < self.BLOCKS:
            return False
        bl, ba = np.array(self._blocks_loss), np.array(self._blocks_loga)
        self._blocks_loss, self._blocks_loga = [], []
        k = self.BLOCKS
        now = (
            bl.mean(),
            bl.std(ddof=1) / math.sqrt(k),
            ba.mean(axis=0),
            ba.std(axis=0, ddof=1) / math.sqrt(k),
        )
        prev, self._prev = self._prev, now
        if prev is None:
            return False
        loss_flat = prev[0] - now[0] <= 2.0 * math.hypot(prev[1], now[1])
        se_a = np.hypot(prev[3], now[3])
        none_grows = bool((now[2] - prev[2] <= 0.5 * self.growth + 2.0 * se_a).all())
        self.windows_settled = self.windows_settled + 1 if loss_flat and none_grows else 0
        return self.windows_settled >= self.PATIENCE


def gradient_descent(
    data: Dataset,
    net: Network,
    lr: float,
    *,
    steps: int | None = None,
    t_max: float | None = None,
    tau_max: float | None = None,
    loss_tol: float | None = None,
    batch_size: int | None = None,
    batch_seed: int = 0,
    stall_rate: float | None = None,
    noise_floor: bool = True,
    max_steps: int = 10_000_000,
    points_per_decade: int = 200,
    check_stability: bool = True,
    progress: bool = False,
    loss: str = "half_mean",
    engine: str = "auto",
) -> Trajectory:
    """Run gradient descent (or minibatch SGD) with step ``lr`` from ``net``.

    Stops at the first of: ``steps`` iterations, time ``t = k·lr >= t_max`` or
    ``τ >= tau_max``, loss below ``loss_tol`` (default ``1e-10 · mean(y²)/2``),
    the stall rule of :func:`reluflow.gradient_flow` (full batch; ``status="stalled"``),
    the same rule on averages over doubling windows of steps (full batch; also
    ``"stalled"``, its message says so: descent that chatters across a kink, where
    the flow slides along it, never has small instantaneous speeds; see
    :class:`reluflow._dynamics.ChatterWatch`), the noise-floor
    rule (minibatch SGD, ``status="noise_floor"``: the windowed mean loss stops
    improving beyond its standard error and no neuron is growing; see the module
    docstring), or ``max_steps`` (then ``success=False``). Divergence to
    non-finite values stops the run with ``status="diverged"``. The progress
    bar counts steps against ``steps`` or the budget ``max_steps`` (its ETA is
    the time to the budget, an upper bound) and shows the loss; for SGD also the
    noise-floor windows settled and the fewest steps before it can stop.

    Args:
        data, net: dataset and initial network.
        lr: step size η > 0.
        steps: number of iterations. t_max, tau_max: stop times (``t = k η``).
        loss_tol: loss threshold. batch_size: minibatch size (None: full batch).
        batch_seed: seed of the minibatch order (its own stream).
        stall_rate: as in :func:`reluflow.gradient_flow`.
        noise_floor: stop minibatch SGD at its noise floor (set False to run SGD
            to the other rules only, e.g. to look past the floor).
        max_steps: iteration budget. points_per_decade: sampling density in ``t``.
        check_stability: measure the sharpness at steps 1, 2, 4, 8, … and warn
            (:class:`StabilityWarning`) when ``lr > 2 / sharpness``.
        progress: show a progress bar.
        loss: ``"half_mean"`` (``(1/2n) Σ r²``, default) or ``"mean"`` (``(1/n) Σ r²``,
            PyTorch's ``MSELoss``): a step ``lr`` on the mean loss is a step ``2 lr`` on
            the half-mean one; ``t = k·lr``, ``t_max``, ``loss_tol``, the losses and the
            sharpness are in the chosen convention (docs/field-setups.md).
        engine: ``"reduced"`` (coordinates ``u = W Xᵀ``, O(m n²) per step on general
            data, O(m n) on orthogonal data), ``"weight"`` (full weights, O(m n d);
            explicit inputs only) or ``"auto"`` (weight space when ``2 d < n`` on
            non-orthogonal explicit data). Same iterates to rounding.

    Returns:
        A :class:`Trajectory` with ``dynamics`` ``"descent"`` or ``"sgd"``;
        ``provenance["sharpness"]`` lists the measured ``(step, sharpness)``.
    """
    if net.n != data.n:
        raise InputError(
            f"network and data disagree: the network has n = {net.n} reduced "
            f"coordinates per neuron, the data n = {data.n} samples"
        )
    if net.exact is not None:
        # A step of size lr at lambda = 1e-1000 moves a neuron by lr times its own size:
        # the ~log(1/lambda)/(lr gamma) steps of the first plateau cannot be skipped
        # without changing the dynamics, and the float64 iterates would underflow.
        raise InputError(
            f"gradient descent runs in float64 coordinates and supports scale >= 1e-100, got "
            f"lambda = {V.format_scale(net.log10_scale)}; use gradient_flow (any scale, "
            "docs/any-scale.md)"
        )
    lr = V.finite_float("lr", lr, low=0.0, low_open=True, allowed="a finite number > 0")
    conv = LossConvention(loss)
    user = dict(lr=lr, t_max=t_max, tau_max=tau_max, loss_tol=loss_tol, stall_rate=stall_rate)
    engine = V.choice("engine", engine, ENGINES)
    if engine == "auto":
        engine = "weight" if prefers_weight_space(data) else "reduced"
    elif engine == "weight" and not isinstance(data, ArrayData):
        raise InputError(
            f"engine='weight' needs explicit inputs X (array_data), got {data!r}; "
            "use engine='reduced' (or 'auto')"
        )
    lr = lr * conv.factor  # the step on the half-mean loss, which the loop runs on
    max_steps = V.positive_int("max_steps", max_steps)
    if steps is not None:
        max_steps = V.positive_int("steps", steps)
    rules = StopRules.build(
        data,
        net,
        conv.time_in(t_max),
        conv.time_in(tau_max),
        conv.loss_in(loss_tol),
        conv.rate_in(stall_rate),
    )
    n, m = data.n, net.m
    if batch_size is not None:
        batch_size = V.positive_int("batch_size", batch_size)
        if batch_size > n:
            raise InputError(f"batch_size must be <= n = {n}, got {batch_size}")
        if batch_size == n:
            batch_size = None
    batch_seed = V.seed("batch_seed", batch_seed)
    _memory.check_dynamics("gradient descent", n, m, data.is_orthogonal, _memory.DESCENT_PER_ENTRY)
    floor = (
        _NoiseFloor(rules.rate_unit, lr, n, batch_size, m) if batch_size and noise_floor else None
    )
    options = dict(
        lr=lr,
        batch_size=batch_size,
        batch_seed=batch_seed,
        steps=steps,
        t_max=conv.time_in(t_max),
        tau_max=conv.time_in(tau_max),
        loss_tol=rules.loss_tol,
        stall_rate=rules.stall_rate,
        noise_floor_window=floor.window if floor is not None else None,
        max_steps=max_steps,
    )
    if engine == "weight":
        traj = weight_space_descent(
            data,  # type: ignore[arg-type]
            net,
            lr,
            rules,
            steps=steps,
            max_steps=max_steps,
            batch_size=batch_size,
            batch_seed=batch_seed,
            points_per_decade=points_per_decade,
            check_stability=check_stability,
            floor=floor,
            progress=progress,
            loss_factor=conv.factor,
            options=options,
        )
        return conv.trajectory(traj, user)
    wall0 = time.perf_counter()

    field = Field(data)
    a = net.a.astype(float).copy()
    u = net.u.astype(float).copy()
    mask = (u > 0).astype(float)
    rec = Recorder(data, net, points_per_decade, t0=max(lr, 1e-3 / rules.gamma_all))
    stall = rules.stall_watch()
    chatter = ChatterWatch(rules, m, n, lr)
    rec.add(0.0, a, u, mask)
    batches = Minibatches(n, batch_size, batch_seed)
    kinks = KinkLog(n)
    sharp_log: list[tuple[int, float]] = []
    warned = False
    next_check = 1
    status, message = "max_steps", ""
    k = 0
    bar = StepBar(progress, max_steps, bool(batch_size), floor)
    try:
        while True:
            t = k * lr
            if check_stability and k + 1 >= next_check:
                s = sharpness(data, net.with_params(a, u))
                sharp_log.append((k, s))
                if not warned and s > 0 and lr > 2.0 / s:
                    warned = True
                    f = conv.factor  # the numbers in the caller's loss convention
                    warnings.warn(
                        StabilityWarning(
                            f"lr = {lr / f:g} exceeds 2 / sharpness = {2.0 / (s * f):.4g} at "
                            f"step {k} (sharpness {s * f:.4g}): gradient descent may be unstable; "
                            "use a smaller lr to follow the gradient flow"
                        ),
                        stacklevel=2,
                    )
                next_check *= 2
            w = batches.next()
            da, du, r = field.velocity(a, u, mask, weights=w)
            loss = float(r @ r) / (2 * n)
            stop = descent_stop(loss, a, k, t, rules, max_steps, steps, net)
            if stop is not None:
                status, message = stop
                break
            if batch_size is None:
                v = np.concatenate([da, du.ravel()])
                yv = np.concatenate([a, u.ravel()])
                if stall.check(v, yv, data, m, t, loss):
                    status, message = "stalled", STALLED_MESSAGE
                    break
                if chatter.check(k, lambda yv=yv: yv, loss, len(kinks)):
                    status, message = "stalled", chatter.message()
                    break
            elif floor is not None and floor.add(loss, a):
                status = "noise_floor"
                message = noise_floor_message(floor.window, floor.PATIENCE, loss)
                break
            a = a + lr * da
            u = u + lr * du
            new_mask = (u > 0).astype(float)
            changed = np.flatnonzero(new_mask != mask)
            kinks.add((k + 1) * lr, changed, new_mask.ravel()[changed] > 0)
            mask = new_mask
            k += 1
            bar.step(loss)
            if rec.grid_points(t, (k) * lr):
                rec.add(k * lr, a, u, mask)
    finally:
        bar.close()
    t = k * lr
    if rec.t[-1] < t:
        rec.add(t, a, u, mask)
    dyn = "sgd" if batch_size else "descent"
    prov = run_provenance(dyn, data, net, **options, engine="reduced")
    prov["sharpness"] = sharp_log
    traj = make_trajectory(
        dyn,
        data=data,
        net=net,
        final=net.with_params(a, u),
        samples=rec.samples(),
        status=status,
        message=message,
        drift=rec.drift,
        stats=SolverStats(steps=k, evaluations=k, kinks=len(kinks)),
        kinks=kinks.arrays(),
        wall0=wall0,
        provenance=prov,
    )
    return conv.trajectory(traj, user)
