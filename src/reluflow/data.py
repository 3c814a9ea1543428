"""Datasets and their geometry.

Two kinds of dataset, with one interface used by every dynamics:

* :class:`OrthogonalData`: ``<x_i, x_k> = 0`` for ``i != k`` (docs/model.md). It
  is described by the sample norms ``‖x_i‖``, the labels and the frame, and
  never materialises an ``n x d`` or ``n x n`` array unless asked
  (:meth:`OrthogonalData.to_array`, :meth:`OrthogonalData.gram`).
* :class:`ArrayData`: any ``X`` (``n x d``) with labels; Gaussian data
  ``x_i ~ N(0, I_d / d)`` is one (:func:`gaussian_data`), or, for ``d >> n``, a
  :class:`GaussianGramData` that draws the Gram matrix directly.

The dynamics only see the reduced geometry: the Gram matrix ``K = X Xᵀ``
(or its diagonal, for orthogonal data) and the quadratic form ``u K⁺ uᵀ``
that gives ``‖w‖²`` from the reduced coordinates ``u = W Xᵀ``.
"""

from __future__ import annotations

import abc
from functools import cached_property
from typing import Any

import numpy as np
from scipy.linalg import solve_triangular

from . import _memory, _rng
from . import _validate as V
from .errors import InputError

LABEL_SCHEMES = ("balanced", "random", "gaussian")
NORM_SCHEMES = ("uniform",)
FRAMES = ("canonical", "random")

__all__ = [
    "ArrayData",
    "Dataset",
    "GaussianGramData",
    "OrthogonalData",
    "array_data",
    "gaussian_data",
    "orthogonal_data",
]


