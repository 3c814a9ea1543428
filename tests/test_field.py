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


# -- zero sets with zero labels (docs/sliding-modes.md, "Coordinates whose activity does nothing")


def _euler_modes(field, a_j, mask_j, Z, steps=8000):
    """Modes of one neuron's coordinates ``Z`` sitting at 0, from explicit Euler (small-step
    gradient descent on the frozen field, ``Field.velocity`` with the mask ``1[u > 0]``
    of the Euler iterate; the residuals do not change since ``σ(0) = 0``). Started at
    ``u_Z = 0``, a coordinate that rises is active, one that falls inactive, one that
    chatters around 0 slides with its mean activity as ``α`` (Filippov's solution is the
    limit of this chattering as the step goes to 0)."""
    n = mask_j.size
    a = np.array([a_j])
    u = np.zeros((1, n))  # outputs 0: r = −y
    mask = np.asarray(mask_j, dtype=float)[None, :].copy()

    def vel(act_Z):
        mask[0, Z] = act_Z
        return field.velocity(a, u, mask)[1][0, Z]

    # step: 1e-3 of the largest speed on Z, so that a sliding coordinate chatters within 1e-3
    speed = max(np.abs(vel(np.zeros(Z.size))).max(), np.abs(vel(np.ones(Z.size))).max())
    eta = 1e-3 / speed
    uz, on = np.zeros(Z.size), np.zeros(Z.size)
    for _ in range(steps):
        act = (uz > 0).astype(float)
        on += act
        uz += eta * vel(act)
    # a slider stays within one step (1e-3) of 0, a mover is steps · 1e-3 · |w| / speed away
    moved = np.abs(uz) > 5e-3
    return moved & (uz > 0), ~moved, on / steps


def _hold_alpha(field, a_j, mask_j, Z, active, sliding):
    """The sliding fractions ``Field.velocity`` holds the sliding coordinates with."""
    mask = np.asarray(mask_j, dtype=float).copy()
    mask[Z] = active
    slide = np.zeros((1, mask.size), dtype=bool)
    slide[0, Z] = sliding
    field.velocity(np.array([a_j]), np.zeros((1, mask.size)), mask[None, :], sliding=slide)
    return field.alpha[2]


def test_zero_label_at_zero_with_a_sliding_coordinate():
    # The state at which the closed-form phase met the error "no consistent sliding
    # assignment" (gaussian_data(16, 160), labels 1, 5, 9 set to 0, m = 4, seed 0: neuron
    # 3 at t = 1.1e3, a_j = −1.45e-8; r = −y there). Sample 2 slides; sample 1 has a zero
    # label, so its activity changes no velocity, and it is pushed upwards by the others.
    base = rf.gaussian_data(16, 160, labels="gaussian", seed=0)
    y = base.y.copy()
    y[[1, 5, 9]] = 0.0
    data = rf.array_data(base.X, y)
    field = Field(data)
    mask_j = np.zeros(16)
    mask_j[[3, 4, 6, 9, 10, 12, 15]] = 1.0
    Z = np.array([1, 2])
    a_j = -1.45e-8
    active, sliding = field.resolve_zero_set(3, a_j, -y, mask_j, Z)
    e_act, e_slide, e_alpha = _euler_modes(field, a_j, mask_j, Z)
    np.testing.assert_array_equal(active, e_act)
    np.testing.assert_array_equal(sliding, e_slide)
    assert active[0] and sliding[1]  # the zero label rises, the other coordinate slides
    alpha = _hold_alpha(field, a_j, mask_j, Z, active, sliding)
    assert 0.0 < alpha[0] < 1.0 and abs(alpha[0] - e_alpha[1]) < 2e-3


@pytest.mark.parametrize("seed", range(12))
def test_zero_sets_with_zero_labels_match_chattering_euler(seed):
    # Random zero sets of 4 coordinates, one or two with a zero label (c_i = 0), the others
    # attracting or repelling: each mode is the one small-step Euler settles into, and each
    # sliding fraction its mean activity.
    rng = np.random.default_rng(seed)
    n, k = 9, 4
    base = rf.gaussian_data(n, 12, seed=seed)  # d close to n: strongly correlated samples
    y = rng.normal(size=n)
    Z = np.sort(rng.choice(n, k, replace=False))
    y[rng.choice(Z, 1 + seed % 2, replace=False)] = 0.0
    data = rf.array_data(base.X, y)
    field = Field(data)
    mask_j = (rng.random(n) < 0.5).astype(float)
    a_j = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 2.0))
    active, sliding = field.resolve_zero_set(0, a_j, -y, mask_j, Z)
    e_act, e_slide, e_alpha = _euler_modes(field, a_j, mask_j, Z)
    np.testing.assert_array_equal(active, e_act)
    np.testing.assert_array_equal(sliding, e_slide)
    if sliding.any():
        alpha = _hold_alpha(field, a_j, mask_j, Z, active, sliding)
        np.testing.assert_allclose(alpha, e_alpha[sliding], atol=2e-3)


def _zero_label_data(n, seed, zeros):
    base = rf.gaussian_data(n, 3 * n if zeros == 2 else 2 * n, labels="gaussian", seed=seed)
    y = base.y.copy()
    y[np.random.default_rng(seed).choice(n, 2, replace=False) if zeros == 2 else zeros] = 0.0
    return rf.array_data(base.X, y)


