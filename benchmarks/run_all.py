"""Every benchmark against how the field simulates today, in one command.

    python benchmarks/run_all.py [--out benchmarks/results.json] [--quick | --smoke]

1. Flow vs PyTorch gradient descent (``bench_torch.py``): n ∈ {100, 1000, 4000},
   m = 2⌈log2 n⌉ + 4, λ = 1e-8; the baseline's largest step that reproduces the
   first k activation times within 1 %, both timed to the same target; wall
   times, their ratio and peak memory. Needs the ``torch`` extra
   (``pip install torch==2.13.0``); skipped with a note without it.
2. Limit vs straightforward NumPy (``bench_limit.py``): the jump process against
   the plain NumPy transcription of the same algorithm, n ∈ {10⁴, 10⁵, 10⁶}, m = 80.
3. Where it stops: for the flow (numba), torch GD (its selected step, to the
   target), the jump process and the NumPy baseline (m = 80), n doubles until a
   run exceeds the time limit (60 s) or would exceed the memory cap (24 GiB).
   Memory is predicted from the previous size before every run; a size whose
   prediction is above what this machine can safely hold now (``--run-cap-gib``,
   default 60 % of the available memory) is not run: its time is extrapolated
   from the two previous sizes and marked ``estimated``.
4. General data (``bench_general.py``): Gaussian inputs, d = 10 n, balanced labels,
   λ = 1e-8, n ∈ {100, 400, 1000, 2000}: the flow (closed-form initial phase, compiled
   BLAS engine) vs PyTorch GD (explicit X, step by the same 1 % rule) and vs the NumPy
   reference engine, each stopped at the time limit (60 s).

Every measurement runs in a fresh process (``--child``), so that its peak
resident memory (VmHWM) is its own and a run past the time limit can be stopped;
the timed part excludes imports, numba compilation (reported separately) and
building the problem. ``--smoke`` runs tiny sizes in seconds (what the tests
run); ``--quick`` smaller sizes and a 10 s limit. The tables are printed and
everything measured goes to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bench_general as BG
import bench_torch as BT
import numpy as np
from bench_limit import _time, baseline_jump_process

from reluflow import __version__, jump_process, orthogonal_data

HERE = Path(__file__).resolve().parent
LIMIT_M = 80
GIB = 1024.0  # MiB


# --------------------------------------------------------------------------- measurements


def measure_limit_table(spec: dict[str, Any], mark_start) -> dict[str, Any]:
    """Part 2: jump process vs the NumPy baseline (bench_limit's), same events required."""
    m, seed, repeats = spec["m"], spec.get("seed", 0), spec["repeats"]
    rows = []
    mark_start()
    for n in spec["sizes"]:
        data = orthogonal_data(n, seed=seed)
        jump_process(data, m, seed=seed)  # warm-up (first-touch page faults)
        t_fast, res = _time(lambda d=data: jump_process(d, m, seed=seed), repeats)
        t_base, (tau, neurons, counts) = _time(
            lambda d=data: baseline_jump_process(d, m, seed), max(1, repeats // 2)
        )
        agree = (
            list(res.event_neurons) == neurons
            and list(res.event_fitted) == counts
            and np.allclose(res.tau, tau, rtol=1e-12)
        )
        rows.append(
            {
                "n": n,
                "m": m,
                "jump_process_s": t_fast,
                "baseline_s": t_base,
                "ratio": t_base / t_fast,
                "events": res.n_events,
                "ties": res.n_ties,
                "interpolates": bool(res.interpolates),
                "agree": bool(agree),
                "repeats": [repeats, max(1, repeats // 2)],
            }
        )
    return {"rows": rows}


def _measure_single(fn, spec: dict[str, Any], mark_start) -> dict[str, Any]:
    data = orthogonal_data(spec["n"], seed=spec.get("seed", 0))
    rss0 = BT.reset_peak()
    mark_start()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(data)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = BT.peak_mib()
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_before_mib": rss0,
        "peak_rss_mib": peak,
        "peak_delta_mib": peak - rss0,
        "loadavg_1m": os.getloadavg()[0],
        **out,
    }


def measure_limit(spec: dict[str, Any], mark_start) -> dict[str, Any]:
    """One jump process run (no warm-up: what a user sees)."""

    def fn(data):
        res = jump_process(data, spec["m"], seed=spec.get("seed", 0))
        return {"events": res.n_events, "interpolates": bool(res.interpolates)}

    return _measure_single(fn, spec, mark_start)


def measure_limit_baseline(spec: dict[str, Any], mark_start) -> dict[str, Any]:
    """One run of bench_limit's NumPy baseline."""

    def fn(data):
        tau, _, _ = baseline_jump_process(data, spec["m"], spec.get("seed", 0))
        return {"events": int(len(tau))}

    return _measure_single(fn, spec, mark_start)


KINDS = {
    **BT.KINDS,
    **BG.KINDS,
    "limit_table": measure_limit_table,
    "limit": measure_limit,
    "limit_baseline": measure_limit_baseline,
}


def measure(kind: str, spec: dict[str, Any], cfg: dict[str, Any], **kw) -> dict[str, Any]:
    return BT.run_measure(__file__, kind, spec, inprocess=cfg["inprocess"], kinds=KINDS, **kw)


# --------------------------------------------------------------------------- configurations

CONFIGS = {
    "full": dict(
        sizes1=BT.SIZES,
        sizes2=(10**4, 10**5, 10**6),
        repeats2=5,
        limit_s=60.0,
        starts=dict(flow=1000, torch=1000, limit=10**6, limit_baseline=10**6),
        max_doublings=12,
        cold_compile=True,
        sizes4=BG.SIZES,
    ),
    "quick": dict(
        sizes1=(100, 1000),
        sizes2=(10**4, 10**5, 10**6),
        repeats2=3,
        limit_s=10.0,
        starts=dict(flow=1000, torch=1000, limit=10**6, limit_baseline=10**6),
        max_doublings=8,
        cold_compile=False,
        sizes4=(100, 400),
    ),
    "smoke": dict(
        sizes1=BT.SMOKE_SIZES,
        sizes2=(10**3, 10**4),
        repeats2=1,
        limit_s=2.0,
        starts=dict(flow=32, torch=16, limit=10**4, limit_baseline=10**4),
        max_doublings=1,
        cold_compile=False,
        sizes4=(24,),
    ),
}

METHODS = {
    "flow": "flow (reluflow, numba)",
    "torch": "GD (PyTorch, selected step)",
    "limit": "limit (reluflow jump process)",
    "limit_baseline": "limit (NumPy baseline)",
}


def _m_of(method: str, n: int) -> int:
    return BT.width(n) if method in ("flow", "torch") else LIMIT_M


def _mem_units(method: str, n: int) -> float:
    """What a method's memory grows with: X (n²) for torch, m·n otherwise."""
    return float(n) ** 2 if method == "torch" else float(_m_of(method, n) * n)


# --------------------------------------------------------------------------- part 1


def part1(cfg: dict[str, Any], preps: dict[int, dict], log) -> dict[str, Any]:
    try:
        import torch  # noqa: F401
    except ImportError:
        return {"skipped": "torch is not installed (pip install torch==2.13.0)"}
    cold = None
    if cfg["cold_compile"]:
        from bench_flow import cold_compile_seconds

        cold = cold_compile_seconds()
        log(f"  numba cold compile: {cold:.1f} s" if cold is not None else "  cold compile failed")
    rows = []
    for n in cfg["sizes1"]:
        t0 = time.perf_counter()
        if n not in preps:
            preps[n] = BT.prepare(n)
        p = preps[n]
        log(
            f"  n = {n}: reference flow {p['ref']['wall_s']:.1f} s ({p['ref']['status']} at "
            f"t = {p['ref']['t_end']:.0f}), step {p['step']['lr']:g} after "
            f"{len(p['step']['trials'])} trials ({time.perf_counter() - t0:.1f} s)"
        )
        rows.append(
            BT.compare(
                n,
                prep=p,
                inprocess=cfg["inprocess"],
                cap_s=cfg["torch_cap_s"],
                threads=cfg["threads"],
            )
        )
        r = rows[-1]
        log(
            f"  n = {n}: flow {r['flow']['wall_s']:.2f} s, torch {r['torch']['wall_s']:.2f} s"
            f"{' (extrapolated)' if r['extrapolated'] else ''}: ratio {r['ratio']:.1f}"
        )
    ratios = {r["n"]: r["ratio"] for r in rows}
    goal_n = 1000 if 1000 in ratios else None
    rs = [ratios[n] for n in sorted(ratios)]
    return {
        "rows": rows,
        "numba_cold_compile_s": cold,
        "numba_first_call_s": [r["flow"]["numba_first_call_s"] for r in rows],
        "torch_threads": rows[0]["torch"]["threads"] if rows else None,
        "goal": {
            "ratio_at_1000": ratios.get(1000),
            "ratio_ge_100_at_1000": (ratios[goal_n] >= 100) if goal_n else None,
            "ratio_grows_with_n": all(b > a for a, b in zip(rs, rs[1:], strict=False))
            if len(rs) > 1
            else None,
        },
    }


def format_part1(res: dict[str, Any]) -> str:
    if "skipped" in res:
        return f"skipped: {res['skipped']}"
    rows = res["rows"]
    out = [BT.format_table(rows)]
    for r in rows:
        if r.get("flow_to_k_s") is not None:
            out.append(
                f"n = {r['n']}: to just after event k only (t = {r['t_k']:.0f}, "
                f"{r['gd_steps_to_k']} GD steps): flow {r['flow_to_k_s']:.3f} s, "
                f"torch ≈ {r['torch_to_k_s']:.2f} s (its steps x its time per step)"
            )
    g = res["goal"]
    cold = res["numba_cold_compile_s"]
    out.append(
        "numba compile (excluded from the flow's time): "
        + (f"cold {cold:.1f} s (fresh process, empty cache); " if cold is not None else "")
        + "first call per measuring process (on-disk cache) "
        + ", ".join(f"{x:.2f}" for x in res["numba_first_call_s"])
        + f" s; torch threads {res['torch_threads']}"
    )
    if g["ratio_at_1000"] is not None:
        out.append(
            f"goal ≥ 100x at n = 1000: {'met' if g['ratio_ge_100_at_1000'] else 'NOT met'} "
            f"({g['ratio_at_1000']:.1f}x); ratio growing with n: "
            f"{'yes' if g['ratio_grows_with_n'] else 'no'}"
        )
    return "\n".join(out)


# --------------------------------------------------------------------------- part 2


def part2(cfg: dict[str, Any], log) -> dict[str, Any]:
    spec = {"sizes": list(cfg["sizes2"]), "m": LIMIT_M, "seed": 0, "repeats": cfg["repeats2"]}
    res = measure("limit_table", spec, cfg)
    at = {r["n"]: r for r in res["rows"]}
    big = max(at)
    res["goal"] = {
        "n": big,
        "jump_process_s": at[big]["jump_process_s"],
        "le_1s_at_1e6": at[10**6]["jump_process_s"] <= 1.0 if 10**6 in at else None,
    }
    for r in res["rows"]:
        log(
            f"  n = {r['n']}: jump process {r['jump_process_s']:.4f} s, "
            f"baseline {r['baseline_s']:.3f} s"
        )
    return res


def format_part2(res: dict[str, Any]) -> str:
    hdr = (
        f"{'n':>9} {'m':>3} {'jump process s':>15} {'NumPy baseline s':>17} {'ratio':>7} "
        f"{'events':>7} {'ties':>5} {'same events':>12}"
    )
    out = [hdr, "-" * len(hdr)]
    for r in res["rows"]:
        out.append(
            f"{r['n']:>9} {r['m']:>3} {r['jump_process_s']:>15.4f} {r['baseline_s']:>17.3f} "
            f"{r['ratio']:>6.1f}x {r['events']:>7} {r['ties']:>5} {str(r['agree']):>12}"
        )
    g = res["goal"]
    if g["le_1s_at_1e6"] is not None:
        out.append(
            f"goal ≤ 1 s at n = 10^6: {'met' if g['le_1s_at_1e6'] else 'NOT met'} "
            f"({g['jump_process_s']:.3f} s; median of {res['rows'][-1]['repeats'][0]}, "
            "baseline median of " + f"{res['rows'][-1]['repeats'][1]})"
        )
    return "\n".join(out)


# --------------------------------------------------------------------------- part 4


def part4(cfg: dict[str, Any], log) -> dict[str, Any]:
    """General (Gaussian, d = 10 n) data: flow vs PyTorch GD and the NumPy engine."""
    torch_ok = not cfg["skip_torch"]
    if torch_ok:
        try:
            import torch  # noqa: F401
        except ImportError:
            torch_ok = False
    return BG.run(
        cfg["sizes4"], limit_s=cfg["limit_s"], inprocess=cfg["inprocess"], torch=torch_ok, log=log
    )


# --------------------------------------------------------------------------- part 3


def _spec(
    method: str, n: int, preps: dict[int, dict], threads: int | None = None
) -> dict[str, Any]:
    if method == "flow":
        return {"n": n, "m": BT.width(n)}
    if method == "torch":
        p = preps[n]
        lr = p["step"]["lr"]
        return {
            "n": n,
            "m": p["ref"]["m"],
            "lr": lr,
            "target_loss": p["ref"]["target_loss"],
            "max_steps": math.ceil(BT.HORIZON * p["ref"]["t_end"] / lr) + 2,
            "steps_pred": p["step"]["steps"],
            "cap_s": None,
            "threads": threads,
        }
    return {"n": n, "m": LIMIT_M, "seed": 0}


def where_it_stops(
    method: str, cfg: dict[str, Any], preps: dict[int, dict], reuse: dict[int, dict], log
) -> dict[str, Any]:
    """Double n from the start size until a run passes the time limit or the memory cap.

    The time is the wall time, or with ``cfg["clock"] == "cpu"`` the measured
    process's CPU time (``key``): each point keeps both where measured.
    """
    limit_s, mem_cap, run_cap = cfg["limit_s"], cfg["mem_cap_mib"], cfg["run_cap_mib"]
    clock = cfg.get("clock", "wall")
    key = f"{clock}_s"
    n = cfg["starts"][method]
    points: list[dict[str, Any]] = []
    stop = None
    for _ in range(cfg["max_doublings"] + 1):
        m = _m_of(method, n)
        prev = [p for p in points if p.get(key) is not None]
        pt: dict[str, Any] = {"n": n, "m": m}
        pred_mib = None
        if prev:
            last = prev[-1]
            base = last["rss_before_mib"]
            grow = max(last["peak_rss_mib"] - base, 0.0)
            pred_mib = base + grow * _mem_units(method, n) / _mem_units(method, last["n"])
            pt["predicted_peak_mib"] = pred_mib
        if pred_mib is not None and pred_mib > mem_cap:
            pt.update(status="memory", estimated=True)
            points.append(pt)
            stop = "memory"
            break
        if pred_mib is not None and pred_mib > run_cap:
            # too big to run safely here: extrapolate the time from the last two sizes
            a, b = prev[-2:] if len(prev) > 1 else (None, prev[-1])
            p_exp = (
                max(1.0, math.log(b[key] / a[key]) / math.log(b["n"] / a["n"]))
                if a is not None
                else 1.0
            )
            wall = b[key] * (n / b["n"]) ** p_exp
            pt.update(
                status="estimated",
                estimated=True,
                **{key: wall},
                peak_rss_mib=pred_mib,
                rss_before_mib=b["rss_before_mib"],
                time_exponent=p_exp,
            )
            points.append(pt)
            log(
                f"  {method} n = {n}: not run (predicted {pred_mib / GIB:.1f} GiB), "
                f"estimated {wall:.1f} s"
            )
            if wall > limit_s:
                stop = "time"
                break
            n *= 2
            continue
        load_before = os.getloadavg()[0]
        if method == "torch" and n in reuse:
            res = dict(reuse[n], reused_from_part1=True)
        else:
            if method == "torch" and n not in preps:
                if prev and prev[-1][key] * (n / prev[-1]["n"]) ** 2 > 2 * limit_s:
                    # per-step cost grows like n² (X @ Wᵀ) and the step count does not fall
                    wall = prev[-1][key] * (n / prev[-1]["n"]) ** 2
                    pt.update(
                        status="estimated",
                        estimated=True,
                        **{key: wall},
                        note="per-step cost ∝ n², same step count as the previous size",
                    )
                    points.append(pt)
                    log(f"  torch n = {n}: estimated {wall:.0f} s (not run)")
                    stop = "time"
                    break
                t0 = time.perf_counter()
                preps[n] = BT.prepare(n)
                log(f"  torch n = {n}: reference and step {time.perf_counter() - t0:.1f} s")
            res = measure(
                method,
                _spec(method, n, preps, cfg["threads"]),
                cfg,
                limit_s=limit_s,
                mem_cap_mib=run_cap,
                clock=clock,
            )
        # the 1-minute load average before and after the measurement (2 shared cores: a
        # load above 1 means the measured wall time includes waiting for a core)
        pt.update(loadavg_1m_before=load_before, loadavg_1m=os.getloadavg()[0])
        if method == "torch":
            pt.update(lr=preps[n]["step"]["lr"], steps_pred=preps[n]["step"]["steps"])
        if res.get("timed_out") or res.get("memory_capped"):
            pt.update(
                status="timed_out" if res.get("timed_out") else "memory_capped",
                estimated=False,
                wall_s=None,
                wall_s_lower_bound=res["wall_s_lower_bound"],
                cpu_s_lower_bound=res.get("cpu_s_lower_bound"),
                peak_rss_mib_seen=res["peak_rss_mib_seen"],
            )
            points.append(pt)
            log(
                f"  {method} n = {n}: stopped ({pt['status']}) after "
                f"{res['wall_s_lower_bound']:.0f} s wall, "
                f"{res.get('cpu_s_lower_bound') or math.nan:.0f} s CPU (load {load_before:.2f} → "
                f"{pt['loadavg_1m']:.2f})"
            )
            stop = "time" if res.get("timed_out") else "memory"
            break
        pt.update(
            status="ok" if res[key] <= limit_s else "over_limit",
            estimated=False,
            wall_s=res["wall_s"],
            cpu_s=res.get("cpu_s"),
            peak_rss_mib=res["peak_rss_mib"],
            rss_before_mib=res["rss_before_mib"],
            run_status=res.get("status"),
            reused_from_part1=bool(res.get("reused_from_part1")),
        )
        points.append(pt)
        log(
            f"  {method} n = {n}: {res['wall_s']:.2f} s wall, "
            f"{res.get('cpu_s') or math.nan:.2f} s CPU, peak {res['peak_rss_mib']:.0f} MiB "
            f"(load {load_before:.2f} → {pt['loadavg_1m']:.2f})"
        )
        if res[key] > limit_s:
            stop = "time"
            break
        n *= 2
    ok = [
        p
        for p in points
        if p["status"] in ("ok", "estimated") and p.get(key) is not None and p[key] <= limit_s
    ]
    best = ok[-1] if ok else None
    return {
        "method": method,
        "label": METHODS[method],
        "points": points,
        "largest_n": best["n"] if best else None,
        "largest_n_estimated": bool(best and best["estimated"]),
        "stopped_by": stop or "max_doublings",
        "clock": clock,
        "stop_estimated": bool(points and points[-1]["estimated"]),
    }


def part3(
    cfg: dict[str, Any], preps: dict[int, dict], p1: dict[str, Any] | None, log
) -> dict[str, Any]:
    try:
        import torch  # noqa: F401

        have_torch = not cfg["skip_torch"]
    except ImportError:
        have_torch = False
    reuse = {}
    if p1 and "rows" in p1:
        reuse = {r["n"]: r["torch"] for r in p1["rows"] if not r["extrapolated"]}
    out = {
        "limit_s": cfg["limit_s"],
        "clock": cfg.get("clock", "wall"),
        "mem_cap_gib": cfg["mem_cap_mib"] / GIB,
        "run_cap_gib": cfg["run_cap_mib"] / GIB,
        "methods": [],
    }
    for method in METHODS:
        if method == "torch" and not have_torch:
            out["methods"].append(
                {
                    "method": method,
                    "label": METHODS[method],
                    "skipped": "torch not installed or --skip-torch",
                }
            )
            continue
        out["methods"].append(where_it_stops(method, cfg, preps, reuse, log))
    return out


def format_part3(res: dict[str, Any]) -> str:
    lim = res["limit_s"]
    clock = res.get("clock", "wall")
    key = f"{clock}_s"
    hdr = (
        f"{'method':<31} {'largest n ≤ ' + format(lim, 'g') + ' s':>17} "
        f"{'its ' + clock + ' s':>11} "
        f"{'its peak MiB':>13} {'load':>5}   next size"
    )
    out = [hdr, "-" * len(hdr)]
    for r in res["methods"]:
        if "skipped" in r:
            out.append(f"{r['label']:<31} skipped: {r['skipped']}")
            continue
        pts = r["points"]
        best = next((p for p in reversed(pts) if p["n"] == r["largest_n"]), None)
        nxt = pts[-1] if pts and pts[-1] is not best else None
        est = " (est.)" if r["largest_n_estimated"] else ""
        if best:
            col = (
                f"{best['n']:>10,}{est:<7} {best[key]:>11.2f} "
                f"{best.get('peak_rss_mib', float('nan')):>13.0f} "
                f"{best.get('loadavg_1m', float('nan')):>5.2f}"
            )
        else:
            col = f"{'none':>17} {'':>11} {'':>13} {'':>5}"
        if nxt is None:
            why = f"(stopped after {len(pts)} sizes)"
        elif nxt["status"] == "memory":
            why = (
                f"n = {nxt['n']:,}: would need {nxt['predicted_peak_mib'] / GIB:.1f} GiB "
                f"(estimated) > {res['mem_cap_gib']:g} GiB"
            )
        elif nxt["status"] == "timed_out":
            at = nxt.get(f"{key}_lower_bound") or nxt["wall_s_lower_bound"]
            why = f"n = {nxt['n']:,}: > {lim:g} s (stopped at {at:.0f} s)"
        elif nxt["status"] == "estimated":
            why = f"n = {nxt['n']:,}: ≈ {nxt[key]:.0f} s (estimated, not run)"
        else:
            why = f"n = {nxt['n']:,}: {nxt[key]:.1f} s"
        out.append(f"{r['label']:<31} {col}   {why}")
    out.append(
        f"flow, GD: m = 2⌈log2 n⌉+4, λ = 1e-8, to the same target as part 1 (GD) / default "
        f"stopping rules (flow); limit: m = {LIMIT_M}. est.: memory predicted from the previous "
        f"size above the run cap ({res['run_cap_gib']:.1f} GiB here), time extrapolated; "
        "load: 1-minute load average after the measurement"
        + (
            "; times are the measured process's CPU time (a shared machine's wall time "
            "includes waiting for a core)"
            if clock == "cpu"
            else ""
        )
    )
    return "\n".join(out)


# --------------------------------------------------------------------------- driver


def _meta(cfg: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    import numba
    import scipy

    try:
        import torch

        tv = torch.__version__
    except ImportError:
        tv = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=HERE,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {
        "command": " ".join(["python", "benchmarks/run_all.py", *argv]),
        "mode": cfg["mode"],
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "reluflow": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "torch": tv,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "mem_total_gib": _meminfo("MemTotal") / GIB / 1024,
        "mem_available_gib": _meminfo("MemAvailable") / GIB / 1024,
        "loadavg_start": os.getloadavg(),
        "isolated_processes": not cfg["inprocess"],
        "source_hash_start": _source_hash(),
    }


def _source_hash() -> str:
    """Hash of reluflow's source files: a run whose source changed mixes versions."""
    import hashlib

    import reluflow

    h = hashlib.sha256()
    root = Path(reluflow.__file__).resolve().parent
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _loads(obj: Any) -> list[float]:
    """Every ``loadavg_1m`` recorded by a measurement, anywhere in the results."""
    if isinstance(obj, dict):
        own = [obj["loadavg_1m"]] if isinstance(obj.get("loadavg_1m"), float) else []
        return own + [x for v in obj.values() for x in _loads(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in _loads(v)]
    return []


def _meminfo(field: str) -> float:
    """A /proc/meminfo field in KiB (0 if unavailable)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--child"]:
        return BT.child_main(argv[1:], KINDS)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smaller sizes, 10 s limit")
    mode.add_argument("--smoke", action="store_true", help="tiny sizes (seconds; the tests)")
    ap.add_argument("--out", default=str(HERE / "results.json"), help="JSON output file")
    ap.add_argument(
        "--parts", type=int, nargs="+", default=[1, 2, 3, 4, 5], choices=[1, 2, 3, 4, 5]
    )
    ap.add_argument("--skip-torch", action="store_true", help="leave out the PyTorch baseline")
    ap.add_argument(
        "--inprocess",
        action="store_true",
        help="measure in this process (no isolation, no time limit enforcement)",
    )
    ap.add_argument("--limit-s", type=float, help="part 3 time limit (default 60 s)")
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="part 3: count the time limit in wall time (default) or in the measured "
        "process's CPU time (on a machine shared with other work)",
    )
    ap.add_argument("--mem-cap-gib", type=float, default=24.0, help="part 3 memory cap")
    ap.add_argument(
        "--run-cap-gib",
        type=float,
        help="largest predicted peak actually run (default 60%% of MemAvailable)",
    )
    ap.add_argument(
        "--torch-cap-s",
        type=float,
        default=BT.TIME_CAP_S,
        help="part 1: extrapolate a torch run predicted to take longer",
    )
    ap.add_argument("--threads", type=int, help="torch threads, parts 1 and 3 (default: all cores)")
    args = ap.parse_args(argv)
    name = "smoke" if args.smoke else "quick" if args.quick else "full"
    cfg = dict(
        CONFIGS[name],
        mode=name,
        inprocess=args.inprocess,
        skip_torch=args.skip_torch,
        torch_cap_s=args.torch_cap_s,
        threads=args.threads,
        mem_cap_mib=args.mem_cap_gib * GIB,
        clock=args.clock,
    )
    if args.limit_s is not None:
        cfg["limit_s"] = args.limit_s
    avail = _meminfo("MemAvailable") / 1024 or cfg["mem_cap_mib"]
    cfg["run_cap_mib"] = min(
        cfg["mem_cap_mib"], args.run_cap_gib * GIB if args.run_cap_gib else 0.6 * avail
    )

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t_all = time.perf_counter()
    results: dict[str, Any] = {"meta": _meta(cfg, argv)}
    preps: dict[int, dict] = {}
    p1 = None
    if 1 in args.parts:
        log("part 1: flow vs PyTorch gradient descent")
        p1 = {"skipped": "--skip-torch"} if args.skip_torch else part1(cfg, preps, log)
        results["part1"] = p1
    if 2 in args.parts:
        log("part 2: jump process vs NumPy baseline")
        results["part2"] = part2(cfg, log)
    if 3 in args.parts:
        log("part 3: where it stops")
        results["part3"] = part3(cfg, preps, p1, log)
    if 4 in args.parts:
        log("part 4: general data, flow vs PyTorch GD and the NumPy engine")
        results["part4"] = part4(cfg, log)
    if 5 in args.parts:
        log("part 5: the flow at any scale")
        from bench_flow import scale_cost

        sizes = {"smoke": (200,), "quick": (1000,), "full": (1000, 4000)}[name]
        results["part5"] = scale_cost(sizes, 1 if name != "full" else 3)
    meta = results["meta"]
    meta["loadavg_end"] = os.getloadavg()
    meta["total_s"] = time.perf_counter() - t_all
    meta["source_hash_end"] = _source_hash()
    meta["source_changed_during_run"] = meta["source_hash_end"] != meta["source_hash_start"]
    loads = _loads(results)
    meta["max_loadavg_1m_at_measurements"] = max(loads) if loads else None

    print(
        f"reluflow {meta['reluflow']} benchmarks ({name}), {meta['cpu_count']} cores, "
        f"{meta['mem_total_gib']:.0f} GiB, torch {meta['torch']}, numba {meta['numba']}; "
        f"commit {str(meta['git_commit'])[:8]}{' + local changes' if meta['git_dirty'] else ''}"
        f"; load average {meta['loadavg_start'][0]:.2f} → {meta['loadavg_end'][0]:.2f} "
        + (
            f"(highest at a measurement {meta['max_loadavg_1m_at_measurements']:.2f})"
            if meta["max_loadavg_1m_at_measurements"] is not None
            else ""
        )
    )
    if meta["source_changed_during_run"]:
        print("WARNING: reluflow's source changed during this run: the numbers mix versions")
    if "part1" in results:
        print(f"\n1. Flow vs PyTorch GD (λ = {BT.SCALE:g}, m = 2⌈log2 n⌉+4, float64)")
        print(format_part1(results["part1"]))
    if "part2" in results:
        print(f"\n2. Jump process vs straightforward NumPy (m = {LIMIT_M})")
        print(format_part2(results["part2"]))
    if "part3" in results:
        print(
            f"\n3. Where it stops ({cfg['limit_s']:g} s {args.clock} time, "
            f"{args.mem_cap_gib:g} GiB)"
        )
        print(format_part3(results["part3"]))
    if "part4" in results:
        print(f"\n4. General data: Gaussian, d = 10 n, λ = {BG.SCALE:g}, float64")
        print(BG.format_table(results["part4"]["rows"], cfg["limit_s"]))
    if "part5" in results:
        from bench_flow import format_scale_cost

        print("\n5. The flow at any scale (numba, same data, median wall time)")
        print(format_scale_cost(results["part5"]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(results, fh, indent=2, default=BT._jsonable)
    print(f"\nwrote {args.out} ({meta['total_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
