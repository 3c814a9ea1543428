import numpy as np
import pytest

import reluflow as rf


def test_orthogonal_dataset_geometry_random_frame():
    d = rf.orthogonal_data(12, 20, labels="random", norms="uniform", frame="random", seed=3)
    X = d.to_array()
    assert X.shape == (12, 20)
    K = X @ X.T
    np.testing.assert_allclose(K, d.gram(), atol=1e-12)
    np.testing.assert_allclose(np.diag(K), d.sq_norms(), rtol=1e-12)
    assert d.coherence == 0.0
    off = np.abs(K - np.diag(np.diag(K))).max()
    assert off < 1e-12
    assert set(np.unique(d.y)) <= {-1.0, 1.0}
    assert 0.5 <= d.norms.min() and d.norms.max() <= 1.5


def test_balanced_labels_are_half_and_half_and_seeded():
    a = rf.orthogonal_data(101, seed=7)
    b = rf.orthogonal_data(101, seed=7)
    c = rf.orthogonal_data(101, seed=8)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.y, c.y)
    assert (a.y < 0).sum() == 50 and (a.y > 0).sum() == 51


def test_large_orthogonal_dataset_is_never_materialised():
    d = rf.orthogonal_data(100_000, seed=0)
    net = rf.init_network(d, 2, 1e-6, seed=0)  # m x n only
    assert net.u.shape == (2, 100_000)
    assert d.quad_form(net.u).shape == (2,)


def test_gaussian_data_is_nearly_orthogonal_in_high_dimension():
    lo = rf.gaussian_data(20, 50, seed=0).coherence
    hi = rf.gaussian_data(20, 20000, seed=0).coherence
    assert hi < lo and hi < 0.05


def test_initialisation_matches_theory_statistics():
    # u_ji(0) = λ ‖x_i‖ z, z ~ N(0, 1/d); balanced a_j = s_j ‖w_j‖, ‖w_j‖² ≈ λ² for d = n
    d = rf.orthogonal_data(400, 1600, norms=2.0, seed=0)
    net = rf.init_network(d, 300, 1e-3, seed=1)
    z = net.u / (1e-3 * 2.0)
    assert abs(z.var() * 1600 - 1.0) < 0.02
    np.testing.assert_allclose(net.balance(d), 0.0, atol=1e-18)
    assert abs(np.mean(net.w_norm_sq(d)) / 1e-6 - 1.0) < 0.02
    assert abs(np.mean(net.a > 0) - 0.5) < 0.1
    ind = rf.init_network(d, 300, 1e-3, seed=1, init="independent")
    np.testing.assert_array_equal(np.sign(ind.a), np.sign(net.a))
    np.testing.assert_array_equal(ind.u, net.u)


def test_explicit_and_reduced_initialisation_agree_on_orthogonal_data():
    """The reduced draw (u directly, |w_perp|^2 from a chi-square) and the explicit one (a full
    Gaussian W, then u = W X^T) give the same distribution: two-sample KS tests over many seeds
    of u_ji / (lambda |x_i|), of |w_perp|^2 and of |a_j|, and the sign frequencies. Family-wise
    false alarm <= 1e-3 (Bonferroni over the 5 tests)."""
    from scipy import stats

    d = rf.orthogonal_data(6, 9, frame="random", norms="uniform", seed=2)
    explicit = rf.array_data(d.to_array(), d.y)
    lam, m = 0.1, 1500
    z_r, z_e, perp_r, perp_e, a_r, a_e = [], [], [], [], [], []
    for seed in range(8):
        netr = rf.init_network(d, m, lam, seed=seed)
        nete = rf.init_network(explicit, m, lam, seed=100 + seed)
        z_r.append((netr.u / (lam * d.norms)).ravel())
        z_e.append((nete.u / (lam * d.norms)).ravel())
        perp_r.append(netr.w_perp_sq)
        # explicit: |w|^2 minus its part in the data span, sum_i u_ji^2 / |x_i|^2
        perp_e.append(nete.w_norm_sq(explicit) - (nete.u**2 / d.sq_norms()).sum(axis=1))
        a_r.append(netr.a)
        a_e.append(nete.a)
        # the explicit network reconstructs its own u exactly
        W = nete.weights(explicit)
        np.testing.assert_allclose(W @ explicit.X.T, nete.u, atol=1e-15)
    z_r, z_e = np.concatenate(z_r), np.concatenate(z_e)
    perp_r, perp_e = np.concatenate(perp_r), np.concatenate(perp_e)
    a_r, a_e = np.concatenate(a_r), np.concatenate(a_e)
    alpha = 1e-3 / 5
    assert stats.ks_2samp(z_r, z_e).pvalue > alpha
    assert stats.kstest(z_r * np.sqrt(d.d), "norm").pvalue > alpha  # u ~ lam |x| N(0, 1/d)
    assert stats.ks_2samp(perp_r, perp_e).pvalue > alpha
    assert stats.ks_2samp(np.abs(a_r), np.abs(a_e)).pvalue > alpha
    k_r, k_e = int((a_r > 0).sum()), int((a_e > 0).sum())
    table = [[k_r, a_r.size - k_r], [k_e, a_e.size - k_e]]
    assert stats.fisher_exact(table).pvalue > alpha
    # |w_perp|^2 ~ lam^2 chi2_{d-n} / d in both (the reduced draw's own law)
    assert stats.kstest(perp_e * d.d / lam**2, "chi2", args=(d.d - d.n,)).pvalue > 1e-3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(n=0), "n must be an integer >= 1"),
        (dict(n=5, d=3), "d must be >= n"),
        (dict(n=4, labels="weird"), "labels must be one of"),
        (dict(n=3, labels=[1.0, np.nan, 1.0]), "NaN/inf"),
        (dict(n=3, labels=[1.0, 1.0]), "one entry per sample"),
        (dict(n=3, norms=-1.0), "norms must be"),
        (dict(n=3, frame="diagonal"), "frame must be one of"),
    ],
)
def test_bad_dataset_input_is_refused_with_a_message(kwargs, match):
    with pytest.raises(rf.InputError, match=match):
        rf.orthogonal_data(**kwargs)


def test_bad_array_input():
    with pytest.raises(rf.InputError, match="same number of samples"):
        rf.array_data(np.ones((3, 4)), np.ones(2))
    with pytest.raises(rf.InputError, match="finite"):
        rf.array_data(np.array([[1.0, np.inf]]), np.ones(1))
    d = rf.orthogonal_data(4)
    for bad in (0, -1):
        with pytest.raises(rf.InputError, match="m must be"):
            rf.init_network(d, bad, 1e-3)
    for bad in (0.0, -1e-3, float("nan"), float("inf")):
        with pytest.raises(rf.InputError, match="scale"):
            rf.init_network(d, 2, bad)


def test_save_and_load_init_roundtrip(tmp_path):
    d = rf.orthogonal_data(10, 15, norms="uniform", seed=4)
    net = rf.init_network(d, 3, 1e-5, seed=4)
    path = rf.save_init(tmp_path / "init.npz", d, net)
    with np.load(path) as z:
        assert set(z.files) >= {"y", "x_norm", "u0", "a0", "scale"}
        assert z["u0"].shape == (3, 10) and z["scale"].shape == ()
    d2, net2 = rf.load_init(path)
    np.testing.assert_array_equal(d2.y, d.y)
    np.testing.assert_array_equal(net2.u, net.u)
    np.testing.assert_allclose(net2.w_norm_sq(d2), net.w_norm_sq(d), rtol=1e-14)
