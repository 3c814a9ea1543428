"""Networks from explicit weights, saved initial states, the field's initialisations, loss conventions."""

import warnings

import numpy as np
import pytest
from scipy import stats

import reluflow as rf
from reluflow.errors import InputError


def _data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    return rf.array_data(rng.standard_normal((n, d)), rng.standard_normal(n))


@pytest.mark.parametrize("n,d", [(6, 15), (40, 5)])
def test_from_weights_keeps_every_weight(n, d):
    data = _data(n, d)
    rng = np.random.default_rng(1)
    W, a = rng.standard_normal((4, d)), rng.standard_normal(4)
    net = rf.Network.from_weights(data, W, a, scale=1e-3)
    np.testing.assert_allclose(net.u, W @ data.X.T, rtol=1e-13)
    # W^⊥ is orthogonal to every sample and the norms add up: ‖w‖² = ‖w^⊥‖² + u K⁺ uᵀ
    assert np.abs(net.w_perp @ data.X.T).max() < 1e-12 * np.abs(W).max() * np.abs(data.X).max()
    np.testing.assert_allclose(net.w_norm_sq(data), (W**2).sum(axis=1), rtol=1e-10)
    if d > n:
        assert (net.w_perp_sq > 0).all()
    else:  # the data spans R^d: nothing is orthogonal to it
        assert net.w_perp_sq.max() < 1e-20
    np.testing.assert_allclose(net.weights(data), W, atol=1e-10)
    Xnew = rng.standard_normal((7, d))
    np.testing.assert_allclose(net.predict(data, Xnew), np.maximum(Xnew @ W.T, 0) @ a, atol=1e-10)


