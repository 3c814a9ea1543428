"""The trajectory type shared by every finite-λ dynamics (flow, descent)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .network import Network

__all__ = ["SolverStats", "Trajectory"]


@dataclass(frozen=True)
class SolverStats:
    """Work done by a solver.

    Attributes:
        steps: accepted steps (for descent: iterations).
        rejected: rejected steps (error too large).
        evaluations: vector-field evaluations.
        kinks: ReLU kinks located as events: a coordinate ``u_ji`` reaching 0, or
            (general data) entering or leaving a sliding mode.
        kink_steps: steps cut short at such an event.
        sliding: entries into a sliding mode (general data: a coordinate that would
            rise while inactive and fall once active is held at 0, carrying the
            fraction of activity α in [0, 1] that keeps it there, Filippov's
            solution; it leaves when α reaches 0 or 1, located as an event).
        closed_form_t: end of the initial phase solved in closed form (orthogonal
            data, see ``closed_form_start`` in :func:`reluflow.gradient_flow`); 0 if none.
        plateau_jumps: plateaus crossed in closed form (docs/any-scale.md): the
            stretches where the visible neurons are at rest and the others evolve
            linearly, whose length grows like ``log(1/λ)``.
    """

    steps: int = 0
    rejected: int = 0
    evaluations: int = 0
    kinks: int = 0
    kink_steps: int = 0
    sliding: int = 0
    closed_form_t: float = 0.0
    plateau_jumps: int = 0

    def as_dict(self) -> dict[str, int | float]:
        return dict(self.__dict__)


@dataclass(frozen=True, eq=False)
class Trajectory:
    """A sampled trajectory of a finite-λ dynamics, with its final state.

    Rows are samples in time; the sampling is a geometric grid in ``t`` plus
    every kink event and the final time, dense enough to draw every plateau
    (which lasts ``∝ log 1/λ``) and every jump (which lasts ``O(1)``).

    Attributes:
        dynamics: ``"flow"``, ``"descent"`` or ``"sgd"``.
        t: times, shape (T,). tau: rescaled times ``t / log(1/λ)``.
        loss: training loss at each sample.
        a_abs: ``|a_j|``, shape (T, m): 0 where it underflows float64 (a neuron below
            1e-308); ``log_abs_a`` holds ``ln |a_j|`` exactly at any scale.
        w_norm: ``‖w_j‖``, shape (T, m).
        n_active: number of active coordinates ``u_ji > 0`` per neuron, (T, m).
        final: the network at the last time.
        initial: the network at ``t = 0``.
        success: whether the requested stopping criterion was reached.
        status: why it stopped (``"loss_tol"``, ``"t_max"``, ``"stalled"``,
            ``"max_steps"``, ``"diverged"``, …). message: a sentence for people.
        conservation_drift: ``max_t max_j |Δ(a_j² − ‖w_j‖²)| / max(‖θ_j‖²)``: the
            largest relative drift of the quantity gradient flow conserves.
        kinks: the located kink events as a table (t, neuron, sample, kind).
        stats: solver statistics. provenance: version, seed, configuration, tolerances.
        log_abs_a: ``ln |a_j|`` at each sample, shape (T, m), at any scale.
        activation_t: per neuron, the time its ``|a_j|`` first reached
            ``activation_level`` (NaN if never), located on the solver's dense output
            (flow; None for dynamics that do not locate it).
        activation_level: the level ``L`` of :func:`reluflow.activation_events`.
    """

    dynamics: str
    t: np.ndarray
    tau: np.ndarray
    loss: np.ndarray
    a_abs: np.ndarray
    w_norm: np.ndarray
    n_active: np.ndarray
    final: Network
    initial: Network
    success: bool
    status: str
    message: str
    conservation_drift: float
    stats: SolverStats
    kink_t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    kink_neuron: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    kink_sample: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    kink_up: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    kink_sliding: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    wall_s: float = 0.0
    provenance: dict[str, Any] = field(default_factory=dict)
    log_abs_a: np.ndarray | None = None
    activation_t: np.ndarray | None = None
    activation_level: float = float("nan")

    def __post_init__(self) -> None:
        if self.log_abs_a is None:
            with np.errstate(divide="ignore"):
                object.__setattr__(self, "log_abs_a", np.log(np.asarray(self.a_abs, float)))

    @property
    def scale(self) -> float:
        """λ as a float (0.0 below float64's range: use :attr:`log10_scale`)."""
        return self.final.scale

    @property
    def log10_scale(self) -> float:
        """``log10 λ``, exact at any scale."""
        return float(self.final.log10_scale)

    @property
    def log_inv_scale(self) -> float:
        """``ln(1/λ)``, the unit of ``τ``, exact at any scale (NaN for λ >= 1)."""
        return self.final.log_inv_scale

    @property
    def log_scale(self) -> np.ndarray:
        """``p_j(t) = ln|a_j(t)| / ln(1/λ)``, shape (T, m): −1 at ``t = 0`` for a
        balanced neuron of size λ, 0 for an O(1) one (the jump process's log-scale)."""
        return self.log_abs_a / self.log_inv_scale

    @property
    def final_loss(self) -> float:
        return float(self.loss[-1])

    @property
    def m(self) -> int:
        return int(self.a_abs.shape[1])

    def frame(self) -> pd.DataFrame:
        """Long table: one row per (sample time, neuron) with ``t, tau, loss, neuron, a_abs, w_norm, n_active``."""
        T, m = self.a_abs.shape
        return pd.DataFrame(
            {
                "t": np.repeat(self.t, m),
                "tau": np.repeat(self.tau, m),
                "loss": np.repeat(self.loss, m),
                "neuron": np.tile(np.arange(m), T),
                "a_abs": self.a_abs.ravel(),
                "w_norm": self.w_norm.ravel(),
                "n_active": self.n_active.ravel(),
            }
        )

    def kinks(self) -> pd.DataFrame:
        """The located ReLU kinks: time, neuron, sample, whether the coordinate became active,
        and whether it entered a sliding mode (general data: held at 0, see :class:`SolverStats`)."""
        slide = self.kink_sliding
        if slide.shape != self.kink_t.shape:
            slide = np.zeros(self.kink_t.shape, dtype=bool)
        return pd.DataFrame(
            {
                "t": self.kink_t,
                "tau": self.kink_t / self.log_inv_scale,
                "neuron": self.kink_neuron,
                "sample": self.kink_sample,
                "activated": self.kink_up,
                "sliding": slide,
            }
        )
