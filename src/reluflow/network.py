"""Two-layer ReLU networks in reduced coordinates: parameters, initialisation, norms.

``f_θ(x) = Σ_j a_j σ(<w_j, x>)``. A network is stored through what the dynamics
need (docs/model.md): the output weights ``a`` (m,), the reduced coordinates
``u = W Xᵀ`` (m, n), and ``‖w_j^⊥‖²``, the squared norm of the part of ``w_j``
orthogonal to the data, which gradient flow and descent never move. Then

    ‖w_j‖² = ‖w_j^⊥‖² + u_j K⁺ u_jᵀ,      ‖θ‖² = Σ_j a_j² + ‖w_j‖².

At any scale. Each neuron also has an exact representation as a log-scale
times an O(1) part, ``(a_j, u_j) = e^{ℓ_j} (â_j, û_j)`` and
``‖w_j^⊥‖² = e^{2ℓ_j} ‖ŵ_j^⊥‖²`` (:attr:`Network.log_params`). The float64
arrays ``a``, ``u`` and ``w_perp_sq`` are the correctly rounded values; they
underflow to 0 where a neuron is below float64's range (λ = 1e-1000), and the
exact representation is then stored alongside (docs/any-scale.md).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from . import _memory, _rng
from . import _validate as V
from .data import ArrayData, Dataset, GaussianGramData, OrthogonalData
from .errors import InputError
from .inits import INITS, WEIGHT_INITS, draw_weights

# Networks whose every neuron is at least this large (natural log of the neuron's
# size max(|a_j|, max_i |u_ji|)) are held exactly enough by their float64 arrays
# (squares >= 1e-200, no subnormals that matter); smaller ones also carry their
# log-scale representation.
LOG_EXACT_BELOW = math.log(1e-100)


class LogParams(NamedTuple):
    """A network's parameters as per-neuron log-scales times O(1) parts.

    ``a_j = e^{ℓ_j} a_hat_j``, ``u_ji = e^{ℓ_j} u_hat_ji``,
    ``‖w_j^⊥‖² = e^{2 ℓ_j} w_perp_sq_hat_j``, with
    ``max(|a_hat_j|, max_i |u_hat_ji|) = 1`` (up to a power-of-two factor in a
    running solver) and ``ℓ_j = −inf`` for a neuron that is exactly 0.
    """

    ell: np.ndarray
    a_hat: np.ndarray
    u_hat: np.ndarray
    w_perp_sq_hat: np.ndarray


def _log_params_of(a: np.ndarray, u: np.ndarray, w_perp_sq: np.ndarray) -> LogParams:
    size = np.maximum(np.abs(a), np.abs(u).max(axis=1, initial=0.0))
    size = np.maximum(size, np.sqrt(np.maximum(w_perp_sq, 0.0)))
    safe = np.where(size > 0, size, 1.0)
    with np.errstate(divide="ignore"):
        ell = np.where(size > 0, np.log(safe), -np.inf)
    return LogParams(ell, a / safe, u / safe[:, None], w_perp_sq / safe**2)


def _from_hat(ell: np.ndarray, x: np.ndarray, power: int = 1) -> np.ndarray:
    """``e^{power ℓ_j} x_j`` (rows), 0 where it underflows or ℓ = −inf."""
    f = np.exp(power * np.where(np.isfinite(ell), ell, -np.inf))
    return x * (f if x.ndim == 1 else f[:, None])

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
        log10_scale: ``log10 λ``, exact at any scale (``scale`` underflows to 0.0
            below 5e-324); derived from ``scale`` when not given; ``−inf`` for the
            λ → 0 limit network.
        exact: the log-scale representation (:class:`LogParams`) when some neuron is
            below 1e-100 and the float64 arrays lose it; None otherwise (it is then
            derived from the arrays, see :attr:`log_params`).
    """

    a: np.ndarray
    u: np.ndarray
    w_perp_sq: np.ndarray
    scale: float
    init: str = "given"
    seed: int | None = None
    w_perp: np.ndarray | None = None
    log10_scale: float | None = None
    exact: LogParams | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.log10_scale is None:
            s = float(self.scale)
            object.__setattr__(
                self, "log10_scale", math.log10(s) if s > 0 else (-math.inf if s == 0 else math.nan)
            )

    @property
    def log_inv_scale(self) -> float:
        """``ln(1/λ)``, the unit of ``τ`` (exact at any scale; NaN for λ >= 1)."""
        v = -float(self.log10_scale) * math.log(10.0)
        return v if v > 0 else float("nan")

    @property
    def log_params(self) -> LogParams:
        """The exact per-neuron representation ``(ℓ, â, û, ‖ŵ^⊥‖²)`` (see :class:`LogParams`)."""
        if self.exact is not None:
            return self.exact
        return _log_params_of(
            np.asarray(self.a, float), np.asarray(self.u, float), np.asarray(self.w_perp_sq, float)
        )

    @property
    def log_scale(self) -> np.ndarray:
        """``ℓ_j``: natural log of each neuron's size ``max(|a_j|, max_i |u_ji|, ‖w_j^⊥‖)``."""
        return self.log_params.ell

    @property
    def log_abs_a(self) -> np.ndarray:
        """``ln |a_j|`` at any scale (−inf where ``a_j = 0``)."""
        p = self.log_params
        with np.errstate(divide="ignore"):
            return p.ell + np.log(np.abs(p.a_hat))

    def with_log_params(self, ell: np.ndarray, a_hat: np.ndarray, u_hat: np.ndarray) -> Network:
        """The same network (scale, seed, ``W^⊥``) with parameters ``e^{ℓ_j} (â_j, û_j)``.

        ``‖w_j^⊥‖²`` is unchanged (it is re-expressed in the new log-scales).
        """
        old = self.log_params
        ell = np.asarray(ell, float)
        with np.errstate(invalid="ignore", over="ignore"):
            shift = np.where(np.isfinite(old.ell) & np.isfinite(ell), 2.0 * (old.ell - ell), 0.0)
            wps_hat = old.w_perp_sq_hat * np.exp(shift)
        out = _assemble(self, ell, np.asarray(a_hat, float), np.asarray(u_hat, float), wps_hat)
        # ‖w^⊥‖² never moves: keep its stored float64 values exactly
        return dataclasses.replace(out, w_perp_sq=self.w_perp_sq)

    @property
    def m(self) -> int:
        return int(self.a.shape[0])

    @property
    def n(self) -> int:
        return int(self.u.shape[1])

    @property
    def signs(self) -> np.ndarray:
        """Output signs ``s_j = sign(a_j)`` (at any scale: those of the O(1) parts)."""
        return np.sign(self.a if self.exact is None else self.exact.a_hat)

    def with_params(self, a: np.ndarray, u: np.ndarray) -> Network:
        """The same network (scale, seed, ``W^⊥``) with new ``a`` and ``u``."""
        return dataclasses.replace(self, a=np.asarray(a, float), u=np.asarray(u, float))

    def w_norm_sq(self, data: Dataset) -> np.ndarray:
        """``‖w_j‖²`` for every neuron, shape (m,)."""
        if self.exact is not None:
            p = self.exact
            return _from_hat(p.ell, p.w_perp_sq_hat + data.quad_form(p.u_hat), 2)
        return self.w_perp_sq + data.quad_form(self.u)

    def neuron_norm_sq(self, data: Dataset) -> np.ndarray:
        """Per-neuron ``a_j² + ‖w_j‖²``, shape (m,)."""
        if self.exact is not None:
            p = self.exact
            return _from_hat(p.ell, p.a_hat**2 + p.w_perp_sq_hat + data.quad_form(p.u_hat), 2)
        return self.a**2 + self.w_norm_sq(data)

    def norm_sq(self, data: Dataset) -> float:
        """``‖θ‖² = Σ_j a_j² + ‖w_j‖²``."""
        return float(self.neuron_norm_sq(data).sum())

    def balance(self, data: Dataset) -> np.ndarray:
        """``a_j² − ‖w_j‖²``, conserved by gradient flow."""
        if self.exact is not None:
            p = self.exact
            return _from_hat(p.ell, p.a_hat**2 - p.w_perp_sq_hat - data.quad_form(p.u_hat), 2)
        return self.a**2 - self.w_norm_sq(data)

    def outputs(self) -> np.ndarray:
        """Predictions on the training inputs, ``f_θ(x_i)``, shape (n,)."""
        if self.exact is not None:
            p = self.exact
            return _from_hat(p.ell, p.a_hat, 2) @ np.maximum(p.u_hat, 0.0)
        return self.a @ np.maximum(self.u, 0.0)

    def residuals(self, data: Dataset) -> np.ndarray:
        """Training residuals ``r_i = f_θ(x_i) − y_i``."""
        return self.outputs() - data.y

    def loss(self, data: Dataset, convention: str = "half_mean") -> float:
        """Square loss ``(1/2n) Σ r_i²`` (``convention="mean"``: ``(1/n) Σ r_i²``)."""
        from ._loss import LossConvention

        r = self.residuals(data)
        return LossConvention(convention).factor * float(r @ r / (2 * r.shape[0]))

    def weights(self, data: Dataset) -> np.ndarray:
        """The full first layer ``W`` (m, d) for explicit data: ``W^⊥ + u K⁺ X``."""
        if not isinstance(data, ArrayData):
            raise InputError(
                "weights() needs explicit data (ArrayData); orthogonal data is simulated in "
                "reduced coordinates only; use array_data(data.to_array(), data.y) to make it explicit"
            )
        if self.w_perp is None and isinstance(data, GaussianGramData) and self.seed is not None:
            return data.perp_weights(self.seed, self.w_perp_sq) + self.u @ data._pinv_gram @ data.X
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

    @classmethod
    def from_weights(
        cls,
        data: Dataset,
        W: Any,
        a: Any,
        *,
        scale: float | None = None,
        init: str = "given",
        seed: int | None = None,
    ) -> Network:
        """The network with first layer ``W`` (m, d) and output weights ``a`` (m,) on ``data``.

        ``u = W Xᵀ``; the part of each ``w_j`` orthogonal to the data,
        ``W^⊥ = W (I − P_X)``, is computed with an orthonormal basis of the row
        space of ``X`` (accurate also when ``n > d``), kept as ``w_perp`` (explicit
        data, for predictions) and as ``‖w_j^⊥‖²``. Orthogonal data is
        materialised (``data.to_array()``) for this.

        Args:
            data: the dataset (``W`` must have ``data.d`` columns; with a bias feature
                the last column of ``W`` holds the biases).
            W: first layer, (m, d). a: output weights, (m,).
            scale: the initialisation scale λ used for ``τ = t / log(1/λ)``;
                default the root-mean-square neuron size ``sqrt(mean_j (a_j² + ‖w_j‖²) / 2)``.
            init, seed: recorded in the network (provenance).
        """
        W = V.finite_array("W", W, ndim=2)
        a = V.finite_array("a", a, ndim=1)
        if W.shape[1] != data.d:
            raise InputError(
                f"W must have d = {data.d} columns (one per input feature of the data), "
                f"got shape {W.shape}"
            )
        if W.shape[0] != a.shape[0] or a.shape[0] < 1:
            raise InputError(
                f"W and a must describe the same m >= 1 neurons, got W with {W.shape[0]} rows "
                f"and a with {a.shape[0]} entries"
            )
        X = data.to_array()
        u = W @ X.T
        if isinstance(data, ArrayData):
            w_perp = data.project_out(W)
        else:
            # orthonormal directions q_i = x_i / ‖x_i‖: P_X W_j = Σ_i (u_ji / ‖x_i‖²) x_i
            w_perp = W - (u / data.sq_norms()[None, :]) @ X
        w_perp_sq = np.einsum("ij,ij->i", w_perp, w_perp)
        if scale is None:
            size = float(np.sqrt(np.mean(a**2 + np.einsum("ij,ij->i", W, W)) / 2))
            scale = size if size > 0 else 1.0
        return cls(
            a=a.copy(),
            u=u,
            w_perp_sq=w_perp_sq,
            scale=V.scale(scale),
            init=init,
            seed=seed,
            w_perp=w_perp if isinstance(data, ArrayData) else None,
        )


