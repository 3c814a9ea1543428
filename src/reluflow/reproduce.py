"""``reluflow reproduce``: run the experiments' configurations into one store, then report.

Each experiment is a module of :mod:`reluflow.experiments` (its design per
scale, its run configurations, its analysis, figures and claims); this module
only orchestrates: the configurations of the selected experiments →
:func:`reluflow.sweep.run_sweep` into ``out/results.sqlite`` (parallel and
resumable: a rerun only computes the runs the store lacks) → the report,
rebuilt from the store alone (:func:`reluflow.report.build_report`, the code
path of ``reluflow report``).

Scales. ``paper`` is the full study; ``quick`` (the README's command) keeps
every part of it at a coarser grid with fewer seeds and finishes in a few
minutes on 2 cores; ``smoke`` is a seconds-long version for tests.

Seeds are explicit: run ``r`` of a cell uses seed ``seed_base + r`` for the
data (labels) and the initialisation alike, and is recorded in the store.
docs/experiments.md lists what each experiment runs at each scale.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _validate as V
from .experiments import EXPERIMENTS, SCALES, select
from .experiments import configs as experiment_configs

__all__ = ["EXPERIMENTS", "SCALES", "ReproduceResult", "design", "experiment_configs", "reproduce"]


def design(scale: str = "quick", only: str | Iterable[str] | None = None) -> dict[str, Any]:
    """The design of the selected experiments at ``scale``: every number their runs come from.

    Returns ``{"scale", "experiments", "runs", "designs": {name: design dict}}``
    (``reproduce.json`` beside the store holds it, and the report shows it).
    """
    scale = V.choice("scale", scale, SCALES)
    names = select(only)
    cfgs = experiment_configs(scale, names)
    return {
        "scale": scale,
        "experiments": list(names),
        "runs": {e: len(cfgs[e]) for e in names},
        "designs": {e: EXPERIMENTS[e].design(scale).as_dict() for e in names},
    }


@dataclass(frozen=True)
class ReproduceResult:
    """What :func:`reproduce` produced.

    Attributes:
        out: the output folder. store: the results store path.
        report: the HTML report path. figures: figure paths (PDF and PNG).
        summary: the summary table (one row per number behind a figure).
        claims: the claims and verdicts table.
        runs: configurations per experiment. computed: runs computed now
            (the rest were already in the store). failed: runs that failed now.
        wall_s: wall time.
    """

    out: Path
    store: Path
    report: Path
    figures: tuple[Path, ...]
    summary: Any
    claims: Any
    runs: dict[str, int]
    computed: int
    failed: int
    wall_s: float


def reproduce(
    out: str | Path = "reluflow-reproduce",
    scale: str = "quick",
    *,
    only: str | Iterable[str] | None = None,
    workers: int | None = 2,
    progress: bool = True,
) -> ReproduceResult:
    """Run the experiments into ``out/results.sqlite`` and build the report from the store.

    A rerun into the same folder resumes: runs already stored are not recomputed.

    Args:
        out: output folder (created).
        scale: ``"smoke"`` (seconds), ``"quick"`` (minutes on 2 cores) or ``"paper"``.
        only: experiments to run (``"a,b"`` or a list of names; default all of
            :data:`reluflow.experiments.EXPERIMENTS`). The report covers every
            experiment the store holds.
        workers: worker processes of the sweep (default 2).
        progress: show progress bars.

    Returns:
        A :class:`ReproduceResult`; report, figures and tables are in ``out``.
    """
    from .report import build_report
    from .store import ResultsStore
    from .sweep import run_sweep

    plan = design(scale, only)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store_path = out / "results.sqlite"
    wall0 = time.perf_counter()
    cfgs = experiment_configs(scale, plan["experiments"])
    todo = [c for e in plan["experiments"] for c in cfgs[e]]
    plan["workers"] = workers
    # the design beside the store: `reluflow report` shows it with the results
    (out / "reproduce.json").write_text(json.dumps(plan, indent=1))
    with ResultsStore(store_path) as store:
        summary = run_sweep(todo, store, workers=workers, progress=progress)
    if summary.failed:
        first = "; ".join(f"{rid}: {msg}" for rid, msg in summary.failures[:3])
        warnings.warn(
            f"{summary.failed} of {summary.total} runs failed and are missing from the figures "
            f"(a rerun retries them): {first}", RuntimeWarning, stacklevel=2)
    rep = build_report(store_path, out / "report.html", figures_dir=out / "figures",
                       tables_dir=out, plan=plan)
    return ReproduceResult(
        out=out,
        store=store_path,
        report=out / "report.html",
        figures=rep.figures,
        summary=rep.summary,
        claims=rep.claims,
        runs=plan["runs"],
        computed=int(summary.ran),
        failed=int(summary.failed),
        wall_s=time.perf_counter() - wall0,
    )
