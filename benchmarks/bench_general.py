"""reluflow's gradient flow on general (Gaussian) data against PyTorch GD and the NumPy engine.

    python benchmarks/bench_general.py [--smoke] [--sizes N [N ...]] [--limit-s S] [--json OUT]
    python benchmarks/bench_general.py --census --sizes N [N ...]

(``benchmarks/run_all.py`` runs it as part 4.)

Problem per size ``n``: Gaussian inputs ``x_i ~ N(0, I_d/d)`` with ``d = 10 n`` (explicit
``X``), balanced ±1 labels, ``m = round(16 + 8 log10(n/100))`` (16 at n = 100, 24 at
n = 1000), λ = 1e-8, ``init_network(data, m, 1e-8, seed=0)``, to interpolation (the
flow's default ``loss_tol = 1e-10 · L0``).

Methods, each in a fresh process killed at ``--limit-s`` (default 60 s) after its timed
part starts:

* ``flow``: ``gradient_flow`` with default settings (numba engine on general data:
  closed-form initial phase, compiled solver; compile time excluded and reported);
* ``numpy``: the same flow on the reference engine (``engine="numpy"``);
* ``torch``: what the field writes: full parameters ``(a, W)`` with ``W`` the explicit
  first layer of the same initial point (``net.weights(data)``, so ``W Xᵀ = u``),
  float64 autograd, plain gradient descent at a fixed step ``η``, one thread (the flow
  uses one BLAS thread at these sizes too; ``threads`` in the spec changes it). ``η`` is the largest
  ``2^j`` whose descent (reluflow's reduced-coordinate ``gradient_descent``: the same
  iteration, step by step, ``tests/test_benchmarks.py``) reproduces the flow's first
  ``k = min(5, #activations)`` activation times within 1 %: the rule of
  ``bench_torch.py``. A torch run predicted (steps × time per step, from a probe) to
  exceed the limit is timed on a probe and extrapolated, marked ``*``.

Every row records ``/proc/loadavg`` at the measurement; BLAS and OpenMP threads are
whatever the environment sets (``run_all.py`` pins them), except the flow's own choice
(``reluflow._engines.general.blas_threads``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import bench_torch as BT
import numpy as np

from reluflow import gaussian_data, gradient_descent, gradient_flow, init_network

SCALE = 1e-8
SEED = 0
SIZES = (100, 400, 1000, 2000)
SMOKE_SIZES = (24, 40)
LIMIT_S = 60.0
HERE = Path(__file__).resolve().parent


def width(n: int) -> int:
    """``m = round(16 + 8 log10(n / 100))``: 16 at n = 100, 24 at n = 1000."""
    return max(4, round(16 + 8 * math.log10(n / 100)))


def problem(n: int, m: int | None = None):
    data = gaussian_data(n, 10 * n, seed=SEED, representation="explicit")
    return data, init_network(data, width(n) if m is None else m, SCALE, seed=SEED)


def _warm() -> float:
    t0 = time.perf_counter()
    d = gaussian_data(8, 80, seed=1, representation="explicit")
    gradient_flow(d, init_network(d, 3, 1e-6, seed=1))
    return time.perf_counter() - t0


def _flow_row(tr, wall: float) -> dict[str, Any]:
    return {
        "wall_s": wall,
        "status": tr.status,
        "t_end": float(tr.t[-1]),
        "final_loss": tr.final_loss,
        "steps": tr.stats.steps,
        "evaluations": tr.stats.evaluations,
        "kinks": tr.stats.kinks,
        "kink_steps": tr.stats.kink_steps,
        "sliding": tr.stats.sliding,
        "closed_form_t": tr.stats.closed_form_t,
        "drift": tr.conservation_drift,
        "events": BT.event_times(tr).tolist(),
        "blas_threads": tr.provenance["config"].get("blas_threads"),
        "loadavg_1m": os.getloadavg()[0],
    }


def event_census(n: int, m: int | None = None) -> dict[str, Any]:
    """Who owns the switching events after the closed-form phase (docs/general-data.md §4).

    Runs the benchmark's flow once with the engine's bulk hook wrapped: at every
    accepted step holding an event, the output share ``max_i |a_j| u_ji⁺ / |y_i|`` of
    the neurons with an event and of the smallest neuron, and whether the step was
    taken in bulk (every event neuron below ``eps`` of the labels).
    """
    import reluflow._engines.general as FG

    data, net = problem(n, m)
    original = FG._bulk_step
    rows: list[tuple[float, float, bool]] = []

    def census(*args):
        h, y, a, u, na, nu, Ku, maskb, sliding, slide = (
            args[i] for i in (4, 7, 9, 10, 15, 16, 13, 17, 18, 19)
        )
        ev = FG.SN.event_neurons(u, nu, Ku[0], maskb, sliding, slide[3], slide[0], h, args[23])
        amax = np.maximum(np.abs(a), np.abs(na))
        share = amax * np.max(np.maximum(np.maximum(u, nu), 0.0) / np.abs(y), axis=1)
        done = original(*args)
        if ev.any():
            rows.append((float(share[ev].max()), float(share.min()), bool(done)))
        return done

    FG._bulk_step = census
    try:
        t0 = time.perf_counter()
        tr = gradient_flow(data, net)
        wall = time.perf_counter() - t0
    finally:
        FG._bulk_step = original
    arr = np.array(rows) if rows else np.zeros((0, 3))
    q = (0.1, 0.5, 0.9)
    return {
        "n": n,
        "m": net.m,
        "wall_s": wall,
        "steps": tr.stats.steps,
        "kink_steps": tr.stats.kink_steps,
        "event_steps_after_phase": len(rows),
        "bulk_steps": int(arr[:, 2].sum()) if len(rows) else 0,
        "event_neuron_share_q10_50_90": np.quantile(arr[:, 0], q).tolist() if len(rows) else [],
        "smallest_neuron_share_q10_50_90": np.quantile(arr[:, 1], q).tolist() if len(rows) else [],
        "loadavg_1m": os.getloadavg()[0],
    }


def measure_flow(spec: dict[str, Any], mark_start) -> dict[str, Any]:
    first = _warm()
    data, net = problem(spec["n"], spec.get("m"))
    rss0 = BT.reset_peak()
    mark_start()
    wall, walls, tr = BT.repeat(lambda: gradient_flow(data, net))
    out = _flow_row(tr, wall)
    out.update(wall_all_s=walls, numba_first_call_s=first, peak_delta_mib=BT.peak_mib() - rss0)
    return out


def measure_numpy(spec: dict[str, Any], mark_start) -> dict[str, Any]:
    data, net = problem(spec["n"], spec.get("m"))
    mark_start()
    t0 = time.perf_counter()
    tr = gradient_flow(data, net, engine="numpy")
    return _flow_row(tr, time.perf_counter() - t0)


def gamma_max(data, net) -> float:
    """Largest initial growth rate ``sqrt(eᵀ K e)/n`` over neurons (``e = y ∘ 1_S``)."""
    e = np.where((net.u > 0) & (np.sign(net.a)[:, None] * data.y[None, :] > 0), data.y, 0.0)
    return float(np.sqrt(np.einsum("ji,ik,jk->j", e, data.gram(), e).max())) / data.n


def measure_select(spec: dict[str, Any], mark_start) -> dict[str, Any]:
    """The 1 % rule: largest ``η = 2^j`` whose descent reproduces the first k activation
    times within 1 % and reaches the flow's target within 1.5 times its duration (as
    ``bench_torch.descent_trial``: activation times are defined against the run's end)."""
    data, net = problem(spec["n"], spec.get("m"))
    ref = np.asarray(spec["events"], float)
    k = min(5, ref.size)
    t_max = BT.HORIZON * spec["t_end"]
    mark_start()

    def trial(lr: float) -> dict[str, Any]:
        t0 = time.perf_counter()
        tr = gradient_descent(
            data, net, lr, t_max=t_max, loss_tol=spec["target_loss"], stall_rate=0.0,
            max_steps=math.ceil(t_max / lr) + 2, points_per_decade=BT.REC_PPD,
            check_stability=False,
        )  # fmt: skip
        err = BT.event_error(BT.event_times(tr), ref, k)
        ok = tr.status == "loss_tol" and err <= BT.EVENT_RTOL
        return {"lr": lr, "ok": bool(ok), "event_err": err, "status": tr.status,
                "steps": tr.stats.steps, "wall_s": time.perf_counter() - t0}  # fmt: skip

    lr = 2.0 ** math.floor(math.log2(0.02 / gamma_max(data, net)))
    trials = [trial(lr)]
    up = trials[0]["ok"]
    while len(trials) < 8:
        lr = lr * 2 if up else lr / 2
        trials.append(trial(lr))
        if trials[-1]["ok"] != up:
            break
    passing = [t for t in trials if t["ok"]]
    best = max(passing, key=lambda t: t["lr"]) if passing else None
    return {"k": k, "trials": trials, "lr": best["lr"] if best else None,
            "event_err": best["event_err"] if best else None,
            "steps": best["steps"] if best else None}  # fmt: skip


