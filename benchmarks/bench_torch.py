"""reluflow's gradient flow against how the field simulates it: PyTorch gradient descent.

    python benchmarks/bench_torch.py [--smoke] [--sizes N [N ...]] [--json OUT]

(``benchmarks/run_all.py`` runs this comparison together with the others.)

The baseline is what a practitioner writes: full parameters ``(a, W)``, the
inputs as an explicit orthonormal-frame array ``X`` (``d = n``), float64,
autograd for the gradient and plain gradient descent with a fixed step ``η``
(``θ ← θ − η ∇L``, ``L = (1/2n) Σ r²``, ``relu'(0) = 0`` as in torch). It starts
from exactly the initial point of ``init_network(data, m, 1e-8, seed=0)``:
``X = data.to_array()`` (``diag(‖x_i‖)`` for the canonical frame) and ``W`` with
``W Xᵀ = u`` (no component off the data: ``w_perp_sq = 0`` when ``d = n``).

Per size ``n`` (``m = 2⌈log2 n⌉ + 4``, balanced ±1 labels, unit norms, λ = 1e-8):

1. Reference: ``gradient_flow`` at ``rtol = 1e-10`` sampled densely, with its
   default stopping rules. Its activation events (``reluflow.activation_events``)
   and its end state define the target: the first ``k = min(5, #events)``
   activation times, and then the loss reaching the flow's default tolerance
   (``1e-10 · L0``) or, when the flow ends on a final plateau without
   interpolating, the flow's final loss plus that tolerance.
2. Step: the largest ``η`` on a factor-2 grid whose descent reproduces those
   ``k`` times within 1 % (relative, sorted times) and reaches the target within
   1.5 times the reference's duration. The search runs reluflow's own
   ``gradient_descent`` (reduced coordinates): it is the same iteration, step by
   step (``tests/test_benchmarks.py`` checks that against torch), only cheaper.
   The chosen step is then checked on the torch run itself.
3. Timings, each in a fresh process (so that the peak resident memory belongs to
   one method; it is read as VmHWM after resetting it, with the process's own
   import footprint reported separately): reluflow's flow with default settings
   (numba engine, numba compile excluded and reported) to the target, and the
   torch loop at the chosen ``η`` to the target, ``torch.set_num_threads`` = the
   number of cores. If the torch run is predicted to exceed the time cap
   (default 20 min) it times a fixed number of steps and extrapolates, marked
   ``extrapolated``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import queue
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from reluflow import (
    SolverStats,
    Trajectory,
    activation_events,
    gradient_descent,
    gradient_flow,
    init_network,
    orthogonal_data,
)
from reluflow._dynamics import activation_level

SCALE = 1e-8
SEED = 0
K_EVENTS = 5
EVENT_RTOL = 0.01
REF_RTOL = 1e-10
REC_PPD = 2000  # samples per decade of t for the reference and every descent
HORIZON = 1.5  # descent must reach the target before HORIZON x the reference's duration
TIME_CAP_S = 1200.0
REPEATS, REPEAT_BUDGET_S = 5, 3.0  # short runs are repeated (median), long ones run once
SIZES = (100, 1000, 4000)
SMOKE_SIZES = (16, 32)
HERE = Path(__file__).resolve().parent


def width(n: int) -> int:
    """``m = 2⌈log2 n⌉ + 4``: interpolation with high probability on balanced labels."""
    return 2 * math.ceil(math.log2(n)) + 4


def problem(n: int, m: int | None = None, seed: int = SEED, scale: float = SCALE):
    data = orthogonal_data(n, seed=seed)
    return data, init_network(data, width(n) if m is None else m, scale, seed=seed)


# --------------------------------------------------------------------------- the baseline


def explicit_init(data, net) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, W, a)``: explicit inputs (``d = n``) and full parameters at ``net``'s point.

    ``W = u K⁻¹ X`` so that ``W Xᵀ = u K⁻¹ K = u``; with ``d = n`` nothing of ``W`` lies
    off the data, which ``net.w_perp_sq == 0`` confirms.
    """
    if data.d != data.n:
        raise ValueError(f"the baseline uses d = n, got d = {data.d}, n = {data.n}")
    if np.any(net.w_perp_sq != 0):
        raise ValueError("w_perp_sq must be 0 when d = n")
    X = data.to_array()
    W = (net.u / data.sq_norms()[None, :]) @ X
    return X, W, net.a.copy()


