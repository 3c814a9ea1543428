"""Data the field uses: sphere inputs, signed-uniform and teacher labels, bias, the 1-D toy data.

* :func:`with_bias`: a hidden bias per neuron as the constant-feature
  augmentation ``x ↦ (x, 1)``: ``σ(<w_j, x> + b_j) = σ(<(w_j, b_j), (x, 1)>)``,
  so a network with biases on ``X`` is exactly a network without biases on
  ``[X, 1]`` and every dynamics, engine and analysis applies unchanged.
  Orthogonality: ``<(x_i, 1), (x_k, 1)> = <x_i, x_k> + 1``, so augmented samples
  are orthogonal iff ``<x_i, x_k> = −1`` for every pair ``i ≠ k`` (Boursier et
  al.'s two-point toy data ``x = (−0.5, 2)`` is such a case); generic data
  (Gaussian, sphere, any data with ``<x_i, x_k> = 0``) never is, and the
  orthogonal-only method, the jump process, refuses it with
  :class:`~reluflow.errors.NotOrthogonalError`.
* :func:`sphere_data`: directions uniform on the sphere, norms ``U[1, 2]``,
  labels ``±U[1, 2]`` (Dana, Bach & Pillaud-Vivien 2025).
* :func:`teacher_data` / :func:`teacher_labels`: labels from a random
  two-layer teacher network (Boursier, Pillaud-Vivien & Flammarion 2022).
* :func:`toy_1d_data`: their one-dimensional examples, with the bias.

Every generator draws from its own named random stream of ``seed``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _rng
from . import _validate as V
from .data import ArrayData, Dataset, OrthogonalData, _labels
from .errors import InputError

__all__ = ["sphere_data", "teacher_data", "teacher_labels", "toy_1d_data", "with_bias"]

SPHERE_LABELS = ("signed_uniform", "balanced", "random", "gaussian")
TEACHER_INPUTS = ("standard_gaussian", "sphere")
TOY_EXAMPLES = ("orthogonal", "non_orthogonal")

# Boursier et al. (2022), training_dynamics notebook: x (one feature) and labels.
_TOY = {
    "orthogonal": ([-0.5, 2.0], [-1.0, 1.0]),
    "non_orthogonal": ([-1.5, -1.0, 0.0, 0.25, 2.0], [0.7, -0.3, -0.3, 0.4, 0.2]),
}


def with_bias(data: Dataset) -> ArrayData:
    """The dataset with a constant feature appended: ``x̃_i = (x_i, 1)`` in R^{d+1}.

    A network on the result is a network with a hidden bias ``b_j = w̃_{j,d+1}``
    per neuron on the original inputs (no output bias). ``fan_in`` stays ``d``
    (PyTorch's convention for the initialisations), ``has_bias`` is True.
    The result is orthogonal only if ``<x_i, x_k> = −1`` for all ``i ≠ k`` (see
    the module docstring); the jump process checks this and refuses anything else.

    Args:
        data: any dataset with explicit inputs (orthogonal data is materialised).
    """
    if not isinstance(data, Dataset):
        raise InputError(f"data must be a reluflow dataset, got {type(data).__name__}")
    if data.has_bias:
        raise InputError(f"data already has a bias feature ({data!r}); add it once")
    X = data.to_array()
    Xb = np.hstack([X, np.ones((X.shape[0], 1))])
    out = ArrayData(
        Xb,
        data.y,
        seed=getattr(data, "seed", None),
        label_scheme=getattr(data, "label_scheme", "given"),
        kind=f"{data.kind}+bias",
    )
    out.has_bias = True
    return out


def _signed_uniform(n: int, seed: int, low: float, high: float) -> np.ndarray:
    rng = _rng.stream(seed, _rng.DATA_SIGNED_LABELS)
    signs = rng.integers(0, 2, size=n) * 2.0 - 1.0
    return signs * rng.uniform(low, high, size=n)


def _norm_range(norm_range: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in norm_range)
    except (TypeError, ValueError):
        raise InputError(f"norm_range must be a pair (low, high), got {norm_range!r}") from None
    if not (0 < lo <= hi and np.isfinite(hi)):
        raise InputError(f"norm_range must satisfy 0 < low <= high < inf, got {norm_range!r}")
    return lo, hi


def _sphere_inputs(n: int, d: int, seed: int, lo: float, hi: float) -> np.ndarray:
    g = _rng.stream(seed, _rng.DATA_SPHERE).standard_normal((n, d))
    r = _rng.stream(seed, _rng.DATA_SPHERE_NORMS).uniform(lo, hi, size=n)
    return g / np.linalg.norm(g, axis=1, keepdims=True) * r[:, None]


def sphere_data(
    n: int,
    d: int,
    *,
    labels: Any = "signed_uniform",
    norm_range: Any = (1.0, 2.0),
    orthogonal: bool = False,
    bias: bool = False,
    seed: int = 0,
) -> Dataset:
    """Inputs uniform on the sphere with norms ``U[low, high]`` (Dana et al. 2025).

    ``x_i = ρ_i g_i / ‖g_i‖`` with ``g_i ~ N(0, I_d)`` and ``ρ_i ~ U[1, 2]``; with
    ``orthogonal=True`` the directions are the canonical basis vectors instead
    (``x_i = ρ_i e_i``, their orthogonal experiment; ``d >= n``), returned as
    :class:`OrthogonalData` (never materialised).

    Args:
        n: samples. d: dimension.
        labels: ``"signed_uniform"`` (``y_i = s_i |y_i|``, ``s_i = ±1`` fair,
            ``|y_i| ~ U[1, 2]``), a scheme of :func:`reluflow.orthogonal_data`
            (``"balanced"``, ``"random"``, ``"gaussian"``) or an array of n labels.
        norm_range: ``(low, high)`` of the uniform norms (and of ``|y_i|`` for
            signed-uniform labels), default ``(1, 2)``.
        orthogonal: orthonormal directions instead of uniform ones.
        bias: append the constant feature (see :func:`with_bias`).
        seed: seed of the data streams.
    """
    n = V.positive_int("n", n)
    d = V.positive_int("d", d)
    seed = V.seed("seed", seed)
    lo, hi = _norm_range(norm_range)
    if isinstance(labels, str) and labels == "signed_uniform":
        y = _signed_uniform(n, seed, lo, hi)
        scheme = "signed_uniform"
    else:
        if isinstance(labels, str):
            V.choice("labels", labels, SPHERE_LABELS)
        y = _labels(labels, n, seed)
        scheme = labels if isinstance(labels, str) else "given"
    data: Dataset
    if orthogonal:
        norms = _rng.stream(seed, _rng.DATA_SPHERE_NORMS).uniform(lo, hi, size=n)
        data = OrthogonalData(
            norms, y, d=d, seed=seed, label_scheme=scheme, norm_scheme=f"U[{lo:g},{hi:g}]"
        )
    else:
        data = ArrayData(
            _sphere_inputs(n, d, seed, lo, hi), y, seed=seed, label_scheme=scheme, kind="sphere"
        )
    return with_bias(data) if bias else data


def teacher_labels(X: Any, width: int, *, seed: int = 0) -> np.ndarray:
    """Labels of a random two-layer ReLU teacher: ``y_i = Σ_k a*_k σ(<w*_k, x_i>)``.

    ``w*_k ~ N(0, I_d / (k d))`` and ``a*_k ~ N(0, 1/k)`` for a teacher of width
    ``k`` (PyTorch ``Net(init_scale=1, balanced=False)`` of Boursier et al. 2022:
    standard deviations ``1/sqrt(k d)`` and ``1/sqrt(k)``).

    Args:
        X: inputs, (n, d). width: teacher width k. seed: the teacher's seed.
    """
    X = V.finite_array("X", X, ndim=2)
    k = V.positive_int("width", width)
    seed = V.seed("seed", seed)
    d = X.shape[1]
    rng = _rng.stream(seed, _rng.DATA_TEACHER)
    W = rng.standard_normal((k, d)) / np.sqrt(k * d)
    a = rng.standard_normal(k) / np.sqrt(k)
    return np.maximum(X @ W.T, 0.0) @ a


def teacher_data(
    n: int,
    d: int,
    width: int = 6,
    *,
    inputs: str = "standard_gaussian",
    bias: bool = False,
    seed: int = 0,
    teacher_seed: int | None = None,
) -> ArrayData:
    """Inputs with teacher labels (:func:`teacher_labels`).

    Args:
        n: samples. d: dimension. width: teacher width (6 in Boursier et al.).
        inputs: ``"standard_gaussian"`` (``x_i ~ N(0, I_d)``, their ``torch.randn``;
            ``‖x_i‖ ≈ sqrt(d)``) or ``"sphere"`` (as :func:`sphere_data`).
        bias: append the constant feature (the teacher sees the original inputs).
        seed: seed of the inputs. teacher_seed: seed of the teacher (default ``seed``).
    """
    n = V.positive_int("n", n)
    d = V.positive_int("d", d)
    seed = V.seed("seed", seed)
    V.choice("inputs", inputs, TEACHER_INPUTS)
    tseed = seed if teacher_seed is None else V.seed("teacher_seed", teacher_seed)
    if inputs == "standard_gaussian":
        X = _rng.stream(seed, _rng.DATA_STANDARD_GAUSSIAN).standard_normal((n, d))
    else:
        X = _sphere_inputs(n, d, seed, 1.0, 2.0)
    y = teacher_labels(X, width, seed=tseed)
    data = ArrayData(X, y, seed=seed, label_scheme=f"teacher(width={width}, seed={tseed})")
    data.kind = f"teacher-{inputs}"
    return with_bias(data) if bias else data


def toy_1d_data(example: str = "orthogonal", *, bias: bool = True) -> ArrayData:
    """The one-dimensional examples of Boursier et al. (2022), with the hidden bias.

    ``"orthogonal"``: ``x = (−0.5, 2)``, ``y = (−1, 1)``; with the bias feature the
    samples ``(−0.5, 1)`` and ``(2, 1)`` are exactly orthogonal, so the jump process
    applies. ``"non_orthogonal"``: ``x = (−1.5, −1, 0, 0.25, 2)``,
    ``y = (0.7, −0.3, −0.3, 0.4, 0.2)``.

    Args:
        example: ``"orthogonal"`` or ``"non_orthogonal"``.
        bias: append the constant feature (default True, as in their notebook;
            ``"non_orthogonal"`` holds ``x = 0`` and needs it).
    """
    V.choice("example", example, TOY_EXAMPLES)
    x, y = _TOY[example]
    X = np.asarray(x)[:, None]
    if not bias:
        return ArrayData(X, y, label_scheme="given", kind=f"toy1d-{example}")
    data = ArrayData(
        np.hstack([X, np.ones_like(X)]), y, label_scheme="given", kind=f"toy1d-{example}+bias"
    )
    data.has_bias = True
    return data
