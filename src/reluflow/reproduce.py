"""The three reference experiments of THEORY.md §4–5, as lists of run configurations.

``reluflow reproduce`` = build every experiment's configurations
(:func:`experiment_configs`), run them into one results store
(:func:`reluflow.sweep.run_sweep`, parallel and resumable: a rerun only
computes the runs the store lacks), then rebuild every figure, table and the
HTML report from the store alone (:func:`reluflow.report.build_report`, the
code path of ``reluflow report``).

1. ``incremental``: one ``(n, m, seed)``; the flow at a ladder of λ and the
   jump process from the same seed (same neurons, same initial signs).
2. ``threshold``: P(interpolation) over a grid of ``n`` and ``m``: the jump
   process on ``reps`` seeds per cell (Monte Carlo), the flow at small λ on the
   small-``n`` cells; the exact curve is computed by the report.
3. ``bias``: ``‖θ‖²`` of the learned interpolator against ``n`` for the limit
   (up to ``n ≥ 10⁶``) and the flow at small λ (up to a few thousand), at the
   width ``m(n)`` where the limit interpolates with probability 0.999.

Scales. ``paper`` is the full study; ``quick`` (the README's command) keeps
every part of it at a coarser grid with fewer seeds and finishes in a few
minutes on 2 cores; ``smoke`` is a seconds-long version for tests.

Seeds are explicit: run ``r`` of a cell uses seed ``seed_base + r`` for the
data (labels) and the initialisation alike, and is recorded in the store.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _validate as V
from .errors import InputError
from .theory import width_for_probability

__all__ = [
    "EXPERIMENTS",
    "SCALES",
    "ExperimentPlan",
    "experiment_configs",
    "plan",
    "reproduce",
]

EXPERIMENTS = ("incremental", "threshold", "bias")
SCALES = ("smoke", "quick", "paper")


@dataclass(frozen=True)
class ExperimentPlan:
    """The design of the three experiments at one scale (every number the configs come from).

    Attributes:
        scale: ``"smoke"``, ``"quick"`` or ``"paper"``.
        incremental_n, incremental_m, incremental_seed: the one instance of experiment 1.
        incremental_scales: its λ ladder.
        threshold_log2n: exponents ``e`` of the grid ``n = 2^e``.
        threshold_widths: widths per ``n`` (at most this many, evenly spread over the
            range where the exact probability goes from ``p_lo`` to ``p_hi``).
        threshold_p_range: ``(p_lo, p_hi)``.
        threshold_reps: Monte Carlo seeds per ``(n, m)`` cell (limit).
        threshold_flow_log2n: exponents of the small ``n`` where the flow runs too.
        threshold_flow_reps: seeds per cell for the flow.
        bias_log2n: exponents of ``n`` for the limit; ``bias_extra_n``: further ``n``.
        bias_reps: seeds per ``n`` (limit). bias_flow_log2n, bias_flow_reps: the flow's.
        bias_p: the width ``m(n)`` is the smallest with P(interpolation) >= ``bias_p``.
        flow_scale: λ of the flow runs of experiment 2 (coverage, hence interpolation,
            does not depend on λ). bias_flow_scale: λ of those of experiment 3 (the
            norm approaches the limit's like 1/log(1/λ), so smaller).
        rtol: flow tolerance. labels, init: data labels and initialisation.
    """

    scale: str
    incremental_n: int = 64
    incremental_m: int = 12
    incremental_seed: int = 3
    incremental_scales: tuple[float, ...] = (1e-4, 1e-8, 1e-16, 1e-32)
    threshold_log2n: tuple[int, ...] = tuple(range(4, 17))
    threshold_widths: int = 12
    threshold_p_range: tuple[float, float] = (0.02, 0.98)
    threshold_reps: int = 200
    threshold_flow_log2n: tuple[int, ...] = tuple(range(4, 11))
    threshold_flow_reps: int = 50
    bias_log2n: tuple[int, ...] = tuple(range(4, 21))
    bias_extra_n: tuple[int, ...] = (10**6, 4 * 10**6)
    bias_reps: int = 64
    bias_flow_log2n: tuple[int, ...] = tuple(range(4, 14))
    bias_flow_reps: int = 12
    bias_p: float = 0.999
    flow_scale: float = 1e-8
    bias_flow_scale: float = 1e-16
    rtol: float = 1e-8
    labels: str = "balanced"
    init: str = "balanced"
    seed_base: dict[str, int] = field(
        default_factory=lambda: {"incremental": 0, "threshold": 0, "bias": 0}
    )

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


_PLANS: dict[str, dict[str, Any]] = {
    "paper": {},
    "quick": {
        "threshold_log2n": (4, 6, 8, 10, 12, 14, 16),
        "threshold_widths": 7,
        "threshold_reps": 40,
        "threshold_flow_log2n": (4, 6, 8),
        "threshold_flow_reps": 16,
        "bias_log2n": (4, 6, 8, 10, 12, 14, 16, 18, 20),
        "bias_extra_n": (),
        "bias_reps": 12,
        "bias_flow_log2n": (4, 6, 8, 10, 12),
        "bias_flow_reps": 4,
    },
    "smoke": {
        "incremental_n": 16,
        "incremental_m": 6,
        "incremental_seed": 0,
        "incremental_scales": (1e-4, 1e-8),
        "threshold_log2n": (4, 6, 8),
        "threshold_widths": 4,
        "threshold_reps": 8,
        "threshold_flow_log2n": (4,),
        "threshold_flow_reps": 4,
        "bias_log2n": (4, 6, 8, 10),
        "bias_extra_n": (),
        "bias_reps": 4,
        "bias_flow_log2n": (4, 6),
        "bias_flow_reps": 2,
    },
}


def plan(scale: str = "quick") -> ExperimentPlan:
    """The experiment design at ``scale`` (``"smoke"``, ``"quick"`` or ``"paper"``)."""
    scale = V.choice("scale", scale, SCALES)
    return ExperimentPlan(scale=scale, **_PLANS[scale])


def _counts(n: int, labels: str) -> tuple[int, int]:
    """``(n₊, n₋)`` of balanced labels (data.py: ``n//2`` negative, the rest positive)."""
    if labels != "balanced":
        raise InputError(f"reproduce needs labels='balanced' (exact label counts), got {labels!r}")
    return n - n // 2, n // 2


def threshold_widths(n: int, p: ExperimentPlan) -> list[int]:
    """Widths of the threshold grid at ``n``: spread over ``p_lo <= P_exact <= p_hi``."""
    n_pos, n_neg = _counts(n, p.labels)
    lo = width_for_probability(n_pos, n_neg, p.threshold_p_range[0])
    hi = width_for_probability(n_pos, n_neg, p.threshold_p_range[1])
    ms = np.unique(np.round(np.linspace(lo, hi, p.threshold_widths)).astype(int))
    return [int(m) for m in ms]


def bias_width(n: int, p: ExperimentPlan) -> int:
    """Width of the bias experiment at ``n``: the smallest with P(interpolation) >= ``bias_p``."""
    return int(width_for_probability(*_counts(n, p.labels), p.bias_p))


def _base(p: ExperimentPlan, experiment: str, dynamics: str, n: int, m: int, seed: int) -> dict:
    cfg: dict[str, Any] = {
        "experiment": experiment,
        "dynamics": dynamics,
        "data": "orthogonal",
        "n": int(n),
        "m": int(m),
        "labels": p.labels,
        "init": p.init,
        "seed": int(seed),
    }
    return cfg


def _flow(p: ExperimentPlan, experiment: str, n: int, m: int, seed: int, scale: float) -> dict:
    cfg = _base(p, experiment, "flow", n, m, seed)
    cfg["scale"] = float(scale)
    cfg["rtol"] = float(p.rtol)
    return cfg


def experiment_configs(scale: str | ExperimentPlan = "quick") -> dict[str, list[dict[str, Any]]]:
    """Every run configuration of the three experiments, keyed by experiment.

    Each configuration is a dict for :func:`reluflow.sweep.run_config`, tagged
    with its ``experiment``; flow runs carry ``scale`` and ``rtol``.
    """
    p = scale if isinstance(scale, ExperimentPlan) else plan(scale)
    out: dict[str, list[dict[str, Any]]] = {e: [] for e in EXPERIMENTS}
    # 1. incremental learning: one instance, a ladder of λ and the limit
    s0 = p.seed_base["incremental"] + p.incremental_seed
    inc = out["incremental"]
    inc.append(_base(p, "incremental", "limit", p.incremental_n, p.incremental_m, s0))
    for lam in p.incremental_scales:
        inc.append(_flow(p, "incremental", p.incremental_n, p.incremental_m, s0, lam))
    # 2. interpolation threshold
    thr = out["threshold"]
    sb = p.seed_base["threshold"]
    for e in p.threshold_log2n:
        n = 2**e
        for m in threshold_widths(n, p):
            thr.extend(
                _base(p, "threshold", "limit", n, m, sb + r) for r in range(p.threshold_reps)
            )
            if e in p.threshold_flow_log2n:
                thr.extend(
                    _flow(p, "threshold", n, m, sb + r, p.flow_scale)
                    for r in range(p.threshold_flow_reps)
                )
    # 3. implicit bias
    bias = out["bias"]
    sb = p.seed_base["bias"]
    for n in sorted({2**e for e in p.bias_log2n} | set(p.bias_extra_n)):
        m = bias_width(n, p)
        bias.extend(_base(p, "bias", "limit", n, m, sb + r) for r in range(p.bias_reps))
    for e in p.bias_flow_log2n:
        n = 2**e
        m = bias_width(n, p)
        bias.extend(
            _flow(p, "bias", n, m, sb + r, p.bias_flow_scale) for r in range(p.bias_flow_reps)
        )
    return out


@dataclass(frozen=True)
class ReproduceResult:
    """What :func:`reproduce` produced.

    Attributes:
        out: the output folder. store: the results store path.
        report: the HTML report path. figures: figure paths (PDF and PNG).
        summary: the summary table (one row per number behind a figure).
        runs: configurations per experiment. computed: runs computed now
            (the rest were already in the store). wall_s: wall time.
    """

    out: Path
    store: Path
    report: Path
    figures: tuple[Path, ...]
    summary: Any
    runs: dict[str, int]
    computed: int
    wall_s: float


def reproduce(
    out: str | Path = "reluflow-reproduce",
    scale: str = "quick",
    *,
    workers: int | None = 2,
    progress: bool = True,
    experiments: tuple[str, ...] = EXPERIMENTS,
) -> ReproduceResult:
    """Run the reference experiments into ``out/results.sqlite`` and build the report from it.

    A rerun into the same folder resumes: runs already stored are not recomputed.

    Args:
        out: output folder (created). scale: ``"smoke"``, ``"quick"`` or ``"paper"``.
        workers: worker processes of the sweep (default 2).
        progress: show progress bars.
        experiments: which experiments to run (default all three).

    Returns:
        A :class:`ReproduceResult`; the report and figures are in ``out``.
    """
    from .report import build_report
    from .store import ResultsStore
    from .sweep import run_sweep

    p = plan(scale)
    for e in experiments:
        V.choice("experiments", e, EXPERIMENTS)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store_path = out / "results.sqlite"
    wall0 = time.perf_counter()
    configs = experiment_configs(p)
    todo = [c for e in experiments for c in configs[e]]
    design = {
        "scale": p.scale,
        "experiments": list(experiments),
        "runs": {e: len(configs[e]) for e in experiments},
        "workers": workers,
        "plan": p.as_dict(),
    }
    # the design beside the store: `reluflow report` shows it with the results
    (out / "reproduce.json").write_text(json.dumps(design, indent=1))
    with ResultsStore(store_path) as store:
        summary = run_sweep(todo, store, workers=workers, progress=progress)
    computed = int(summary.ran)
    if summary.failed:
        first = "; ".join(f"{rid}: {msg}" for rid, msg in summary.failures[:3])
        warnings.warn(
            f"{summary.failed} of {summary.total} runs failed and are missing from the figures "
            f"(a rerun retries them): {first}", RuntimeWarning, stacklevel=2)
    rep = build_report(
        store_path,
        out / "report.html",
        figures_dir=out / "figures",
        tables_dir=out,
        plan=design,
    )
    return ReproduceResult(
        out=out,
        store=store_path,
        report=out / "report.html",
        figures=rep.figures,
        summary=rep.summary,
        runs={e: len(configs[e]) for e in experiments},
        computed=computed,
        wall_s=time.perf_counter() - wall0,
    )
