"""Experiment ``threshold``: P(interpolation) over ``(n, m)``, the exact formula and ``m ≈ c log₂ n``.

The jump process on ``reps`` seeds per cell of a grid of ``n`` and ``m``
(Monte Carlo), the flow at small λ on the small-``n`` cells, against the exact
probability of :func:`reluflow.theory.interpolation_probability`
(docs/limit.md). The widths of each ``n`` are spread over the range where the
exact probability goes from ``p_lo`` to ``p_hi``.

Statistics: Wilson 95% intervals per cell; a G-test of all cells against the
exact probabilities; for each ``n`` the width ``m₅₀`` where the probability
crosses 1/2 (monotone envelope, linear interpolation), then least squares
``m₅₀ = c log₂ n + b`` with the standard error of ``c`` from a parametric
bootstrap (binomial redraws of every cell) of the whole procedure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..theory import interpolation_probability, width_for_probability
from . import _stats as S
from ._base import (
    Arrays,
    Claim,
    Design,
    Experiment,
    flow_run,
    label_counts,
    pm,
    quantity,
    run,
    verdict_from_interval,
)

__all__ = ["Threshold", "ThresholdDesign", "widths"]


@dataclass(frozen=True)
class ThresholdDesign(Design):
    """The ``(n, m)`` grid.

    Attributes:
        log2n: exponents ``e`` of the grid ``n = 2^e``.
        widths: widths per ``n`` (at most this many, evenly spread over the
            range where the exact probability goes from ``p_range[0]`` to ``p_range[1]``).
        p_range: ``(p_lo, p_hi)``.
        reps: Monte Carlo seeds per cell (limit).
        flow_log2n: exponents of the small ``n`` where the flow runs too.
        flow_reps: seeds per cell for the flow.
        flow_scale: λ of the flow runs (coverage, hence interpolation, does not depend on λ).
    """

    log2n: tuple[int, ...] = tuple(range(4, 17))
    widths: int = 12
    p_range: tuple[float, float] = (0.02, 0.98)
    reps: int = 200
    flow_log2n: tuple[int, ...] = tuple(range(4, 11))
    flow_reps: int = 50
    flow_scale: float = 1e-8


def widths(n: int, p: ThresholdDesign) -> list[int]:
    """Widths of the threshold grid at ``n``: spread over ``p_lo <= P_exact <= p_hi``."""
    n_pos, n_neg = label_counts(n, p.labels)
    lo = width_for_probability(n_pos, n_neg, p.p_range[0])
    hi = width_for_probability(n_pos, n_neg, p.p_range[1])
    ms = np.unique(np.round(np.linspace(lo, hi, p.widths)).astype(int))
    return [int(m) for m in ms]


def _exact(n: int, m: int) -> float:
    return interpolation_probability(n - n // 2, n // 2, int(m))


def cells(df: pd.DataFrame) -> pd.DataFrame:
    """One row per ``(n, m)``: ``trials, successes, p, lo, hi`` (Wilson) and the ``exact`` P."""
    df = df.assign(ok=S.interpolated(df))
    g = df.groupby(["n", "m"], as_index=False).agg(
        trials=("ok", "size"), successes=("ok", "sum"),
        seed_min=("seed", "min"), seed_max=("seed", "max"))
    g["p"] = g["successes"] / g["trials"]
    g["lo"], g["hi"] = S.wilson_interval(g["successes"], g["trials"])
    g["exact"] = [_exact(int(n), int(m)) for n, m in zip(g["n"], g["m"], strict=True)]
    return g


def _boundary(c: pd.DataFrame, pcol: str) -> pd.DataFrame:
    rows = [{"n": int(n), "m50": S.crossing(d["m"].to_numpy(), d[pcol].to_numpy())}
            for n, d in c.groupby("n")]
    return pd.DataFrame(rows, columns=["n", "m50"])


def _fit_boundary(b: pd.DataFrame) -> dict[str, float]:
    ok = b["m50"].notna()
    return S.ols(np.log2(b.loc[ok, "n"].astype(float)), b.loc[ok, "m50"])


def _bootstrap_slopes(mc: pd.DataFrame, rng: np.random.Generator, reps: int) -> np.ndarray:
    """Slopes ``c`` of the boundary fit on ``reps`` binomial redraws of every cell (finite ones).

    The same procedure as on the data (crossing per ``n``, least squares against
    ``log₂ n``), with all cells redrawn at once per replicate.
    """
    draws = rng.binomial(mc["trials"].to_numpy()[None, :], mc["p"].to_numpy()[None, :],
                         size=(reps, len(mc))) / mc["trials"].to_numpy()[None, :]
    groups = [(np.log2(float(n)), np.flatnonzero(mc["n"].to_numpy() == n))
              for n in sorted(mc["n"].unique())]
    m = mc["m"].to_numpy(float)
    out = np.full(reps, np.nan)
    for b in range(reps):
        xs, ys = [], []
        for x, idx in groups:
            c = S.crossing(m[idx], draws[b, idx])
            if np.isfinite(c):
                xs.append(x)
                ys.append(c)
        out[b] = S.ols(np.asarray(xs), np.asarray(ys))["slope"]
    return out[np.isfinite(out)]


def analyse_threshold(frame: pd.DataFrame) -> dict[str, Any]:
    """P(interpolation) per ``(n, m)`` cell, exact curve, boundary ``m₅₀ = c log₂ n + b``.

    Returns ``mc`` and ``flow`` (cells: ``n, m, trials, successes, p, lo, hi,
    exact``), ``exact`` (the exact P on every integer width of the plotted
    range), ``boundary`` (``n, m50_mc, m50_exact, m50_flow``), ``fit`` and
    ``gtest`` (``mc`` and, when there are flow runs, ``flow``: :func:`_stats.g_test`).
    """
    lim = frame[frame["dynamics"] == "limit"]
    if lim.empty:
        raise InputError("the store holds no 'threshold' limit runs")
    mc = cells(lim)
    flow_df = frame[frame["dynamics"] == "flow"]
    flow = cells(flow_df) if len(flow_df) else mc.iloc[0:0]
    if len(flow_df):
        flow["scale"] = float(flow_df["scale"].iloc[0])
    exact_rows = []
    for n, d in mc.groupby("n"):
        n = int(n)
        for m in range(max(1, int(d["m"].min()) - 1), int(d["m"].max()) + 2):
            exact_rows.append({"n": n, "m": m, "p": _exact(n, m)})
    exact = pd.DataFrame(exact_rows)
    b_mc = _boundary(mc, "p").rename(columns={"m50": "m50_mc"})
    b_ex = _boundary(exact, "p").rename(columns={"m50": "m50_exact"})
    b_grid = _boundary(mc, "exact").rename(columns={"m50": "m50_exact_grid"})
    boundary = b_mc.merge(b_ex, on="n").merge(b_grid, on="n")
    if len(flow):
        boundary = boundary.merge(
            _boundary(flow, "p").rename(columns={"m50": "m50_flow"}), on="n", how="left")
    boundary["m50_mc_over_log2n"] = boundary["m50_mc"] / np.log2(boundary["n"])
    boundary["m50_exact_over_log2n"] = boundary["m50_exact"] / np.log2(boundary["n"])
    fit_mc = _fit_boundary(boundary.rename(columns={"m50_mc": "m50"}))
    fit_ex = _fit_boundary(boundary.rename(columns={"m50_exact": "m50"}))
    fit_grid = _fit_boundary(boundary.rename(columns={"m50_exact_grid": "m50"}))
    # parametric bootstrap of the whole procedure: redraw every cell ~ Binomial(trials, p̂)
    boots = _bootstrap_slopes(mc, np.random.default_rng(S.BOOT_SEED), S.BOOT // 2)
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
    gtest = {"mc": S.g_test(mc["successes"], mc["trials"], mc["exact"])}
    if len(flow):
        gtest["flow"] = S.g_test(flow["successes"], flow["trials"], flow["exact"])
    return {"mc": mc, "flow": flow, "exact": exact, "boundary": boundary, "fit": fit,
            "gtest": gtest}


def _inside(c: pd.DataFrame) -> float:
    return float(((c["exact"] >= c["lo"]) & (c["exact"] <= c["hi"])).mean())


class Threshold(Experiment):
    name = "threshold"
    title = "Interpolation threshold"
    description = (
        "For a grid of n and widths m around the threshold, the jump process runs on many seeds "
        "per cell (Monte Carlo), and the exact flow at small λ on the small n. The paper proves "
        "that the network interpolates with high probability once m ≳ log n, with an exact "
        "formula for P(interpolation): a sample is fitted iff some neuron of its label's sign "
        "starts active on it. Each cell is set against that formula, and the 50% width m₅₀ is "
        "fitted against log₂ n."
    )
    designs = {
        "paper": ThresholdDesign(scale="paper"),
        "quick": ThresholdDesign(scale="quick", log2n=(4, 6, 8, 10, 12, 14, 16), widths=7,
                                 reps=40, flow_log2n=(4, 6, 8), flow_reps=16),
        "smoke": ThresholdDesign(scale="smoke", log2n=(4, 6, 8), widths=4, reps=8,
                                 flow_log2n=(4,), flow_reps=4),
    }

    def configs(self, scale: str | Design = "quick") -> list[dict[str, Any]]:
        p = self.design(scale)
        out: list[dict[str, Any]] = []
        for e in p.log2n:
            n = 2**e
            for m in widths(n, p):
                out += [run(p, self.name, "limit", n, m, p.seed_base + r) for r in range(p.reps)]
                if e in p.flow_log2n:
                    out += [flow_run(p, self.name, n, m, p.seed_base + r, p.flow_scale)
                            for r in range(p.flow_reps)]
        return out

    def analyse(self, frame: pd.DataFrame, arrays: Arrays) -> dict[str, Any]:
        return analyse_threshold(frame)

    def tables(self, analysis: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
        t = {"threshold_boundary": analysis["boundary"],
             "threshold_limit_cells": analysis["mc"]}
        if len(analysis["flow"]):
            t["threshold_flow_cells"] = analysis["flow"]
        return t

    def figures(self, analysis: Mapping[str, Any]) -> dict[str, Any]:
        from ..plots import plot_threshold

        a = analysis
        return {"threshold": plot_threshold(a["mc"], a["exact"], a["boundary"], a["fit"],
                                            flow=a["flow"])}

    def captions(self, analysis: Mapping[str, Any]) -> dict[str, str]:
        return {"threshold": (
            "Interpolation threshold. (a) P(interpolation) against the width m, one panel per "
            "n (colours: n): Monte Carlo of the limit (●, Wilson 95% intervals), the exact "
            "formula (line) and the flow at small λ on the small n (□). (b) the Monte Carlo "
            "probability over (log₂ n, m), the measured 50% widths (○), the exact ones (×) and "
            "the fitted boundary m = c log₂ n + b. (c) the curves against m / log₂ n: they "
            "collapse (docs/limit.md, docs/experiments.md)."
        )}

    def quantities(self, analysis: Mapping[str, Any]) -> list[dict[str, Any]]:
        a = analysis
        f = a["fit"]
        out = [
            quantity("c in m50 = c log2(n) + b (limit MC)", f["c"], f["c_se"],
                     f"bootstrap s.e. ({f['bootstrap']} redraws)",
                     f"b = {f['b']:.3f}; c per ln n = {f['c_natural_log']:.3f}"),
            quantity("c from the exact curve (same n)", f["c_exact"],
                     detail=f"b = {f['b_exact']:.3f}"),
        ]
        for _, r in a["boundary"].iterrows():
            flow = r.get("m50_flow", math.nan)
            out.append(quantity(
                f"m50 at n = {int(r['n'])}", r["m50_mc"],
                detail=f"exact {r['m50_exact']:.3f}"
                + (f", flow {flow:.3f}" if pd.notna(flow) else "")))
        out.append(quantity("fraction of cells whose Wilson 95% CI holds the exact P",
                            _inside(a["mc"]), detail=f"{len(a['mc'])} cells"))
        g = a["gtest"]["mc"]
        out.append(quantity("G-test of the limit MC against the exact P (p-value)", g["p_value"],
                            detail=f"G = {g['G']:.3g}, {g['dof']} cells"))
        if len(a["flow"]):
            fl = a["flow"]
            out.append(quantity("fraction of flow cells whose CI holds the exact P", _inside(fl),
                                detail=f"{len(fl)} cells, lambda = {fl['scale'].iloc[0]:.0e}"))
            g = a["gtest"]["flow"]
            out.append(quantity("G-test of the flow against the exact P (p-value)", g["p_value"],
                                detail=f"G = {g['G']:.3g}, {g['dof']} cells"))
        return out

    def results(self, analysis: Mapping[str, Any]) -> dict[str, Any]:
        a = analysis
        return {"fit": a["fit"], "gtest": a["gtest"],
                "boundary": a["boundary"].to_dict(orient="records")}

    def claims(self, analysis: Mapping[str, Any]) -> list[Claim]:
        a = analysis
        f = a["fit"]
        lo, hi = f["c"] - S.Z95 * f["c_se"], f["c"] + S.Z95 * f["c_se"]
        ns = a["boundary"]["n"]
        scaling = Claim(
            source="Town et al. 2026",
            claim="The network interpolates with high probability once m ≳ log n: the 50% width "
            "grows like c log₂ n, with c about 2 for balanced labels.",
            measured=(
                f"c = {pm(f['c'], f['c_se'])} (bootstrap s.e., {f['points']} values of n from "
                f"{int(ns.min())} to {int(ns.max())}); the exact formula on the same n gives "
                f"c = {f['c_exact']:.3f}"
            ),
            verdict=verdict_from_interval(lo, hi, 1.5, 2.5),
            evidence="figure threshold (b), table threshold_boundary",
            rule="confirmed when the 95% interval of c lies in [1.5, 2.5], not confirmed when it "
            "lies outside, open otherwise",
        )
        g = a["gtest"]["mc"]
        parts = [f"limit Monte Carlo: G = {g['G']:.3g} on {g['dof']} cells, p = "
                 f"{g['p_value']:.3g}; {_inside(a['mc']):.0%} of the Wilson 95% intervals hold "
                 "the formula"]
        pvals = [g["p_value"]]
        if "flow" in a["gtest"]:
            gf = a["gtest"]["flow"]
            pvals.append(gf["p_value"])
            parts.append(f"flow at λ = {a['flow']['scale'].iloc[0]:.0e}: G = {gf['G']:.3g} on "
                         f"{gf['dof']} cells, p = {gf['p_value']:.3g}")
        formula = Claim(
            source="Town et al. 2026",
            claim="P(interpolation) = Σ_k C(m,k) 2^(−m) (1 − 2^(−k))^(n₊) (1 − 2^(−(m−k)))^(n₋) "
            "exactly, for Gaussian initialisation on orthogonal data.",
            measured="; ".join(parts),
            verdict="confirmed" if min(pvals) >= 0.01 else "not confirmed",
            evidence="figure threshold (a), tables threshold_limit_cells, threshold_flow_cells",
            rule="confirmed when the likelihood-ratio test of every cell's count against the "
            "formula gives p ≥ 0.01 (for the limit and the flow), not confirmed otherwise",
        )
        return [scaling, formula]


EXPERIMENT = Threshold()
