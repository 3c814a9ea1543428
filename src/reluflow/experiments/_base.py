"""The interface every experiment of ``reluflow reproduce`` implements, and its claims.

An experiment is one module of :mod:`reluflow.experiments` holding one
:class:`Experiment` subclass:

* ``designs``: per scale (``"smoke"``, ``"quick"``, ``"paper"``) a frozen
  :class:`Design` holding every number the run configurations come from;
* :meth:`Experiment.configs`: the sweep's run configurations at a scale
  (dicts for :func:`reluflow.sweep.run_config`, tagged with the experiment);
* :meth:`Experiment.analyse`: pure statistics of the store's rows of the
  experiment (a DataFrame) and their arrays, returning a dict;
* :meth:`Experiment.tables`, :meth:`Experiment.figures`,
  :meth:`Experiment.quantities`, :meth:`Experiment.results` and
  :meth:`Experiment.claims`: what the report shows, all computed from that dict.

The report (:mod:`reluflow.report`) only renders what these return; a new
experiment is a new module plus one line in the registry
(:data:`reluflow.experiments.EXPERIMENTS`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import pandas as pd

from .. import _validate as V
from ..errors import InputError

__all__ = ["SCALES", "VERDICTS", "Claim", "Design", "Experiment", "verdict_from_interval"]

SCALES = ("smoke", "quick", "paper")
VERDICTS = ("confirmed", "not confirmed", "open")

Arrays = Callable[[str], Mapping[str, Any]]


@dataclass(frozen=True)
class Claim:
    """One claim set beside the number that tests it.

    Attributes:
        source: who makes the claim (``"Town et al. 2026"``, ``"Dana et al. 2025"``,
            ``"reluflow (new finding)"``).
        claim: the statement, in one or two sentences.
        measured: the number that tests it with its uncertainty, as text.
        verdict: ``"confirmed"``, ``"not confirmed"`` or ``"open"`` (the data
            cannot tell at this scale).
        evidence: the figure or table that shows it.
        rule: how the verdict follows from the number (one sentence).
    """

    source: str
    claim: str
    measured: str
    verdict: str
    evidence: str
    rule: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def verdict_from_interval(lo: float, hi: float, target_lo: float, target_hi: float) -> str:
    """Equivalence-test verdict of a 95% interval ``[lo, hi]`` against a target range.

    ``"confirmed"`` when the interval lies inside ``[target_lo, target_hi]``,
    ``"not confirmed"`` when it lies wholly outside it, ``"open"`` when it
    straddles an edge or is not finite (too little data to tell).
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "open"
    if target_lo <= lo and hi <= target_hi:
        return "confirmed"
    if hi < target_lo or lo > target_hi:
        return "not confirmed"
    return "open"


@dataclass(frozen=True)
class Design:
    """Settings every experiment's design shares (subclasses add the experiment's own).

    Attributes:
        scale: ``"smoke"``, ``"quick"`` or ``"paper"``.
        labels: data labels (``"balanced"``: exact counts ``n - n//2`` positive).
        init: initialisation (``"balanced"`` or ``"independent"``).
        rtol: tolerance of the flow runs.
        seed_base: run ``r`` of a cell uses seed ``seed_base + r`` for the data
            and the initialisation alike.
    """

    scale: str = "quick"
    labels: str = "balanced"
    init: str = "balanced"
    rtol: float = 1e-8
    seed_base: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def label_counts(n: int, labels: str) -> tuple[int, int]:
    """``(n₊, n₋)`` of balanced labels (``orthogonal_data``: ``n//2`` negative, the rest positive)."""
    if labels != "balanced":
        raise InputError(f"reproduce needs labels='balanced' (exact label counts), got {labels!r}")
    return n - n // 2, n // 2


def run(design: Design, experiment: str, dynamics: str, n: int, m: int, seed: int,
        **extra: Any) -> dict[str, Any]:
    """One run configuration on orthogonal data (``extra``: ``scale``, ``rtol``, ...)."""
    cfg: dict[str, Any] = {
        "experiment": experiment,
        "dynamics": dynamics,
        "data": "orthogonal",
        "n": int(n),
        "m": int(m),
        "labels": design.labels,
        "init": design.init,
        "seed": int(seed),
    }
    cfg.update(extra)
    return cfg


def flow_run(design: Design, experiment: str, n: int, m: int, seed: int,
             scale: float) -> dict[str, Any]:
    """A flow run at initialisation scale ``scale`` with the design's tolerance."""
    return run(design, experiment, "flow", n, m, seed, scale=float(scale),
               rtol=float(design.rtol))


class Experiment(ABC):
    """One experiment of ``reluflow reproduce``: its design, its runs, its analysis, its report.

    Class attributes:
        name: the key in the store's ``experiment`` column and on the command line.
        title: the report section's heading.
        description: one paragraph for the report (what is run and why).
        designs: ``{scale: Design}`` for every scale of :data:`SCALES`.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]
    designs: ClassVar[Mapping[str, Design]]

    def design(self, scale: str | Design = "quick") -> Design:
        """The design at ``scale`` (a :class:`Design` is returned as given)."""
        if isinstance(scale, Design):
            return scale
        return self.designs[V.choice("scale", scale, SCALES)]

    @abstractmethod
    def configs(self, scale: str | Design = "quick") -> list[dict[str, Any]]:
        """Every run configuration at ``scale``, each tagged ``experiment = self.name``."""

    @abstractmethod
    def analyse(self, frame: pd.DataFrame, arrays: Arrays) -> dict[str, Any]:
        """Statistics of the store's rows of this experiment (``arrays(run_id)``: stored arrays).

        Raises :class:`~reluflow.errors.InputError` when the rows are not this
        experiment's design (the report then summarises them generically).
        """

    def tables(self, analysis: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
        """Named tables behind the figures (written as CSV and shown in the report)."""
        return {}

    def figures(self, analysis: Mapping[str, Any]) -> dict[str, Any]:
        """Named matplotlib figures (the first is the experiment's main figure)."""
        return {}

    def captions(self, analysis: Mapping[str, Any]) -> dict[str, str]:
        """A caption per figure name."""
        return {}

    def quantities(self, analysis: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Rows of the summary table: ``quantity``, ``value``, ``error``, ``error_kind``, ``detail``."""
        return []

    def results(self, analysis: Mapping[str, Any]) -> dict[str, Any]:
        """Key numbers of the experiment for ``summary.json`` (JSON-serialisable)."""
        return {}

    def claims(self, analysis: Mapping[str, Any]) -> list[Claim]:
        """The claims this experiment tests, each with its measured number and verdict."""
        return []


def quantity(name: str, value: float, error: float = math.nan, error_kind: str = "",
             detail: str = "") -> dict[str, Any]:
    """One summary row (see :meth:`Experiment.quantities`)."""
    return {"quantity": name, "value": float(value), "error": float(error),
            "error_kind": error_kind, "detail": detail}


def pm(value: float, err: float, digits: int = 3) -> str:
    """``value ± err`` as text (``err`` omitted when not finite)."""
    if not math.isfinite(err):
        return f"{value:.{digits}g}"
    return f"{value:.{digits}g} ± {err:.2g}"
