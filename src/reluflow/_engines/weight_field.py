"""The flow's vector field with the Gram product taken through the inputs: O(m n d), not O(m n²).

On general data the reduced field needs ``du_j = −a_j (M_j ∘ rw) K`` for every
neuron, an (m × n) by (n × n) product. With explicit inputs ``K = X Xᵀ``, so

    du = −a ∘ ((M ∘ rw) X) Xᵀ = (∇_W-step) Xᵀ,

two (m × n) by (n × d) products: the weight-space gradient ``(M ∘ rw) X`` mapped
back to reduced coordinates. The state, kinks, sliding modes and trajectory are
those of the reduced flow (same iterates to rounding); only the evaluation is
cheaper, when ``2 d < n``. :func:`reluflow.gradient_flow` uses it with
``engine="weight"`` (and for ``"auto"`` where it is the cheaper engine).
"""

from __future__ import annotations

import numpy as np

from ..data import ArrayData
from .field import Field


class WeightField(Field):
    """:class:`~reluflow._engines.field.Field` evaluated through ``X`` (general explicit data)."""

    def __init__(self, data: ArrayData):
        super().__init__(data)
        self.X = np.ascontiguousarray(data.X)
        self.Xt = np.ascontiguousarray(data.X.T)

    def velocity(
        self,
        a: np.ndarray,
        u: np.ndarray,
        mask: np.ndarray,
        weights: np.ndarray | float | None = None,
        out_a: np.ndarray | None = None,
        out_u: np.ndarray | None = None,
        sliding: np.ndarray | None = None,
        neuron_weight: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As :meth:`Field.velocity`, with ``du = −a ∘ ((M ∘ rw) X) Xᵀ``."""
        if self.orthogonal:
            return super().velocity(
                a, u, mask, weights, out_a, out_u, sliding, neuron_weight=neuron_weight
            )
        sig = u * mask
        r = (a if neuron_weight is None else a * neuron_weight) @ sig - self.y
        rw = r * (1.0 / self.n if weights is None else weights)
        da = np.matmul(sig, rw, out=out_a)
        np.negative(da, out=da)
        du = np.matmul((mask * rw) @ self.X, self.Xt, out=out_u)
        du *= -a[:, None]
        if sliding is not None and sliding.any():
            self.alpha = self._hold(a, rw, du, sliding)
        return da, du, r
