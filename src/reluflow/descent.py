"""Gradient descent and minibatch SGD in reduced coordinates: a dynamics of its own.

Full-batch descent with step ``η`` is the explicit Euler discretisation of the
flow, ``θ_{k+1} = θ_k − η ∇L(θ_k)``, and is exact in reduced coordinates:
``u_{k+1} = W_{k+1} Xᵀ = u_k − η ∇_W L Xᵀ`` (THEORY.md §2), with
σ'(0) = 0. Its time is ``t_k = k η``. Minibatch SGD replaces ``L`` by
``(1/2|B|) Σ_{i∈B} r_i²`` over a batch ``B`` drawn without replacement, one
epoch after another, from its own seed.

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
from tqdm.auto import tqdm

from . import _rng
from . import _validate as V
from ._dynamics import (
    STALLED_MESSAGE,
    KinkLog,
    Recorder,
    StopRules,
    make_trajectory,
    max_steps_message,
    run_provenance,
)
from ._field import Field
from .data import Dataset
from .errors import InputError, StabilityWarning
from .network import Network
from .trajectory import SolverStats, Trajectory

__all__ = ["gradient_descent", "sharpness"]


def sharpness(data: Dataset, net: Network) -> float:
    """Top eigenvalue of the Hessian of ``L`` at ``net`` (full parameters, σ'' = 0 off kinks).

    With the activity mask fixed, ``r_i = Σ_j a_j M_ji u_ji − y_i`` is bilinear, so
    ``H = (1/n) (Jᵀ J + Σ_i r_i ∇²r_i)`` exactly, with ``∂²r_i/∂a_j∂u_ji = M_ji``.
    The first layer is written in orthonormal coordinates ``c`` of the data span
    (``u = c T`` with ``Tᵀ T = K``), where the Hessian is the full-parameter one
    restricted to the only directions it does not annihilate.
    """
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
        lam, vec = np.linalg.eigh(field.K)
        T = np.sqrt(np.maximum(lam, 0.0))[:, None] * vec.T  # (n, n), Tᵀ T = K

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
        return float(np.linalg.eigvalsh(0.5 * (H + H.T))[-1])
    op = LinearOperator((N, N), matvec=hvp, dtype=float)
    v0 = np.concatenate([np.abs(a) + 1e-300, np.abs(to_u(u)).ravel() + 1e-300])
    try:
        return float(eigsh(op, k=1, which="LA", v0=v0, tol=1e-6, maxiter=2000)[0][0])
    except ArpackNoConvergence as exc:  # pragma: no cover - rare; best estimate so far
        return float(exc.eigenvalues.max()) if exc.eigenvalues.size else float("nan")


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
    max_steps: int = 10_000_000,
    points_per_decade: int = 200,
    check_stability: bool = True,
    progress: bool = False,
) -> Trajectory:
    """Run gradient descent (or minibatch SGD) with step ``lr`` from ``net``.

    Stops at the first of: ``steps`` iterations, time ``t = k·lr >= t_max`` or
    ``τ >= tau_max``, loss below ``loss_tol`` (default ``1e-10 · mean(y²)/2``),
    the stall rule of :func:`reluflow.gradient_flow` (full batch only), or
    ``max_steps`` (then ``success=False``). Divergence to non-finite values
    stops the run with ``status="diverged"``.

    Args:
        data, net: dataset and initial network.
        lr: step size η > 0.
        steps: number of iterations. t_max, tau_max: stop times (``t = k η``).
        loss_tol: loss threshold. batch_size: minibatch size (None: full batch).
        batch_seed: seed of the minibatch order (its own stream).
        stall_rate: as in :func:`reluflow.gradient_flow`.
        max_steps: iteration budget. points_per_decade: sampling density in ``t``.
        check_stability: measure the sharpness at steps 1, 2, 4, 8, … and warn
            (:class:`StabilityWarning`) when ``lr > 2 / sharpness``.
        progress: show a progress bar.

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
    max_steps = V.positive_int("max_steps", max_steps)
    if steps is not None:
        max_steps = V.positive_int("steps", steps)
    rules = StopRules.build(data, net, t_max, tau_max, loss_tol, stall_rate)
    n, m = data.n, net.m
    if batch_size is not None:
        batch_size = V.positive_int("batch_size", batch_size)
        if batch_size > n:
            raise InputError(f"batch_size must be <= n = {n}, got {batch_size}")
        if batch_size == n:
            batch_size = None
    batch_seed = V.seed("batch_seed", batch_seed)
    wall0 = time.perf_counter()

    field = Field(data)
    a = net.a.astype(float).copy()
    u = net.u.astype(float).copy()
    mask = (u > 0).astype(float)
    rec = Recorder(data, net, points_per_decade, t0=max(lr, 1e-3 / rules.gamma_all))
    stall = rules.stall_watch()
    rec.add(0.0, a, u, mask)
    rng = _rng.stream(batch_seed, _rng.SGD_BATCHES) if batch_size else None
    order = np.zeros(0, dtype=np.int64)
    pos = 0
    wts = np.zeros(n)
    kinks = KinkLog(n)
    sharp_log: list[tuple[int, float]] = []
    warned = False
    next_check = 1
    status, message = "max_steps", ""
    k = 0
    bar = tqdm(
        total=max_steps if steps is not None else None,
        disable=not progress,
        desc="descent",
        unit=" steps",
        leave=False,
    )
    try:
        while True:
            t = k * lr
            if check_stability and k + 1 >= next_check:
                s = sharpness(data, net.with_params(a, u))
                sharp_log.append((k, s))
                if not warned and s > 0 and lr > 2.0 / s:
                    warned = True
                    warnings.warn(
                        StabilityWarning(
                            f"lr = {lr:g} exceeds 2 / sharpness = {2.0 / s:.4g} at step {k} "
                            f"(sharpness {s:.4g}): gradient descent may be unstable; "
                            "use a smaller lr to follow the gradient flow"
                        ),
                        stacklevel=2,
                    )
                next_check *= 2
            if batch_size is None:
                w = None
            else:
                if pos + batch_size > order.size:
                    order = rng.permutation(n)
                    pos = 0
                wts[:] = 0.0
                wts[order[pos : pos + batch_size]] = 1.0 / batch_size
                pos += batch_size
                w = wts
            da, du, r = field.velocity(a, u, mask, weights=w)
            loss = float(r @ r) / (2 * n)
            if not math.isfinite(loss) or not np.isfinite(a).all():
                status, message = (
                    "diverged",
                    f"descent diverged (non-finite values) at step {k}, t = {t:.6g}",
                )
                break
            if loss <= rules.loss_tol:
                status = "loss_tol"
                message = f"loss {loss:.3e} <= loss_tol = {rules.loss_tol:.3e}"
                break
            if t >= rules.t_end:
                status, message = "t_max", f"reached the requested time t = {t:.6g}"
                break
            if k >= max_steps:
                if steps is not None:
                    status, message = "steps", f"ran the requested {steps} steps"
                else:
                    status, message = "max_steps", max_steps_message(max_steps, t, net)
                break
            if batch_size is None:
                v = np.concatenate([da, du.ravel()])
                yv = np.concatenate([a, u.ravel()])
                if stall.check(v, yv, data, m, t, loss):
                    status, message = "stalled", STALLED_MESSAGE
                    break
            a = a + lr * da
            u = u + lr * du
            new_mask = (u > 0).astype(float)
            changed = np.flatnonzero(new_mask != mask)
            kinks.add((k + 1) * lr, changed, new_mask.ravel()[changed] > 0)
            mask = new_mask
            k += 1
            bar.update(1)
            if rec.grid_points(t, (k) * lr):
                rec.add(k * lr, a, u, mask)
    finally:
        bar.close()
    t = k * lr
    if rec.t[-1] < t:
        rec.add(t, a, u, mask)
    dyn = "sgd" if batch_size else "descent"
    prov = run_provenance(
        dyn,
        data,
        net,
        lr=lr,
        batch_size=batch_size,
        batch_seed=batch_seed,
        steps=steps,
        t_max=t_max,
        tau_max=tau_max,
        loss_tol=rules.loss_tol,
        stall_rate=rules.stall_rate,
        max_steps=max_steps,
    )
    prov["sharpness"] = sharp_log
    return make_trajectory(
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