def init_network(
    data: Dataset,
    m: int,
    scale: float | str | None = None,
    *,
    seed: int = 0,
    init: str = "balanced",
    log10_scale: float | None = None,
) -> Network:
    """Initialisation at scale λ (docs/model.md; every choice in docs/field-setups.md).

    ``w_j = λ g_j`` with ``g_j ~ N(0, I_d / d)``, ``s_j = ±1`` uniformly, and
    ``a_j = s_j ‖w_j‖`` (balanced) or ``a_j = λ s_j |N(0, 1)|`` (independent).
    The field's other initialisations (``"width_scaled"``: ``N(0, λ²/(m d))``
    weights, balanced; ``"uniform_exp"``: PyTorch's uniform ``w``,
    ``a_j = ±(‖w_j‖ + Exp(1))``; ``"uniform_exp_mean_field"``: the same with the
    1/m output scaling) are defined in :mod:`reluflow.inits`.

    For orthogonal data the reduced coordinates are drawn directly: the
    coordinates of an isotropic Gaussian along orthonormal directions are
    independent, so ``u_ji(0) = λ ‖x_i‖ z_ji`` with ``z_ji ~ N(0, 1/d)`` and
    ``‖w_j^⊥‖² ~ λ² χ²_{d−n} / d``, whatever the frame: nothing of size m x d
    is drawn. The signs of ``z`` come from a stream of their own, shared with
    the jump process (:func:`reluflow.jump_process`), so that one seed gives
    the same initialisation to the flow, gradient descent and the limit.

    Any scale. λ is taken exactly, as a float, a decimal string (``"1e-1000"``)
    or through ``log10_scale``. Below 1e-100 the network is drawn at λ = 1 and
    carried as per-neuron log-scales ``ℓ_j = ln λ + ln(size of neuron j at λ = 1)``
    times O(1) parts (:class:`LogParams`): the same draws, so one seed gives the
    same network, up to the factor λ, at every scale.

    Args:
        data: the dataset. m: width (>= 1).
        scale: λ > 0 (float or decimal string); or give ``log10_scale`` instead.
        seed: initialisation seed. init: one of :data:`reluflow.inits.INITS`.
        log10_scale: ``log10 λ`` (e.g. ``-1000``), instead of ``scale``.
    """
    m = V.positive_int("m", m)
    if (scale is None) == (log10_scale is None):
        raise InputError(
            "give the initialisation scale once: scale (e.g. 1e-8 or '1e-1000') or "
            f"log10_scale (e.g. -1000), got scale={scale!r}, log10_scale={log10_scale!r}"
        )
    if scale is not None:
        lam, log10 = V.scale_log10(scale)
    else:
        log10 = V.log10_scale(log10_scale)
        lam = 10.0**log10
    seed = V.seed("seed", seed)
    init = V.choice("init", init, INITS)
    if init == "width_scaled" and isinstance(data, OrthogonalData):
        # the balanced draws at scale λ/√m (never materialises n x d)
        if log10 * math.log(10.0) >= LOG_EXACT_BELOW:
            net = init_network(data, m, lam / np.sqrt(m), seed=seed, init="balanced")
        else:
            net = init_network(data, m, log10_scale=log10 - 0.5 * math.log10(m), seed=seed,
                               init="balanced")
        return dataclasses.replace(net, scale=lam, log10_scale=log10, init=init)
    if init in WEIGHT_INITS:
        W, a = draw_weights(data, m, lam, seed, init)
        return Network.from_weights(data, W, a, scale=lam, init=init, seed=seed)
    if log10 * math.log(10.0) >= LOG_EXACT_BELOW:
        return _draw(data, m, lam, seed, init, log10)
    unit = _draw(data, m, 1.0, seed, init, 0.0)
    p = unit.log_params
    net = _assemble(
        dataclasses.replace(unit, scale=lam, log10_scale=log10),
        p.ell + log10 * math.log(10.0),
        p.a_hat,
        p.u_hat,
        p.w_perp_sq_hat,
    )
    if unit.w_perp is not None:
        net = dataclasses.replace(net, w_perp=unit.w_perp * lam)
    return net


