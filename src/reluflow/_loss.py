"""Loss conventions and the time unit they set.

``"half_mean"`` (the default): ``L = (1/2n) Σ r_i²``; ``"mean"``: ``L = (1/n) Σ r_i²``
(``torch.nn.MSELoss()``), twice that. Every dynamics runs internally on the
half-mean loss; with ``"mean"``:

* gradient flow: ``dθ/dt = −∇L_mean = −2 ∇L_half``, so the "mean" flow at time
  ``t`` is the half-mean flow at time ``2t``;
* gradient descent: a step ``η`` on ``L_mean`` is a step ``2η`` on ``L_half``, and
  its time ``t_k = k η`` is half the half-mean time ``k · 2η``;
* losses are twice the half-mean ones, the Hessian (sharpness) too, and the
  stability bound ``η < 2 / sharpness`` reads the same in both conventions.

:class:`LossConvention` converts the user's options to the internal ones and
the internal trajectory back, so that times, losses and sharpness are reported
in the user's convention (recorded as ``provenance["loss"]``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from . import _validate as V
from ._provenance import _jsonable, config_hash

LOSSES = ("half_mean", "mean")


@dataclass(frozen=True)
class LossConvention:
    """A loss convention: ``factor`` = user loss / half-mean loss (1 or 2)."""

    name: str = "half_mean"

    def __post_init__(self) -> None:
        V.choice("loss", self.name, LOSSES)

    @property
    def factor(self) -> float:
        return 2.0 if self.name == "mean" else 1.0

    def time_in(self, t: float | None) -> float | None:
        """A user time (``t_max``, or ``τ``) in the internal (half-mean) unit."""
        return None if t is None else self.factor * float(t)

    def loss_in(self, loss: float | None) -> float | None:
        """A user loss threshold in the internal (half-mean) value."""
        return None if loss is None else float(loss) / self.factor

    def rate_in(self, rate: float | None) -> float | None:
        """A user rate (per unit of time) in the internal unit."""
        return None if rate is None else float(rate) / self.factor

    def trajectory(self, traj: Any, user_options: dict[str, Any]) -> Any:
        """The internal trajectory reported in this convention (times / factor, losses x factor)."""
        prov = dict(traj.provenance)
        prov["loss"] = self.name
        cfg = dict(prov.get("config", {}))
        cfg.update(user_options)
        cfg["loss"] = self.name
        prov["config"] = _jsonable(cfg)
        prov["config_hash"] = config_hash(prov["config"])
        if self.factor == 1.0:
            return dataclasses.replace(traj, provenance=prov)
        if "sharpness" in prov:
            prov["sharpness"] = [(k, s * self.factor) for k, s in prov["sharpness"]]
        f = self.factor
        return dataclasses.replace(
            traj,
            t=traj.t / f,
            tau=traj.tau / f,
            loss=traj.loss * f,
            kink_t=traj.kink_t / f,
            activation_t=None if traj.activation_t is None else traj.activation_t / f,
            stats=dataclasses.replace(traj.stats, closed_form_t=traj.stats.closed_form_t / f),
            provenance=prov,
        )