def gamma_all(data) -> float:
    w = np.abs(data.y) * np.sqrt(data.sq_norms())
    return math.sqrt(float(w @ w)) / data.n or 1.0


def record_steps(data, lr: float, max_steps: int, ppd: int = REC_PPD) -> np.ndarray:
    """Steps at which reluflow's ``gradient_descent`` samples its trajectory.

    Its recorder takes step ``k`` whenever a point of the geometric grid
    ``t0 · 10^(j/ppd)`` (``t0 = max(η, 1e-3/γ_all)``) falls in ``((k−1)η, kη]``.
    """
    rec = np.zeros(max_steps + 1, dtype=bool)
    rec[0] = True
    t0, t_end = max(lr, 1e-3 / gamma_all(data)), max_steps * lr
    if t_end >= t0:
        count = int(math.floor(ppd * math.log10(t_end / t0))) + 2
        # the same float products as the recorder's ``next_t *= ratio``
        g = np.multiply.accumulate(np.r_[t0, np.full(count - 1, 10.0 ** (1.0 / ppd))])
        g = g[g <= t_end]
        k = np.ceil(g / lr).astype(np.int64)
        k += g > k * lr  # exactly (k-1)·lr < g <= k·lr, in floating point
        k -= g <= (k - 1) * lr
        rec[np.clip(k, 0, max_steps)] = True
    return rec