def _assemble(
    like: Network, ell: np.ndarray, a_hat: np.ndarray, u_hat: np.ndarray, wps_hat: np.ndarray
) -> Network:
    """A network like ``like`` with parameters ``e^{ℓ} (â, û)``, ``‖w^⊥‖² = e^{2ℓ} ‖ŵ^⊥‖²``.

    The float64 arrays are the rounded values; the exact representation is kept
    when some neuron is below ``e^{LOG_EXACT_BELOW}``.
    """
    finite = ell[np.isfinite(ell)]
    small = bool(finite.size and finite.min() < LOG_EXACT_BELOW)
    with np.errstate(under="ignore"):
        a = _from_hat(ell, a_hat)
        u = _from_hat(ell, u_hat)
        wps = _from_hat(ell, wps_hat, 2)
    return dataclasses.replace(
        like,
        a=a,
        u=u,
        w_perp_sq=wps,
        exact=LogParams(ell, a_hat, u_hat, wps_hat) if small else None,
    )


def _draw(data: Dataset, m: int, lam: float, seed: int, init: str, log10: float) -> Network:
    """:func:`init_network` in float64 (λ >= 1e-100, where nothing underflows)."""
    n, d = data.n, data.d
    _memory.check_init(n, m, d, isinstance(data, OrthogonalData))
    s = _rng.output_signs(seed, m)
    w_perp = None
    if isinstance(data, OrthogonalData):
        # u = λ (z / √d) ∘ ‖x_i‖, in place (the same arithmetic): at m n ~ 10⁸ each
        # fresh array costs seconds of page faults
        u = _rng.standard_normals(seed, m, n)
        np.divide(u, np.sqrt(d), out=u)
        np.multiply(lam, u, out=u)
        np.multiply(u, data.norms[None, :], out=u)
        chi2 = (
            _rng.stream(seed, _rng.INIT_PERP_NORM).chisquare(d - n, size=m)
            if d > n
            else np.zeros(m)
        )
        w_perp_sq = lam**2 * chi2 / d
    elif isinstance(data, GaussianGramData):  # K and u(0) drawn jointly, no m x d draw
        u, w_perp_sq = data.draw_init(seed, m, lam)
    else:
        g = _rng.standard_normals(seed, m, d) / np.sqrt(d)
        W = lam * g
        X = data.to_array()
        u = W @ X.T
        # W^⊥ = W (I − P_X) with P_X the projector on the row space of X.
        w_perp = data.project_out(W)  # type: ignore[attr-defined]
        w_perp_sq = np.einsum("ij,ij->i", w_perp, w_perp)
    net = Network(
        a=np.zeros(m),
        u=u,
        w_perp_sq=w_perp_sq,
        scale=lam,
        init=init,
        seed=seed,
        w_perp=w_perp,
        log10_scale=log10,
    )
    if init == "balanced":
        a = s * np.sqrt(net.w_norm_sq(data))
    else:
        a = lam * s * np.abs(_rng.stream(seed, _rng.INIT_A_MAGNITUDE).standard_normal(m))
    return dataclasses.replace(net, a=a)


