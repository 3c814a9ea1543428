"""Gradient descent in weight space, for data with more samples than dimensions.

The reduced coordinates ``u = W Xᵀ`` cost O(m n²) per evaluation on general
data (the product with the Gram matrix ``K``). With explicit inputs and
``n > d`` the full parameters cost less, O(m n d):

    U = W Xᵀ,  M = 1[U > 0],  r = a · σ(U) − y,
    ∇_a L = (1/n) σ(U) r,     ∇_W L = (1/n) (a ∘ M ∘ r) X,

and ``u_{k+1} = W_{k+1} Xᵀ`` is exactly the reduced iterate (the step moves
``W`` inside the span of the data, ``W^⊥`` never changes). This module runs that
loop with the stopping rules, recording, kink log and trajectory of the
reduced engine (:func:`reluflow.gradient_descent` chooses it by cost); only
``‖w_j‖²`` is read from ``W`` directly instead of ``u K⁺ uᵀ``.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

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
from .data import ArrayData, Dataset
from .errors import StabilityWarning
from .network import Network
from .trajectory import SolverStats, Trajectory


def prefers_weight_space(data: Dataset) -> bool:
    """True when one descent step costs less in weight space (2 m n d) than reduced (m n²)."""
    return isinstance(data, ArrayData) and not data.is_orthogonal and 2 * data.d < data.n


def weight_sharpness(X: np.ndarray, y: np.ndarray, a: np.ndarray, W: np.ndarray) -> float:
    """Top Hessian eigenvalue of ``L = (1/2n) Σ r²`` in the full parameters ``(a, W)``.

    The same Gauss–Newton-plus-residual Hessian as :func:`reluflow.sharpness`
    (mask fixed, ``σ'' = 0`` off kinks), its products formed in O(m n d); it has the
    same non-zero spectrum as the reduced one (the extra directions ``W^⊥`` are null).
    """
    m, d = W.shape
    n = X.shape[0]
    U = W @ X.T
    M = (U > 0).astype(float)
    sig = U * M
    r = a @ sig - y

    def hvp(v: np.ndarray) -> np.ndarray:
        da, dW = v[:m], v[m:].reshape(m, d)
        du = dW @ X.T
        dr = da @ sig + (a[:, None] * M * du).sum(axis=0)
        ga = (sig @ dr + (M * du) @ r) / n
        gu = (a[:, None] * M * dr[None, :] + M * r[None, :] * da[:, None]) / n
        return np.concatenate([ga, (gu @ X).ravel()])

    N = m * (d + 1)
    if N <= 400:
        H = np.column_stack([hvp(e) for e in np.eye(N)])
        return float(np.linalg.eigvalsh(0.5 * (H + H.T))[-1])
    op = LinearOperator((N, N), matvec=hvp, dtype=float)
    v0 = np.concatenate([np.abs(a) + 1e-300, np.abs(W).ravel() + 1e-300])
    try:
        return float(eigsh(op, k=1, which="LA", v0=v0, tol=1e-6, maxiter=2000)[0][0])
    except ArpackNoConvergence as exc:  # pragma: no cover - rare; best estimate so far
        return float(exc.eigenvalues.max()) if exc.eigenvalues.size else float("nan")


class _KnownNorms:
    """The geometry the shared recorder and stall rule need, with ``‖w_j‖²`` known from ``W``.

    :class:`~reluflow._dynamics.Recorder` and the stall rule ask ``data.quad_form(v)``
    for the squared norm of the in-span part of a first-layer vector. In weight space
    that is ``‖W_j‖² − ‖w_j^⊥‖²`` (or ``‖ΔW_j‖²`` for a velocity, which lies in the
    span), known without ``K⁺``; :attr:`value` holds it for the next call.
    """

    def __init__(self, data: Dataset):
        self.y = data.y
        self.n = data.n
        self.value = np.zeros(0)

    def quad_form(self, u: np.ndarray) -> np.ndarray:
        return self.value


def weight_space_descent(
    data: ArrayData,
    net: Network,
    lr: float,
    rules: StopRules,
    *,
    steps: int | None,
    max_steps: int,
    batch_size: int | None,
    batch_seed: int,
    points_per_decade: int,
    check_stability: bool,
    loss_factor: float,
    options: dict,
    floor: Any = None,
    progress: bool = False,
) -> Trajectory:
    """The loop of :func:`reluflow.gradient_descent` in weight space (half-mean loss, step ``lr``).

    ``loss_factor`` only converts the numbers printed in a
    :class:`~reluflow.errors.StabilityWarning` to the caller's loss convention;
    ``progress`` shows the same progress bar as the reduced loop.
    """
    wall0 = time.perf_counter()
    X = data.X
    y = data.y
    n, m = data.n, net.m
    a = net.a.astype(float).copy()
    # W is the in-span part of the first layer (W^⊥ never moves and is kept aside):
    # the minimum-norm solution of W Xᵀ = u, O(n d²) instead of K⁺'s O(n³)
    W = np.linalg.lstsq(X, net.u.T, rcond=None)[0].T
    U = W @ X.T
    wperp_sq = net.w_perp_sq
    geo = _KnownNorms(data)
    # the recorder takes each neuron's balance in units of its own size (net.log_params)
    ell0 = net.log_params.ell
    geo.value = np.einsum("ij,ij->i", W, W) * np.exp(-2.0 * np.where(np.isfinite(ell0), ell0, 0.0))
    rec = Recorder(geo, net, points_per_decade, t0=max(lr, 1e-3 / rules.gamma_all))  # type: ignore[arg-type]
    geo.value = np.einsum("ij,ij->i", W, W)
    stall = rules.stall_watch()
    chatter = ChatterWatch(rules, m, n, lr)
    mask = (U > 0).astype(float)

    def record(t: float) -> None:
        sig = U * mask
        r = a @ sig - y
        wsq = np.einsum("ij,ij->i", W, W) + wperp_sq
        rec.extend(
            np.array([t]),
            np.array([float(r @ r) / (2 * n)]),
            a[None, :],
            wsq[None, :],
            mask.sum(axis=1)[None, :],
        )

    record(0.0)
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
                s = weight_sharpness(X, y, a, W)
                sharp_log.append((k, s))
                if not warned and s > 0 and lr > 2.0 / s:
                    warned = True
                    f = loss_factor
                    warnings.warn(
                        StabilityWarning(
                            f"lr = {lr / f:g} exceeds 2 / sharpness = {2.0 / (s * f):.4g} at step {k} "
                            f"(sharpness {s * f:.4g}): gradient descent may be unstable; "
                            "use a smaller lr to follow the gradient flow"
                        ),
                        stacklevel=3,
                    )
                next_check *= 2
            w = batches.next()
            rw_scale = 1.0 / n if w is None else w
            sig = U * mask
            r = a @ sig - y
            rw = r * rw_scale
            loss = float(r @ r) / (2 * n)
            stop = descent_stop(loss, a, k, t, rules, max_steps, steps, net)
            if stop is not None:
                status, message = stop
                break
            da = -(sig @ rw)
            G = (mask * rw[None, :]) * (-a[:, None])  # (m, n): du = G K, dW = G X
            dW = G @ X
            W_next = W + lr * dW
            U_next = W_next @ X.T
            if batch_size is None:
                du = (U_next - U) / lr
                geo.value = np.einsum("ij,ij->i", dW, dW)
                v = np.concatenate([da, du.ravel()])
                yv = np.concatenate([a, U.ravel()])
                if stall.check(v, yv, geo, m, t, loss):  # type: ignore[arg-type]
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
            W, U = W_next, U_next
            new_mask = (U > 0).astype(float)
            changed = np.flatnonzero(new_mask != mask)
            kinks.add((k + 1) * lr, changed, new_mask.ravel()[changed] > 0)
            mask = new_mask
            k += 1
            bar.step(loss)
            if rec.grid_points(t, k * lr):
                record(k * lr)
    finally:
        bar.close()
    t = k * lr
    if rec.t[-1] < t:
        record(t)
    dyn = "sgd" if batch_size else "descent"
    prov = run_provenance(dyn, data, net, **options, engine="weight")
    prov["sharpness"] = sharp_log
    return make_trajectory(
        dyn,
        data=data,
        net=net,
        final=net.with_params(a, U),
        samples=rec.samples(),
        status=status,
        message=message,
        drift=rec.drift,
        stats=SolverStats(steps=k, evaluations=k, kinks=len(kinks)),
        kinks=kinks.arrays(),
        wall0=wall0,
        provenance=prov,
    )
