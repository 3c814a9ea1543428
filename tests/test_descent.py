"""Gradient descent: first-order convergence to the flow, SGD, stability warning, events."""

import warnings

import numpy as np
import pytest

import reluflow as rf


def test_descent_converges_to_the_flow_at_first_order():
    data = rf.orthogonal_data(16, labels="gaussian", seed=0)
    net = rf.init_network(data, 5, 1e-4, seed=0)
    T = 150.0
    flow = rf.gradient_flow(data, net, rtol=1e-11, t_max=T, loss_tol=0.0)
    errs = []
    for lr in (0.4, 0.2, 0.1):
        gd = rf.gradient_descent(data, net, lr, t_max=T, loss_tol=0.0, check_stability=False)
        assert gd.t[-1] == pytest.approx(T)
        errs.append(np.abs(gd.final.a - flow.final.a).max())
    # halving the step halves the error: observed order within [0.8, 1.2]
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all((orders > 0.8) & (orders < 1.2)), (errs, orders)


def test_descent_is_exact_in_reduced_coordinates():
    # one explicit GD step in full parameters equals one reduced step
    data = rf.gaussian_data(6, 9, labels="gaussian", seed=2)
    net = rf.init_network(data, 4, 0.5, seed=2)
    gd = rf.gradient_descent(data, net, 0.3, steps=1, check_stability=False)
    X, y, a, W = data.X, data.y, net.a, net.weights(data)
    z = W @ X.T
    r = a @ np.maximum(z, 0) - y
    ga = np.maximum(z, 0) @ r / len(y)
    gW = (a[:, None] * (z > 0) * r[None, :]) @ X / len(y)
    np.testing.assert_allclose(gd.final.a, a - 0.3 * ga, rtol=1e-13)
    np.testing.assert_allclose(gd.final.u, (W - 0.3 * gW) @ X.T, rtol=1e-12, atol=1e-15)


def test_activation_events_agree_between_flow_and_small_step_descent():
    data = rf.orthogonal_data(30, seed=4)
    net = rf.init_network(data, 6, 1e-6, seed=4)
    fl = rf.activation_events(rf.gradient_flow(data, net))
    gd = rf.activation_events(rf.gradient_descent(data, net, 0.05, check_stability=False))
    assert list(fl["neuron"]) == list(gd["neuron"])
    # GD grows at log(1 + ηγ)/η instead of γ: a relative lag of about ηγ/2 (≈ 0.3% here)
    np.testing.assert_allclose(gd["tau"], fl["tau"], rtol=5e-3)


def test_sgd_is_seeded_and_reaches_low_loss():
    data = rf.orthogonal_data(20, seed=1)
    net = rf.init_network(data, 10, 1e-4, seed=1)
    a = rf.gradient_descent(
        data, net, 0.5, batch_size=5, batch_seed=3, steps=4000, check_stability=False
    )
    b = rf.gradient_descent(
        data, net, 0.5, batch_size=5, batch_seed=3, steps=4000, check_stability=False
    )
    c = rf.gradient_descent(
        data, net, 0.5, batch_size=5, batch_seed=4, steps=4000, check_stability=False
    )
    assert a.dynamics == "sgd"
    np.testing.assert_array_equal(a.final.a, b.final.a)
    assert not np.array_equal(a.final.a, c.final.a)
    assert a.final_loss < 0.5 * a.loss[0]


def test_large_step_warns_without_refusing():
    data = rf.orthogonal_data(8, seed=0)
    net = rf.init_network(data, 4, 1e-2, seed=0)
    s_end = rf.sharpness(data, rf.gradient_flow(data, net).final)
    lr = 3.0 / s_end  # above 2 / sharpness once the neurons have activated
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        tr = rf.gradient_descent(data, net, lr, steps=3000)
    assert any(issubclass(x.category, rf.StabilityWarning) for x in w)
    assert tr.stats.steps > 0  # it ran
    assert any(s > 2 / lr for _, s in tr.provenance["sharpness"])


def test_sharpness_matches_finite_differences_of_the_gradient():
    data = rf.gaussian_data(5, 8, labels="gaussian", seed=5)
    net = rf.init_network(data, 3, 0.8, seed=5)
    X, y = data.X, data.y
    W0 = net.weights(data)

    def grad(theta):
        a, W = theta[:3], theta[3:].reshape(W0.shape)
        z = W @ X.T
        r = a @ np.maximum(z, 0) - y
        return np.concatenate([np.maximum(z, 0) @ r, ((a[:, None] * (z > 0) * r) @ X).ravel()]) / 5

    th = np.concatenate([net.a, W0.ravel()])
    eps = 1e-6
    H = np.column_stack(
        [(grad(th + eps * e) - grad(th - eps * e)) / (2 * eps) for e in np.eye(th.size)]
    )
    top = np.linalg.eigvalsh(0.5 * (H + H.T))[-1]
    assert rf.sharpness(data, net) == pytest.approx(top, rel=1e-6)