def torch_descent(
    X: np.ndarray,
    y: np.ndarray,
    a0: np.ndarray,
    W0: np.ndarray,
    lr: float,
    *,
    max_steps: int,
    target_loss: float,
    rec_at: np.ndarray | None = None,
    mark_start: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Plain full-batch gradient descent in PyTorch: the loop as the field writes it.

    Stops when the loss at the current iterate is ``<= target_loss`` (status
    ``"loss_tol"``), after ``max_steps`` updates (``"max_steps"``) or on non-finite
    values (``"diverged"``). Records ``|a|``, ``‖w_j‖``, the active counts and the loss
    at the steps flagged in ``rec_at`` and at the last one.
    """
    import torch

    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float64))
    yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float64))
    a = torch.tensor(a0, dtype=torch.float64, requires_grad=True)
    W = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
    if rec_at is None:
        rec_at = np.zeros(max_steps + 1, dtype=bool)
    n_rec = int(rec_at.sum()) + 1
    m = a0.shape[0]
    ks = np.zeros(n_rec, dtype=np.int64)
    losses = np.zeros(n_rec)
    a_rec = torch.zeros((n_rec, m), dtype=torch.float64)
    w_rec = torch.zeros((n_rec, m), dtype=torch.float64)
    act_rec = torch.zeros((n_rec, m), dtype=torch.int64)
    flags = rec_at.tolist()
    i = 0
    status = "max_steps"
    if mark_start is not None:
        mark_start()
    t0 = time.perf_counter()
    k = 0
    for k in range(max_steps + 1):  # noqa: B007 - k is the number of updates done
        h = Xt @ W.T  # (n, m) pre-activations <w_j, x_i>
        out = torch.relu(h) @ a
        loss = 0.5 * torch.mean((out - yt) ** 2)
        lv = loss.item()
        stop = True
        if not math.isfinite(lv):
            status = "diverged"
        elif lv <= target_loss:
            status = "loss_tol"
        elif k == max_steps:
            status = "max_steps"
        else:
            stop = False
        if flags[k] or stop:
            with torch.no_grad():
                ks[i], losses[i] = k, lv
                a_rec[i] = a.abs()
                w_rec[i] = W.norm(dim=1)
                act_rec[i] = (h > 0).sum(dim=0)
            i += 1
        if stop:
            break
        loss.backward()
        with torch.no_grad():
            a -= lr * a.grad
            W -= lr * W.grad
        a.grad = None
        W.grad = None
    wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "steps": k,
        "status": status,
        "final_loss": float(losses[i - 1]),
        "rec_k": ks[:i],
        "rec_loss": losses[:i],
        "rec_a": a_rec[:i].numpy(),
        "rec_w": w_rec[:i].numpy(),
        "rec_act": act_rec[:i].numpy(),
        "a": a.detach().numpy().copy(),
        "W": W.detach().numpy().copy(),
    }


def torch_trajectory(data, net, X: np.ndarray, out: dict[str, Any], lr: float) -> Trajectory:
    """The torch run as a reluflow :class:`Trajectory` (for ``activation_events``)."""
    t = out["rec_k"] * lr
    log_inv = math.log(1.0 / net.scale)
    u = out["W"] @ X.T
    return Trajectory(
        dynamics="descent",
        t=t,
        tau=t / log_inv,
        loss=out["rec_loss"],
        a_abs=out["rec_a"],
        w_norm=out["rec_w"],
        n_active=out["rec_act"],
        final=net.with_params(out["a"], u),
        initial=net,
        success=out["status"] == "loss_tol",
        status=out["status"],
        message=f"torch gradient descent: {out['status']} after {out['steps']} steps",
        conservation_drift=float("nan"),
        stats=SolverStats(steps=out["steps"], evaluations=out["steps"]),
        wall_s=out["wall_s"],
        provenance={"engine": "torch", "lr": lr},
        activation_level=activation_level(data),  # the level reluflow's own runs record
    )


# --------------------------------------------------------------------------- reference and step


def event_times(traj: Trajectory) -> np.ndarray:
    return np.sort(activation_events(traj)["t"].to_numpy())


def event_error(times, ref_times, k: int) -> float:
    """Largest relative error of the first ``k`` (sorted) activation times; inf if fewer."""
    times, ref_times = np.sort(np.asarray(times, float)), np.asarray(ref_times, float)
    if k == 0:
        return 0.0
    if times.size < k:
        return math.inf
    return float(np.max(np.abs(times[:k] - ref_times[:k]) / ref_times[:k]))


def gamma_max(data, net) -> float:
    """The largest initial growth rate ``γ_j(0)`` of docs/limit.md."""
    S = (net.u > 0) & (np.sign(net.a)[:, None] * data.y[None, :] > 0)
    return float(np.sqrt(S.astype(float) @ (data.y**2 * data.sq_norms())).max()) / data.n


def reference(n: int, m: int | None = None, rtol: float = REF_RTOL) -> dict[str, Any]:
    """Tight-tolerance flow: its events, end time and the target of every timed run."""
    data, net = problem(n, m)
    t0 = time.perf_counter()
    ref = gradient_flow(data, net, rtol=rtol, points_per_decade=REC_PPD)
    wall = time.perf_counter() - t0
    ev = event_times(ref)
    L0 = float(data.y @ data.y) / (2 * n)
    loss_tol = 1e-10 * L0
    interpolates = ref.status == "loss_tol"
    target = loss_tol if interpolates else ref.final_loss + loss_tol
    return {
        "n": n,
        "m": net.m,
        "rtol": rtol,
        "wall_s": wall,
        "status": ref.status,
        "t_end": float(ref.t[-1]),
        "tau_end": float(ref.tau[-1]),
        "final_loss": ref.final_loss,
        "interpolates": interpolates,
        "target_loss": target,
        "events": ev.tolist(),
        "k": min(K_EVENTS, ev.size),
        "gamma_max": gamma_max(data, net),
    }


def descent_trial(n: int, m: int, lr: float, ref: dict[str, Any]) -> dict[str, Any]:
    """reluflow's (reduced-coordinate) descent at step ``lr`` against the reference."""
    data, net = problem(n, m)
    t_max = HORIZON * ref["t_end"]
    t0 = time.perf_counter()
    tr = gradient_descent(
        data,
        net,
        lr,
        t_max=t_max,
        loss_tol=ref["target_loss"],
        stall_rate=0.0,
        max_steps=math.ceil(t_max / lr) + 2,
        points_per_decade=REC_PPD,
        check_stability=False,
    )
    err = event_error(event_times(tr), ref["events"], ref["k"])
    reached = tr.status == "loss_tol"
    return {
        "lr": lr,
        "ok": bool(reached and err <= EVENT_RTOL),
        "event_err": err,
        "status": tr.status,
        "steps": tr.stats.steps,
        "t_end": float(tr.t[-1]),
        "final_loss": tr.final_loss,
        "wall_s": time.perf_counter() - t0,
    }


def select_step(n: int, m: int, ref: dict[str, Any], max_trials: int = 16) -> dict[str, Any]:
    """Largest ``η = 2^j`` that passes :func:`descent_trial`, starting near ``0.02 / γ_max``.

    (Euler's growth factor ``1 + γη`` against ``e^{γη}`` delays an activation by a
    relative ``≈ γη/2``, so about ``0.02/γ`` is where 1 % is lost.)
    """
    lr = 2.0 ** math.floor(math.log2(0.02 / ref["gamma_max"]))
    trials = [descent_trial(n, m, lr, ref)]
    up = trials[0]["ok"]
    while len(trials) < max_trials:
        lr = lr * 2 if up else lr / 2
        trials.append(descent_trial(n, m, lr, ref))
        if trials[-1]["ok"] != up:
            break
    passing = [t for t in trials if t["ok"]]
    if not passing:
        raise RuntimeError(f"no step passed at n = {n}: {trials}")
    best = max(passing, key=lambda t: t["lr"])
    return {"lr": best["lr"], "steps": best["steps"], "best": best, "trials": trials}


def prepare(n: int, m: int | None = None, rtol: float = REF_RTOL) -> dict[str, Any]:
    """Reference flow and selected step for size ``n`` (in this process)."""
    ref = reference(n, m, rtol)
    sel = select_step(n, ref["m"], ref)
    return {"ref": ref, "step": sel}


# --------------------------------------------------------------------------- measurements


def _status_kib(field: str, pid: int | str = "self") -> float | None:
    """A ``/proc/<pid>/status`` field in KiB (None where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak() -> float:
    """Reset the peak-RSS mark (Linux ``clear_refs``); return the current RSS in MiB."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    rss = _status_kib("VmRSS")
    return (rss if rss is not None else 0.0) / 1024


def peak_mib() -> float:
    """Peak RSS since :func:`reset_peak` (VmHWM), else the lifetime peak, in MiB."""
    hwm = _status_kib("VmHWM")
    if hwm is None:
        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return hwm / 1024


def repeat(fn: Callable[[], Any], budget_s: float = REPEAT_BUDGET_S, runs: int = REPEATS):
    """Run ``fn`` until ``runs`` runs or ``budget_s`` seconds in all (at least once).

    Returns the median wall time, every wall time and the last result
    (:func:`repeat_cpu` gives the CPU times too).
    """
    wall, walls, _, out = repeat_cpu(fn, budget_s, runs)
    return wall, walls, out


def repeat_cpu(fn: Callable[[], Any], budget_s: float = REPEAT_BUDGET_S, runs: int = REPEATS):
    """:func:`repeat`, also timing each run's CPU time (this process, all its threads).

    Returns ``(wall, walls, cpu, out)``: the median wall time, every wall time, the
    median CPU time and the last result. On a machine
    shared with other work the wall time includes waiting for a core; the CPU time
    of a single-threaded run does not (it is what the wall time would be alone).
    """
    walls: list[float] = []
    cpus: list[float] = []
    out = None
    while not walls or (len(walls) < runs and sum(walls) < budget_s):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return float(np.median(walls)), walls, float(np.median(cpus)), out


def _warm_numba() -> float:
    t0 = time.perf_counter()
    d = orthogonal_data(8, seed=0)
    gradient_flow(d, init_network(d, 3, 1e-3, seed=0), engine="numba")
    return time.perf_counter() - t0


def measure_flow(spec: dict[str, Any], mark_start: Callable[[], None]) -> dict[str, Any]:
    """reluflow's flow, default settings (numba), to ``spec['target_loss']`` or its own stop."""
    first_call = _warm_numba()
    data, net = problem(spec["n"], spec.get("m"))
    rss0 = reset_peak()
    mark_start()
    wall, walls, cpu, tr = repeat_cpu(
        lambda: gradient_flow(data, net, loss_tol=spec.get("target_loss"))
    )
    peak = peak_mib()
    to_k = None
    if spec.get("t_k"):  # where the time goes: the same flow stopped just after event k
        to_k = repeat(lambda: gradient_flow(data, net, t_max=spec["t_k"]), runs=len(walls))[0]
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "wall_all_s": walls,
        "to_event_k_s": to_k,
        "loadavg_1m": os.getloadavg()[0],
        "numba_first_call_s": first_call,
        "status": tr.status,
        "t_end": float(tr.t[-1]),
        "tau_end": float(tr.tau[-1]),
        "final_loss": tr.final_loss,
        "steps": tr.stats.steps,
        "kinks": tr.stats.kinks,
        "kink_steps": tr.stats.kink_steps,
        "events": event_times(tr).tolist(),
        "rss_before_mib": rss0,
        "peak_rss_mib": peak,
        "peak_delta_mib": peak - rss0,
    }


