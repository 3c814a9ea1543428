"""Benchmark of the exact gradient flow: the numba engine against the numpy reference.

Orthogonal data, balanced ±1 labels, unit norms, balanced initialisation at
λ = 1e-8, integrated with the default stopping rules (through the last saddle
until nothing moves). Cases:

* n = 1000, m = 24: numba (median of 3) and numpy (1 run), side by side;
* n = 4000, m = 2⌈log2 n⌉ + 4 = 28: numba only.

Compile time is excluded from the timings (a warm-up call comes first) but
reported: the first call in this process (numba's on-disk cache, if present)
and a cold compile in a fresh process with an empty cache.

Cost at any scale (``--scales``, and part 4 of ``run_all.py``): the numba flow
at λ = 1e-8, 1e-1000 and 1e-10000 on the same data (n = 1000 and 4000, median of
three runs): per-neuron log-scales and closed-form plateaus make the cost of a
run independent of log(1/λ) once the neurons' activations are separated.

Each case also records its CPU time (``cpu_s``, this process) and the 1-minute load
average: on a shared machine the wall time includes waiting for a core.

Usage: python benchmarks/bench_flow.py [--quick] [--scales] [--json OUT]
(--quick: n = 200 for the side by side comparison, n = 1000 numba only, one run each.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from reluflow.data import orthogonal_data
from reluflow.flow import gradient_flow
from reluflow.network import init_network

SCALE = 1e-8

_COLD = """
import time
t0 = time.perf_counter()
from reluflow.data import orthogonal_data
from reluflow.network import init_network
from reluflow.flow import gradient_flow
t1 = time.perf_counter()
d = orthogonal_data(8, seed=0)
gradient_flow(d, init_network(d, 3, 1e-3, seed=0), engine="numba")
print(time.perf_counter() - t1)
"""


def width(n: int) -> int:
    return 2 * math.ceil(math.log2(n)) + 4


def cold_compile_seconds() -> float | None:
    """First numba call in a fresh interpreter with an empty numba cache."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=tmp)
        try:
            out = subprocess.run(
                [sys.executable, "-c", _COLD],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=600,
            )
        except (subprocess.SubprocessError, OSError):
            return None
        return float(out.stdout.strip().splitlines()[-1])


SCALES = ("1e-8", "1e-1000", "1e-10000")


def scale_cost(sizes: tuple[int, ...] = (1000, 4000), repeats: int = 3) -> list[dict]:
    """The numba flow at each λ of :data:`SCALES` on the same data, per n (median wall time)."""
    d0 = orthogonal_data(8, seed=0)
    gradient_flow(d0, init_network(d0, 3, "1e-1000", seed=0))  # compile / load the cache
    rows = []
    for n in sizes:
        base = base_cpu = None
        for scale in SCALES:
            r = run_case(n, width(n), "numba", repeats, scale=scale)
            base, base_cpu = base or r["wall_s"], base_cpu or r["cpu_s"]
            r["vs_1e-8"] = r["wall_s"] / base
            r["cpu_vs_1e-8"] = r["cpu_s"] / base_cpu
            r.pop("_traj")
            rows.append(r)
    return rows


def format_scale_cost(rows: list[dict]) -> str:
    hdr = f"{'n':>6} {'m':>4} {'lambda':>9} {'wall s':>8} {'cpu s':>7} {'steps':>6} {'plateaus':>8} {'kinks':>6} {'status':>8} {'vs 1e-8':>8} {'cpu vs':>7} {'load':>5}"
    out = [hdr, "-" * len(hdr)]
    for r in rows:
        out.append(
            f"{r['n']:>6} {r['m']:>4} {r['scale']:>9} {r['wall_s']:>8.3f} {r['cpu_s']:>7.3f} "
            f"{r['steps']:>6} {r['plateau_jumps']:>8} {r['kinks']:>6} {r['status']:>8} "
            f"{r['vs_1e-8']:>7.2f}x {r['cpu_vs_1e-8']:>6.2f}x {r['loadavg_1m']:>5.2f}"
        )
    return "\n".join(out)