def measure_torch(spec: dict[str, Any], mark_start) -> dict[str, Any]:
    import torch

    threads = int(spec.get("threads") or 1)
    torch.set_num_threads(threads)
    data, net = problem(spec["n"], spec.get("m"))
    X, W0, a0 = data.X, net.weights(data), net.a.copy()
    lr, steps_pred = float(spec["lr"]), int(spec["steps_pred"])
    BT.torch_descent(X, data.y, a0, W0, lr, max_steps=5, target_loss=-1.0)  # warm-up
    probe = BT.torch_descent(X, data.y, a0, W0, lr, max_steps=20, target_loss=-1.0)
    per_step = probe["wall_s"] / 20
    limit = float(spec.get("limit_s", LIMIT_S))
    res: dict[str, Any] = {"threads": threads, "lr": lr, "steps_pred": steps_pred,
                           "loadavg_1m": os.getloadavg()[0]}  # fmt: skip
    if steps_pred <= 0:  # the flow did not finish: its end time, hence the steps, unknown
        mark_start()
        out = BT.torch_descent(X, data.y, a0, W0, lr, max_steps=50, target_loss=-1.0)
        res.update(per_step_s=out["wall_s"] / 50, status="per_step_only", extrapolated=False)
        return res
    if per_step * steps_pred > 0.8 * limit:
        n_probe = int(max(10, min(steps_pred, 0.25 * limit / per_step)))
        mark_start()
        out = BT.torch_descent(X, data.y, a0, W0, lr, max_steps=n_probe, target_loss=-1.0)
        per_step = out["wall_s"] / n_probe
        res.update(wall_s=per_step * steps_pred, steps=steps_pred, probe_steps=n_probe,
                   extrapolated=True, status="extrapolated", per_step_s=per_step)  # fmt: skip
        return res
    rec_at = BT.record_steps(data, lr, int(spec["max_steps"]))
    mark_start()
    out = BT.torch_descent(X, data.y, a0, W0, lr, max_steps=int(spec["max_steps"]),
                           target_loss=float(spec["target_loss"]), rec_at=rec_at)  # fmt: skip
    tr = BT.torch_trajectory(data, net, X, out, lr)
    res.update(wall_s=out["wall_s"], steps=out["steps"], status=out["status"],
               extrapolated=False, final_loss=out["final_loss"],
               events=BT.event_times(tr).tolist(),
               per_step_s=out["wall_s"] / max(out["steps"], 1))  # fmt: skip
    return res


