"""A generic account of any results store: what it holds and its key results by parameter.

Every store gets this section, whatever wrote it (``reluflow sweep`` with any
spec, or ``reluflow reproduce``): runs per experiment, dynamics and data, how
many succeeded, the range of every configuration parameter, and for each
experiment the report does not otherwise analyse, the key scalar results
grouped by the parameters that vary (P(interpolation) with Wilson 95%
intervals, the ratio ‖θ‖²/min ‖θ‖² over interpolating runs, the final loss,
activation counts), with a figure against the parameter with most values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..experiments._stats import col, interpolated, wilson_interval

__all__ = ["analyse_overview", "overview_figures", "overview_tables"]

# store columns that are results or bookkeeping, never parameters of a run (besides every
# ``result_<name>``: a result named like a configuration key, see ResultsStore.frame)
_NOT_PARAMS = {
    "run_id", "experiment", "version", "seed", "config_hash", "wall_s", "created", "final_loss",
    "initial_loss", "norm_sq", "min_norm_sq", "ratio", "interpolates", "n_events", "ties",
    "success", "status", "run_wall_s", "conservation_drift", "kinks", "description",
    "ratio_note", "well_initialised", "n_pos", "n_neg", "max_sharpness", "edge_ratio",
}
# preferred x axes of the figure, in order
_AXES = ("m", "n", "scale", "d", "lr", "batch_size", "rtol")


def _succeeded(df: pd.DataFrame) -> pd.Series:
    s = col(df, "success", None)
    return s.where(s.notna(), True).astype(bool)


def _params(df: pd.DataFrame, keys: Sequence[str] | None = None) -> list[str]:
    """The configuration columns of ``df``: ``keys`` when known, else all but results and bookkeeping."""
    cols = [c for c in keys if c in df.columns] if keys is not None else [
        c for c in df.columns if c not in _NOT_PARAMS and not str(c).startswith("result_")]
    return [c for c in cols if c not in ("experiment", "seed") and df[c].notna().any()]


def _describe(v: pd.Series) -> str:
    vals = v.dropna().unique()
    if len(vals) == 0:
        return "–"
    if pd.api.types.is_numeric_dtype(v) and len(vals) > 6:
        return f"{len(vals)} values in [{np.min(vals):g}, {np.max(vals):g}]"
    out = sorted(vals.tolist(), key=lambda x: (str(type(x)), x))
    return ", ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in out)


def _varying(df: pd.DataFrame, keys: Sequence[str] | None = None) -> list[str]:
    """Parameters that vary, less those that are a one-to-one relabelling of an earlier one.

    (``d`` defaults to ``n`` on orthogonal data: grouping by both would repeat ``n``.)
    """
    order = {c: i for i, c in enumerate(_AXES)}
    cand = sorted((c for c in _params(df, keys) if df[c].dropna().nunique() > 1),
                  key=lambda c: order.get(c, len(order)))
    keep: list[str] = []
    for c in cand:
        same = any(
            df.groupby(k, dropna=False)[c].nunique(dropna=False).max() == 1
            and df.groupby(c, dropna=False)[k].nunique(dropna=False).max() == 1
            for k in keep)
        if not same:
            keep.append(c)
    return keep


def _exact_probability(df: pd.DataFrame) -> pd.Series:
    """P(interpolation) of docs/limit.md per run where it applies, else NaN.

    It applies to orthogonal data with balanced labels (exact counts ``n − n//2``
    positive) and the limit or the flow (coverage at initialisation decides).
    """
    from ..theory import interpolation_probability

    out = pd.Series(math.nan, index=df.index)
    if "n" not in df.columns or "m" not in df.columns:
        return out
    ok = ((col(df, "data", "") == "orthogonal") & (col(df, "labels", "") == "balanced")
          & col(df, "dynamics", "").isin(["limit", "flow"]))
    cache: dict[tuple[int, int], float] = {}
    for i in df.index[ok]:
        key = (int(df.at[i, "n"]), int(df.at[i, "m"]))
        if key not in cache:
            cache[key] = interpolation_probability(key[0] - key[0] // 2, key[0] // 2, key[1])
        out.at[i] = cache[key]
    return out


def _by_parameter(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Key results per combination of ``keys`` (all runs together when ``keys`` is empty)."""
    d = df.assign(
        _ok=interpolated(df) if "n" in df.columns else col(df, "interpolates", False).astype(bool),
        _succ=_succeeded(df),
        _ratio=col(df, "ratio").astype(float),
        _loss=col(df, "final_loss").astype(float),
        _events=col(df, "n_events").astype(float),
        _wall=col(df, "run_wall_s", math.nan).astype(float),
        _exact=_exact_probability(df),
    )
    groups = d.groupby(list(keys), dropna=False) if keys else [((), d)]
    rows = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        k, t = int(g["_ok"].sum()), len(g)
        lo, hi = wilson_interval([k], [t])
        r = g.loc[g["_ok"], "_ratio"].dropna()
        rows.append({
            **dict(zip(keys, key, strict=True)),
            "runs": t,
            "succeeded": int(g["_succ"].sum()),
            "interpolating": k,
            "p_interp": k / t,
            "p_lo": float(lo[0]),
            "p_hi": float(hi[0]),
            "p_exact": float(g["_exact"].mean()),
            "ratio_mean": float(r.mean()) if len(r) else math.nan,
            "ratio_se": float(r.std(ddof=1) / math.sqrt(len(r))) if len(r) > 1 else math.nan,
            "final_loss_median": float(g["_loss"].median()),
            "events_mean": float(g["_events"].mean()),
            "run_wall_s_mean": float(g["_wall"].mean()),
        })
    return pd.DataFrame(rows)