def test_bad_descent_input():
    data = rf.orthogonal_data(4)
    net = rf.init_network(data, 2, 1e-3)
    with pytest.raises(rf.InputError, match="lr"):
        rf.gradient_descent(data, net, 0.0)
    with pytest.raises(rf.InputError, match="batch_size"):
        rf.gradient_descent(data, net, 0.1, batch_size=9)


def _stop_and_continue(data, net, lr, batch_size):
    """SGD stopped by its noise-floor rule, and the same SGD (same batches) run 5x longer."""
    a = rf.gradient_descent(data, net, lr, batch_size=batch_size, check_stability=False)
    k = a.stats.steps
    b = rf.gradient_descent(
        data, net, lr, batch_size=batch_size, check_stability=False, noise_floor=False,
        steps=5 * k,
    )  # fmt: skip
    # the continued run is the same run up to the stop
    np.testing.assert_array_equal(b.loss[: len(a.loss) - 1], a.loss[:-1])
    return a, b, k * lr


def test_sgd_stops_at_its_noise_floor_not_before():
    # Gaussian data with n > d: no interpolation, SGD hovers at a noise floor for ever
    for seed in (0, 1):
        data = rf.gaussian_data(40, 5, labels="balanced", seed=seed)
        net = rf.init_network(data, 4, 1e-6, seed=seed)
        a, b, t_stop = _stop_and_continue(data, net, 0.5, 8)
        assert a.status == "noise_floor" and a.success
        window = a.provenance["config"]["noise_floor_window"]
        assert a.stats.steps < 20 * window  # a few windows after the floor, not max_steps
        # every activation of the long run happened before the stop ...
        assert rf.activation_events(b)["t"].max() < t_stop
        # ... and the loss then was already the floor's: within the floor's own fluctuation
        floor = b.loss[b.t > 2 * t_stop]
        at_stop = a.loss[a.t > t_stop - 2 * window * 0.5]
        assert floor.size > 20 and at_stop.size > 10
        assert abs(at_stop.mean() - floor.mean()) < floor.std()
        assert floor.mean() < 0.9 * a.loss[0]  # it did learn


def test_sgd_does_not_stop_on_a_plateau():
    # lambda = 1e-30: each saddle lasts tens of windows with a flat loss, while the next
    # neuron grows; the rule must wait for it (and for every later one)
    data = rf.orthogonal_data(24, seed=0)
    net = rf.init_network(data, 6, 1e-30, seed=0)
    a, b, t_stop = _stop_and_continue(data, net, 1.0, 6)
    assert a.status == "noise_floor"
    ev_b = rf.activation_events(b)
    assert len(ev_b) >= 3 and ev_b["t"].max() < t_stop
    assert list(rf.activation_events(a)["neuron"]) == list(ev_b["neuron"])
    plateau = np.diff(np.r_[0.0, ev_b["t"].to_numpy()]).max()  # the first saddle, from t = 0
    assert plateau > 3 * a.provenance["config"]["noise_floor_window"] * 1.0  # longer than patience
    assert a.final_loss == pytest.approx(b.final_loss, rel=1e-9)


@pytest.fixture(scope="module")
def chattering():
    # sphere data with a bias: the flow ends in sliding modes (coordinates held at a
    # kink), which descent crosses at most steps instead of following
    data = rf.sphere_data(8, 3, labels="balanced", bias=True, seed=0)
    net = rf.init_network(data, 8, 1e-4, seed=0)
    flow = rf.gradient_flow(data, net)
    assert flow.status == "stalled" and flow.stats.sliding > 0
    return data, net, flow


@pytest.mark.parametrize("engine", ["reduced", "weight"])
def test_descent_that_chatters_across_a_kink_stops_as_stalled(chattering, engine):
    data, net, flow = chattering
    errs = []
    for lr in (0.1, 0.05, 0.025):
        gd = rf.gradient_descent(
            data, net, lr, check_stability=False, max_steps=50_000, engine=engine
        )
        assert gd.status == "stalled" and gd.success, gd.message
        assert "chatters" in gd.message
        assert gd.stats.kinks > gd.stats.steps / 4  # it does chatter
        # it stopped on the flow's final plateau: same resting point up to O(lr)
        assert gd.final_loss == pytest.approx(flow.final_loss, rel=2e-2 * lr)
        errs.append(np.abs(gd.final.a - flow.final.a).max())
    assert errs[0] > errs[1] > errs[2] and errs[0] < 0.1 * 0.1, errs