def run_case(n: int, m: int, engine: str, repeats: int, scale: float | str = SCALE) -> dict:
    d = orthogonal_data(n, seed=0)
    net = init_network(d, m, scale, seed=0)
    times, cpu, tr = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        tr = gradient_flow(d, net, engine=engine)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    assert tr is not None
    return {
        "n": n,
        "m": m,
        "scale": scale,
        "engine": engine,
        "repeats": repeats,
        "wall_s": statistics.median(times),
        "wall_all_s": times,
        # on a shared machine the CPU time of this process and the load tell how much of
        # the wall time was waiting for a core
        "cpu_s": statistics.median(cpu),
        "loadavg_1m": os.getloadavg()[0],
        "status": tr.status,
        "t_end": float(tr.t[-1]),
        "tau_end": float(tr.tau[-1]),
        "final_loss": tr.final_loss,
        "rows": int(tr.t.size),
        **tr.stats.as_dict(),
        "_traj": tr,
    }


def agreement(a, b) -> dict:
    A, B = a["_traj"], b["_traj"]
    same = (
        A.kink_t.size == B.kink_t.size
        and np.array_equal(A.kink_neuron, B.kink_neuron)
        and np.array_equal(A.kink_sample, B.kink_sample)
    )
    size = np.maximum(np.abs(A.final.a), np.abs(A.final.u).max(axis=1))
    out = {
        "same_status": A.status == B.status,
        "same_kinks": bool(same),
        "kink_t_rel": float(np.max(np.abs(A.kink_t - B.kink_t) / A.kink_t, initial=0.0))
        if same
        else None,
        "final_a_rel": float(np.max(np.abs(A.final.a - B.final.a) / np.abs(A.final.a))),
        "final_u_rel": float(np.max(np.abs(A.final.u - B.final.u) / size[:, None])),
    }
    if A.loss.shape == B.loss.shape:
        out["loss_rel"] = float(np.max(np.abs(A.loss - B.loss) / A.loss))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small side by side case, one run each")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    p.add_argument("--scales", action="store_true", help="only the cost at any scale")
    args = p.parse_args(argv)
    if args.scales:
        rows = scale_cost((1000,) if args.quick else (1000, 4000), 1 if args.quick else 3)
        print("reluflow gradient flow (numba) at any scale, orthogonal data, balanced ±1 labels")
        print(format_scale_cost(rows))
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(rows, fh, indent=2)
        return 0

    cold = cold_compile_seconds()
    t0 = time.perf_counter()
    d = orthogonal_data(8, seed=0)
    gradient_flow(d, init_network(d, 3, 1e-3, seed=0), engine="numba")
    first = time.perf_counter() - t0

    if args.quick:
        side_n, side_m, reps, big = 200, width(200), 1, [(1000, 24)]
    else:
        side_n, side_m, reps, big = 1000, 24, 3, [(4000, width(4000))]
    rows = []
    nb = run_case(side_n, side_m, "numba", reps)
    npy = run_case(side_n, side_m, "numpy", 1)
    rows += [nb, npy]
    agree = agreement(npy, nb)
    for n, m in big:
        rows.append(run_case(n, m, "numba", reps))

    print(
        f"reluflow gradient flow, orthogonal data, balanced ±1 labels, λ = {SCALE:g}, "
        f"default stopping rules ({platform.processor() or platform.machine()})"
    )
    print(
        f"numba compile: cold {cold:.2f} s (fresh process, empty cache)"
        if cold is not None
        else "numba compile: cold compile not measured"
    )
    print(f"numba first call in this process: {first:.2f} s (loads the on-disk cache if present)\n")
    hdr = f"{'n':>6} {'m':>4} {'engine':>7} {'wall s':>9} {'cpu s':>7} {'steps':>7} {'evals':>7} {'kinks':>6} {'status':>8} {'tau_end':>8} {'numpy/numba':>11} {'load':>5}"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        ratio = ""
        if r["engine"] == "numpy":
            ratio = f"{r['wall_s'] / nb['wall_s']:.1f}x"
        print(
            f"{r['n']:>6} {r['m']:>4} {r['engine']:>7} {r['wall_s']:>9.3f} {r['cpu_s']:>7.3f} "
            f"{r['steps']:>7} {r['evaluations']:>7} {r['kinks']:>6} {r['status']:>8} "
            f"{r['tau_end']:>8.3f} {ratio:>11} {r['loadavg_1m']:>5.2f}"
        )
    print(
        f"\nagreement at n = {side_n}: "
        + ", ".join(
            f"{k} = {v:.1e}" if isinstance(v, float) else f"{k} = {v}" for k, v in agree.items()
        )
    )

    if args.json:
        res = {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "compile_cold_s": cold,
            "first_call_s": first,
            "quick": args.quick,
            "cases": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
            "speedup": npy["wall_s"] / nb["wall_s"],
            "agreement": agree,
        }
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