def analyse_overview(
    frame: pd.DataFrame,
    recognised: Sequence[str] = (),
    config_keys: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """What the store holds, and key results by parameter for the experiments not in ``recognised``.

    ``config_keys`` names each experiment's configuration keys (the store's
    ``config`` of one of its runs); without it, every column that is not a
    known result or bookkeeping column counts as a parameter.

    Returns ``counts`` (runs, successes, interpolating runs, seeds per
    experiment × dynamics × data), ``status`` (status counts), ``params``
    (every parameter's values per experiment), ``generic`` (experiment ->
    ``{"axes", "x", "series", "table"}``), ``text`` (a sentence for the page),
    captions, figure and table names, and ``results`` (for summary.json).

    ``frame`` should have unique columns (:meth:`ResultsStore.frame
    <reluflow.store.ResultsStore.frame>` does); of repeated columns, the first
    is kept, so that every column is one series.
    """
    frame = frame.loc[:, ~frame.columns.duplicated()]
    f = frame.assign(_succ=_succeeded(frame),
                     _ok=interpolated(frame) if "n" in frame.columns else False)
    counts = f.groupby(["experiment", "dynamics", "data"], as_index=False, sort=False).agg(
        runs=("run_id", "size"), succeeded=("_succ", "sum"), interpolating=("_ok", "sum"),
        seed_min=("seed", "min"), seed_max=("seed", "max"), seeds=("seed", "nunique"),
        compute_s=("wall_s", "sum"))
    counts["failed"] = counts["runs"] - counts["succeeded"]
    status = (f.assign(status=col(f, "status", "?").fillna("?"))
              .groupby(["experiment", "status"], as_index=False, sort=False)
              .agg(runs=("run_id", "size")))
    prow = []
    keys_of = dict(config_keys or {})
    for exp, d in frame.groupby("experiment", sort=False):
        for c in _params(d, keys_of.get(exp)):
            prow.append({"experiment": exp, "parameter": c, "values": _describe(d[c]),
                         "distinct": int(d[c].dropna().nunique())})
    params = pd.DataFrame(prow, columns=["experiment", "parameter", "values", "distinct"])
    generic: dict[str, dict[str, Any]] = {}
    for exp, d in frame.groupby("experiment", sort=False):
        if exp in recognised:
            continue
        d = d.dropna(axis=1, how="all")
        axes = _varying(d, keys_of.get(exp))
        num = [a for a in axes if pd.api.types.is_numeric_dtype(d[a])]
        # prefer an axis every run has (lr, say, is only defined for descent runs)
        full = [a for a in num if d[a].notna().all()] or num
        x = next((a for a in _AXES if a in full), None) or (
            max(full, key=lambda a: d[a].nunique()) if full else None)
        generic[str(exp)] = {"axes": axes, "x": x, "series": [a for a in axes if a != x],
                             "table": _by_parameter(d, axes)}
    n_exp = frame["experiment"].nunique()
    text = (f"{len(frame)} runs in {n_exp} experiment{'s' if n_exp > 1 else ''} "
            f"({', '.join(map(str, frame['experiment'].unique()))}); "
            f"{int(f['_succ'].sum())} succeeded, {int((~f['_succ']).sum())} did not "
            "(their status is listed below; runs that raised are not stored and are retried by "
            "a rerun of the same sweep).")
    if generic:
        text += (" Experiments without an analysis of their own "
                 f"({', '.join(generic)}) are summarised by parameter below.")
    captions, fig_names, titles = {}, [], {
        "store_counts": "runs per experiment, dynamics and data",
        "store_status": "status of the runs",
        "store_parameters": "parameters: the values each experiment holds"}
    for exp, g in generic.items():
        titles[f"store_{exp}_by_parameter"] = (
            f"{exp}: key results by " + (", ".join(g["axes"]) if g["axes"] else "(one setting)"))
        if g["x"] is not None:
            name = f"store_{exp}"
            fig_names.append(name)
            captions[name] = (
                f"Experiment {exp!r} (store summary): against {g['x']}"
                + (f", one line per {', '.join(g['series'])}" if g["series"] else "")
                + ". Left: P(interpolation) with Wilson 95% intervals (dashed: the exact probability "
                "where it applies). Right: the mean ratio "
                "‖θ‖² / min ‖θ‖² over interpolating runs (± s.e.; orthogonal data only) or, "
                "without it, the median final loss.")
    return {
        "counts": counts, "status": status, "params": params, "generic": generic,
        "text": text, "captions": captions, "figure_names": fig_names, "table_titles": titles,
        "results": {"counts": counts, "status": status,
                    "by_parameter": {e: g["table"] for e, g in generic.items()}},
    }


def overview_tables(ov: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """The overview's tables, by file name (``store_counts``, ``store_<experiment>_by_parameter``, ...)."""
    t = {"store_counts": ov["counts"], "store_status": ov["status"],
         "store_parameters": ov["params"]}
    for exp, g in ov["generic"].items():
        t[f"store_{exp}_by_parameter"] = g["table"]
    return t


def overview_figures(ov: Mapping[str, Any]) -> dict[str, Any]:
    """One figure per generic experiment with a numeric varying parameter."""
    from ..plots import plot_by_parameter

    out = {}
    for exp, g in ov["generic"].items():
        if g["x"] is not None:
            out[f"store_{exp}"] = plot_by_parameter(g["table"], g["x"], g["series"],
                                                    title=f"{exp}: runs of the store by {g['x']}")
    return out
