"""The field's data generators and the bias as a constant feature."""

import warnings

import numpy as np
import pytest

import reluflow as rf
from reluflow.errors import InputError, NotOrthogonalError


def test_sphere_data_directions_norms_and_labels():
    data = rf.sphere_data(4000, 5, seed=0)
    X = data.X
    r = np.linalg.norm(X, axis=1)
    assert 1 <= r.min() and r.max() <= 2
    assert abs(r.mean() - 1.5) < 0.02
    q = X / r[:, None]
    # uniform on the sphere: mean 0, second moment I/d
    assert np.abs(q.mean(axis=0)).max() < 0.04
    np.testing.assert_allclose(q.T @ q / len(q), np.eye(5) / 5, atol=0.015)
    assert 1 <= np.abs(data.y).min() and np.abs(data.y).max() <= 2
    assert abs(np.mean(data.y > 0) - 0.5) < 0.03
    again = rf.sphere_data(4000, 5, seed=0)
    np.testing.assert_array_equal(again.X, X)
    assert not np.array_equal(rf.sphere_data(4000, 5, seed=1).X, X)


def test_orthogonal_sphere_data_is_orthogonal_with_uniform_norms():
    data = rf.sphere_data(50, 80, orthogonal=True, seed=2)
    assert isinstance(data, rf.OrthogonalData) and data.d == 80
    assert 1 <= data.norms.min() and data.norms.max() <= 2
    with pytest.raises(InputError, match="norm_range"):
        rf.sphere_data(5, 5, norm_range=(2, 1))


def test_teacher_labels_come_from_a_positively_homogeneous_relu_network():
    data = rf.teacher_data(75, 150, 6, seed=4)
    assert np.linalg.norm(data.X, axis=1).mean() == pytest.approx(np.sqrt(150), rel=0.05)
    y2 = rf.teacher_labels(2 * data.X, 6, seed=4)
    np.testing.assert_allclose(y2, 2 * data.y, rtol=1e-12)
    # a width-6 ReLU function: piecewise linear, so exactly linear on a segment inside one
    # activation pattern, and a different teacher seed gives different labels
    assert not np.allclose(rf.teacher_labels(data.X, 6, seed=5), data.y)
    other = rf.teacher_data(75, 150, 6, seed=4, teacher_seed=9)
    np.testing.assert_array_equal(other.X, data.X)


def test_bias_augmentation_is_the_hidden_bias_of_pytorch():
    torch = pytest.importorskip("torch")
    data = rf.toy_1d_data("non_orthogonal")  # holds x = 0, fine once (0, 1)
    assert data.d == 2 and data.fan_in == 1 and data.has_bias
    net = rf.init_network(data, 8, 0.5, seed=0, init="width_scaled")
    Wb = net.weights(data)
    hidden = torch.nn.Linear(1, 8, dtype=torch.float64)
    with torch.no_grad():
        hidden.weight.copy_(torch.tensor(Wb[:, :1]))
        hidden.bias.copy_(torch.tensor(Wb[:, 1]))
    a = torch.tensor(net.a, requires_grad=True)
    X, y = torch.tensor(data.X[:, :1]), torch.tensor(data.y)
    opt = torch.optim.SGD([*hidden.parameters(), a], lr=0.05)
    losses = []
    for _ in range(100):
        loss = torch.nn.MSELoss()(torch.relu(hidden(X)) @ a, y)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr = rf.gradient_descent(data, net, 0.05, steps=100, loss="mean", points_per_decade=10_000)
    np.testing.assert_allclose(tr.loss[:100], losses, rtol=1e-10)


def test_bias_and_orthogonality():
    # <(x_i,1),(x_k,1)> = x_i x_k + 1: Boursier et al.'s (-0.5, 2) is exactly orthogonal
    toy = rf.toy_1d_data("orthogonal")
    assert toy.is_orthogonal
    lim = rf.jump_process(toy, 6, seed=1)
    assert lim.n == 2
    # generic data with a bias feature is not, and the orthogonal-only methods say so
    for data in (rf.with_bias(rf.sphere_data(10, 30, seed=0)), rf.toy_1d_data("non_orthogonal")):
        assert not data.is_orthogonal
        with pytest.raises(NotOrthogonalError, match="coherence"):
            rf.jump_process(data, 4, seed=0)
    with pytest.raises(InputError, match="already has a bias"):
        rf.with_bias(toy)
    assert rf.with_bias(rf.orthogonal_data(3)).describe()["bias"] is True