# Format of the files of save_init / load_init (version 1: orthogonal data only, no "format")
_FORMAT = 2


def save_init(path: str | Path, data: Dataset, net: Network) -> Path:
    """Write an initial state (data and network) as ``.npz``; :func:`load_init` reads it back exactly.

    Arrays, always: ``y`` (n), ``u0`` (m x n, ``u0[j, i] = <w_j, x_i>``), ``a0`` (m),
    ``w_perp_sq`` (m), the scalar ``scale``, ``init`` and ``seed`` (−1: none) and
    ``format``. Orthogonal data adds ``x_norm`` (n), ``d``, ``frame`` and
    ``data_seed`` (the frame's seed); explicit data adds ``X`` (n x d), ``bias``
    (whether its last column is the bias feature) and, when the network has it,
    ``w_perp`` (m x d, the part of ``W`` orthogonal to the data); Gaussian data held
    through its Gram matrix adds ``gram_factor`` (n x n, ``K = L Lᵀ``), ``d`` and
    ``data_seed`` instead of ``X``.
    ``log10_scale`` is written too, and a network below 1e-100 (whose float64 arrays
    underflow) also writes its exact representation: ``log_scale`` (m), ``a0_hat`` (m),
    ``u0_hat`` (m x n) and ``w_perp_sq_hat`` (m), with ``a0 = e^{log_scale} a0_hat`` etc.
    (:class:`LogParams`).
    """
    if net.n != data.n:
        raise InputError(
            f"network and data disagree: the network has n = {net.n} reduced "
            f"coordinates per neuron, the data n = {data.n} samples"
        )
    arrays: dict[str, Any] = dict(
        format=np.int64(_FORMAT),
        y=data.y,
        u0=net.u,
        a0=net.a,
        w_perp_sq=net.w_perp_sq,
        scale=np.float64(net.scale),
        init=np.str_(net.init),
        seed=np.int64(-1 if net.seed is None else net.seed),
    )
    if isinstance(data, OrthogonalData):
        arrays.update(
            x_norm=data.norms,
            d=np.int64(data.d),
            frame=np.str_(data.frame),
            data_seed=np.int64(data.seed),
        )
    elif isinstance(data, GaussianGramData):
        # the Gram representation: its factor L (K = L Lᵀ), never the n x d inputs
        arrays.update(
            gram_factor=data.factor, d=np.int64(data.d), data_seed=np.int64(data.seed)
        )
        if net.w_perp is not None:
            arrays["w_perp"] = net.w_perp
    elif isinstance(data, ArrayData):
        arrays.update(X=data.X, bias=np.bool_(data.has_bias), kind=np.str_(data.kind))
        if net.w_perp is not None:
            arrays["w_perp"] = net.w_perp
    else:
        raise InputError(
            f"save_init writes orthogonal data or explicit inputs X (array_data), got {data!r}"
        )
    path = Path(path)
    with open(path, "wb") as fh:  # np.savez would append .npz to a name without it
        if net.exact is not None:
            arrays.update(
                log_scale=net.exact.ell,
                a0_hat=net.exact.a_hat,
                u0_hat=net.exact.u_hat,
                w_perp_sq_hat=net.exact.w_perp_sq_hat,
            )
        arrays["log10_scale"] = np.float64(net.log10_scale)
        np.savez(fh, **arrays)
    return path