KINDS = {
    "gflow": measure_flow,
    "gnumpy": measure_numpy,
    "gselect": measure_select,
    "gtorch": measure_torch,
}


def compare(
    n: int, *, limit_s: float = LIMIT_S, inprocess: bool = False, torch: bool = True, log=print
):
    """One row: flow, NumPy engine, step selection and torch at size ``n``."""
    m = width(n)
    run = lambda kind, spec, lim: BT.run_measure(  # noqa: E731
        __file__, kind, spec, inprocess=inprocess, kinds=KINDS, limit_s=lim
    )
    flow = run("gflow", {"n": n, "m": m}, limit_s)
    log(f"  n = {n}: flow {flow.get('wall_s', flow.get('wall_s_lower_bound'))}")
    npy = run("gnumpy", {"n": n, "m": m}, limit_s)
    row: dict[str, Any] = {"n": n, "m": m, "d": 10 * n, "flow": flow, "numpy": npy}
    data, net = problem(n, m)
    L0 = float(data.y @ data.y) / (2 * n)
    if not torch:
        lr, t_end, estimated = None, None, False
    elif "events" in flow:
        sel = run("gselect", {"n": n, "m": m, "events": flow["events"], "t_end": flow["t_end"],
                              "target_loss": 1e-10 * L0}, None)  # fmt: skip
        row["select"] = sel
        lr, t_end, estimated = sel["lr"], flow["t_end"], False
    else:  # the flow did not finish: the rule's first guess, marked estimated
        lr = 2.0 ** math.floor(math.log2(0.02 / gamma_max(data, net)))
        t_end, estimated = None, True
        row["torch"] = run("gtorch", {"n": n, "m": m, "lr": lr, "steps_pred": 0}, limit_s)
    row["lr"], row["lr_estimated"] = lr, estimated
    if lr is not None and t_end is not None:
        steps_pred = (row.get("select") or {}).get("steps") or math.ceil(t_end / lr)
        tspec = {"n": n, "m": m, "lr": lr, "steps_pred": steps_pred,
                 "max_steps": math.ceil(1.5 * t_end / lr) + 2, "limit_s": limit_s,
                 "target_loss": 1e-10 * L0}  # fmt: skip
        row["torch"] = run("gtorch", tspec, limit_s)
        if "wall_s" in row["torch"] and "wall_s" in flow:
            row["ratio_torch"] = row["torch"]["wall_s"] / flow["wall_s"]
            if row["torch"].get("events"):
                k = min(5, len(flow["events"]))
                row["torch_event_err"] = BT.event_error(row["torch"]["events"], flow["events"], k)
    if "wall_s" in npy and "wall_s" in flow:
        row["ratio_numpy"] = npy["wall_s"] / flow["wall_s"]
    return row


