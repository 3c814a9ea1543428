"""Time the jump process (reluflow.limit) against a straightforward NumPy implementation.

    python benchmarks/bench_limit.py [--quick] [--json OUT]

The baseline below is the obvious transcription of docs/limit.md: draw the
full Gaussian initialisation with ``init_network``, build the m x n boolean
matrix ``S``, and at every event recompute every rate from scratch with masked
sums (O(m n) per event). It does not resolve ties (it only needs the events),
the library does, so the ratio is conservative. Both must produce the same
events: times, activating neurons, fitted counts.

Sizes: n in {1e4, 1e5, 1e6}, m = 80, balanced ±1 labels, unit norms, median
of a few repeats; then (unless --quick) n = 1e7, m = 100 once, in a fresh
process, reporting its wall time and peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

from reluflow.data import orthogonal_data
from reluflow.limit import TIE_RTOL, jump_process
from reluflow.network import init_network


def baseline_jump_process(data, m: int, seed: int, tie_rtol: float = TIE_RTOL):
    """The §4 process, naively: returns (tau, neurons, fitted counts) per event."""
    y = data.y
    n = data.n
    net = init_network(data, m, 1.0, seed=seed)  # the full m x n Gaussians
    s = np.sign(net.a)
    S = (net.u > 0) & (s[:, None] * y[None, :] > 0)
    w = y**2 * data.sq_norms()
    fitted = np.zeros(n, dtype=bool)
    done = np.zeros(m, dtype=bool)
    p = -np.ones(m)
    tau = 0.0
    taus, neurons, counts = [], [], []
    while True:
        rem = S & ~fitted[None, :]
        gam = np.sqrt(rem.astype(np.float64) @ w) / n  # every rate, from scratch
        gam[done] = 0.0
        live = np.flatnonzero(gam > 0)
        if live.size == 0:
            break
        t_hit = tau - p[live] / gam[live]
        t_min = t_hit.min()
        group = live[t_hit <= t_min * (1 + tie_rtol)]
        p += gam * (t_min - tau)
        tau = t_min
        new = rem[group].any(axis=0)
        fitted |= new
        done[group] = True
        taus.append(tau)
        neurons.append(tuple(int(j) for j in group))
        counts.append(int(new.sum()))
    return np.array(taus), neurons, counts


def _time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _large(n: int, m: int, seed: int) -> dict:
    data = orthogonal_data(n, seed=seed)
    t0 = time.perf_counter()
    res = jump_process(data, m, seed=seed)
    wall = time.perf_counter() - t0
    rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB
    return {"n": n, "m": m, "seed": seed, "wall_s": wall, "peak_rss_gib": rss_gib,
            "events": res.n_events, "ties": res.n_ties, "interpolates": res.interpolates,
            "ratio": res.ratio}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, no n = 1e7 run")
    ap.add_argument("--json", metavar="OUT", help="write the measurements as JSON")
    ap.add_argument("--large-only", nargs=3, type=int, metavar=("N", "M", "SEED"),
                    help=argparse.SUPPRESS)  # the fresh process of the large run
    args = ap.parse_args(argv)
    if args.large_only:
        print(json.dumps(_large(*args.large_only)))
        return 0

    sizes = [10**4, 10**5] if args.quick else [10**4, 10**5, 10**6]
    m, seed = 80, 0
    repeats = 3 if args.quick else 5
    rows = []
    print(f"{'n':>9} {'m':>4} {'jump_process s':>15} {'baseline s':>11} {'ratio':>7} "
          f"{'events':>7} {'ties':>5} agree")
    for n in sizes:
        data = orthogonal_data(n, seed=seed)
        jump_process(data, m, seed=seed)  # warm-up (first-touch page faults)
        t_fast, res = _time(lambda d=data: jump_process(d, m, seed=seed), repeats)
        t_base, (tau, neurons, counts) = _time(lambda d=data: baseline_jump_process(d, m, seed),
                                               max(1, repeats // 2))
        agree = (list(res.event_neurons) == neurons and list(res.event_fitted) == counts
                 and np.allclose(res.tau, tau, rtol=1e-12))
        rows.append({"n": n, "m": m, "jump_process_s": t_fast, "baseline_s": t_base,
                     "speedup": t_base / t_fast, "events": res.n_events, "ties": res.n_ties,
                     "agree": bool(agree)})
        print(f"{n:>9} {m:>4} {t_fast:>15.4f} {t_base:>11.4f} {t_base / t_fast:>7.1f} "
              f"{res.n_events:>7} {res.n_ties:>5} {agree}")
    out = {"table": rows}
    if not args.quick:
        cmd = [sys.executable, __file__, "--large-only", str(10**7), "100", str(seed)]
        large = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        out["large"] = large
        print(f"n = 1e7, m = 100: {large['wall_s']:.2f} s, peak RSS {large['peak_rss_gib']:.2f} GiB, "
              f"{large['events']} events, {large['ties']} ties, interpolates {large['interpolates']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0 if all(r["agree"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