def measure_torch(spec: dict[str, Any], mark_start: Callable[[], None]) -> dict[str, Any]:
    """The torch loop at ``spec['lr']`` to ``spec['target_loss']`` (or extrapolated)."""
    t_imp = time.perf_counter()
    import torch

    import_s = time.perf_counter() - t_imp
    threads = int(spec.get("threads") or os.cpu_count() or 1)
    torch.set_num_threads(threads)
    data, net = problem(spec["n"], spec.get("m"))
    lr, max_steps = float(spec["lr"]), int(spec["max_steps"])
    rss0 = reset_peak()
    X, W0, a0 = explicit_init(data, net)
    # warm-up and per-step cost on a throwaway copy (first-call overheads, thread pool)
    probe = torch_descent(X, data.y, a0, W0, lr, max_steps=5, target_loss=-1.0)
    per_step = probe["wall_s"] / 5
    pred = spec.get("steps_pred")
    cap = float(spec.get("cap_s") or math.inf)
    extrapolated = pred is not None and per_step * pred > cap
    res: dict[str, Any] = {
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "torch_import_s": import_s,
        "lr": lr,
        "per_step_probe_s": per_step,
        "steps_pred": pred,
        "extrapolated": bool(extrapolated),
        "loadavg_1m": os.getloadavg()[0],
    }
    if extrapolated:
        n_probe = int(max(20, min(pred, 0.05 * cap / per_step)))
        mark_start()
        out = torch_descent(X, data.y, a0, W0, lr, max_steps=n_probe, target_loss=-1.0)
        per_step = out["wall_s"] / n_probe
        res.update(
            wall_s=per_step * pred,
            probe_steps=n_probe,
            probe_wall_s=out["wall_s"],
            steps=int(pred),
            status="extrapolated",
            events=None,
        )
    else:
        rec_at = record_steps(data, lr, max_steps)
        mark_start()
        wall, walls, cpu, out = repeat_cpu(
            lambda: torch_descent(
                X,
                data.y,
                a0,
                W0,
                lr,
                max_steps=max_steps,
                target_loss=float(spec["target_loss"]),
                rec_at=rec_at,
            )
        )
        tr = torch_trajectory(data, net, X, out, lr)
        res.update(
            wall_s=wall,
            cpu_s=cpu,
            wall_all_s=walls,
            steps=out["steps"],
            status=out["status"],
            t_end=out["steps"] * lr,
            final_loss=out["final_loss"],
            events=event_times(tr).tolist(),
        )
    peak = peak_mib()
    res.update(
        per_step_s=res["wall_s"] / max(res["steps"], 1),
        rss_before_mib=rss0,
        peak_rss_mib=peak,
        peak_delta_mib=peak - rss0,
    )
    return res