def _labels(labels: Any, n: int, seed: int) -> np.ndarray:
    if isinstance(labels, str):
        V.choice("labels", labels, LABEL_SCHEMES)
        rng = _rng.stream(seed, _rng.DATA_LABELS)
        if labels == "balanced":
            y = np.ones(n)
            y[: n // 2] = -1.0  # n//2 negative, n - n//2 positive
            return rng.permutation(y)
        if labels == "random":
            return rng.integers(0, 2, size=n) * 2.0 - 1.0
        return rng.standard_normal(n)
    y = V.finite_array("labels (y)", labels, ndim=1)
    if y.shape[0] != n:
        raise InputError(f"labels (y) must have one entry per sample (n = {n}), got {y.shape[0]}")
    return y.copy()


class Dataset(abc.ABC):
    """Interface shared by all datasets: ``n``, labels ``y`` and the Gram geometry."""

    y: np.ndarray
    kind: str

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    @property
    @abc.abstractmethod
    def d(self) -> int:
        """Input dimension."""

    is_orthogonal: bool = False
    # True for inputs augmented with a constant feature (x, 1) (see reluflow.with_bias)
    has_bias: bool = False

    @property
    def fan_in(self) -> int:
        """Input features without the bias feature: ``d − 1`` with a bias, ``d`` otherwise.

        Used by the initialisations written in PyTorch's convention
        (``nn.Linear``'s fan-in counts the inputs, not the bias).
        """
        return self.d - int(self.has_bias)

    @abc.abstractmethod
    def sq_norms(self) -> np.ndarray:
        """``‖x_i‖²`` for every sample, shape (n,)."""

    @abc.abstractmethod
    def gram(self) -> np.ndarray:
        """The Gram matrix ``K = X Xᵀ`` (n x n)."""

    @abc.abstractmethod
    def to_array(self) -> np.ndarray:
        """The inputs ``X`` as an (n, d) array."""

    @abc.abstractmethod
    def quad_form(self, u: np.ndarray) -> np.ndarray:
        """Row-wise ``u_j K⁺ u_jᵀ``: the squared norm of the in-span part of each ``w_j``."""

    def quad_form_rows(self, u: np.ndarray) -> np.ndarray:
        """:meth:`quad_form` of an (m, n) array by the fastest route (rounding may differ):
        for the trajectory rows, which no decision of a solver reads."""
        return self.quad_form(u)

    @property
    @abc.abstractmethod
    def coherence(self) -> float:
        """Largest ``|cos(x_i, x_k)|`` over distinct samples (0 for orthogonal data)."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """A JSON-able description for provenance."""


class OrthogonalData(Dataset):
    """Orthogonal inputs ``x_i = ‖x_i‖ q_i`` for an orthonormal family ``q_1..q_n`` of R^d.

    Args:
        norms: ``‖x_i‖``, shape (n,), all > 0.
        y: labels, shape (n,).
        d: ambient dimension, ``d >= n``.
        frame: ``"canonical"`` (``q_i = e_i``) or ``"random"`` (a Haar-random
            orthonormal frame, drawn from ``seed`` only if :meth:`to_array` is called).
        seed: the seed the dataset was drawn from (for the frame and provenance).
    """

    kind = "orthogonal"
    is_orthogonal = True

    def __init__(
        self,
        norms: Any,
        y: Any,
        d: int | None = None,
        frame: str = "canonical",
        seed: int = 0,
        label_scheme: str = "given",
        norm_scheme: str = "given",
    ):
        self.y = V.finite_array("labels (y)", y, ndim=1)
        norms = V.finite_array("norms", norms, ndim=1)
        if norms.shape != self.y.shape:
            raise InputError(
                f"norms and labels must have the same length, got {norms.shape[0]} and {self.y.shape[0]}"
            )
        if self.y.shape[0] < 1:
            raise InputError("n must be an integer >= 1, got 0 samples")
        if (norms <= 0).any():
            raise InputError(f"norms must all be > 0, got min {norms.min():g}")
        self.norms = norms
        n = self.y.shape[0]
        self._d = n if d is None else V.positive_int("d", d)
        if self._d < n:
            raise InputError(
                f"d must be >= n for orthogonal data (n orthogonal vectors need n dimensions), "
                f"got d = {self._d} < n = {n}; use gaussian_data for d < n"
            )
        self.frame = V.choice("frame", frame, FRAMES)
        self.seed = int(seed)
        self.label_scheme = label_scheme
        self.norm_scheme = norm_scheme

    @property
    def d(self) -> int:
        return self._d

    def sq_norms(self) -> np.ndarray:
        return self.norms**2

    def gram(self) -> np.ndarray:
        return np.diag(self.norms**2)

    @property
    def coherence(self) -> float:
        return 0.0

    def quad_form(self, u: np.ndarray) -> np.ndarray:
        t = np.square(u)  # one temporary (the same arithmetic as (u**2 / norms**2).sum)
        np.divide(t, self.norms**2, out=t)
        return t.sum(axis=-1)

    def frame_vectors(self) -> np.ndarray:
        """The orthonormal directions ``q_i`` as rows of an (n, d) array."""
        n, d = self.n, self.d
        if self.frame == "canonical":
            q = np.zeros((n, d))
            q[np.arange(n), np.arange(n)] = 1.0
            return q
        g = _rng.stream(self.seed, _rng.DATA_FRAME).standard_normal((d, n))
        q, r = np.linalg.qr(g)
        return (q * np.sign(np.diag(r))).T  # sign fix makes the frame Haar-distributed

    def to_array(self) -> np.ndarray:
        return self.norms[:, None] * self.frame_vectors()

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n": self.n,
            "d": self.d,
            "frame": self.frame,
            "labels": self.label_scheme,
            "norms": self.norm_scheme,
            "seed": self.seed,
        }

    def __repr__(self) -> str:
        return (
            f"OrthogonalData(n={self.n}, d={self.d}, frame={self.frame!r}, "
            f"labels={self.label_scheme!r}, norms={self.norm_scheme!r})"
        )


class ArrayData(Dataset):
    """Arbitrary inputs given as an explicit (n, d) array ``X`` with labels ``y``.

    The Gram matrix and its pseudo-inverse are computed once, lazily. Rank-
    deficient ``X`` (``n > d``, repeated samples) is allowed: the reduced
    dynamics stay exact and ``‖w‖²`` uses the pseudo-inverse.
    """

    kind = "array"

    def __init__(
        self,
        X: Any,
        y: Any,
        seed: int | None = None,
        label_scheme: str = "given",
        kind: str = "array",
    ):
        X = V.finite_array("X", X, ndim=2)
        self.y = V.finite_array("labels (y)", y, ndim=1)
        if X.shape[0] != self.y.shape[0]:
            raise InputError(
                f"X and y must have the same number of samples, got X with {X.shape[0]} rows "
                f"and y with {self.y.shape[0]} entries"
            )
        if X.shape[0] < 1 or X.shape[1] < 1:
            raise InputError(
                f"X must have at least one sample and one feature, got shape {X.shape}"
            )
        norms = np.linalg.norm(X, axis=1)
        if (norms == 0).any():
            raise InputError(
                f"X has {int((norms == 0).sum())} all-zero row(s) (first: {int(np.argmin(norms))}); "
                "a ReLU network cannot fit a zero input, remove them"
            )
        self.X = X
        self.seed = seed
        self.label_scheme = label_scheme
        self.kind = kind

    @property
    def d(self) -> int:
        return int(self.X.shape[1])

    @cached_property
    def _gram(self) -> np.ndarray:
        return self.X @ self.X.T

    def gram(self) -> np.ndarray:
        return self._gram

    def sq_norms(self) -> np.ndarray:
        return np.einsum("ij,ij->i", self.X, self.X)

    @cached_property
    def _pinv_gram(self) -> np.ndarray:
        return np.linalg.pinv(self._gram, hermitian=True)

    def quad_form(self, u: np.ndarray) -> np.ndarray:
        return np.einsum("...i,ik,...k->...", u, self._pinv_gram, u)

    def quad_form_rows(self, u: np.ndarray) -> np.ndarray:
        # (u K⁺) ∘ u summed: one BLAS product (quad_form's einsum loop was 4 of 7 s of a
        # descent's recorded rows at n = 400)
        return np.einsum("ij,ij->i", u @ self._pinv_gram, u)

    @cached_property
    def _row_basis(self) -> np.ndarray:
        """Orthonormal basis of the row space of ``X`` (rank by SVD, rows of a (rank, d) array)."""
        _, sv, vt = np.linalg.svd(self.X, full_matrices=False)
        tol = sv[0] * max(self.X.shape) * np.finfo(float).eps if sv.size else 0.0
        return vt[sv > tol]

    def project_out(self, W: np.ndarray) -> np.ndarray:
        """``W^⊥ = W (I − P_X)``: each row of ``W`` minus its projection on span(x_1..x_n).

        Computed with an orthonormal basis ``V`` of the row space (``P_X = Vᵀ V``, from
        the SVD of ``X``), which stays accurate when ``K`` is singular (``n > d``).
        """
        V = self._row_basis
        return W - (W @ V.T) @ V

    @cached_property
    def coherence(self) -> float:  # type: ignore[override]
        if self.n < 2:
            return 0.0
        nrm = np.sqrt(self.sq_norms())
        cos = self._gram / np.outer(nrm, nrm)
        np.fill_diagonal(cos, 0.0)
        return float(np.abs(cos).max())

    @property
    def is_orthogonal(self) -> bool:  # type: ignore[override]
        return self.coherence <= 1e-10

    def to_array(self) -> np.ndarray:
        return self.X

    def describe(self) -> dict[str, Any]:
        out = {
            "kind": self.kind,
            "n": self.n,
            "d": self.d,
            "labels": self.label_scheme,
            "seed": self.seed,
        }
        if self.has_bias:
            out["bias"] = True
        return out

    def __repr__(self) -> str:
        return (
            f"ArrayData(n={self.n}, d={self.d}, kind={self.kind!r}, coherence={self.coherence:.3g})"
        )


def orthogonal_data(
    n: int,
    d: int | None = None,
    *,
    labels: Any = "balanced",
    norms: Any = 1.0,
    frame: str = "canonical",
    seed: int = 0,
) -> OrthogonalData:
    """Orthogonal dataset of ``n`` samples in R^d (docs/model.md).

    Args:
        n: number of samples (>= 1).
        d: dimension, ``>= n`` (default ``n``).
        labels: ``"balanced"`` (n//2 samples labelled -1, the rest +1, shuffled),
            ``"random"`` (fair ±1), ``"gaussian"`` (N(0, 1)), or an array of n labels.
        norms: ``‖x_i‖``: a positive number (all equal, default 1), an array of n
            positive numbers, or ``"uniform"`` (drawn from U[0.5, 1.5]).
        frame: ``"canonical"`` (basis vectors) or ``"random"`` (random orthonormal frame).
        seed: seed of the data streams (labels, norms, frame).

    Returns:
        An :class:`OrthogonalData`; nothing of size ``n x d`` is allocated.
    """
    n = V.positive_int("n", n)
    seed = V.seed("seed", seed)
    _memory.check_data(n)
    label_scheme = labels if isinstance(labels, str) else "given"
    y = _labels(labels, n, seed)
    if isinstance(norms, str):
        V.choice("norms", norms, NORM_SCHEMES)
        nv = _rng.stream(seed, _rng.DATA_NORMS).uniform(0.5, 1.5, size=n)
        norm_scheme = norms
    elif np.ndim(norms) == 0:
        nv = np.full(n, V.finite_float("norms", norms, low=0.0, low_open=True))
        norm_scheme = f"{float(norms):g}"
    else:
        nv = norms
        norm_scheme = "given"
    return OrthogonalData(
        nv, y, d=d, frame=frame, seed=seed, label_scheme=label_scheme, norm_scheme=norm_scheme
    )


class GaussianGramData(ArrayData):
    """Gaussian inputs ``x_i ~ N(0, I_d / d)`` held through their Gram matrix (``d >= n``).

    With ``X = G / √d`` (``G``: n × d standard Gaussian), the Gram matrix is
    ``K = L Lᵀ`` with ``L`` the Bartlett factor of the Wishart matrix ``G Gᵀ``
    divided by ``√d``: lower triangular, ``(√d L)_kk² ~ χ²_{d−k}`` (k = 0..n−1)
    and ``(√d L)_kl ~ N(0, 1)`` below the diagonal, all independent
    (docs/general-data.md §6). Drawing ``L`` costs O(n²) numbers and O(n³/3)
    flops for ``K``, whatever ``d``; nothing of size ``n × d`` is formed.
    :func:`reluflow.init_network` then draws the reduced coordinates jointly
    with ``K`` (``U = λ B Lᵀ / √d``, ``B`` standard Gaussian, and
    ``‖w_j^⊥‖² = λ² χ²_{d−n} / d``), exactly in distribution as from explicit
    ``X`` and ``W``.

    The inputs themselves exist on demand (:meth:`to_array`, the attribute
    ``X``): ``X = L Qᵀ`` with ``Q`` (d × n) Haar-distributed orthonormal columns
    drawn from the seed, an exact sample of ``X`` given ``K`` (``X Xᵀ = K`` to
    rounding), at O(d n²) cost, for predictions on new inputs.
    """

    kind = "gaussian"

    def __init__(self, n: int, d: int, y: np.ndarray, seed: int, label_scheme: str):
        if d < n:
            raise InputError(
                f"the Gram representation of Gaussian data needs d >= n, got d = {d} < n = {n}; "
                "use representation='explicit'"
            )
        self.y = np.asarray(y, dtype=float)
        self._d = int(d)
        self.seed = seed
        self.label_scheme = label_scheme
        rng = _rng.stream(seed, _rng.DATA_GRAM_FACTOR)
        L = np.zeros((n, n))
        rows, cols = np.tril_indices(n, -1)
        L[rows, cols] = rng.standard_normal(rows.size)
        L[np.arange(n), np.arange(n)] = np.sqrt(rng.chisquare(d - np.arange(n)))
        L /= np.sqrt(d)
        self.factor = L

    @classmethod
    def from_factor(
        cls, factor: Any, d: int, y: Any, seed: int, label_scheme: str = "given"
    ) -> GaussianGramData:
        """The dataset with Gram factor ``L`` (``K = L Lᵀ``) in dimension ``d``, drawn from ``seed``.

        What :func:`reluflow.load_init` rebuilds from a saved state; the inputs
        drawn on demand (``X = L Qᵀ``) are those of the original dataset.
        """
        obj = cls.__new__(cls)
        obj.factor = V.finite_array("gram_factor", factor, ndim=2)
        obj.y = V.finite_array("labels (y)", y, ndim=1)
        if obj.factor.shape != (obj.y.shape[0],) * 2:
            raise InputError(
                f"gram_factor must be n x n with n = {obj.y.shape[0]} labels, got {obj.factor.shape}"
            )
        obj._d = V.positive_int("d", d)
        obj.seed = int(seed)
        obj.label_scheme = label_scheme
        return obj

    @property
    def d(self) -> int:
        return self._d

    @cached_property
    def X(self) -> np.ndarray:  # type: ignore[override]
        """The inputs (n × d), drawn on first use: ``L Qᵀ``, ``Q`` Haar on the seed's frame stream."""
        g = _rng.stream(self.seed, _rng.DATA_GRAM_FRAME).standard_normal((self.d, self.n))
        q, r = np.linalg.qr(g)
        q *= np.sign(np.diag(r))  # sign fix: Haar-distributed columns
        return self.factor @ q.T

    @cached_property
    def frame(self) -> np.ndarray:
        """Orthonormal basis (d × n) of the inputs' span: ``X = L frameᵀ``."""
        return np.linalg.solve(self.factor, self.X).T

    @cached_property
    def _gram(self) -> np.ndarray:  # type: ignore[override]
        return self.factor @ self.factor.T

    def sq_norms(self) -> np.ndarray:
        return np.einsum("ij,ij->i", self.factor, self.factor)

    @cached_property
    def _pinv_gram(self) -> np.ndarray:  # type: ignore[override]
        inv_l = solve_triangular(self.factor, np.eye(self.n), lower=True)
        return inv_l.T @ inv_l

    def quad_form(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=float)
        flat = u.reshape(-1, self.n)
        z = solve_triangular(self.factor, flat.T, lower=True)
        return np.einsum("ij,ij->j", z, z).reshape(u.shape[:-1])

    def draw_init(self, seed: int, m: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
        """Reduced coordinates ``u`` (m × n) and ``‖w_j^⊥‖²`` of ``w_j = λ g_j``, ``g_j ~ N(0, I/d)``.

        ``u = λ B Lᵀ / √d`` and ``‖w_j^⊥‖² = λ² χ²_{d−n} / d``: the joint law of
        ``(K, W Xᵀ, ‖W^⊥‖)`` from the Bartlett factor of ``[G; H] [G; H]ᵀ``
        (docs/general-data.md §6). ``B`` carries the signs shared with the jump process.
        """
        n, d = self.n, self.d
        b = _rng.standard_normals(seed, m, n)
        u = scale * (b @ self.factor.T) / np.sqrt(d)
        chi2 = (
            _rng.stream(seed, _rng.INIT_PERP_NORM).chisquare(d - n, size=m)
            if d > n
            else np.zeros(m)
        )
        return u, scale**2 * chi2 / d

    def perp_weights(self, seed: int, w_perp_sq: np.ndarray) -> np.ndarray:
        """``W^⊥`` (m × d) for an initialisation drawn by :meth:`draw_init`: uniform
        directions orthogonal to the inputs (from the seed), with norms ``√w_perp_sq``."""
        m = w_perp_sq.shape[0]
        g = _rng.stream(seed, _rng.INIT_GRAM_PERP_DIRECTION).standard_normal((m, self.d))
        q = self.frame
        g -= (g @ q) @ q.T
        nrm = np.linalg.norm(g, axis=1, keepdims=True)
        return g / np.where(nrm > 0, nrm, 1.0) * np.sqrt(w_perp_sq)[:, None]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "representation": "gram"}

    def __repr__(self) -> str:
        return f"GaussianGramData(n={self.n}, d={self.d}, coherence={self.coherence:.3g})"


REPRESENTATIONS = ("auto", "explicit", "gram")
# above this many entries of X (200 MB), representation="auto" keeps only the Gram matrix
GRAM_ABOVE = 25_000_000


def gaussian_data(
    n: int, d: int, *, labels: Any = "balanced", seed: int = 0, representation: str = "auto"
) -> ArrayData:
    """Gaussian inputs ``x_i ~ N(0, I_d / d)``: nearly orthogonal when ``d >> n``.

    Args:
        n: number of samples. d: dimension. labels: as in :func:`orthogonal_data`.
        seed: seed of the data streams.
        representation: ``"explicit"`` (the n × d array ``X``), ``"gram"``
            (:class:`GaussianGramData`: ``K`` drawn directly, O(n²) memory whatever
            ``d``, ``X`` on demand; needs ``d >= n``) or ``"auto"`` (gram when ``n d``
            exceeds 2.5·10⁷ entries and ``d >= n``, explicit otherwise). The two
            representations have the same distribution but different draws for
            one seed.
    """
    n = V.positive_int("n", n)
    d = V.positive_int("d", d)
    seed = V.seed("seed", seed)
    representation = V.choice("representation", representation, REPRESENTATIONS)
    if representation == "auto":
        representation = "gram" if n * d > GRAM_ABOVE and d >= n else "explicit"
    label_scheme = labels if isinstance(labels, str) else "given"
    y = _labels(labels, n, seed)
    if representation == "gram":
        _memory.check_data(n, n)  # the Gram matrix and its factor, not n x d
        return GaussianGramData(n, d, y, seed, label_scheme)
    _memory.check_data(n, d)
    X = _rng.stream(seed, _rng.DATA_GAUSSIAN).standard_normal((n, d)) / np.sqrt(d)
    return ArrayData(X, y, seed=seed, label_scheme=label_scheme, kind="gaussian")


def array_data(X: Any, y: Any) -> ArrayData:
    """Wrap explicit inputs ``X`` (n x d) and labels ``y`` (n,) as a dataset."""
    return ArrayData(X, y)
