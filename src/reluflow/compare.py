"""Convergence of the finite-λ gradient flow to the λ → 0 jump process (docs/limit.md).

The flow at a ladder of scales and the jump process are run from the same
seed, hence the same initial signs (neuron ``j`` is the same neuron in every
run; the network at λ is λ times the network at 1, exactly, at any scale). Each
limit event is matched with the same neuron's activation in the flow
(:func:`reluflow.activation_events`, located on the solver's dense output).

What the gaps do (measured in tests/test_flow_limit.py, docs/any-scale.md): the
activation-time gaps shrink like ``1/log(1/λ)``; the ‖θ‖² gap shrinks too, but
only once ``log(1/λ)`` is large enough to separate the neurons' log-scales
(hundreds at n = 64: λ far below float64's 1e-308, which the log-scale engine
reaches), so the default ladder runs to 1e-1000.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import _validate as V
from ._provenance import provenance
from .analysis import activation_events
from .data import OrthogonalData
from .errors import InputError
from .flow import gradient_flow
from .limit import LimitResult, jump_process
from .network import init_network
from .trajectory import Trajectory

__all__ = ["Comparison", "compare_to_limit"]

DEFAULT_SCALES = ("1e-8", "1e-16", "1e-32", "1e-64", "1e-128", "1e-256", "1e-1000")


@dataclass(frozen=True, eq=False)
class Comparison:
    """Flow at several λ against the jump process on the same seed.

    Attributes:
        scales: the λ ladder, as ``log10 λ``. trajectories: one flow trajectory per λ.
        limit: the jump process.
        events: one row per (λ, limit event): ``scale`` (λ printed, exact at any
            scale), ``log10_scale``, ``event``, ``neuron``,
            ``tau_limit``, ``tau_flow`` (NaN if the neuron never activated in the
            flow), ``tau_gap = |tau_flow − tau_limit|``.
        summary: one row per λ: ``scale``, ``log10_scale``, ``max_tau_gap``, ``a_gap`` (max_j
            ``||a_j|_flow − |a_j|_limit|``), ``norm_sq_flow``, ``norm_sq_limit``,
            ``norm_gap`` (relative), ``missing`` (limit events the flow lacks),
            ``extra`` (flow activations the limit lacks), ``success``.
        provenance: configuration of the comparison.
    """

    scales: tuple[float, ...]
    trajectories: tuple[Trajectory, ...]
    limit: LimitResult
    events: pd.DataFrame
    summary: pd.DataFrame
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary.to_dict(orient="records"),
            "events": self.events.to_dict(orient="records"),
            "limit": self.limit.summary(),
            "provenance": self.provenance,
        }


def compare_to_limit(
    data: OrthogonalData,
    m: int,
    *,
    seed: int = 0,
    scales: Sequence[float | str] = DEFAULT_SCALES,
    init: str = "balanced",
    rtol: float = 1e-8,
    progress: bool = False,
) -> Comparison:
    """Run the flow at each λ of ``scales`` and the jump process from ``seed``; measure the gaps.

    Args:
        data: orthogonal dataset. m: width. seed: initialisation seed (shared).
        scales: the λ ladder: floats, or decimal strings for any scale (default
            1e-8 … 1e-1000, see :data:`DEFAULT_SCALES`).
        init: ``"balanced"`` or ``"independent"``. rtol: flow tolerance.
        progress: show a progress bar over the ladder.
    """
    if not isinstance(data, OrthogonalData):
        raise InputError(
            "compare_to_limit needs OrthogonalData (the jump process is defined for orthogonal data)"
        )
    scales = tuple(V.scale_log10(s)[1] for s in scales)
    if not scales:
        raise InputError("scales must hold at least one λ, got an empty list")
    if any(s >= 0 for s in scales):
        raise InputError(
            "scales must all be < 1 (τ = t / log(1/λ)), got "
            + ", ".join(V.format_scale(s) for s in scales)
        )
    wall0 = time.perf_counter()
    limit = jump_process(data, m, seed=seed, init=init)
    lim_rows = [
        (k, j, float(limit.tau[k])) for k, grp in enumerate(limit.event_neurons) for j in grp
    ]
    limit_neurons = {j for _, j, _ in lim_rows}
    lim_net = limit.network
    lim_norm = limit.norm_sq
    ev_rows, sum_rows, trajs = [], [], []
    for log10 in tqdm(scales, desc="compare", disable=not progress, leave=False):
        lam = V.format_scale(log10)
        net = init_network(data, m, log10_scale=log10, seed=seed, init=init)
        tr = gradient_flow(data, net, rtol=rtol)
        trajs.append(tr)
        act = activation_events(tr)
        tau_of = dict(zip(act["neuron"].astype(int), act["tau"], strict=True))
        for k, j, tl in lim_rows:
            tf = tau_of.get(j, math.nan)
            ev_rows.append(
                {
                    "scale": lam,
                    "log10_scale": log10,
                    "event": k,
                    "neuron": j,
                    "tau_limit": tl,
                    "tau_flow": tf,
                    "tau_gap": abs(tf - tl),
                }
            )
        gaps = [abs(tau_of[j] - tl) for _, j, tl in lim_rows if j in tau_of]
        norm_flow = tr.final.norm_sq(data)
        sum_rows.append(
            {
                "scale": lam,
                "log10_scale": log10,
                "max_tau_gap": max(gaps) if gaps else math.nan,
                "a_gap": float(np.abs(np.abs(tr.final.a) - np.abs(lim_net.a)).max()),
                "norm_sq_flow": norm_flow,
                "norm_sq_limit": lim_norm,
                "norm_gap": abs(norm_flow - lim_norm) / lim_norm if lim_norm > 0 else math.nan,
                "missing": sum(1 for _, j, _ in lim_rows if j not in tau_of),
                "extra": sum(1 for j in tau_of if j not in limit_neurons),
                "success": tr.success,
                "wall_s": tr.wall_s,
            }
        )
    prov = provenance(
        kind="compare",
        m=m,
        seed=seed,
        log10_scales=list(scales),
        init=init,
        rtol=rtol,
        data=data.describe(),
        wall_s=time.perf_counter() - wall0,
    )
    return Comparison(
        scales=scales,
        trajectories=tuple(trajs),
        limit=limit,
        events=pd.DataFrame(ev_rows),
        summary=pd.DataFrame(sum_rows),
        provenance=prov,
    )
