"""The reduced-coordinate vector field ``−∇L`` shared by the flow and gradient descent.

THEORY.md §2, with ``M`` the activity mask ``1[u_ji > 0]`` (σ'(0) = 0):

    r_i     = Σ_j a_j σ(u_ji) − y_i
    da_j/dt = −(1/n) Σ_i r_i σ(u_ji)
    du_j/dt = −(1/n) a_j Σ_i r_i M_ji K_i·        (general data, O(m n²))
    du_ji/dt = −(1/n) a_j r_i ‖x_i‖² M_ji         (orthogonal data, O(m n))

The mask is an argument rather than recomputed from ``u``: the flow freezes
it over a step so that the field is smooth there and a kink (a coordinate
crossing 0) can be located exactly on the step's dense output.
"""

from __future__ import annotations

import numpy as np

from .data import Dataset


class Field:
    """``−∇L`` in reduced coordinates for one dataset.

    Args:
        data: the dataset.
        weights: per-sample loss weights (default ``1/n``); a minibatch uses
            ``1/|B|`` on its samples and 0 elsewhere.
    """

    def __init__(self, data: Dataset):
        self.y = data.y
        self.n = data.n
        self.orthogonal = bool(data.is_orthogonal)
        if self.orthogonal:
            self.D = data.sq_norms()
            self.K = None
        else:
            self.D = data.sq_norms()
            self.K = data.gram()

    def velocity(
        self,
        a: np.ndarray,
        u: np.ndarray,
        mask: np.ndarray,
        weights: np.ndarray | float | None = None,
        out_a: np.ndarray | None = None,
        out_u: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(da/dt, du/dt, r)`` at ``(a, u)`` with activity ``mask`` (float 0/1 array)."""
        sig = u * mask
        r = a @ sig - self.y
        rw = r * (1.0 / self.n if weights is None else weights)
        da = np.matmul(sig, rw, out=out_a)
        np.negative(da, out=da)
        if self.orthogonal:
            g = rw * self.D
            du = np.multiply(np.multiply.outer(-a, g), mask, out=out_u)
        else:
            du = np.matmul(mask * rw, self.K, out=out_u)
            du *= -a[:, None]
        return da, du, r
