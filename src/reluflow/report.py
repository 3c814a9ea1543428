"""Figures, tables and a self-contained HTML report, rebuilt from a results store alone.

:func:`build_report` reads the runs of the three reference experiments
(:mod:`reluflow.reproduce`) from a :class:`~reluflow.store.ResultsStore`,
analyses them, draws the figures (PDF and PNG), and writes one HTML file with
the PNGs embedded (base64), the tables of the numbers behind each figure and
the provenance of each (runs, seeds, configuration, versions, config hashes).
Nothing is recomputed: ``reluflow reproduce`` and ``reluflow report`` share
this code path, so the report of a store is the report of the run.

Statistics.

* Probabilities of interpolation: Wilson score intervals (95%).
* The threshold boundary: for each ``n`` the width ``m₅₀`` where the
  probability crosses 1/2 (linear interpolation of the monotone envelope of
  the estimates in ``m``), then least squares ``m₅₀ = c log₂ n + b``; the
  standard error of ``c`` is the parametric bootstrap (binomial redraws of
  every cell) of the whole procedure. The exact curve gets the same
  procedure on the same grid (``c_exact``).
* Power laws ``‖θ‖² ∝ n^slope``: least squares on ``log ‖θ‖²`` against
  ``log n`` over every interpolating run, with the usual standard error.
* The ratio ``‖θ‖² / min ‖θ‖²``: mean per ``n`` with a 95% bootstrap interval
  (resampling runs); its apparent limit is the weighted least-squares fit
  ``r(n) = r_∞ − b n^(−α)`` over the limit's means (standard error from the
  fit's covariance), reported beside the mean at the largest ``n``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import html
import io
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._version import __version__
from .errors import InputError
from .theory import interpolation_probability

__all__ = [
    "Report",
    "analyse_bias",
    "analyse_incremental",
    "analyse_threshold",
    "build_report",
    "wilson_interval",
]

Z95 = 1.959963984540054
_BOOT = 1000  # bootstrap replicates
_BOOT_SEED = 20260527  # the bootstrap's own seed (recorded in the report)


# --------------------------------------------------------------------------- statistics


def wilson_interval(k: Any, n: Any, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion ``k / n`` (95% by default).

        centre = (p̂ + z²/2n) / (1 + z²/n),
        half   = z sqrt(p̂(1 − p̂)/n + z²/4n²) / (1 + z²/n).

    Unlike the normal interval it stays inside [0, 1] and is not empty at
    ``p̂ = 0`` or 1, where most cells of a threshold grid sit.
    """
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    p = np.divide(k, n, out=np.full_like(k, np.nan), where=n > 0)
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def _ols(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Least squares ``y = slope x + intercept`` with standard errors."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    k = x.size
    if k < 2 or np.ptp(x) == 0:
        return {"slope": math.nan, "slope_se": math.nan, "intercept": math.nan, "points": k}
    A = np.vstack([x, np.ones_like(x)]).T
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    dof = k - 2
    s2 = float(resid @ resid) / dof if dof > 0 else math.nan
    cov = s2 * np.linalg.inv(A.T @ A)
    return {
        "slope": float(coef[0]),
        "slope_se": float(math.sqrt(cov[0, 0])) if dof > 0 else math.nan,
        "intercept": float(coef[1]),
        "intercept_se": float(math.sqrt(cov[1, 1])) if dof > 0 else math.nan,
        "points": int(k),
    }


def _crossing(m: np.ndarray, p: np.ndarray, level: float = 0.5) -> float:
    """Where ``p(m)`` first reaches ``level`` (linear interpolation of its monotone envelope)."""
    order = np.argsort(m)
    m = np.asarray(m, float)[order]
    p = np.maximum.accumulate(np.asarray(p, float)[order])
    above = np.flatnonzero(p >= level)
    if above.size == 0 or above[0] == 0:
        return math.nan  # never reached, or reached already at the smallest width
    k = above[0]
    m0, m1, p0, p1 = m[k - 1], m[k], p[k - 1], p[k]
    return float(m0 + (level - p0) / (p1 - p0) * (m1 - m0)) if p1 > p0 else float(m1)


def _bootstrap_mean(x: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of ``x``."""
    x = np.asarray(x, float)
    if x.size < 2:
        return (float(x.mean()) if x.size else math.nan,) * 2
    idx = rng.integers(0, x.size, size=(_BOOT, x.size))
    means = x[idx].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


# --------------------------------------------------------------------------- reading the store


def _col(df: pd.DataFrame, name: str, default: Any = math.nan) -> pd.Series:
    return df[name] if name in df.columns else pd.Series(default, index=df.index)


def _scalar(v: Any) -> float:
    a = np.asarray(v, dtype=float).reshape(-1)
    return float(a[0]) if a.size else math.nan


def _interpolated(df: pd.DataFrame) -> pd.Series:
    """Whether each run interpolates: the stored flag, or for a flow without one its final loss.

    A sample the flow never fits keeps its residual ``y_i``, so with ±1 labels
    the final loss of a non-interpolating run is at least ``1/(2n)``; below
    ``1/(4n)`` every sample was fitted.
    """
    flag = _col(df, "interpolates", None)
    fallback = _col(df, "final_loss") < 0.25 / df["n"].astype(float)
    out = flag.where(flag.notna(), fallback)
    return out.astype(bool)


def _min_norm(df: pd.DataFrame) -> pd.Series:
    """``min ‖θ‖²`` per run: the stored value, else from the (regenerated, cheap) labels."""
    from .data import orthogonal_data
    from .theory import min_norm_sq

    mn = _col(df, "min_norm_sq").astype(float).copy()
    for i in mn.index[mn.isna()]:
        row = df.loc[i]
        d = orthogonal_data(
            int(row["n"]), labels=str(row.get("labels", "balanced")), seed=int(row["seed"])
        )
        mn.loc[i] = min_norm_sq(d.y, d.norms)
    return mn


# --------------------------------------------------------------------------- analyses


def analyse_incremental(frame: pd.DataFrame, arrays: Any) -> dict[str, Any]:
    """Experiment 1: the flow at each λ against the limit, on one instance.

    Args:
        frame: the store's rows of experiment ``incremental``.
        arrays: ``run_id -> dict`` of stored arrays (``ResultsStore.arrays``).

    Returns:
        ``flows`` and ``limit`` (the plotted series), ``table`` (one row per λ:
        events, largest activation-time gap to the limit, final loss, run id)
        and ``events`` (flow vs limit activation time per limit event).
    """
    lim_rows = frame[frame["dynamics"] == "limit"]
    flow_rows = frame[frame["dynamics"] != "limit"]
    if lim_rows.empty or flow_rows.empty:
        raise InputError(
            "the store holds no complete 'incremental' experiment (flow and limit runs)"
        )
    lim_row = lim_rows.iloc[0]
    la = arrays(lim_row["run_id"])
    init_loss = la.get("initial_loss", lim_row.get("initial_loss", math.nan))
    limit = {
        "tau": np.asarray(la["tau"], float),
        "plateau_loss": np.asarray(la["plateau_loss"], float),
        "initial_loss": _scalar(init_loss),
        "a": np.asarray(la["a"], float),
        "event_neuron": np.asarray(la["event_neuron"], int),
        "run_id": lim_row["run_id"],
    }
    flows, rows, ev_rows = [], [], []
    for _, r in flow_rows.sort_values("scale", ascending=False).iterrows():
        fa = arrays(r["run_id"])
        f = {
            "scale": float(r["scale"]),
            "tau": np.asarray(fa["tau"], float),
            "loss": np.asarray(fa["loss"], float),
            "a_abs": np.asarray(fa["a_abs"], float),
            "event_tau": np.asarray(fa["event_tau"], float),
            "event_neuron": np.asarray(fa["event_neuron"], int),
            "run_id": r["run_id"],
        }
        flows.append(f)
        tau_of = dict(zip(f["event_neuron"].tolist(), f["event_tau"].tolist(), strict=True))
        gaps = []
        for k, (tk, jk) in enumerate(zip(limit["tau"], limit["event_neuron"], strict=True)):
            tf = tau_of.get(int(jk), math.nan)
            gaps.append(abs(tf - tk))
            ev_rows.append(
                {
                    "scale": f["scale"],
                    "event": k,
                    "neuron": int(jk),
                    "tau_limit": float(tk),
                    "tau_flow": tf,
                    "gap": abs(tf - tk),
                }
            )
        a_gap = float(np.max(np.abs(f["a_abs"][-1] - np.abs(limit["a"]))))
        rows.append(
            {
                "scale": f["scale"],
                "log_inv_scale": math.log(1 / f["scale"]),
                "flow_events": int(f["event_tau"].size),
                "limit_events": int(limit["tau"].size),
                "max_tau_gap": float(np.nanmax(gaps)) if np.isfinite(gaps).any() else math.nan,
                "missing": int(np.isnan(gaps).sum()),
                "a_gap": a_gap,
                "final_loss": float(f["loss"][-1]),
                "limit_final_loss": float(limit["plateau_loss"][-1])
                if limit["tau"].size
                else limit["initial_loss"],
                "seed": int(r["seed"]),
                "run_id": r["run_id"],
            }
        )
    return {
        "flows": flows,
        "limit": limit,
        "table": pd.DataFrame(rows),
        "events": pd.DataFrame(ev_rows),
        "n": int(lim_row["n"]),
        "m": int(lim_row["m"]),
        "seed": int(lim_row["seed"]),
        "ties": _scalar(lim_row.get("ties", math.nan)),
    }


def _cells(df: pd.DataFrame) -> pd.DataFrame:
    df = df.assign(ok=_interpolated(df))
    g = df.groupby(["n", "m"], as_index=False).agg(
        trials=("ok", "size"),
        successes=("ok", "sum"),
        seed_min=("seed", "min"),
        seed_max=("seed", "max"),
    )
    g["p"] = g["successes"] / g["trials"]
    g["lo"], g["hi"] = wilson_interval(g["successes"], g["trials"])
    n = g["n"].astype(int)
    g["exact"] = [
        interpolation_probability(int(k) - int(k) // 2, int(k) // 2, int(m))
        for k, m in zip(n, g["m"], strict=True)
    ]
    return g


def _boundary(cells: pd.DataFrame, pcol: str) -> pd.DataFrame:
    rows = []
    for n, d in cells.groupby("n"):
        rows.append({"n": int(n), "m50": _crossing(d["m"].to_numpy(), d[pcol].to_numpy())})
    return pd.DataFrame(rows)


def _fit_boundary(b: pd.DataFrame) -> dict[str, float]:
    ok = b["m50"].notna()
    return _ols(np.log2(b.loc[ok, "n"].astype(float)), b.loc[ok, "m50"])


def analyse_threshold(frame: pd.DataFrame) -> dict[str, Any]:
    """Experiment 2: P(interpolation) per ``(n, m)`` cell, exact curve, boundary ``m₅₀ = c log₂ n + b``.

    Returns ``mc`` and ``flow`` (cells: ``n, m, trials, successes, p, lo, hi,
    exact``), ``exact`` (the exact P on every integer width of the plotted
    range), ``boundary`` (``n, m50_mc, m50_exact, m50_flow``) and ``fit``.
    """
    lim = frame[frame["dynamics"] == "limit"]
    if lim.empty:
        raise InputError("the store holds no 'threshold' limit runs")
    mc = _cells(lim)
    flow_df = frame[frame["dynamics"] != "limit"]
    flow = _cells(flow_df) if len(flow_df) else mc.iloc[0:0]
    if len(flow_df):
        flow["scale"] = float(flow_df["scale"].iloc[0])
    exact_rows = []
    for n, d in mc.groupby("n"):
        n = int(n)
        for m in range(max(1, int(d["m"].min()) - 1), int(d["m"].max()) + 2):
            exact_rows.append(
                {"n": n, "m": m, "p": interpolation_probability(n - n // 2, n // 2, m)}
            )
    exact = pd.DataFrame(exact_rows)
    b_mc = _boundary(mc, "p").rename(columns={"m50": "m50_mc"})
    b_ex = _boundary(exact, "p").rename(columns={"m50": "m50_exact"})
    b_grid = _boundary(mc, "exact").rename(columns={"m50": "m50_exact_grid"})
    boundary = b_mc.merge(b_ex, on="n").merge(b_grid, on="n")
    if len(flow):
        boundary = boundary.merge(
            _boundary(flow, "p").rename(columns={"m50": "m50_flow"}), on="n", how="left"
        )
    boundary["m50_mc_over_log2n"] = boundary["m50_mc"] / np.log2(boundary["n"])
    boundary["m50_exact_over_log2n"] = boundary["m50_exact"] / np.log2(boundary["n"])
    fit_mc = _fit_boundary(boundary.rename(columns={"m50_mc": "m50"}))
    fit_ex = _fit_boundary(boundary.rename(columns={"m50_exact": "m50"}))
    fit_grid = _fit_boundary(boundary.rename(columns={"m50_exact_grid": "m50"}))
    # parametric bootstrap of the whole procedure: redraw every cell ~ Binomial(trials, p̂)
    rng = np.random.default_rng(_BOOT_SEED)
    boots = []
    for _ in range(_BOOT // 2):
        redraw = mc.assign(p=rng.binomial(mc["trials"], mc["p"]) / mc["trials"])
        boots.append(_fit_boundary(_boundary(redraw, "p"))["slope"])
    boots = np.asarray(boots)
    boots = boots[np.isfinite(boots)]
    c_se = float(boots.std(ddof=1)) if boots.size > 2 else fit_mc["slope_se"]
    fit = {
        "c": fit_mc["slope"],
        "c_se": c_se,
        "c_se_ols": fit_mc["slope_se"],
        "b": fit_mc["intercept"],
        "c_exact": fit_ex["slope"],
        "b_exact": fit_ex["intercept"],
        "c_exact_grid": fit_grid["slope"],
        "points": fit_mc["points"],
        "bootstrap": int(boots.size),
        "c_natural_log": fit_mc["slope"] / math.log(2.0),
    }
    return {"mc": mc, "flow": flow, "exact": exact, "boundary": boundary, "fit": fit}


def _ratio_limit(pts: pd.DataFrame) -> dict[str, Any]:
    """Apparent limit of the mean ratio: weighted fit ``r(n) = r_∞ − b n^(−α)``."""
    from scipy.optimize import curve_fit

    d = pts.sort_values("n")
    n = d["n"].to_numpy(float)
    r = d["ratio"].to_numpy(float)
    se = np.maximum(d["ratio_se"].fillna(0).to_numpy(float), 1e-4)
    last = d.iloc[-1]
    out: dict[str, Any] = {
        "largest_n": int(last["n"]),
        "at_largest_n": float(last["ratio"]),
        "at_largest_n_lo": float(last["ratio_lo"]),
        "at_largest_n_hi": float(last["ratio_hi"]),
        "method": "mean at the largest n",
        "value": float(last["ratio"]),
        "lo": float(last["ratio_lo"]),
        "hi": float(last["ratio_hi"]),
        "se": float(last["ratio_se"]),
        "n_min": float(last["n"]),
    }
    if n.size >= 4:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                popt, pcov = curve_fit(
                    lambda x, rinf, b, al: rinf - b * x ** (-al),
                    n,
                    r,
                    p0=(r[-1], (r[-1] - r[0]) * n[0] ** 0.5, 0.5),
                    sigma=se,
                    absolute_sigma=True,
                    bounds=([0.0, -np.inf, 0.05], [np.inf, np.inf, 3.0]),
                    maxfev=20000,
                )
            rinf_se = float(math.sqrt(pcov[0, 0]))
            if np.isfinite(rinf_se) and rinf_se < 0.5 * abs(popt[0]):
                out.update(
                    method="weighted fit r(n) = r_inf - b n^(-alpha)",
                    value=float(popt[0]),
                    se=rinf_se,
                    lo=float(popt[0] - Z95 * rinf_se),
                    hi=float(popt[0] + Z95 * rinf_se),
                    alpha=float(popt[2]),
                    alpha_se=float(math.sqrt(pcov[2, 2])),
                    n_min=float(n[len(n) // 2]),
                )
        except (RuntimeError, ValueError):
            pass
    return out


def analyse_bias(frame: pd.DataFrame) -> dict[str, Any]:
    """Experiment 3: ``‖θ‖²`` of the learned interpolator against ``n``, and its ratio to the minimum.

    Only interpolating runs enter (the count left out is in ``points``).
    Returns ``points`` (per dynamics and ``n``), ``fits`` (log-log slopes) and
    ``ratio_limit``.
    """
    if frame.empty:
        raise InputError("the store holds no 'bias' runs")
    df = frame.copy()
    df["ok"] = _interpolated(df)
    df["min_norm_sq"] = _min_norm(df)
    df["norm_sq"] = _col(df, "norm_sq").astype(float)
    df["ratio"] = df["norm_sq"] / df["min_norm_sq"]
    rng = np.random.default_rng(_BOOT_SEED)
    rows = []
    for (dyn, n), d in df.groupby(["dynamics", "n"]):
        ok = d[d["ok"] & d["norm_sq"].notna()]
        k = len(ok)
        lo, hi = _bootstrap_mean(ok["ratio"].to_numpy(), rng)
        rows.append(
            {
                "dynamics": dyn,
                "n": int(n),
                "m": int(d["m"].iloc[0]),
                "scale": float(d["scale"].iloc[0]) if "scale" in d and dyn != "limit" else math.nan,
                "runs": int(len(d)),
                "interpolating": k,
                "norm_sq": float(ok["norm_sq"].mean()) if k else math.nan,
                "norm_sq_se": float(ok["norm_sq"].std(ddof=1) / math.sqrt(k))
                if k > 1
                else math.nan,
                "min_norm_sq": float(ok["min_norm_sq"].mean()) if k else math.nan,
                "ratio": float(ok["ratio"].mean()) if k else math.nan,
                "ratio_se": float(ok["ratio"].std(ddof=1) / math.sqrt(k)) if k > 1 else math.nan,
                "ratio_lo": lo,
                "ratio_hi": hi,
                "seed_min": int(d["seed"].min()),
                "seed_max": int(d["seed"].max()),
            }
        )
    points = pd.DataFrame(rows).sort_values(["dynamics", "n"]).reset_index(drop=True)
    fits = {}
    ok = df[df["ok"] & df["norm_sq"].notna()]
    for dyn in ("limit", "flow"):
        d = ok[ok["dynamics"] == dyn]
        fits[dyn] = _ols(np.log(d["n"].astype(float)), np.log(d["norm_sq"]))
        # the asymptotic slope: the upper half of the n grid (the ratio still grows at small n)
        ns = np.sort(d["n"].unique())
        if ns.size >= 4:
            big = d[d["n"] >= ns[ns.size // 2]]
            fits[f"{dyn}_large_n"] = _ols(np.log(big["n"].astype(float)), np.log(big["norm_sq"]))
            fits[f"{dyn}_large_n"]["n_from"] = int(ns[ns.size // 2])
    d = ok[ok["dynamics"] == "limit"] if (ok["dynamics"] == "limit").any() else ok
    fits["min_norm"] = _ols(np.log(d["n"].astype(float)), np.log(d["min_norm_sq"]))
    lim_pts = points[(points["dynamics"] == "limit") & points["ratio"].notna()]
    ratio_limit = _ratio_limit(lim_pts) if len(lim_pts) else {}
    flow_pts = points[(points["dynamics"] == "flow") & points["ratio"].notna()]
    paired = _paired_flow_limit(ok)
    return {
        "points": points,
        "fits": fits,
        "ratio_limit": ratio_limit,
        "flow_largest": flow_pts.iloc[-1].to_dict() if len(flow_pts) else {},
        "paired": paired,
    }


def _paired_flow_limit(ok: pd.DataFrame) -> pd.DataFrame:
    """Flow against limit on the same ``(n, m, seed)`` (same initial signs): relative norm gap."""
    lim = ok[ok["dynamics"] == "limit"][["n", "m", "seed", "norm_sq"]]
    flo = ok[ok["dynamics"] == "flow"][["n", "m", "seed", "norm_sq"]]
    j = flo.merge(lim, on=["n", "m", "seed"], suffixes=("_flow", "_limit"))
    if j.empty:
        return pd.DataFrame(columns=["n", "pairs", "rel_gap_mean", "rel_gap_max"])
    j["rel_gap"] = (j["norm_sq_flow"] - j["norm_sq_limit"]) / j["norm_sq_limit"]
    return j.groupby("n", as_index=False).agg(
        pairs=("rel_gap", "size"),
        rel_gap_mean=("rel_gap", "mean"),
        rel_gap_max=("rel_gap", lambda s: float(np.abs(s).max())),
    )


# --------------------------------------------------------------------------- provenance


def _provenance(df: pd.DataFrame) -> dict[str, Any]:
    """Runs, seeds, the configuration shared by all runs, versions and a digest of config hashes."""
    skip = {"run_id", "config_hash", "created", "wall_s", "seed"}
    constant, varying = {}, {}
    for c in df.columns:
        if c in skip:
            continue
        vals = df[c].dropna().unique()
        if len(vals) == 1:
            v = vals[0]
            constant[c] = v.item() if isinstance(v, np.generic) else v
        elif 1 < len(vals) <= 12 and c in ("dynamics", "n", "m", "scale", "rtol", "version"):
            varying[c] = sorted(x.item() if isinstance(x, np.generic) else x for x in vals)
        elif len(vals) > 12 and c in ("n", "m"):
            varying[c] = f"{len(vals)} values in [{vals.min()}, {vals.max()}]"
    hashes = sorted(str(h) for h in _col(df, "config_hash", "").astype(str))
    seeds = df["seed"].astype(int)
    wanted = ("experiment", "data", "labels", "init", "n", "m", "scale", "rtol", "version")
    keep: dict[str, Any] = {}
    for dyn, dd in df.groupby("dynamics"):
        cfg = {}
        for c in wanted:
            if c in dd.columns:
                vals = dd[c].dropna().unique()
                if len(vals) == 1:
                    cfg[c] = vals[0].item() if isinstance(vals[0], np.generic) else vals[0]
        keep[str(dyn)] = cfg
    return {
        "runs": int(len(df)),
        "by_dynamics": {str(k): int(v) for k, v in df["dynamics"].value_counts().items()},
        "seeds": f"{seeds.min()}..{seeds.max()} ({seeds.nunique()} distinct)",
        "configuration": keep,
        "varying": varying,
        "versions": sorted(str(v) for v in _col(df, "version", "?").dropna().unique()),
        "config_hash_digest": hashlib.sha256("\n".join(hashes).encode()).hexdigest()[:16],
        "compute_s": float(_col(df, "wall_s", 0.0).fillna(0).sum()),
        "created": f"{_col(df, 'created', '').astype(str).min()} .. {_col(df, 'created', '').astype(str).max()}",
    }


# --------------------------------------------------------------------------- summary


def _summary_rows(inc: dict | None, thr: dict | None, bias: dict | None, prov: dict) -> list[dict]:
    rows: list[dict] = []

    def add(
        figure: str,
        quantity: str,
        value: float,
        error: float = math.nan,
        error_kind: str = "",
        detail: str = "",
    ) -> None:
        p = prov.get(figure, {})
        rows.append(
            {
                "figure": figure,
                "quantity": quantity,
                "value": value,
                "error": error,
                "error_kind": error_kind,
                "runs": p.get("runs", 0),
                "seeds": p.get("seeds", ""),
                "configuration": json.dumps(
                    p.get("configuration", {}), sort_keys=True, default=str
                ),
                "detail": detail,
            }
        )

    if inc is not None:
        t = inc["table"]
        add(
            "incremental",
            "limit events",
            float(inc["limit"]["tau"].size),
            detail=f"n = {inc['n']}, m = {inc['m']}, seed = {inc['seed']}, ties = {inc['ties']:g}",
        )
        for _, r in t.iterrows():
            add(
                "incremental",
                f"max |tau_flow - tau_limit| at lambda = {r['scale']:.0e}",
                r["max_tau_gap"],
                detail=f"flow events {r['flow_events']}, missing {r['missing']}, "
                f"max ||a_j| gap| {r['a_gap']:.3g}",
            )
    if thr is not None:
        f = thr["fit"]
        add(
            "threshold",
            "c in m50 = c log2(n) + b (limit MC)",
            f["c"],
            f["c_se"],
            f"bootstrap s.e. ({f['bootstrap']} redraws)",
            f"b = {f['b']:.3f}; c per ln n = {f['c_natural_log']:.3f}",
        )
        add(
            "threshold",
            "c from the exact curve (same n)",
            f["c_exact"],
            detail=f"b = {f['b_exact']:.3f}",
        )
        for _, r in thr["boundary"].iterrows():
            add(
                "threshold",
                f"m50 at n = {int(r['n'])}",
                r["m50_mc"],
                detail=f"exact {r['m50_exact']:.3f}"
                + (
                    f", flow {r['m50_flow']:.3f}"
                    if "m50_flow" in r and pd.notna(r.get("m50_flow"))
                    else ""
                ),
            )
        mc = thr["mc"]
        inside = ((mc["exact"] >= mc["lo"]) & (mc["exact"] <= mc["hi"])).mean()
        add(
            "threshold",
            "fraction of cells whose Wilson 95% CI holds the exact P",
            float(inside),
            detail=f"{len(mc)} cells",
        )
        if len(thr["flow"]):
            fl = thr["flow"]
            inside = ((fl["exact"] >= fl["lo"]) & (fl["exact"] <= fl["hi"])).mean()
            add(
                "threshold",
                "fraction of flow cells whose CI holds the exact P",
                float(inside),
                detail=f"{len(fl)} cells, lambda = {fl['scale'].iloc[0]:.0e}",
            )
    if bias is not None:
        for name in ("limit", "limit_large_n", "flow", "flow_large_n", "min_norm"):
            fit = bias["fits"].get(name)
            if fit and np.isfinite(fit["slope"]):
                frm = f", n >= {fit['n_from']}" if "n_from" in fit else ""
                add(
                    "bias",
                    f"log-log slope of |theta|^2 vs n ({name})",
                    fit["slope"],
                    fit["slope_se"],
                    "OLS s.e.",
                    f"{fit['points']} runs{frm}",
                )
        rl = bias["ratio_limit"]
        if rl:
            add(
                "bias",
                "ratio |theta|^2 / min at the largest n (limit)",
                rl["at_largest_n"],
                (rl["at_largest_n_hi"] - rl["at_largest_n_lo"]) / (2 * Z95),
                "bootstrap",
                f"n = {rl['largest_n']}",
            )
            add(
                "bias",
                "apparent limit of the ratio",
                rl["value"],
                rl["se"],
                "fit s.e." if "alpha" in rl else "s.e.",
                rl["method"] + (f"; alpha = {rl['alpha']:.3f}" if "alpha" in rl else ""),
            )
        fl = bias["flow_largest"]
        if fl:
            add(
                "bias",
                "ratio at the largest flow n",
                fl["ratio"],
                fl["ratio_se"],
                "s.e.",
                f"n = {int(fl['n'])}, lambda = {fl['scale']:.0e}",
            )
    return rows


# --------------------------------------------------------------------------- HTML


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1180px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.05em}
table{border-collapse:collapse;font-size:.82em;margin:.5em 0 1em}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}th{background:#f3f3f3}
td.l,th.l{text-align:left}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.88em;color:#444}
details{margin:.5em 0}summary{cursor:pointer;color:#225}
pre{background:#f7f7f7;padding:.5em;font-size:.8em;overflow-x:auto}
.note{color:#555;font-size:.9em}
"""


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        if not math.isfinite(v):
            return "–"
        return f"{v:.4g}"
    return html.escape(str(v))


def _table(df: pd.DataFrame, max_rows: int = 400) -> str:
    if df is None or df.empty:
        return "<p class='note'>(no rows)</p>"
    d = df.head(max_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in d.columns)
    body = []
    for _, r in d.iterrows():
        cells = []
        for c in d.columns:
            v = r[c]
            cls = " class='l'" if isinstance(v, str) else ""
            cells.append(f"<td{cls}>{_fmt(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (
        f"<p class='note'>{len(df) - max_rows} more rows in the CSV.</p>"
        if len(df) > max_rows
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def _png_b64(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _prov_html(p: dict) -> str:
    return (
        "<details><summary>provenance</summary><pre>"
        + html.escape(json.dumps(p, indent=1, sort_keys=True, default=str))
        + "</pre></details>"
    )


# --------------------------------------------------------------------------- build


@dataclass(frozen=True)
class Report:
    """What :func:`build_report` produced.

    Attributes:
        html: the HTML file. figures: the figure files written (PDF and PNG).
        summary: the summary table (figure, quantity, value, error, runs, seeds, configuration).
        analyses: per experiment, the analysis dict (tables and fits).
        provenance: per experiment, the provenance dict.
        figure_objects: per experiment, the matplotlib figure (closed after writing).
    """

    html: Path
    figures: tuple[Path, ...]
    summary: pd.DataFrame
    analyses: dict[str, dict[str, Any]] = field(default_factory=dict)
    provenance: dict[str, dict[str, Any]] = field(default_factory=dict)
    figure_objects: dict[str, Any] = field(default_factory=dict)


_CAPTIONS = {
    "incremental": (
        "Incremental learning. Training loss against τ = t / log(1/λ) for gradient flow at each λ "
        "(top), with the λ → 0 jump process's staircase dashed; below, every |a_j| of the flow at "
        "each λ on a log scale, the flow's activation events dotted and the limit's event times "
        "dashed. As λ → 0 the flow's plateaus and jumps converge onto the limit's (THEORY.md §4)."
    ),
    "threshold": (
        "Interpolation threshold. (a) P(interpolation) against the width m for each n: Monte Carlo "
        "of the limit (Wilson 95% intervals), the exact curve of THEORY.md §5 and the flow at small "
        "λ on the small n. (b) the Monte Carlo probability over (log₂ n, m), the measured 50% widths "
        "and the fitted boundary m = c log₂ n + b. (c) the curves against m / log₂ n."
    ),
    "bias": (
        "Implicit bias. (a) ‖θ‖² of the learned interpolator against n (log-log), limit and flow at "
        "small λ, with the minimal interpolating norm 2(√n₊ + √n₋) and fitted power laws. "
        "(b) the ratio to the minimal norm with 95% bootstrap intervals and its apparent limit. "
        "For reference, a neuron fitting half of the remaining same-sign samples at each saddle "
        "would give the ratio Σ_k 2^(−k/2) − 1 = 1 + √2 ≈ 2.414."
    ),
}


def build_report(
    store: Any,
    html_path: str | Path,
    *,
    figures_dir: str | Path | None = None,
    tables_dir: str | Path | None = None,
    plan: dict[str, Any] | None = None,
    keep_figures: bool = False,
) -> Report:
    """Analyse a results store and write the report (and optionally figures and tables).

    Args:
        store: a :class:`~reluflow.store.ResultsStore` or the path of one.
        html_path: the HTML file to write (self-contained: PNGs embedded).
        figures_dir: also write each figure there as PDF and PNG (``None``: do not).
        tables_dir: also write ``summary.csv``/``summary.json`` and each
            experiment's tables as CSV there (``None``: do not).
        plan: the experiment design, shown in the report (optional; ``reluflow
            reproduce`` also stores it as ``reproduce.json`` beside the store,
            where the report finds it).
        keep_figures: keep the matplotlib figures open in the result (tests
            read their data back); otherwise they are closed.

    Returns:
        A :class:`Report`.
    """
    import matplotlib.pyplot as plt

    from .plots import plot_bias, plot_incremental, plot_threshold
    from .store import ResultsStore

    own = not isinstance(store, ResultsStore)
    if own:
        path = Path(store)
        if not path.exists():
            raise InputError(
                f"store must be an existing results store, got {str(path)!r} (no such file)"
            )
        st = ResultsStore(path)
    else:
        st = store
        path = Path(getattr(st, "path", "."))
    if plan is None:
        pj = path.parent / "reproduce.json"
        if pj.exists():
            plan = json.loads(pj.read_text())
    try:
        frame = st.frame()
        if frame.empty or "experiment" not in frame.columns:
            raise InputError(f"the store {str(path)!r} holds no reproduce experiments")
        analyses: dict[str, dict] = {}
        prov: dict[str, dict] = {}
        figs: dict[str, Any] = {}
        for exp in ("incremental", "threshold", "bias"):
            df = frame[frame["experiment"] == exp]
            if df.empty:
                continue
            prov[exp] = _provenance(df)
            prov[exp]["run_ids"] = f"{len(df)} run ids, e.g. {df['run_id'].iloc[0]}"
            if exp == "incremental":
                analyses[exp] = analyse_incremental(df, st.arrays)
                a = analyses[exp]
                figs[exp] = plot_incremental(
                    a["flows"],
                    a["limit"],
                    title=f"n = {a['n']}, m = {a['m']}, seed = {a['seed']}, orthogonal data",
                )
            elif exp == "threshold":
                analyses[exp] = a = analyse_threshold(df)
                b = a["boundary"].rename(columns={})
                figs[exp] = plot_threshold(a["mc"], a["exact"], b, a["fit"], flow=a["flow"])
            else:
                analyses[exp] = a = analyse_bias(df)
                figs[exp] = plot_bias(a["points"], a["fits"], a["ratio_limit"])
    finally:
        if own:
            st.close() if hasattr(st, "close") else None
    summary = pd.DataFrame(
        _summary_rows(
            analyses.get("incremental"), analyses.get("threshold"), analyses.get("bias"), prov
        )
    )
    written: list[Path] = []
    if figures_dir is not None:
        fd = Path(figures_dir)
        fd.mkdir(parents=True, exist_ok=True)
        for name, fig in figs.items():
            for ext in ("pdf", "png"):
                p = fd / f"{name}.{ext}"
                fig.savefig(p, bbox_inches="tight")
                written.append(p)
    tables = _tables(analyses)
    if tables_dir is not None:
        td = Path(tables_dir)
        td.mkdir(parents=True, exist_ok=True)
        summary.to_csv(td / "summary.csv", index=False)
        (td / "summary.json").write_text(
            json.dumps(
                {
                    "summary": _records(summary),
                    "provenance": prov,
                    "plan": plan,
                    "reluflow": __version__,
                },
                indent=1,
                default=str,
                allow_nan=False,
            )
        )
        for name, t in tables.items():
            t.to_csv(td / f"{name}.csv", index=False)
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(_html(figs, analyses, tables, summary, prov, plan, path), encoding="utf-8")
    if not keep_figures:
        for fig in figs.values():
            plt.close(fig)
    return Report(
        html=html_path,
        figures=tuple(written),
        summary=summary,
        analyses=analyses,
        provenance=prov,
        figure_objects=figs if keep_figures else {},
    )


def _records(df: pd.DataFrame) -> list[dict]:
    out = []
    for r in df.to_dict(orient="records"):
        out.append(
            {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in r.items()
            }
        )
    return out


def _tables(analyses: dict[str, dict]) -> dict[str, pd.DataFrame]:
    t: dict[str, pd.DataFrame] = {}
    if "incremental" in analyses:
        a = analyses["incremental"]
        t["incremental_runs"] = a["table"]
        t["incremental_events"] = a["events"]
    if "threshold" in analyses:
        a = analyses["threshold"]
        t["threshold_limit_cells"] = a["mc"]
        if len(a["flow"]):
            t["threshold_flow_cells"] = a["flow"]
        t["threshold_boundary"] = a["boundary"]
    if "bias" in analyses:
        a = analyses["bias"]
        t["bias_points"] = a["points"]
        fits = pd.DataFrame([{"fit": k, **v} for k, v in a["fits"].items()])
        t["bias_fits"] = fits
        if len(a["paired"]):
            t["bias_flow_vs_limit"] = a["paired"]
    return t


_SECTIONS = {
    "incremental": ("1. Incremental learning", ("incremental_runs", "incremental_events")),
    "threshold": (
        "2. Interpolation threshold",
        ("threshold_boundary", "threshold_limit_cells", "threshold_flow_cells"),
    ),
    "bias": ("3. Implicit bias", ("bias_fits", "bias_points", "bias_flow_vs_limit")),
}


def _html(figs, analyses, tables, summary, prov, plan, store_path) -> str:
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<title>reluflow: reproduction report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>reluflow: reproduction report</h1>",
        f"<p class='note'>Built {html.escape(now)} by reluflow {html.escape(__version__)} from the "
        f"results store <code>{html.escape(store_path.name)}</code> alone (no recomputation). "
        "Mathematics: THEORY.md §4–5.</p>",
        "<h2>Summary</h2>",
        _table(summary.drop(columns=["configuration"])),
    ]
    for exp, (title, names) in _SECTIONS.items():
        if exp not in figs:
            continue
        parts.append(f"<h2 id='{exp}'>{html.escape(title)}</h2>")
        parts.append(
            f"<figure><img id='fig-{exp}' alt='{exp} figure' "
            f"src='data:image/png;base64,{_png_b64(figs[exp])}'>"
            f"<figcaption>{html.escape(_CAPTIONS[exp])}</figcaption></figure>"
        )
        parts.append(_prov_html(prov[exp]))
        for name in names:
            if name in tables:
                parts.append(f"<h3>{html.escape(name.replace('_', ' '))}</h3>")
                parts.append(_table(tables[name]))
    if plan:
        parts.append("<h2>Experiment design</h2>")
        parts.append("<pre>" + html.escape(json.dumps(plan, indent=1, default=str)) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
