"""Initialisations of the first and second layer, each a named choice of ``init_network``.

With ``g_j ~ N(0, I_d)``, ``s_j = ±1`` fair signs, ``f`` the fan-in (``d``, or
``d − 1`` when the data carries a bias feature, :func:`reluflow.with_bias`) and
scale λ:

* ``"balanced"`` (default): ``w_j = λ g_j / sqrt(d)``, ``a_j = s_j ‖w_j‖``
  (``a_j² − ‖w_j‖² = 0`` is conserved by the flow).
* ``"independent"``: ``w_j`` as balanced, ``a_j = λ s_j |N(0, 1)|``.
* ``"width_scaled"``: Gaussian ``N(0, λ²/(m f))`` weights, balanced:
  ``w_j = λ g_j / sqrt(m f)``, ``a_j = s_j ‖w_j‖`` (Boursier, Pillaud-Vivien &
  Flammarion 2022: ``std = init_scale / sqrt(m d)`` for weights and bias; the same
  draws as ``"balanced"`` at scale ``λ / sqrt(m)`` when there is no bias).
* ``"uniform_exp"``: non-small and unbalanced (Dana, Bach & Pillaud-Vivien 2025):
  ``w_ji = λ U(−1/sqrt(f), 1/sqrt(f))`` (PyTorch's default ``nn.Linear``
  initialisation, bias included), ``a_j = s_j (‖w_j‖ + E_j)``, ``E_j ~ Exp(1)``.
  Their experiments use λ = 1.
* ``"uniform_exp_mean_field"``: Dana et al.'s network with the mean-field output
  ``f(x) = (1/m) Σ_j a_j σ(<w_j, x>)``, ``θ = (a, W)`` drawn as ``"uniform_exp"`` and
  trained on ``m · L``. This is exactly the standard network at ``θ / sqrt(m)``
  with the same time and the same step (``f`` is unchanged and
  ``∇_θ (m L) = sqrt(m) ∇_{θ/√m} L``), so that is what is stored: ``a / sqrt(m)``
  and ``W / sqrt(m)``. Trained on plain ``L`` instead, the mean-field network is the
  stored one at time ``t / m`` (step ``η / m``).
"""

from __future__ import annotations

import numpy as np

from . import _rng
from .data import Dataset

INITS = ("balanced", "independent", "width_scaled", "uniform_exp", "uniform_exp_mean_field")
# the initialisations drawn as full weights (W, a) by draw_weights
WEIGHT_INITS = ("width_scaled", "uniform_exp", "uniform_exp_mean_field")

__all__ = ["INITS", "draw_weights"]


def draw_weights(
    data: Dataset, m: int, scale: float, seed: int, init: str
) -> tuple[np.ndarray, np.ndarray]:
    """Full weights ``(W (m, d), a (m,))`` of one of :data:`WEIGHT_INITS` (formulas above)."""
    d, f = data.d, data.fan_in
    s = _rng.output_signs(seed, m)
    if init == "width_scaled":
        W = scale * _rng.standard_normals(seed, m, d) / np.sqrt(m * f)
        return W, s * np.linalg.norm(W, axis=1)
    bound = 1.0 / np.sqrt(f)
    W = scale * _rng.stream(seed, _rng.INIT_UNIFORM_W).uniform(-bound, bound, size=(m, d))
    a = s * (
        np.linalg.norm(W, axis=1) + _rng.stream(seed, _rng.INIT_EXP_MARGIN).exponential(1.0, m)
    )
    if init == "uniform_exp_mean_field":
        return W / np.sqrt(m), a / np.sqrt(m)
    return W, a