KINDS: dict[str, Callable[[dict[str, Any], Callable[[], None]], dict[str, Any]]] = {
    "flow": measure_flow,
    "torch": measure_torch,
}

# --------------------------------------------------------------------------- child processes

START, RESULT = "@@START", "@@RESULT "


def run_measure(
    script: str | Path,
    kind: str,
    spec: dict[str, Any],
    *,
    inprocess: bool = False,
    kinds: dict[str, Callable] | None = None,
    limit_s: float | None = None,
    mem_cap_mib: float | None = None,
    setup_s: float = 900.0,
    clock: str = "wall",
) -> dict[str, Any]:
    """Run measurement ``kind`` in a fresh process (``script --child KIND SPEC``).

    The child prints ``@@START`` when its timed part begins; it is killed (by its
    own process handle) ``limit_s`` after that, or when its resident memory passes
    ``mem_cap_mib``; then the result says ``timed_out`` / ``memory_capped`` with the
    peak seen. ``clock="cpu"`` counts ``limit_s`` in the child's CPU time instead
    (on a shared machine, what the run would take alone; the wall clock then only
    stops it at ``CPU_WALL_FACTOR × limit_s``). ``inprocess`` runs the measurement
    here instead (no time limit, no isolation: for the smoke tests).
    """
    if inprocess:
        fn = (kinds or KINDS)[kind]
        res = fn(spec, lambda: None)
        res["isolated"] = False
        if limit_s is not None and res.get("wall_s", 0.0) > limit_s:
            res["over_limit"] = True
        return res
    cmd = [sys.executable, str(script), "--child", kind, json.dumps(spec)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    err_tail: list[str] = []

    def pump_out() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def pump_err() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            err_tail.append(line)
            del err_tail[:-40]

    for target in (pump_out, pump_err):
        threading.Thread(target=target, daemon=True).start()
    deadline = time.monotonic() + setup_s
    started = None
    cpu0, cpu_seen = 0.0, None
    result = None
    peak_seen = 0.0
    killed = None
    while True:
        try:
            line = lines.get(timeout=max(0.0, min(0.5, deadline - time.monotonic())))
        except queue.Empty:
            rss = _status_kib("VmHWM", proc.pid)
            if rss is not None:
                peak_seen = max(peak_seen, rss / 1024)
            cpu_over = (
                clock == "cpu"
                and started is not None
                and limit_s is not None
                and _cpu_seconds(proc.pid) - cpu0 > limit_s * 1.02 + 0.5
            )
            if mem_cap_mib is not None and peak_seen > mem_cap_mib:
                killed = "memory_capped"
            elif cpu_over or time.monotonic() >= deadline:
                killed = "timed_out" if started is not None else "setup_timed_out"
            if killed:
                cpu_seen = _cpu_seconds(proc.pid) - cpu0 if started is not None else None
                proc.kill()
                proc.wait()
                break
            continue
        if line is None:
            break
        if line.startswith(START):
            started = time.monotonic()
            cpu0 = _cpu_seconds(proc.pid)
            if limit_s is not None:
                factor = CPU_WALL_FACTOR if clock == "cpu" else 1.0
                deadline = started + factor * limit_s * 1.02 + 0.5
        elif line.startswith(RESULT):
            result = json.loads(line[len(RESULT) :])
    proc.wait()
    if killed:
        return {
            killed: True,
            "wall_s_lower_bound": (time.monotonic() - started) if started else None,
            "cpu_s_lower_bound": cpu_seen,
            "peak_rss_mib_seen": peak_seen,
            "isolated": True,
        }
    if result is None:
        raise RuntimeError(
            f"measurement {kind} {spec} failed (exit {proc.returncode}):\n" + "".join(err_tail)
        )
    result["isolated"] = True
    if limit_s is not None and result.get(f"{clock}_s", 0.0) > limit_s:
        result["over_limit"] = True
    return result


CPU_WALL_FACTOR = 10.0  # clock="cpu": the wall-clock backstop, in units of the limit


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc; 0 where unavailable)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_main(argv: list[str], kinds: dict[str, Callable]) -> int:
    """Entry point of a measurement process: ``--child KIND SPEC_JSON``."""
    kind, spec = argv[0], json.loads(argv[1])

    def mark_start() -> None:
        print(START, flush=True)

    res = kinds[kind](spec, mark_start)
    print(RESULT + json.dumps(res, default=_jsonable), flush=True)
    return 0


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x)}")


