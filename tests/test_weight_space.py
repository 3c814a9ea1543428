"""The weight-space descent engine against the reduced-coordinate one."""

import warnings

import numpy as np
import pytest

import reluflow as rf
from reluflow.descent import sharpness
from reluflow.errors import InputError


@pytest.fixture
def problem():
    data = rf.sphere_data(120, 6, seed=1)  # n > d: weight space is cheaper
    net = rf.init_network(data, 10, 1.0, seed=2, init="uniform_exp_mean_field")
    return data, net


@pytest.mark.parametrize("batch_size", [None, 30])
def test_weight_space_descent_equals_reduced_descent(problem, batch_size):
    data, net = problem
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        red = rf.gradient_descent(
            data, net, 0.1, steps=400, engine="reduced", batch_size=batch_size
        )
        wsp = rf.gradient_descent(data, net, 0.1, steps=400, engine="weight", batch_size=batch_size)
    np.testing.assert_allclose(wsp.loss, red.loss, rtol=1e-12)
    np.testing.assert_allclose(wsp.t, red.t, rtol=0)
    np.testing.assert_allclose(wsp.final.u, red.final.u, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(wsp.w_norm, red.w_norm, rtol=1e-10)
    np.testing.assert_array_equal(wsp.n_active, red.n_active)
    np.testing.assert_array_equal(wsp.kink_t, red.kink_t)
    assert wsp.conservation_drift == pytest.approx(red.conservation_drift, rel=1e-6, abs=1e-14)
    sw = np.array(wsp.provenance["sharpness"])
    sr = np.array(red.provenance["sharpness"])
    np.testing.assert_allclose(sw, sr, rtol=1e-8)
    assert wsp.provenance["config"]["engine"] == "weight"


def test_weight_space_stops_like_the_reduced_engine():
    data = rf.teacher_data(40, 8, 3, seed=1)
    net = rf.init_network(data, 12, 1e-2, seed=2)
    red = rf.gradient_descent(data, net, 1.0, engine="reduced", loss_tol=1e-5)
    wsp = rf.gradient_descent(data, net, 1.0, engine="weight", loss_tol=1e-5)
    assert wsp.status == red.status == "loss_tol"
    assert wsp.stats.steps == red.stats.steps
    assert wsp.final_loss == pytest.approx(red.final_loss, rel=1e-9)


def test_engine_is_chosen_by_cost(problem):
    data, net = problem
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr = rf.gradient_descent(data, net, 0.1, steps=3)
    assert tr.provenance["config"]["engine"] == "weight"
    wide = rf.gaussian_data(10, 50, seed=0)
    tr = rf.gradient_descent(wide, rf.init_network(wide, 3, 1e-3), 0.1, steps=3)
    assert tr.provenance["config"]["engine"] == "reduced"
    orth = rf.orthogonal_data(5)
    with pytest.raises(InputError, match="engine='weight' needs explicit inputs"):
        rf.gradient_descent(orth, rf.init_network(orth, 2, 1e-3), 0.1, engine="weight")


def test_sharpness_in_the_mean_convention_is_twice_and_the_bound_is_the_same(problem):
    data, net = problem
    s = sharpness(data, net)
    assert sharpness(data, net, loss="mean") == pytest.approx(2 * s, rel=1e-12)
    lr = 1.5 * 2 / s  # unstable in the half-mean convention ...
    with pytest.warns(rf.StabilityWarning, match=f"lr = {lr:g}"):
        rf.gradient_descent(data, net, lr, steps=2, engine="weight")
    with pytest.warns(rf.StabilityWarning, match=f"lr = {lr / 2:g}"):  # ... and the same in "mean"
        rf.gradient_descent(data, net, lr / 2, steps=2, engine="weight", loss="mean")


def test_weight_space_flow_equals_the_reference_flow():
    data = rf.sphere_data(40, 5, seed=3)  # n = 8 d: the Gram product through X is cheaper
    net = rf.init_network(data, 6, 1.0, seed=4, init="uniform_exp_mean_field")
    ref = rf.gradient_flow(data, net, t_max=3.0, engine="numpy")
    wsp = rf.gradient_flow(data, net, t_max=3.0, engine="weight")
    assert wsp.provenance["config"]["engine"] == "weight"
    assert (wsp.stats.steps, wsp.stats.kinks, wsp.stats.sliding) == (
        ref.stats.steps,
        ref.stats.kinks,
        ref.stats.sliding,
    )
    np.testing.assert_allclose(wsp.loss, ref.loss, rtol=1e-10)
    np.testing.assert_allclose(wsp.final.u, ref.final.u, rtol=1e-9, atol=1e-12)
    orth = rf.orthogonal_data(4)
    with pytest.raises(InputError, match="engine='weight' needs general data"):
        rf.gradient_flow(orth, rf.init_network(orth, 2, 1e-3), engine="weight")


@pytest.mark.parametrize("batch_size", [None, 30])
def test_weight_space_descent_shows_the_reduced_loops_progress_bar(problem, capsys, batch_size):
    data, net = problem
    bars = {}
    for engine in ("reduced", "weight"):
        for progress in (True, False):
            rf.gradient_descent(
                data,
                net,
                0.1,
                steps=300,
                engine=engine,
                batch_size=batch_size,
                check_stability=False,
                progress=progress,
            )
            bars[engine, progress] = capsys.readouterr().err
    desc = "sgd" if batch_size else "descent"
    for engine in ("reduced", "weight"):
        # the same bar: its name, the steps counted against the requested 300
        assert f"{desc}:" in bars[engine, True] and "/300 [" in bars[engine, True]
        assert bars[engine, False] == ""