def _fmt_time(res: dict[str, Any] | None) -> str:
    if res is None:
        return "-"
    if res.get("status") == "per_step_only":
        return f"{1e3 * res['per_step_s']:.1f}ms/st"
    if "wall_s" in res:
        return f"{res['wall_s']:.2f}{'*' if res.get('extrapolated') else ''}"
    if res.get("timed_out"):
        return f">{res.get('wall_s_lower_bound') or 0:.0f}"
    return "?"


def format_table(rows: list[dict[str, Any]], limit_s: float = LIMIT_S) -> str:
    hdr = (
        f"{'n':>5} {'m':>3} {'d':>6} {'flow s':>8} {'steps':>6} {'kinks':>6} {'cf t':>6} "
        f"{'numpy s':>8} {'eta':>6} {'torch s':>9} {'torch/flow':>10} {'numpy/flow':>10} "
        f"{'load':>5}"
    )
    out = [hdr, "-" * len(hdr)]
    for r in rows:
        f = r["flow"]
        tr = r.get("torch")
        rt = f"{r['ratio_torch']:.1f}x" if "ratio_torch" in r else "-"
        rn = f"{r['ratio_numpy']:.1f}x" if "ratio_numpy" in r else "-"
        eta = f"{r['lr']:.3g}" + ("~" if r.get("lr_estimated") else "") if r["lr"] else "-"
        out.append(
            f"{r['n']:>5} {r['m']:>3} {r['d']:>6} {_fmt_time(f):>8} {f.get('steps', '-'):>6} "
            f"{f.get('kinks', '-'):>6} {f.get('closed_form_t', 0):>6.0f} "
            f"{_fmt_time(r['numpy']):>8} {eta:>6} {_fmt_time(tr):>9} {rt:>10} {rn:>10} "
            f"{f.get('loadavg_1m', float('nan')):>5.1f}"
        )
    out.append(
        f"'>S': stopped at the {limit_s:g} s limit; '*': torch extrapolated from a probe "
        "(its steps to the flow's end time x time per step); ms/st: torch time per step where "
        "the flow's end time is unknown; eta: GD step by the 1 % rule "
        "('~': the rule's first guess, the flow not having finished); cf t: end of the "
        "closed-form phase; load: 1-min load average at the flow's measurement"
    )
    return "\n".join(out)


def run(
    sizes=SIZES, *, limit_s: float = LIMIT_S, inprocess: bool = False, torch: bool = True, log=print
):
    rows = [
        compare(n, limit_s=limit_s, inprocess=inprocess, torch=torch, log=log) for n in sizes
    ]
    return {"rows": rows, "limit_s": limit_s}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return BT.child_main(argv[1:], KINDS)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help=f"tiny sizes {SMOKE_SIZES}")
    p.add_argument("--sizes", type=int, nargs="+", help=f"sizes n (default {SIZES})")
    p.add_argument("--limit-s", type=float, default=LIMIT_S, help="per-method time limit")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    p.add_argument(
        "--census",
        action="store_true",
        help="instead: who owns the switching events after the phase (event_census)",
    )
    args = p.parse_args(argv)
    sizes = args.sizes or (SMOKE_SIZES if args.smoke else SIZES)
    if args.census:
        for n in sizes:
            print(json.dumps(event_census(n)))
        return 0
    res = run(sizes, limit_s=args.limit_s)
    print(f"\nreluflow flow on Gaussian data (d = 10 n, λ = {SCALE:g}) vs PyTorch GD and the "
          f"NumPy engine ({os.cpu_count()} cores)")  # fmt: skip
    print(format_table(res["rows"], args.limit_s))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2, default=BT._jsonable)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
