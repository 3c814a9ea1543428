"""The reduced-coordinate vector field equals the full-parameter gradient (docs/model.md)."""

import numpy as np
import pytest

import reluflow as rf
from reluflow._engines.field import Field


def full_loss(a, W, X, y):
    z = W @ X.T
    relu = np.where(z.real > 0, z, 0.0)
    r = a @ relu - y
    return (r @ r) / (2 * len(y))


def complex_step_grad(a, W, X, y, h=1e-30):
    """Exact (to rounding) gradient of the full-parameter loss by the complex step."""
    ga = np.zeros_like(a)
    gW = np.zeros_like(W)
    for j in range(a.size):
        ac = a.astype(complex)
        ac[j] += 1j * h
        ga[j] = full_loss(ac, W.astype(complex), X, y).imag / h
    for idx in np.ndindex(W.shape):
        Wc = W.astype(complex)
        Wc[idx] += 1j * h
        gW[idx] = full_loss(a.astype(complex), Wc, X, y).imag / h
    return ga, gW


@pytest.mark.parametrize("kind", ["gaussian", "orthogonal"])
def test_reduced_field_is_minus_the_full_gradient(kind):
    if kind == "gaussian":
        data = rf.gaussian_data(7, 11, labels="gaussian", seed=1)
    else:
        o = rf.orthogonal_data(7, 11, labels="gaussian", norms="uniform", frame="random", seed=1)
        data = rf.array_data(o.to_array(), o.y)
    net = rf.init_network(data, 5, 0.7, seed=2, init="independent")
    X = data.to_array()
    W = net.weights(data)
    ga, gW = complex_step_grad(net.a, W, X, data.y)
    mask = (net.u > 0).astype(float)
    da, du, _ = Field(data).velocity(net.a, net.u, mask)
    np.testing.assert_allclose(da, -ga, rtol=1e-10, atol=1e-14 * np.abs(ga).max())
    # du/dt = (dW/dt) Xᵀ = −∇_W L Xᵀ
    np.testing.assert_allclose(du, -gW @ X.T, rtol=1e-10, atol=1e-14 * np.abs(gW).max())


def test_orthogonal_fast_path_equals_general_path():
    o = rf.orthogonal_data(9, 9, labels="gaussian", norms="uniform", frame="random", seed=3)
    g = rf.array_data(o.to_array(), o.y)
    net = rf.init_network(o, 4, 0.5, seed=3)
    mask = (net.u > 0).astype(float)
    da1, du1, _ = Field(o).velocity(net.a, net.u, mask)
    general = Field(g)  # numerically orthogonal: force the dense-Gram path to compare the two
    general.orthogonal, general.K = False, g.gram()
    da2, du2, _ = general.velocity(net.a, net.u, mask)
    assert Field(o).orthogonal
    np.testing.assert_allclose(da1, da2, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(du1, du2, rtol=1e-10, atol=1e-14)


def test_box_qp_pivoting_is_the_bounded_least_squares_minimiser():
    # Block principal pivoting (the fast path of the zero-set resolution) against scipy's
    # BVLS on random positive definite box QPs: the same minimiser (it is unique).
    from scipy.linalg import solve_triangular
    from scipy.optimize import lsq_linear

    from reluflow._engines.field import _box_qp_pivoting

    rng = np.random.default_rng(7)
    for _ in range(300):
        k = int(rng.integers(2, 15))
        A = rng.normal(size=(k, k + int(rng.integers(0, 10))))
        K = A @ A.T / A.shape[1] + 1e-3 * np.eye(k)
        g, c = rng.normal(size=k), np.abs(rng.normal(size=k)) + 0.01
        beta = _box_qp_pivoting(K, g, c)
        assert beta is not None
        L = np.linalg.cholesky(K)
        ref = lsq_linear(
            L.T, solve_triangular(L, g, lower=True), bounds=(0.0, c), method="bvls", tol=1e-15
        ).x
        np.testing.assert_allclose(beta, ref, atol=1e-9 * (1 + np.abs(ref).max()))
        w = K @ beta - g  # optimality: w >= 0 at 0, <= 0 at c, 0 in between
        tol = 1e-10 * (np.abs(g).max() + np.abs(K @ c).max())
        assert np.all(w[beta == 0] >= -tol) and np.all(w[beta == c] <= tol)
        free = (beta > 0) & (beta < c)
        assert np.all(np.abs(w[free]) <= tol)