def test_from_weights_on_orthogonal_data_in_a_random_frame():
    data = rf.orthogonal_data(5, 9, norms="uniform", frame="random", seed=2)
    rng = np.random.default_rng(3)
    W, a = rng.standard_normal((3, 9)), rng.standard_normal(3)
    net = rf.Network.from_weights(data, W, a)
    np.testing.assert_allclose(net.w_norm_sq(data), (W**2).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(net.outputs(), np.maximum(data.to_array() @ W.T, 0) @ a, rtol=1e-12)
    # default scale: the root-mean-square neuron size
    assert net.scale == pytest.approx(np.sqrt(np.mean(a**2 + (W**2).sum(axis=1)) / 2))


def test_from_weights_refuses_wrong_shapes():
    data = _data(4, 3)
    with pytest.raises(InputError, match="W must have d = 3 columns"):
        rf.Network.from_weights(data, np.zeros((2, 4)), np.zeros(2))
    with pytest.raises(InputError, match="same m"):
        rf.Network.from_weights(data, np.zeros((2, 3)), np.zeros(3))


@pytest.mark.parametrize(
    "make",
    [
        lambda: rf.orthogonal_data(8, 12, norms="uniform", frame="random", seed=1),
        lambda: rf.with_bias(rf.sphere_data(30, 4, seed=2)),
        lambda: rf.gaussian_data(6, 20, seed=3),
        lambda: rf.gaussian_data(6, 20, seed=3, representation="gram"),
    ],
)
def test_save_load_round_trips_any_initial_state(tmp_path, make):
    data = make()
    net = rf.init_network(data, 5, 1e-3, seed=4, init="width_scaled")
    path = rf.save_init(tmp_path / "init", data, net)
    data2, net2 = rf.load_init(path)
    assert type(data2) is type(data) and data2.has_bias == data.has_bias
    np.testing.assert_array_equal(data2.y, data.y)
    np.testing.assert_array_equal(data2.gram(), data.gram())
    np.testing.assert_array_equal(data2.to_array(), data.to_array())
    for k in ("a", "u", "w_perp_sq"):
        np.testing.assert_array_equal(getattr(net2, k), getattr(net, k))
    assert (net2.scale, net2.init, net2.seed) == (net.scale, net.init, net.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = rf.gradient_descent(data, net, 0.1, steps=50)
        b = rf.gradient_descent(data2, net2, 0.1, steps=50)
    np.testing.assert_array_equal(a.loss, b.loss)


def test_load_init_names_missing_arrays(tmp_path):
    p = tmp_path / "bad.npz"
    np.savez(p, y=np.ones(2), u0=np.ones((1, 2)), a0=np.ones(1), scale=1.0)
    with pytest.raises(InputError, match="x_norm"):
        rf.load_init(p)


def test_width_scaled_is_balanced_at_lambda_over_sqrt_m():
    data = rf.orthogonal_data(20, 30, seed=0)
    m, lam = 9, 1e-4
    ws = rf.init_network(data, m, lam, seed=5, init="width_scaled")
    ref = rf.init_network(data, m, lam / np.sqrt(m), seed=5)
    np.testing.assert_allclose(ws.u, ref.u, rtol=1e-15)
    assert ws.scale == lam and ws.init == "width_scaled"
    # on explicit data: per-coordinate variance λ²/(m d), balanced
    big = rf.gaussian_data(4, 400, seed=1)
    net = rf.init_network(big, 200, lam, seed=2, init="width_scaled")
    W = net.weights(big)
    assert np.var(W) * 200 * 400 / lam**2 == pytest.approx(1.0, abs=0.02)
    np.testing.assert_allclose(np.abs(net.a), np.sqrt(net.w_norm_sq(big)), rtol=1e-10)


def test_uniform_exp_follows_its_distributions():
    data = rf.with_bias(rf.sphere_data(10, 50, seed=0))  # fan-in 50, d = 51
    m = 4000
    net = rf.init_network(data, m, 1.0, seed=1, init="uniform_exp")
    W = net.weights(data)
    bound = 1 / np.sqrt(50)
    assert np.abs(W).max() <= bound
    assert stats.kstest((W.ravel() + bound) / (2 * bound), "uniform").pvalue > 1e-3
    margin = np.abs(net.a) - np.linalg.norm(W, axis=1)
    assert stats.kstest(margin, "expon").pvalue > 1e-3
    assert abs(np.mean(net.a > 0) - 0.5) < 0.03


def test_mean_field_init_matches_the_mean_field_network_trained_on_m_times_the_loss():
    torch = pytest.importorskip("torch")
    data = rf.sphere_data(25, 8, seed=3)
    m, lr, steps = 12, 1.0, 40
    mf = rf.init_network(data, m, 1.0, seed=4, init="uniform_exp_mean_field")
    std = rf.init_network(data, m, 1.0, seed=4, init="uniform_exp")
    # Dana et al.'s model: f = (1/m) Σ a σ(W x), loss m · mean(r²)/2, plain SGD
    W = torch.tensor(std.weights(data), requires_grad=True)
    a = torch.tensor(std.a, requires_grad=True)
    X, y = torch.tensor(data.X), torch.tensor(data.y)
    losses = []
    for _ in range(steps):
        r = torch.relu(X @ W.T) @ a / m - y
        loss = m * torch.mean(r**2) / 2
        losses.append(loss.item() / m)  # the half-mean loss of the same function
        loss.backward()
        with torch.no_grad():
            W -= lr * W.grad
            a -= lr * a.grad
        W.grad = a.grad = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr = rf.gradient_descent(data, mf, lr, steps=steps, points_per_decade=10_000)
    np.testing.assert_allclose(tr.loss[:steps], losses, rtol=1e-10)


def test_mean_loss_descent_is_pytorch_mseloss_descent():
    torch = pytest.importorskip("torch")
    data = rf.gaussian_data(10, 30, seed=0)
    net = rf.init_network(data, 6, 0.5, seed=1)
    lr, steps = 0.3, 60
    W = torch.tensor(net.weights(data), requires_grad=True)
    a = torch.tensor(net.a, requires_grad=True)
    X, y = torch.tensor(data.X), torch.tensor(data.y)
    opt = torch.optim.SGD([W, a], lr=lr)
    losses = []
    for _ in range(steps):
        loss = torch.nn.MSELoss()(torch.relu(X @ W.T) @ a, y)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    tr = rf.gradient_descent(data, net, lr, steps=steps, loss="mean", points_per_decade=10_000)
    np.testing.assert_allclose(tr.loss[:steps], losses, rtol=1e-10)
    np.testing.assert_allclose(tr.t[:steps], lr * np.arange(steps), rtol=1e-12)
    np.testing.assert_allclose(tr.final.u, (W.detach().numpy() @ data.X.T), rtol=1e-9, atol=1e-12)
    assert tr.provenance["loss"] == "mean" and tr.provenance["config"]["lr"] == lr
    assert net.loss(data, "mean") == pytest.approx(2 * net.loss(data))


def test_mean_loss_flow_at_t_is_the_half_mean_flow_at_2t():
    data = rf.orthogonal_data(12, labels="balanced", seed=2)
    net = rf.init_network(data, 6, 1e-4, seed=3)
    half = rf.gradient_flow(data, net, t_max=60.0, rtol=1e-10)
    mean = rf.gradient_flow(data, net, t_max=30.0, rtol=1e-10, loss="mean")
    assert mean.t[-1] == pytest.approx(30.0)
    np.testing.assert_allclose(mean.final.a, half.final.a, rtol=1e-7, atol=1e-12)
    assert mean.final_loss == pytest.approx(2 * half.final_loss, rel=1e-6)
    ev_h, ev_m = rf.activation_events(half), rf.activation_events(mean)
    np.testing.assert_allclose(ev_m["t"], ev_h["t"] / 2, rtol=1e-6)
    assert mean.provenance["config"]["t_max"] == 30.0 and mean.provenance["loss"] == "mean"


def test_unknown_loss_convention_is_refused():
    data = rf.orthogonal_data(4)
    net = rf.init_network(data, 2, 1e-3)
    with pytest.raises(InputError, match="loss must be one of"):
        rf.gradient_flow(data, net, loss="sum")