def load_init(path: str | Path) -> tuple[Dataset, Network]:
    """Read a state written by :func:`save_init` (or by another tool in its format).

    A file with ``X`` gives explicit data (:class:`ArrayData`, with its bias
    feature flagged when ``bias`` is set); one with ``gram_factor`` and ``d``
    Gaussian data held through its Gram matrix (``K = L Lᵀ``); one with ``x_norm`` gives
    :class:`OrthogonalData`. ``w_perp_sq`` is optional (taken as 0, i.e. ``d = n``,
    when absent), as are ``init``, ``seed``, ``d`` and ``frame``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"init file {str(path)!r} does not exist")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any read failure is a user-facing input error
        raise InputError(f"init file {str(path)!r} is not a readable .npz file ({exc})") from None
    explicit = "X" in z.files
    gram = "gram_factor" in z.files
    need = ("y", "u0", "a0", "scale") + (() if explicit or gram else ("x_norm",))
    need += ("d",) if gram else ()
    missing = [k for k in need if k not in z.files]
    if missing:
        raise InputError(
            f"init file {str(path)!r} lacks the array(s) {missing}; it needs y, u0, a0, "
            "scale and either x_norm (orthogonal data), X (explicit inputs) or gram_factor "
            "and d (Gaussian data held through its Gram matrix)"
        )
    y = V.finite_array("y (init file)", z["y"], ndim=1)
    u0 = V.finite_array("u0 (init file)", z["u0"], ndim=2)
    a0 = V.finite_array("a0 (init file)", z["a0"], ndim=1)
    if u0.shape != (a0.shape[0], y.shape[0]):
        raise InputError(
            f"init file: u0 must have shape (m, n) = ({a0.shape[0]}, {y.shape[0]}), got {u0.shape}"
        )
    wps = z["w_perp_sq"] if "w_perp_sq" in z.files else np.zeros(a0.shape[0])
    data: Dataset
    w_perp = None
    if gram:
        data = GaussianGramData.from_factor(
            z["gram_factor"],
            int(z["d"]),
            y,
            int(z["data_seed"]) if "data_seed" in z.files else 0,
        )
        if "w_perp" in z.files:
            w_perp = V.finite_array("w_perp (init file)", z["w_perp"], ndim=2)
    elif explicit:
        kind = str(z["kind"]) if "kind" in z.files else "array"
        data = ArrayData(z["X"], y, label_scheme="given", kind=kind)
        data.has_bias = bool(z["bias"]) if "bias" in z.files else False
        if "w_perp" in z.files:
            w_perp = V.finite_array("w_perp (init file)", z["w_perp"], ndim=2)
    else:
        data = OrthogonalData(
            z["x_norm"],
            y,
            d=int(z["d"]) if "d" in z.files else None,
            frame=str(z["frame"]) if "frame" in z.files else "canonical",
            seed=int(z["data_seed"]) if "data_seed" in z.files else 0,
            label_scheme="given",
            norm_scheme="given",
        )
    seed = int(z["seed"]) if "seed" in z.files else -1
    if "log10_scale" in z.files:
        log10 = V.log10_scale(float(z["log10_scale"]), "log10_scale (init file)")
        lam = 10.0**log10
    else:
        lam, log10 = V.scale_log10(float(z["scale"]), "scale (init file)")
    net = Network(
        a=a0,
        u=u0,
        w_perp_sq=np.asarray(wps, float),
        scale=lam,
        init=str(z["init"]) if "init" in z.files else "given",
        seed=None if seed < 0 else seed,
        w_perp=w_perp,
        log10_scale=log10,
    )
    if "log_scale" in z.files:
        ell = np.asarray(z["log_scale"], float)
        a_hat = V.finite_array("a0_hat (init file)", z["a0_hat"], ndim=1)
        u_hat = V.finite_array("u0_hat (init file)", z["u0_hat"], ndim=2)
        wps_hat = V.finite_array("w_perp_sq_hat (init file)", z["w_perp_sq_hat"], ndim=1)
        if u_hat.shape != u0.shape or a_hat.shape != a0.shape or ell.shape != a0.shape:
            raise InputError("init file: log_scale, a0_hat and u0_hat must match a0 and u0 in shape")
        net = _assemble(net, ell, a_hat, u_hat, wps_hat)
    return data, net