@pytest.mark.parametrize(
    "n,seed,m,zero_label_rises",
    [
        # at t = 9.35 a coordinate of a zero-label sample no neuron is active on (r_i = 0)
        # rises: it used to end the run as "failed" (no consistent sliding assignment)
        (8, 2, 3, True),
        # at t = 0.90 a neuron active only on zero-label samples (residuals ~1e-8) has a
        # coordinate rising at 1e-10 of its pull: it slides with α ~ 1e-10; rounded to
        # inactive it was flipped back at once, 200 times ("stuck at a switching point")
        (6, 0, 3, False),
    ],
)
def test_flow_with_zero_labels_matches_small_step_descent(n, seed, m, zero_label_rises):
    # Filippov's flow is the limit of gradient descent as the step goes to 0: the gap
    # must halve with the step (first order), in the loss and in the parameters.
    data = _zero_label_data(n, seed, 2)
    net = rf.init_network(data, m, 1e-4, seed=seed)
    T = 15.0
    fl = rf.gradient_flow(data, net, t_max=T, rtol=1e-10, engine="numpy")
    assert fl.success and fl.status == "t_max", fl.message
    assert fl.stats.sliding > 0
    k = fl.kinks()
    rose = k["activated"].to_numpy() & (data.y[k["sample"].to_numpy()] == 0)
    assert rose.any() == zero_label_rises
    size = max(np.abs(fl.final.a).max(), np.abs(fl.final.u).max())
    loss_gap, par_gap = [], []
    for lr in (8e-3, 4e-3, 2e-3):
        gd = rf.gradient_descent(data, net, lr, t_max=T, check_stability=False)
        loss_gap.append(abs(gd.final_loss - fl.final_loss))
        par_gap.append(max(np.abs(gd.final.a - fl.final.a).max(),
                           np.abs(gd.final.u - fl.final.u).max()))  # fmt: skip
    for gaps in (loss_gap, par_gap):
        ratios = np.array(gaps[:-1]) / np.array(gaps[1:])
        assert np.all((ratios > 1.8) & (ratios < 2.2)), (gaps, ratios)
    assert par_gap[-1] < 2e-3 * size
    # the compiled engine resolves its events with the same Field: same run to rounding
    nb = rf.gradient_flow(data, net, t_max=T, rtol=1e-10, engine="numba", closed_form_start=False)
    assert nb.status == "t_max", nb.message
    assert np.abs(nb.final.u - fl.final.u).max() < 1e-9 * size


def test_closed_form_phase_with_zero_labels_hands_over_the_flow_state():
    # The compiled engine's closed-form phase (r = −y: c_i = 0 on zero labels) against
    # the reference solver from t = 0: a zero-label coordinate that rose during the phase
    # must reach the solver active, not be set back to 0 as a crossing at the hand-over.
    data = _zero_label_data(16, 0, [2, 7, 13])
    net = rf.init_network(data, 4, 1e-8, seed=0)
    ref = rf.gradient_flow(data, net, t_max=60.0, rtol=1e-10, engine="numpy")
    cf = rf.gradient_flow(data, net, t_max=60.0, rtol=1e-10, engine="numba")
    assert cf.stats.closed_form_t > 30.0  # the phase ran
    size = np.maximum(np.abs(ref.final.a), np.abs(ref.final.u).max(axis=1))
    assert np.max(np.abs(cf.final.a - ref.final.a) / size) < 1e-8
    assert np.max(np.abs(cf.final.u - ref.final.u).max(axis=1) / size) < 1e-8


@pytest.mark.parametrize("seed", range(8))
def test_zero_set_modes_agree_with_the_sign_of_their_velocity(seed):
    # What the solver needs from a resolution: with the modes returned, the field itself
    # (Field.velocity, sliding ones held) moves no inactive coordinate of Z up and no
    # active one down (the solver would flip it back at once, without end), and the held
    # fractions are inside the exit band. The hard case: neuron 0 is active only on a
    # zero-label sample whose output is tiny (1e-17, as from an initialisation at
    # λ = 1e-8), so every coordinate of Z is driven at 1e-17 of its own pull and the
    # sliding fractions are ~1e-17, below the acceptance margin.
    rng = np.random.default_rng(seed)
    n, s = 10, 0
    base = rf.gaussian_data(n, 12, seed=seed)
    y = np.abs(rng.normal(size=n)) + 0.2  # a_0 < 0 below: the labelled coordinates attract
    y[s] = 0.0
    data = rf.array_data(base.X, y)
    field = Field(data)
    Z = np.sort(rng.choice(np.arange(1, n), 4, replace=False))
    a = np.array([-1.0, 1.0])
    u = np.zeros((2, n))
    u[1, s] = 1e-17  # neuron 1 gives the zero-label sample its tiny output
    mask = np.zeros((2, n))
    mask[:, s] = 1.0
    r = a @ (u * mask) - y
    active, sliding = field.resolve_zero_set(0, a[0], r, mask[0], Z)
    mask[0, Z] = active
    held = np.zeros((2, n), dtype=bool)
    held[0, Z] = sliding
    _, du, _ = field.velocity(a, u, mask, sliding=held)
    w = du[0, Z]
    assert np.all(w[~active & ~sliding] <= 0.0), w
    assert np.all(w[active] >= 0.0), w
    if sliding.any():
        assert np.all(np.abs(field.alpha[2]) <= 1e-12)  # driven at 1e-17
