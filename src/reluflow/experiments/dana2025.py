"""Experiment ``dana2025``: the convergence threshold of Dana, Bach & Pillaud-Vivien (2025), revisited.

Their experiment 1.1 (repository leodana2000/Convergence-High-Dimension):
inputs uniform on the sphere with norms ``U[1, 2]``, labels ``±U[1, 2]``, width
``p``, the mean-field network ``f = (1/p) Σ a_j σ(<w_j, x>)`` from PyTorch's
uniform ``w`` with ``a_j = ±(‖w_j‖ + Exp(1))``, trained by gradient descent at
step 1 on ``p · (1/2n) Σ r²`` for ``⌊1.5 sqrt(n p) log(n p) / 4⌋ + 1`` epochs;
a run *converges* when ``(1/2n) Σ r² < 1/(2n)`` (``Σ r² < 1``) within them. In
reluflow this is ``sphere_data`` + ``init="uniform_exp_mean_field"`` (the
mean-field network trained on ``p L`` is the standard one at ``θ/√p`` with the
same step) + ``loss_tol = 1/(2n)``, ``t_max = epochs − 1`` (at step 1: the losses of
their epochs 0 … epochs − 1 are checked, as in their loop).

Every draw (data and initialisation, one seed) runs three dynamics over the
same time ``t = epochs − 1``: gradient descent at their step 1, at a small step
(1/8), and the exact gradient flow (on part of the grid). Descent records its
sharpness (top Hessian eigenvalue) at steps 1, 2, 4, …; ``edge_ratio = lr · max
sharpness / 2 > 1`` means the step exceeded the stability bound 2 / sharpness
(reluflow's StabilityWarning).

Their orthogonal setting (canonical directions, norms ``U[1, 2]``): the share
of draws that are *well initialised* (every sample ``i`` has a neuron with
``a_j y_i > 0`` and ``<w_j, x_i> > 0``) against the exact probability
``Σ_k C(m,k) 2^(−m) (1 − 2^(−k))^(n₊) (1 − 2^(−(m−k)))^(n₋)`` given each draw's
label counts (reluflow.theory.interpolation_probability), and whether
well-initialised draws converge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2

from ..errors import InputError
from ..theory import interpolation_probability
from . import _stats as S
from ._base import Arrays, Claim, Design, Experiment, pm, quantity

__all__ = ["Dana2025", "DanaDesign", "epochs"]

LABELS = {"gd_step1": "GD, step 1 (theirs)", "gd_small": "GD, small step", "flow": "exact flow"}


@dataclass(frozen=True)
class DanaDesign(Design):
    """Grid of the convergence-threshold experiment.

    Attributes:
        dims: input dimensions d. width: the width p. mults: ``n = k d`` for ``k`` in mults.
        reps: draws per ``(d, n)``. small_lr: the small step.
        flow_dims, flow_mults, flow_reps: where the exact flow runs too (same draws).
        orth_n: samples of the orthogonal part; orth_widths: its widths; orth_reps: draws each.
        small_lr should be a power of two (then ``t = k · small_lr`` is exact).
    """

    dims: tuple[int, ...] = (10, 20, 30, 40)
    width: int = 30
    mults: tuple[float, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12)
    reps: int = 20
    small_lr: float = 0.125
    flow_dims: tuple[int, ...] = (10, 20)
    flow_mults: tuple[float, ...] = (2, 3, 4, 5, 6, 8)
    flow_reps: int = 10
    orth_n: int = 128
    orth_widths: tuple[int, ...] = (12, 15, 18, 21, 24, 28)
    orth_reps: int = 100


def epochs(n: int, p: int, lr: float = 1.0) -> int:
    """Their epoch count: ``⌊1.5 sqrt(n p) log(n p) / (4 lr)⌋ + 1`` (1.5 times their phase transition)."""
    return int(1.5 * math.sqrt(n * p) * math.log(n * p) / (4 * lr) + 1)


def _base(name: str, n: int, d: int, m: int, seed: int, data: str) -> dict[str, Any]:
    return {
        "experiment": name,
        "data": data,
        "n": int(n),
        "d": int(d),
        "m": int(m),
        "labels": "signed_uniform",
        "init": "uniform_exp_mean_field",
        "scale": 1.0,
        "loss_tol": 1.0 / (2 * n),
        "seed": int(seed),
    }


def _label(frame: pd.DataFrame) -> pd.Series:
    lr = S.col(frame, "lr").astype(float)
    out = np.where(frame["dynamics"] == "flow", "flow", np.where(lr >= 1.0, "gd_step1", "gd_small"))
    return pd.Series(out, index=frame.index)


def n50(n: np.ndarray, frac: np.ndarray) -> float:
    """Where the converged fraction falls through 1/2 (linear interpolation of its monotone envelope).

    ``inf`` when it stays at or above 1/2 over the whole grid, 0 when it is below at the
    smallest ``n``.
    """
    order = np.argsort(n)
    n, frac = np.asarray(n, float)[order], np.minimum.accumulate(np.asarray(frac, float)[order])
    below = np.flatnonzero(frac < 0.5)
    if below.size == 0:
        return math.inf
    k = below[0]
    if k == 0:
        return 0.0
    n0, n1, f0, f1 = n[k - 1], n[k], frac[k - 1], frac[k]
    return float(n0 + (f0 - 0.5) / (f0 - f1) * (n1 - n0))


def _n50_interval(cells: pd.DataFrame, rng: np.random.Generator) -> tuple[float, float]:
    """95% parametric-bootstrap interval of :func:`n50` (binomial redraws of every cell)."""
    k, N = cells["converged"].to_numpy(), cells["runs"].to_numpy()
    p = k / N
    boots = [n50(cells["n"].to_numpy(), rng.binomial(N, p) / N) for _ in range(S.BOOT // 4)]
    # no interpolation between quantiles: n50 is infinite when a redraw never falls below 1/2
    q = np.quantile(boots, [0.025, 0.975], method="inverted_cdf")
    return float(q[0]), float(q[1])


def analyse_dana(frame: pd.DataFrame, arrays: Arrays) -> dict[str, Any]:
    """Convergence cells, thresholds, sharpness, paired outcomes, and the orthogonal part."""
    if frame.empty or "data" not in frame.columns:
        raise InputError("the store holds no 'dana2025' runs")
    df = frame.assign(
        run=_label(frame),
        converged=frame["status"] == "loss_tol",
        edge_ratio=S.col(frame, "edge_ratio").astype(float),
    )
    sph = df[df["data"] == "sphere"]
    orth = df[df["data"] == "sphere_orthogonal"]
    if sph.empty:
        raise InputError("the store holds no 'dana2025' sphere runs")
    cells = sph.groupby(["d", "n", "run"], as_index=False).agg(
        runs=("converged", "size"),
        converged=("converged", "sum"),
        edge=("edge_ratio", lambda x: int((x > 1).sum())),
        edge_median=("edge_ratio", "median"),
    )
    cells["fraction"] = cells["converged"] / cells["runs"]
    cells["lo"], cells["hi"] = S.wilson_interval(cells["converged"], cells["runs"])
    rng = np.random.default_rng(S.BOOT_SEED)
    rows = []
    for (d, run), c in cells.groupby(["d", "run"]):
        lo, hi = _n50_interval(c, rng)
        rows.append(
            {
                "d": int(d),
                "run": run,
                "n50": n50(c["n"].to_numpy(), c["fraction"].to_numpy()),
                "n50_lo": lo,
                "n50_hi": hi,
                "n_min": int(c["n"].min()),
                "n_max": int(c["n"].max()),
                "runs": int(c["runs"].sum()),
            }
        )
    thresholds = pd.DataFrame(rows)
    # the same draws under the three dynamics
    key = ["d", "n", "seed"]
    wide = sph.pivot_table(index=key, columns="run", values="converged", aggfunc="first")
    pairs = {}
    for other in ("gd_small", "flow"):
        if other in wide.columns and "gd_step1" in wide.columns:
            w = wide[["gd_step1", other]].dropna().astype(bool)
            pairs[other] = {
                "draws": int(len(w)),
                "only_other": int((w[other] & ~w["gd_step1"]).sum()),
                "only_step1": int((w["gd_step1"] & ~w[other]).sum()),
                "both": int((w["gd_step1"] & w[other]).sum()),
            }
    step1 = sph[sph["run"] == "gd_step1"]
    small = sph[sph["run"] == "gd_small"]
    er = step1["edge_ratio"].dropna().to_numpy()
    boots = (
        np.median(er[rng.integers(0, er.size, size=(S.BOOT, er.size))], axis=1) if er.size else []
    )
    edge = {
        "runs": int(er.size),
        "over": int((er > 1).sum()),
        "median": float(np.median(er)) if er.size else math.nan,
        "median_lo": float(np.quantile(boots, 0.025)) if er.size else math.nan,
        "median_hi": float(np.quantile(boots, 0.975)) if er.size else math.nan,
        "small_runs": int(small["edge_ratio"].notna().sum()),
        "small_over": int((small["edge_ratio"] > 1).sum()),
        "small_max": float(small["edge_ratio"].max()) if len(small) else math.nan,
        "small_lr": float(S.col(small, "lr").iloc[0]) if len(small) else math.nan,
    }
    edge["lo"], edge["hi"] = (
        float(v) for v in S.wilson_interval(edge["over"], max(edge["runs"], 1))
    )
    # sharpness histories of the step-1 runs at the largest n of the smallest d (figure)
    hist = []
    if len(step1):
        d0 = int(step1["d"].min())
        sel = step1[step1["d"] == d0]
        sel = sel[sel["n"] == sel["n"].max()].head(6)
        for _, r in sel.iterrows():
            a = arrays(r["run_id"])
            if "sharpness" in a:
                hist.append(
                    {
                        "n": int(r["n"]),
                        "seed": int(r["seed"]),
                        "step": np.asarray(a["sharpness_step"]),
                        "sharpness": np.asarray(a["sharpness"]),
                        "lr": float(r["lr"]),
                    }
                )
    out: dict[str, Any] = {
        "cells": cells,
        "thresholds": thresholds,
        "pairs": pairs,
        "edge": edge,
        "sharpness_histories": hist,
    }
    out["orthogonal"] = _analyse_orthogonal(orth) if len(orth) else None
    return out


def _analyse_orthogonal(orth: pd.DataFrame) -> dict[str, Any]:
    """Well-initialised share per width against the exact probability; convergence given it."""
    pred = [
        interpolation_probability(int(a), int(b), int(m))
        for a, b, m in zip(orth["n_pos"], orth["n_neg"], orth["m"], strict=True)
    ]
    o = orth.assign(predicted=pred, well=orth["well_initialised"].astype(bool))
    cells = o.groupby(["n", "m"], as_index=False).agg(
        runs=("well", "size"),
        well=("well", "sum"),
        predicted=("predicted", "sum"),
        var=("predicted", lambda p: float((p * (1 - p)).sum())),
        converged_well=("converged", lambda c: int(c[o.loc[c.index, "well"]].sum())),
        converged_not_well=("converged", lambda c: int(c[~o.loc[c.index, "well"]].sum())),
    )
    cells["fraction"] = cells["well"] / cells["runs"]
    cells["lo"], cells["hi"] = S.wilson_interval(cells["well"], cells["runs"])
    cells["predicted_fraction"] = cells["predicted"] / cells["runs"]
    ok = cells["var"] > 0
    x2 = float((((cells["well"] - cells["predicted"]) ** 2)[ok] / cells["var"][ok]).sum())
    dof = int(ok.sum())
    n_well = int(o["well"].sum())
    conv_well = int(o.loc[o["well"], "converged"].sum())
    return {
        "cells": cells,
        "chi2": x2,
        "dof": dof,
        "p_value": float(chi2.sf(x2, dof)) if dof else math.nan,
        "well": n_well,
        "converged_well": conv_well,
        "not_well": int((~o["well"]).sum()),
        "converged_not_well": int(o.loc[~o["well"], "converged"].sum()),
        "edge_over": int((S.col(o, "edge_ratio").astype(float) > 1).sum()),
        "runs": int(len(o)),
    }


def _fmt_n50(v: float) -> str:
    return "beyond the grid" if math.isinf(v) else ("below the grid" if v == 0 else f"{v:.0f}")


class Dana2025(Experiment):
    name = "dana2025"
    title = (
        "Convergence threshold of Dana, Bach & Pillaud-Vivien (2025), by descent and by the flow"
    )
    description = (
        "Their experiment 1.1 rebuilt on the same data, initialisation and criterion (sphere "
        "inputs with norms U[1, 2], labels ±U[1, 2], the mean-field network from PyTorch's "
        "uniform init with a_j = ±(‖w_j‖ + Exp(1)), convergence when Σ r² < 1 within their "
        "epoch budget), with each draw run three ways over the same time: gradient descent at "
        "their step 1, at a small step, and the exact gradient flow. Descent records its "
        "sharpness; on their orthogonal data the share of well-initialised draws is set against "
        "the exact probability."
    )
    designs = {
        "paper": DanaDesign(scale="paper"),
        "quick": DanaDesign(
            scale="quick",
            dims=(10, 20),
            mults=(1, 2, 3, 5, 8),
            reps=4,
            flow_dims=(10,),
            flow_mults=(3, 5),
            flow_reps=1,
            orth_n=32,
            orth_widths=(10, 14, 20),
            orth_reps=20,
        ),
        "smoke": DanaDesign(
            scale="smoke",
            dims=(10,),
            mults=(1, 4),
            reps=2,
            flow_dims=(10,),
            flow_mults=(1,),
            flow_reps=1,
            orth_n=16,
            orth_widths=(8, 14),
            orth_reps=4,
        ),
    }

    def configs(self, scale: str | Design = "quick") -> list[dict[str, Any]]:
        p = self.design(scale)
        out: list[dict[str, Any]] = []
        m = p.width
        for d in p.dims:
            for k in p.mults:
                n = int(round(k * d))
                ep = epochs(n, m)
                for r in range(p.reps):
                    base = _base(self.name, n, d, m, p.seed_base + r, "sphere")
                    # t = k lr reaches epochs − 1 after exactly epochs − 1 steps of 1 (their
                    # losses 0 .. epochs − 1 are checked) and (epochs − 1) / lr steps of lr
                    t_end = float(ep - 1)
                    out.append({**base, "dynamics": "descent", "lr": 1.0, "t_max": t_end})
                    out.append({**base, "dynamics": "descent", "lr": p.small_lr, "t_max": t_end})
                    if d in p.flow_dims and k in p.flow_mults and r < p.flow_reps:
                        out.append({**base, "dynamics": "flow", "t_max": float(ep - 1)})
        n = p.orth_n
        for m in p.orth_widths:
            ep = epochs(n, m)
            for r in range(p.orth_reps):
                base = _base(self.name, n, n, m, p.seed_base + r, "sphere_orthogonal")
                out.append({**base, "dynamics": "descent", "lr": 1.0, "t_max": float(ep - 1)})
        return out

    def analyse(self, frame: pd.DataFrame, arrays: Arrays) -> dict[str, Any]:
        return analyse_dana(frame, arrays)

    def tables(self, analysis: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
        t = {"dana2025_cells": analysis["cells"], "dana2025_thresholds": analysis["thresholds"]}
        if analysis["orthogonal"] is not None:
            t["dana2025_orthogonal"] = analysis["orthogonal"]["cells"]
        return t

    def figures(self, analysis: Mapping[str, Any]) -> dict[str, Any]:
        from ..plots import plot_convergence_threshold

        a = analysis
        orth = a["orthogonal"]["cells"] if a["orthogonal"] is not None else None
        return {
            "dana2025": plot_convergence_threshold(
                a["cells"], a["sharpness_histories"], orth, labels=LABELS
            )
        }

    def captions(self, analysis: Mapping[str, Any]) -> dict[str, str]:
        return {
            "dana2025": (
                "Dana et al.'s convergence experiment. (a) fraction of draws converged (Σ r² < 1 "
                "within their epoch budget) against n, per d, for gradient descent at their step 1, "
                "at a small step over the same time, and the exact flow (Wilson 95% intervals). (b) "
                "median lr · sharpness / 2 along the step-1 runs and the small-step runs: above 1 "
                "the step exceeds the stability bound 2 / sharpness. (c) the sharpness along a few "
                "step-1 runs, against 2 / lr. (d) orthogonal data: share of well-initialised draws "
                "against the exact probability (docs/field-setups.md)."
            )
        }

    def quantities(self, analysis: Mapping[str, Any]) -> list[dict[str, Any]]:
        a = analysis
        out = []
        for _, r in a["thresholds"].iterrows():
            out.append(
                quantity(
                    f"n50, d = {r['d']}, {LABELS[r['run']]}",
                    r["n50"] if math.isfinite(r["n50"]) else math.nan,
                    detail=f"{_fmt_n50(r['n50'])}; 95% bootstrap [{_fmt_n50(r['n50_lo'])}, "
                    f"{_fmt_n50(r['n50_hi'])}]; grid n = {r['n_min']}..{r['n_max']}",
                )
            )
        e = a["edge"]
        out.append(
            quantity(
                "share of step-1 runs whose sharpness exceeded 2/lr",
                e["over"] / max(e["runs"], 1),
                error_kind="Wilson 95%",
                detail=f"{e['over']}/{e['runs']} [{e['lo']:.2f}, {e['hi']:.2f}]",
            )
        )
        out.append(
            quantity(
                "median of lr · max sharpness / 2, step 1",
                e["median"],
                detail=f"95% bootstrap [{e['median_lo']:.3f}, {e['median_hi']:.3f}]",
            )
        )
        out.append(
            quantity(
                f"largest lr · max sharpness / 2, step {e['small_lr']:g}",
                e["small_max"],
                detail=f"{e['small_over']}/{e['small_runs']} over 1",
            )
        )
        for other, c in a["pairs"].items():
            out.append(
                quantity(
                    f"draws converged by {LABELS[other]} but not by step 1",
                    c["only_other"],
                    detail=f"of {c['draws']} draws; the reverse: {c['only_step1']}",
                )
            )
        o = a["orthogonal"]
        if o is not None:
            out.append(
                quantity(
                    "orthogonal data: chi-square of well-initialised counts vs exact P (p-value)",
                    o["p_value"],
                    detail=f"X2 = {o['chi2']:.3g} on {o['dof']} widths, {o['runs']} draws",
                )
            )
            out.append(
                quantity(
                    "orthogonal data: well-initialised draws that converged (step 1)",
                    o["converged_well"] / max(o["well"], 1),
                    detail=f"{o['converged_well']}/{o['well']}; not well initialised "
                    f"but converged: {o['converged_not_well']}/{o['not_well']}",
                )
            )
        return out

    def results(self, analysis: Mapping[str, Any]) -> dict[str, Any]:
        a = analysis
        th = a["thresholds"].replace([math.inf], 1e300)
        res = {"thresholds": th.to_dict(orient="records"), "edge": a["edge"], "pairs": a["pairs"]}
        if a["orthogonal"] is not None:
            res["orthogonal"] = {k: v for k, v in a["orthogonal"].items() if k != "cells"}
        return res

    def claims(self, analysis: Mapping[str, Any]) -> list[Claim]:
        a = analysis
        th = a["thresholds"]
        claims = []
        s1 = th[th["run"] == "gd_step1"].sort_values("d")
        if len(s1) >= 2:
            los, his = s1["n50_lo"].to_numpy(), s1["n50_hi"].to_numpy()
            rising = all(his[i] < los[i + 1] for i in range(len(s1) - 1))
            falling = any(los[i] > his[i + 1] for i in range(len(s1) - 1))
            claims.append(
                Claim(
                    source="Dana et al. 2025",
                    claim="With a fixed width, gradient descent converges below a number of samples "
                    "n that grows with the dimension d (their experiment 1.1, step 1).",
                    measured="; ".join(
                        f"d = {r['d']}: n50 = {_fmt_n50(r['n50'])} "
                        f"[{_fmt_n50(r['n50_lo'])}, {_fmt_n50(r['n50_hi'])}]"
                        for _, r in s1.iterrows()
                    ),
                    verdict="confirmed" if rising else ("not confirmed" if falling else "open"),
                    evidence="figure dana2025 (a), table dana2025_thresholds",
                    rule="confirmed when the bootstrap 95% intervals of n50 increase strictly with d, "
                    "not confirmed when one decreases, open otherwise",
                )
            )
        e = a["edge"]
        if e["runs"]:
            in_band = 0.8 <= e["median_lo"] and e["median_hi"] <= 1.25
            off = e["median_hi"] < 0.8 or e["median_lo"] > 1.25
            claims.append(
                Claim(
                    source="reluflow (new finding)",
                    claim="Their learning rate 1 runs gradient descent at the edge of stability: the "
                    "sharpness climbs to about 2 / lr (the small step stays far below its bound).",
                    measured=f"median lr · max sharpness / 2 over the step-1 runs {e['median']:.3f} "
                    f"[{e['median_lo']:.3f}, {e['median_hi']:.3f}]; above 1 (StabilityWarning) in "
                    f"{e['over']}/{e['runs']} runs [{e['lo']:.2f}, {e['hi']:.2f}]; at step "
                    f"{e['small_lr']:g} at most {e['small_max']:.3f}",
                    verdict="confirmed" if in_band else ("not confirmed" if off else "open"),
                    evidence="figure dana2025 (b, c), table dana2025_cells",
                    rule="confirmed when the bootstrap 95% interval of the median lies in [0.8, 1.25] "
                    "(the sharpness reaches 2/lr and no further), not confirmed when it lies outside, "
                    "open otherwise",
                )
            )
        small = th[th["run"] == "gd_small"].set_index("d")
        if len(s1) and len(small):
            per_d, verdicts = [], []
            for _, r in s1.iterrows():
                if r["d"] not in small.index:
                    continue
                sm = small.loc[r["d"]]
                per_d.append(
                    f"d = {r['d']}: step 1 {_fmt_n50(r['n50'])} "
                    f"[{_fmt_n50(r['n50_lo'])}, {_fmt_n50(r['n50_hi'])}], small step "
                    f"{_fmt_n50(sm['n50'])} [{_fmt_n50(sm['n50_lo'])}, "
                    f"{_fmt_n50(sm['n50_hi'])}]"
                )
                verdicts.append(
                    "confirmed"
                    if sm["n50_lo"] > r["n50_hi"]
                    else "not confirmed"
                    if sm["n50_hi"] < r["n50_lo"]
                    else "open"
                )
            pf = a["pairs"].get("flow")
            if pf:
                per_d.append(
                    f"same draws: the flow converged and step 1 did not in "
                    f"{pf['only_other']}/{pf['draws']}, the reverse in {pf['only_step1']}"
                )
            verdict = (
                "confirmed"
                if verdicts and all(v == "confirmed" for v in verdicts)
                else "not confirmed"
                if "not confirmed" in verdicts
                else "open"
            )
            if pf and pf["only_step1"] > pf["only_other"]:
                verdict = "not confirmed"
            claims.append(
                Claim(
                    source="reluflow (new finding)",
                    claim="Their convergence threshold is a property of gradient descent at step 1, "
                    "not of the gradient flow they analyse: at a small step over the same time, and "
                    "by the exact flow on the same draws, convergence holds to larger n.",
                    measured="; ".join(per_d),
                    verdict=verdict,
                    evidence="figure dana2025 (a), tables dana2025_thresholds, dana2025_cells",
                    rule="confirmed when, for every d, the small step's n50 interval lies above step "
                    "1's and the flow converges on at least as many of the same draws as step 1; not "
                    "confirmed when an interval lies below or the flow converges on fewer; open "
                    "otherwise",
                )
            )
        o = a["orthogonal"]
        if o is not None:
            claims.append(
                Claim(
                    source="Dana et al. 2025",
                    claim="On orthogonal data a network is well initialised (every sample has a neuron "
                    "of its label's sign active on it) with the probability reluflow computes exactly, "
                    "Σ_k C(m,k) 2^(−m) (1 − 2^(−k))^(n₊) (1 − 2^(−(m−k)))^(n₋); they bound it by "
                    "1 − n (3/4)^m.",
                    measured=f"chi-square of the counts per width against the exact P: "
                    f"X2 = {o['chi2']:.3g} on {o['dof']} widths, p = {o['p_value']:.3g} "
                    f"({o['runs']} draws, n = {int(o['cells']['n'].iloc[0])})",
                    verdict="confirmed" if o["p_value"] >= 0.01 else "not confirmed",
                    evidence="figure dana2025 (d), table dana2025_orthogonal",
                    rule="confirmed when the test gives p ≥ 0.01, not confirmed otherwise",
                )
            )
            frac = o["converged_well"] / max(o["well"], 1)
            lo, _ = S.wilson_interval(o["converged_well"], max(o["well"], 1))
            claims.append(
                Claim(
                    source="Dana et al. 2025",
                    claim="On orthogonal data a well-initialised network converges (and one that is "
                    "not cannot fit its uncovered samples).",
                    measured=f"step 1: {o['converged_well']}/{o['well']} well-initialised draws "
                    f"converged ({pm(frac, math.nan)}, Wilson lower bound {float(lo):.2f}); "
                    f"{o['converged_not_well']}/{o['not_well']} of the others; sharpness above "
                    f"2/lr in {o['edge_over']}/{o['runs']}",
                    verdict="confirmed"
                    if float(lo) >= 0.9 and o["converged_not_well"] == 0
                    else ("not confirmed" if frac < 0.9 or o["converged_not_well"] > 0 else "open"),
                    evidence="table dana2025_orthogonal",
                    rule="confirmed when the Wilson lower bound of the converged share of "
                    "well-initialised draws is at least 0.9 and no other draw converged; not "
                    "confirmed when the share is below 0.9 or another draw converged; open otherwise",
                )
            )
        return claims


EXPERIMENT = Dana2025()
