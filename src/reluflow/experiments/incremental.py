"""Experiment ``incremental``: the saddle-to-saddle staircase, the flow at a ladder of λ against the limit.

One instance ``(n, m, seed)`` of orthogonal data: the gradient flow at each λ
of a ladder and the λ → 0 jump process from the same seed (same neurons, same
initial signs). As λ → 0 the flow's loss plateaus, activation times and
final ``|a_j|`` approach the jump process's, one neuron per saddle
(docs/limit.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from . import _stats as S
from ._base import (
    Arrays,
    Claim,
    Design,
    Experiment,
    flow_run,
    pm,
    quantity,
    run,
    verdict_from_interval,
)

__all__ = ["Incremental", "IncrementalDesign"]


@dataclass(frozen=True)
class IncrementalDesign(Design):
    """The one instance and its λ ladder.

    Attributes:
        n, m, seed: the instance (data labels and initialisation from ``seed``).
        scales: the λ ladder of the flow runs.
    """

    n: int = 64
    m: int = 12
    seed: int = 3
    scales: tuple[float, ...] = (1e-4, 1e-8, 1e-16, 1e-32)


def _gap_rate(table: pd.DataFrame, column: str) -> dict[str, float]:
    """Log-log slope of a gap against ``log(1/λ)`` (a rate ``1/log(1/λ)`` is slope −1)."""
    d = table[np.isfinite(table[column]) & (table[column] > 0)]
    return S.ols(np.log(d["log_inv_scale"].astype(float)), np.log(d[column].astype(float)))


class Incremental(Experiment):
    name = "incremental"
    title = "Incremental learning"
    description = (
        "One instance of orthogonal data is trained by the exact gradient flow from a ladder of "
        "initialisation scales λ and, from the same seed (same neurons, same initial signs), by "
        "the λ → 0 jump process. The paper predicts a staircase: the loss sits on plateaus "
        "between saddles, each left by one neuron that grows from scale λ and fits the samples it "
        "still covers; in rescaled time τ = t / log(1/λ) the flow's staircase converges onto the "
        "jump process's as λ → 0, with errors of order 1/log(1/λ)."
    )
    designs = {
        "paper": IncrementalDesign(scale="paper"),
        "quick": IncrementalDesign(scale="quick"),
        "smoke": IncrementalDesign(scale="smoke", n=16, m=6, seed=0, scales=(1e-4, 1e-8)),
    }

    def configs(self, scale: str | Design = "quick") -> list[dict[str, Any]]:
        p = self.design(scale)
        s0 = p.seed_base + p.seed
        out = [run(p, self.name, "limit", p.n, p.m, s0)]
        out += [flow_run(p, self.name, p.n, p.m, s0, lam) for lam in p.scales]
        return out

    def analyse(self, frame: pd.DataFrame, arrays: Arrays) -> dict[str, Any]:
        """The flow at each λ against the limit, on one instance.

        Returns ``flows`` and ``limit`` (the plotted series), ``table`` (one row
        per λ: events, largest and mean activation-time gap to the limit, largest
        ``|a_j|`` gap, relative ``‖θ‖²`` gap, whether the flow activates the
        limit's neurons in the limit's order, how many neurons the flow's
        detector counts as activated that the limit leaves small, and their
        largest final ``|a_j|``), ``events`` (flow against limit
        activation time per limit event) and ``rates`` (log-log slopes of the
        gaps against ``log(1/λ)``).
        """
        lim_rows = frame[frame["dynamics"] == "limit"]
        flow_rows = frame[frame["dynamics"] == "flow"]
        if lim_rows.empty or flow_rows.empty:
            raise InputError(
                "the store holds no complete 'incremental' experiment (flow and limit runs)"
            )
        if lim_rows["seed"].nunique() != 1 or frame["n"].nunique() != 1:
            raise InputError("the 'incremental' runs are not one instance (one n, one seed)")
        lim_row = lim_rows.iloc[0]
        la = arrays(lim_row["run_id"])
        init_loss = la.get("initial_loss", lim_row.get("initial_loss", math.nan))
        limit = {
            "tau": np.asarray(la["tau"], float),
            "plateau_loss": np.asarray(la["plateau_loss"], float),
            "initial_loss": S.scalar(init_loss),
            "a": np.asarray(la["a"], float),
            "event_neuron": np.asarray(la["event_neuron"], int),
            "run_id": lim_row["run_id"],
        }
        lim_norm = float(S.col(lim_rows, "norm_sq").iloc[0])
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
                ev_rows.append({"scale": f["scale"], "event": k, "neuron": int(jk),
                                "tau_limit": float(tk), "tau_flow": tf, "gap": abs(tf - tk)})
            gaps = np.asarray(gaps, float)
            # the limit's neurons (first of each event) in the order the flow activates them
            in_limit = np.isin(f["event_neuron"], limit["event_neuron"])
            order = f["event_neuron"][in_limit]
            # neurons the flow lifts to its detection level that the limit leaves at p_j < 0
            extra = ~np.isin(f["event_neuron"], np.flatnonzero(np.abs(limit["a"]) > 0))
            extra_a = f["a_abs"][-1][f["event_neuron"][extra]]
            norm = float(r.get("norm_sq", math.nan))
            rows.append({
                "scale": f["scale"],
                "log_inv_scale": math.log(1 / f["scale"]),
                "flow_events": int(f["event_tau"].size),
                "limit_events": int(limit["tau"].size),
                "limit_order_kept": bool(np.array_equal(order, limit["event_neuron"])),
                "extra_activations": int(extra.sum()),
                "extra_max_a": float(extra_a.max()) if extra_a.size else 0.0,
                "max_tau_gap": float(np.nanmax(gaps)) if np.isfinite(gaps).any() else math.nan,
                "mean_tau_gap": float(np.nanmean(gaps)) if np.isfinite(gaps).any() else math.nan,
                "missing": int(np.isnan(gaps).sum()),
                "a_gap": float(np.max(np.abs(f["a_abs"][-1] - np.abs(limit["a"])))),
                "norm_sq": norm,
                "norm_rel_gap": abs(norm - lim_norm) / lim_norm if lim_norm > 0 else math.nan,
                "final_loss": float(f["loss"][-1]),
                "limit_final_loss": float(limit["plateau_loss"][-1])
                if limit["tau"].size else limit["initial_loss"],
                "seed": int(r["seed"]),
                "run_id": r["run_id"],
            })
        table = pd.DataFrame(rows)
        rates = {c: _gap_rate(table, c) for c in ("mean_tau_gap", "norm_rel_gap")}
        return {
            "flows": flows,
            "limit": limit,
            "limit_norm_sq": lim_norm,
            "table": table,
            "events": pd.DataFrame(ev_rows),
            "rates": rates,
            "n": int(lim_row["n"]),
            "m": int(lim_row["m"]),
            "seed": int(lim_row["seed"]),
            "ties": S.scalar(lim_row.get("ties", math.nan)),
        }

    def tables(self, analysis: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
        return {"incremental_runs": analysis["table"], "incremental_events": analysis["events"]}

    def figures(self, analysis: Mapping[str, Any]) -> dict[str, Any]:
        from ..plots import plot_incremental

        a = analysis
        return {"incremental": plot_incremental(
            a["flows"], a["limit"],
            title=f"n = {a['n']}, m = {a['m']}, seed = {a['seed']}, orthogonal data")}

    def captions(self, analysis: Mapping[str, Any]) -> dict[str, str]:
        return {"incremental": (
            "Incremental learning. Top: training loss against τ = t / log(1/λ) for the gradient "
            "flow at each λ (colours: λ), with the λ → 0 jump process's staircase dashed. Below, "
            "one panel per λ: every |a_j| of the flow on a log scale, one colour per neuron j "
            "(the key on the right names them); dotted vertical lines are the flow's activation "
            "events (in the neuron's colour), dashed grey lines the limit's event times, and the "
            "◀ marks at the right edge the limit's final |a_j|. As λ → 0 the flow's plateaus and "
            "jumps converge onto the limit's (docs/limit.md)."
        )}

    def quantities(self, analysis: Mapping[str, Any]) -> list[dict[str, Any]]:
        a = analysis
        out = [quantity("limit events", float(a["limit"]["tau"].size),
                        detail=f"n = {a['n']}, m = {a['m']}, seed = {a['seed']}, "
                        f"ties = {a['ties']:g}")]
        for _, r in a["table"].iterrows():
            out.append(quantity(
                f"max |tau_flow - tau_limit| at lambda = {r['scale']:.0e}", r["max_tau_gap"],
                detail=f"flow events {r['flow_events']}, missing {r['missing']}, "
                f"max ||a_j| gap| {r['a_gap']:.3g}, |theta|^2 gap {r['norm_rel_gap']:.3g}"))
        for col, fit in a["rates"].items():
            out.append(quantity(f"log-log slope of {col} against log(1/lambda)", fit["slope"],
                                fit["slope_se"], "OLS s.e.", f"{fit['points']} scales"))
        return out

    def results(self, analysis: Mapping[str, Any]) -> dict[str, Any]:
        a = analysis
        return {
            "n": a["n"], "m": a["m"], "seed": a["seed"], "ties": a["ties"],
            "limit_events": int(a["limit"]["tau"].size),
            "per_scale": a["table"].drop(columns=["run_id"]).to_dict(orient="records"),
            "rates": a["rates"],
        }

    def claims(self, analysis: Mapping[str, Any]) -> list[Claim]:
        a = analysis
        t = a["table"].sort_values("scale", ascending=False)
        small = t.iloc[-1]
        kept = bool(small["limit_order_kept"]) and int(small["missing"]) == 0
        extra = t["extra_max_a"].to_numpy(float)
        shrinking = bool(np.all(np.diff(extra) <= 0))
        k = int(small["limit_events"])
        stair = Claim(
            source="Town et al. 2026",
            claim="Training from small initialisation is saddle to saddle: the loss follows a "
            "staircase of plateaus and each saddle is left by one new neuron.",
            measured=(
                f"at λ = {small['scale']:.0e} the flow activates the limit's {k} event neurons "
                + ("in the limit's order" if kept else "NOT in the limit's order")
                + f" ({int(small['missing'])} missing; tied events in the limit: {a['ties']:g}), "
                f"activation times within {small['max_tau_gap']:.3g} in τ; neurons the limit "
                "leaves small but the flow lifts above its detection level: "
                + ", ".join(str(int(v)) for v in t["extra_activations"])
                + " (λ = " + ", ".join(f"{v:.0e}" for v in t["scale"]) + "), largest final "
                "|a_j| among them " + ", ".join(f"{v:.2g}" for v in extra)
            ),
            verdict="not confirmed" if not kept
            else "confirmed" if shrinking and a["ties"] == 0 else "open",
            evidence="figure incremental, table incremental_runs",
            rule="confirmed when the flow at the smallest λ activates the limit's event "
            "neurons in the limit's order, none missing, the neurons the limit leaves small "
            "shrink as λ decreases, and no saddle is left by several neurons at once (a tie); "
            "not confirmed when the order differs or one is missing; open otherwise",
        )
        out = [stair]
        for column, what in (("mean_tau_gap", "activation times approach"),
                             ("norm_rel_gap", "the learned ‖θ‖² approaches")):
            fit = a["rates"][column]
            lo = fit["slope"] - S.Z95 * fit["slope_se"]
            hi = fit["slope"] + S.Z95 * fit["slope_se"]
            gap = ("mean activation-time gap |τ_flow − τ_limit|" if column == "mean_tau_gap"
                   else "relative gap |‖θ‖²_flow − ‖θ‖²_limit| / ‖θ‖²_limit")
            out.append(Claim(
                source="Town et al. 2026",
                claim=f"At finite λ, {what} the limit's with errors of order "
                "1/log(1/λ).",
                measured=(
                    f"log-log slope of the {gap} against log(1/λ): "
                    f"{pm(fit['slope'], fit['slope_se'])} (OLS s.e., {fit['points']} values "
                    f"of λ from {t['scale'].max():.0e} to {t['scale'].min():.0e}; the rate "
                    "1/log(1/λ) is slope −1); gaps " + ", ".join(f"{v:.3g}" for v in t[column])
                ),
                verdict=verdict_from_interval(lo, hi, -1.25, -0.75),
                evidence="table incremental_runs",
                rule="confirmed when the 95% interval of the slope lies in [−1.25, −0.75], "
                "not confirmed when it lies outside, open otherwise",
            ))
        return out


EXPERIMENT = Incremental()