# --------------------------------------------------------------------------- the comparison


def compare(
    n: int,
    *,
    prep: dict[str, Any] | None = None,
    inprocess: bool = False,
    cap_s: float = TIME_CAP_S,
    threads: int | None = None,
) -> dict[str, Any]:
    """One row of the comparison at size ``n``."""
    prep = prep or prepare(n)
    ref, sel = prep["ref"], prep["step"]
    m, k = ref["m"], ref["k"]
    t_k = ref["events"][k - 1] * (1 + 2 * EVENT_RTOL) if k else None
    flow = run_measure(
        __file__,
        "flow",
        {"n": n, "m": m, "target_loss": ref["target_loss"], "t_k": t_k},
        inprocess=inprocess,
    )
    lr = sel["lr"]
    tspec = {
        "n": n,
        "m": m,
        "lr": lr,
        "target_loss": ref["target_loss"],
        "max_steps": math.ceil(HORIZON * ref["t_end"] / lr) + 2,
        "steps_pred": sel["steps"],
        "cap_s": cap_s,
        "threads": threads,
    }
    tch = run_measure(__file__, "torch", tspec, inprocess=inprocess)
    flow_err = event_error(flow["events"], ref["events"], k)
    torch_err = (
        event_error(tch["events"], ref["events"], k) if tch.get("events") is not None else None
    )
    torch_ok = (
        tch["status"] == "loss_tol" and torch_err is not None and torch_err <= EVENT_RTOL
        if not tch["extrapolated"]
        else None
    )
    return {
        "n": n,
        "m": m,
        "scale": SCALE,
        "k": k,
        "lr": lr,
        "gd_steps": tch["steps"],
        "target_loss": ref["target_loss"],
        "interpolates": ref["interpolates"],
        "ref": ref,
        "step_selection": sel,
        "flow": flow,
        "torch": tch,
        "flow_event_err": flow_err,
        "torch_event_err": torch_err,
        "torch_checked": torch_ok,
        "gd_event_err": sel["best"]["event_err"],
        "ratio": tch["wall_s"] / flow["wall_s"],
        "extrapolated": bool(tch["extrapolated"]),
        # where the time goes: up to just after the k-th event (t_k · 1.02) only
        "t_k": t_k,
        "gd_steps_to_k": math.ceil(t_k / lr) if t_k else None,
        "torch_to_k_s": tch["per_step_s"] * math.ceil(t_k / lr) if t_k else None,
        "flow_to_k_s": flow.get("to_event_k_s"),
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    """Part 1's table: one line per size, then the legend."""
    hdr = (
        f"{'n':>5} {'m':>3} {'k':>2} {'eta':>6} {'GD steps':>8} {'flow s':>8} {'torch s':>9} "
        f"{'ratio':>7} {'flow peak MiB':>14} {'torch peak MiB':>15} {'err flow':>8} "
        f"{'err GD':>7}"
    )
    out = [hdr, "-" * len(hdr)]
    for r in rows:
        f, t = r["flow"], r["torch"]
        mark = "*" if r["extrapolated"] else " "
        gd_err = r["torch_event_err"] if r["torch_event_err"] is not None else r["gd_event_err"]
        fm = f"{f['peak_rss_mib']:.0f} (+{f['peak_delta_mib']:.0f})"
        tm = f"{t['peak_rss_mib']:.0f} (+{t['peak_delta_mib']:.0f})"
        out.append(
            f"{r['n']:>5} {r['m']:>3} {r['k']:>2} {r['lr']:>6.3g} {r['gd_steps']:>8} "
            f"{f['wall_s']:>8.3f} {t['wall_s']:>8.2f}{mark} {r['ratio']:>6.1f}x "
            f"{fm:>14} {tm:>15} {r['flow_event_err']:>8.1e} {gd_err:>7.1e}"
        )
    out.append(
        "eta: baseline step (largest 2^j with the first k activation times within 1 % of the "
        "reference flow); err: largest relative error of those k times; peak: resident set "
        "of the measuring process (+ growth during the run)"
    )
    if any(r["extrapolated"] for r in rows):
        out.append("* extrapolated: a fixed number of torch steps timed, x the predicted count")
    return "\n".join(out)


def run(
    sizes=SIZES,
    *,
    inprocess: bool = False,
    cap_s: float = TIME_CAP_S,
    threads=None,
    preps: dict[int, dict] | None = None,
    log=print,
) -> dict[str, Any]:
    """Part 1 for every size; ``preps`` caches reference and step per ``n`` (filled in)."""
    preps = {} if preps is None else preps
    rows = []
    for n in sizes:
        t0 = time.perf_counter()
        if n not in preps:
            preps[n] = prepare(n)
        p = preps[n]
        log(
            f"  n = {n}: reference {p['ref']['wall_s']:.1f} s ({p['ref']['status']}, "
            f"t_end {p['ref']['t_end']:.0f}), step {p['step']['lr']:g} after "
            f"{len(p['step']['trials'])} trials ({time.perf_counter() - t0:.1f} s)"
        )
        rows.append(compare(n, prep=p, inprocess=inprocess, cap_s=cap_s, threads=threads))
        r = rows[-1]
        log(
            f"  n = {n}: flow {r['flow']['wall_s']:.2f} s, torch {r['torch']['wall_s']:.2f} s"
            f"{' (extrapolated)' if r['extrapolated'] else ''}, ratio {r['ratio']:.1f}"
        )
    return {"rows": rows}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child_main(argv[1:], KINDS)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help=f"tiny sizes {SMOKE_SIZES}")
    p.add_argument("--sizes", type=int, nargs="+", help=f"sizes n (default {SIZES})")
    p.add_argument("--cap-s", type=float, default=TIME_CAP_S, help="torch time cap (s)")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    args = p.parse_args(argv)
    sizes = args.sizes or (SMOKE_SIZES if args.smoke else SIZES)
    res = run(sizes, cap_s=args.cap_s)
    print(
        f"\nreluflow flow vs PyTorch GD, λ = {SCALE:g} ({platform.machine()}, "
        f"{os.cpu_count()} cores)"
    )
    print(format_table(res["rows"]))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2, default=_jsonable)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
