"""Full weights of a run at chosen times, for pictures of the neurons themselves.

A :class:`~reluflow.trajectory.Trajectory` keeps per-neuron sizes (``|a_j|``,
``‖w_j‖``), not every weight. :func:`network_snapshots` runs the dynamics from
one requested time to the next (each leg starts from the previous leg's final
network: for gradient descent this is the same iteration exactly, for the flow
a solver restart, exact to ``rtol``) and keeps ``(a, W)`` at each time.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _validate as V
from .data import ArrayData
from .errors import InputError
from .network import Network

__all__ = ["Snapshots", "network_snapshots"]

DYNAMICS = ("flow", "descent")


@dataclass(frozen=True, eq=False)
class Snapshots:
    """Weights at the requested times.

    Attributes:
        t: times (T,), in the run's loss convention. a: output weights (T, m).
        W: first layers (T, m, d) (with a bias feature, the last column holds the biases).
        loss: training loss at each time. warnings: messages issued during the runs.
    """

    t: np.ndarray
    a: np.ndarray
    W: np.ndarray
    loss: np.ndarray
    warnings: list[str] = field(default_factory=list)


def network_snapshots(
    data: ArrayData,
    net: Network,
    times: Any,
    *,
    dynamics: str = "flow",
    lr: float | None = None,
    **options: Any,
) -> Snapshots:
    """Run ``dynamics`` from ``net`` and keep the full weights at each of ``times``.

    Args:
        data: explicit data (the weights are ``W = W^⊥ + u K⁺ X``).
        net: initial network (time 0 is included if ``times`` holds 0).
        times: increasing times >= 0 (for descent, multiples of ``lr`` are exact).
        dynamics: ``"flow"`` or ``"descent"``. lr: the step, for descent.
        options: further options of :func:`reluflow.gradient_flow` or
            :func:`reluflow.gradient_descent` (``rtol``, ``loss``, ``engine``, ...).
    """
    from .descent import gradient_descent
    from .flow import gradient_flow

    V.choice("dynamics", dynamics, DYNAMICS)
    if not isinstance(data, ArrayData):
        raise InputError(f"network_snapshots needs explicit data (array_data), got {data!r}")
    ts = np.asarray(times, dtype=float)
    if ts.ndim != 1 or ts.size == 0 or (ts < 0).any() or (np.diff(ts) <= 0).any():
        raise InputError(f"times must be an increasing 1-d list of times >= 0, got {times!r}")
    if dynamics == "descent" and lr is None:
        raise InputError("dynamics 'descent' needs lr (the step size)")
    conv = options.get("loss", "half_mean")
    now, cur = 0.0, net
    A, Ws, L, caught = [], [], [], []
    for t in ts:
        if t > now:
            with warnings.catch_warnings(record=True) as ws:
                warnings.simplefilter("always")
                if dynamics == "flow":
                    tr = gradient_flow(data, cur, t_max=t - now, loss_tol=0.0, **options)
                else:
                    steps = int(round((t - now) / lr))
                    if steps > 0:
                        tr = gradient_descent(data, cur, lr, steps=steps, loss_tol=0.0, **options)
            caught += [str(w.message) for w in ws]
            cur, now = tr.final, t
        A.append(cur.a.copy())
        Ws.append(cur.weights(data))
        L.append(cur.loss(data, conv))
    return Snapshots(ts, np.array(A), np.array(Ws), np.array(L), caught)
