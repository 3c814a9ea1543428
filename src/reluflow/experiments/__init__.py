"""The experiments of ``reluflow reproduce``, one module each, behind one interface.

:data:`EXPERIMENTS` maps each experiment's name to its
:class:`~reluflow.experiments._base.Experiment` (in report order). A new
experiment is a new module defining a subclass and ``EXPERIMENT = Subclass()``,
plus one line below. docs/experiments.md describes what each one runs and
what its figures, tables and claims mean.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import InputError
from ._base import SCALES, VERDICTS, Claim, Design, Experiment, verdict_from_interval
from .bias import EXPERIMENT as _bias
from .boursier2022 import EXPERIMENT as _boursier2022
from .dana2025 import EXPERIMENT as _dana2025
from .finite_scale import EXPERIMENT as _finite_scale
from .incremental import EXPERIMENT as _incremental
from .threshold import EXPERIMENT as _threshold

__all__ = [
    "EXPERIMENTS",
    "SCALES",
    "VERDICTS",
    "Claim",
    "Design",
    "Experiment",
    "configs",
    "select",
    "verdict_from_interval",
]

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        _incremental,
        _threshold,
        _bias,
        _boursier2022,
        _dana2025,
        _finite_scale,
    )
}


def select(only: str | Iterable[str] | None = None) -> tuple[str, ...]:
    """Experiment names from ``only`` (``"a,b"``, a list, or None for all), checked, in report order."""
    if only is None:
        return tuple(EXPERIMENTS)
    names = [s.strip() for s in only.split(",")] if isinstance(only, str) else list(only)
    names = [s for s in names if s]
    bad = [s for s in names if s not in EXPERIMENTS]
    if bad or not names:
        raise InputError(
            f"only must name experiments among {', '.join(EXPERIMENTS)}, got "
            f"{', '.join(map(repr, bad)) if bad else repr(only)}"
        )
    return tuple(e for e in EXPERIMENTS if e in names)


def configs(scale: str = "quick", only: str | Iterable[str] | None = None
            ) -> dict[str, list[dict[str, Any]]]:
    """Every run configuration of the selected experiments at ``scale``, keyed by experiment."""
    return {e: EXPERIMENTS[e].configs(scale) for e in select(only)}
