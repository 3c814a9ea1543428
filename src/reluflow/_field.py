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
    """``−∇L`` in reduced coordinates for one dataset."""

    def __init__(self, data: Dataset):
        self.y = data.y
        self.n = data.n
        self.orthogonal = bool(data.is_orthogonal)
        self.D = data.sq_norms()
        self.K = None if self.orthogonal else data.gram()
        self.alpha: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def velocity(
        self,
        a: np.ndarray,
        u: np.ndarray,
        mask: np.ndarray,
        weights: np.ndarray | float | None = None,
        out_a: np.ndarray | None = None,
        out_u: np.ndarray | None = None,
        sliding: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(da/dt, du/dt, r)`` at ``(a, u)`` with activity ``mask`` (float 0/1 array).

        Args:
            weights: per-sample loss weights (default ``1/n``); a minibatch uses
                ``1/|B|`` on its samples and 0 elsewhere.
            out_a, out_u: optional output buffers.
            sliding: (general data only) coordinates held at ``u_ji = 0`` by a
                sliding mode: inactive they would rise, active they would fall.
                Their Filippov velocity uses the fraction of activity
                ``α = g₀ / (a_j r_i K_ii / n)``, clipped to [0, 1], that keeps them
                at 0 (``g₀``: their velocity when inactive); :attr:`alpha` holds
                ``(rows, cols, α)`` after the call.
        """
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
            if sliding is not None and sliding.any():
                self.alpha = self._hold(a, rw, du, sliding)
        return da, du, r

    def _hold(self, a: np.ndarray, rw: np.ndarray, du: np.ndarray, sliding: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Filippov velocity of the sliding coordinates, neuron by neuron.

        For neuron j with sliding set S, the activity fractions α_S solve
        ``g₀_S = a_j (K_SS diag(rw_S)) α_S`` (all of S held at 0 together), clipped
        to [0, 1]; their feedback is then removed from the whole row of ``du``.
        """
        rows, cols, alphas = [], [], []
        for j in np.flatnonzero(sliding.any(axis=1)):
            S = np.flatnonzero(sliding[j])
            A = a[j] * self.K[np.ix_(S, S)] * rw[S][None, :]
            try:
                al = np.linalg.solve(A, du[j, S])
            except np.linalg.LinAlgError:
                al = np.linalg.lstsq(A, du[j, S], rcond=None)[0]
            al = np.clip(np.nan_to_num(al), 0.0, 1.0)
            du[j] -= a[j] * ((al * rw[S]) @ self.K[S])
            inside = (al > 0.0) & (al < 1.0)
            du[j, S[inside]] = 0.0  # held exactly at 0 (removes rounding drift)
            rows.append(np.full(S.size, j))
            cols.append(S)
            alphas.append(al)
        return np.concatenate(rows), np.concatenate(cols), np.concatenate(alphas)
