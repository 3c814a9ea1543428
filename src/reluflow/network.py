"""Two-layer ReLU networks in reduced coordinates: parameters, initialisation, norms.

``f_θ(x) = Σ_j a_j σ(<w_j, x>)``. A network is stored through what the dynamics
need (docs/model.md): the output weights ``a`` (m,), the reduced coordinates
``u = W Xᵀ`` (m, n), and ``‖w_j^⊥‖²``, the squared norm of the part of ``w_j``
orthogonal to the data, which gradient flow and descent never move. Then

    ‖w_j‖² = ‖w_j^⊥‖² + u_j K⁺ u_jᵀ,      ‖θ‖² = Σ_j a_j² + ‖w_j‖².
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import _memory, _rng
from . import _validate as V
from .data import ArrayData, Dataset, OrthogonalData
from .errors import InputError

INITS = ("balanced", "independent")

__all__ = ["Network", "init_network", "load_init", "save_init"]


@dataclass(frozen=True, eq=False)
class Network:
    """A two-layer ReLU network in reduced coordinates.

    Attributes:
        a: output weights, shape (m,).
        u: reduced first-layer coordinates ``u[j, i] = <w_j, x_i>``, shape (m, n).
        w_perp_sq: ``‖w_j^⊥‖²``, shape (m,): constant along every dynamics.
        scale: the initialisation scale λ.
        init: ``"balanced"``, ``"independent"`` or ``"given"``.
        seed: the seed of the initialisation (None if given explicitly).
        w_perp: the orthogonal part ``W^⊥`` itself, (m, d), when the data is an
            explicit array (needed only to predict on new inputs).
    """

    a: np.ndarray
    u: np.ndarray
    w_perp_sq: np.ndarray
    scale: float
    init: str = "given"
    seed: int | None = None
    w_perp: np.ndarray | None = None

    @property
    def m(self) -> int:
        return int(self.a.shape[0])

    @property
    def n(self) -> int:
        return int(self.u.shape[1])

    @property
    def signs(self) -> np.ndarray:
        """Output signs ``s_j = sign(a_j)``."""
        return np.sign(self.a)

    def with_params(self, a: np.ndarray, u: np.ndarray) -> Network:
        """The same network (scale, seed, ``W^⊥``) with new ``a`` and ``u``."""
        return dataclasses.replace(self, a=np.asarray(a, float), u=np.asarray(u, float))

    def w_norm_sq(self, data: Dataset) -> np.ndarray:
        """``‖w_j‖²`` for every neuron, shape (m,)."""
        return self.w_perp_sq + data.quad_form(self.u)

    def neuron_norm_sq(self, data: Dataset) -> np.ndarray:
        """Per-neuron ``a_j² + ‖w_j‖²``, shape (m,)."""
        return self.a**2 + self.w_norm_sq(data)

    def norm_sq(self, data: Dataset) -> float:
        """``‖θ‖² = Σ_j a_j² + ‖w_j‖²``."""
        return float(self.neuron_norm_sq(data).sum())

    def balance(self, data: Dataset) -> np.ndarray:
        """``a_j² − ‖w_j‖²``, conserved by gradient flow."""
        return self.a**2 - self.w_norm_sq(data)

    def outputs(self) -> np.ndarray:
        """Predictions on the training inputs, ``f_θ(x_i)``, shape (n,)."""
        return self.a @ np.maximum(self.u, 0.0)

    def residuals(self, data: Dataset) -> np.ndarray:
        """Training residuals ``r_i = f_θ(x_i) − y_i``."""
        return self.outputs() - data.y

    def loss(self, data: Dataset) -> float:
        """Square loss ``(1/2n) Σ r_i²``."""
        r = self.residuals(data)
        return float(r @ r / (2 * r.shape[0]))

    def weights(self, data: Dataset) -> np.ndarray:
        """The full first layer ``W`` (m, d) for explicit data: ``W^⊥ + u K⁺ X``."""
        if not isinstance(data, ArrayData):
            raise InputError(
                "weights() needs explicit data (ArrayData); orthogonal data is simulated in "
                "reduced coordinates only; use array_data(data.to_array(), data.y) to make it explicit"
            )
        if self.w_perp is None:
            raise InputError(
                "this network has no stored W^⊥; initialise it with init_network on ArrayData"
            )
        return self.w_perp + self.u @ data._pinv_gram @ data.X

    def predict(self, data: Dataset, X: Any = None) -> np.ndarray:
        """Predictions ``f_θ(x)``: on the training inputs, or on new inputs ``X`` (k, d)."""
        if X is None:
            return self.outputs()
        X = V.finite_array("X", X, ndim=2)
        W = self.weights(data)
        if X.shape[1] != W.shape[1]:
            raise InputError(f"X must have d = {W.shape[1]} columns, got {X.shape[1]}")
        return np.maximum(X @ W.T, 0.0) @ self.a


def init_network(
    data: Dataset, m: int, scale: float, *, seed: int = 0, init: str = "balanced"
) -> Network:
    """Small initialisation at scale λ (docs/model.md).

    ``w_j = λ g_j`` with ``g_j ~ N(0, I_d / d)``, ``s_j = ±1`` uniformly, and
    ``a_j = s_j ‖w_j‖`` (balanced) or ``a_j = λ s_j |N(0, 1)|`` (independent).

    For orthogonal data the reduced coordinates are drawn directly: the
    coordinates of an isotropic Gaussian along orthonormal directions are
    independent, so ``u_ji(0) = λ ‖x_i‖ z_ji`` with ``z_ji ~ N(0, 1/d)`` and
    ``‖w_j^⊥‖² ~ λ² χ²_{d−n} / d``, whatever the frame: nothing of size m x d
    is drawn. The signs of ``z`` come from a stream of their own, shared with
    the jump process (:func:`reluflow.jump_process`), so that one seed gives
    the same initialisation to the flow, gradient descent and the limit.

    Args:
        data: the dataset. m: width (>= 1). scale: λ > 0.
        seed: initialisation seed. init: ``"balanced"`` or ``"independent"``.
    """
    m = V.positive_int("m", m)
    lam = V.scale(scale)
    seed = V.seed("seed", seed)
    init = V.choice("init", init, INITS)
    n, d = data.n, data.d
    _memory.check_init(n, m, d, isinstance(data, OrthogonalData))
    s = _rng.output_signs(seed, m)
    w_perp = None
    if isinstance(data, OrthogonalData):
        z = _rng.standard_normals(seed, m, n) / np.sqrt(d)
        u = lam * z * data.norms[None, :]
        chi2 = (
            _rng.stream(seed, _rng.INIT_PERP_NORM).chisquare(d - n, size=m)
            if d > n
            else np.zeros(m)
        )
        w_perp_sq = lam**2 * chi2 / d
    else:
        g = _rng.standard_normals(seed, m, d) / np.sqrt(d)
        W = lam * g
        X = data.to_array()
        u = W @ X.T
        # W^⊥ = W (I − P_X) with P_X the projector on the row space of X.
        w_perp = W - (u @ data._pinv_gram) @ X  # type: ignore[attr-defined]
        w_perp_sq = np.einsum("ij,ij->i", w_perp, w_perp)
    net = Network(
        a=np.zeros(m), u=u, w_perp_sq=w_perp_sq, scale=lam, init=init, seed=seed, w_perp=w_perp
    )
    if init == "balanced":
        a = s * np.sqrt(net.w_norm_sq(data))
    else:
        a = lam * s * np.abs(_rng.stream(seed, _rng.INIT_A_MAGNITUDE).standard_normal(m))
    return dataclasses.replace(net, a=a)


def save_init(path: str | Path, data: OrthogonalData, net: Network) -> Path:
    """Write the reduced initial state of an orthogonal run as ``.npz``.

    Arrays: ``y`` (n), ``x_norm`` (n), ``u0`` (m x n, ``u0[j, i] = <w_j, x_i>``),
    ``a0`` (m), ``w_perp_sq`` (m) and the scalar ``scale``.
    """
    if not isinstance(data, OrthogonalData):
        raise InputError(
            "save_init writes orthogonal runs only (the state is u0, a0 and the sample norms)"
        )
    path = Path(path)
    with open(path, "wb") as fh:  # np.savez would append .npz to a name without it
        np.savez(
            fh,
            y=data.y,
            x_norm=data.norms,
            u0=net.u,
            a0=net.a,
            w_perp_sq=net.w_perp_sq,
            scale=np.float64(net.scale),
        )
    return path


def load_init(path: str | Path) -> tuple[OrthogonalData, Network]:
    """Read a state written by :func:`save_init` (or by another tool in its format).

    ``w_perp_sq`` is optional (taken as 0, i.e. ``d = n``, when absent).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"init file {str(path)!r} does not exist")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any read failure is a user-facing input error
        raise InputError(f"init file {str(path)!r} is not a readable .npz file ({exc})") from None
    missing = [k for k in ("y", "x_norm", "u0", "a0", "scale") if k not in z.files]
    if missing:
        raise InputError(
            f"init file {str(path)!r} lacks the array(s) {missing}; "
            "it needs y, x_norm, u0, a0 and scale"
        )
    y = V.finite_array("y (init file)", z["y"], ndim=1)
    u0 = V.finite_array("u0 (init file)", z["u0"], ndim=2)
    a0 = V.finite_array("a0 (init file)", z["a0"], ndim=1)
    if u0.shape != (a0.shape[0], y.shape[0]):
        raise InputError(
            f"init file: u0 must have shape (m, n) = ({a0.shape[0]}, {y.shape[0]}), got {u0.shape}"
        )
    wps = z["w_perp_sq"] if "w_perp_sq" in z.files else np.zeros(a0.shape[0])
    data = OrthogonalData(z["x_norm"], y, label_scheme="given", norm_scheme="given")
    net = Network(
        a=a0,
        u=u0,
        w_perp_sq=np.asarray(wps, float),
        scale=V.scale(float(z["scale"])),
        init="given",
        seed=None,
    )
    return data, net
