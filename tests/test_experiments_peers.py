"""The peers' experiments (boursier2022, dana2025), their figures and the weight snapshots."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest

import reluflow as rf
from reluflow import plots
from reluflow.experiments import EXPERIMENTS
from reluflow.experiments.dana2025 import DanaDesign, epochs, n50
from reluflow.snapshots import network_snapshots
from reluflow.store import ResultsStore
from reluflow.sweep import normalize_config, run_sweep


def _gid(fig, gid):
    for ax in fig.axes:
        for art in [*ax.lines, *ax.collections]:
            if art.get_gid() == gid:
                return art
    raise KeyError(gid)


def test_descent_snapshots_are_the_iterates_of_one_run():
    data = rf.teacher_data(12, 6, 3, seed=0)
    net = rf.init_network(data, 5, 0.1, seed=1, init="width_scaled")
    lr = 0.05
    snap = network_snapshots(data, net, [0, 10 * lr, 30 * lr], dynamics="descent", lr=lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = rf.gradient_descent(data, net, lr, steps=30, loss_tol=0.0)
    np.testing.assert_allclose(snap.W[-1], one.final.weights(data), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(snap.a[-1], one.final.a)
    np.testing.assert_allclose(snap.W[0], net.weights(data))
    with pytest.raises(rf.InputError, match="increasing"):
        network_snapshots(data, net, [1.0, 0.5])


def test_neuron_picture_draws_the_network_function_and_its_kinks():
    data = rf.toy_1d_data("non_orthogonal")
    net = rf.init_network(data, 7, 1.0, seed=3, init="uniform_exp")
    W = net.weights(data)
    fig = plots.plot_neurons_1d(data.X[:, 0], data.y, [0.0], net.a[None], W[None])
    f = _gid(fig, "f-0")
    xs, ys = f.get_data()
    Xg = np.column_stack([xs, np.ones_like(xs)])
    np.testing.assert_allclose(ys, net.predict(data, Xg), rtol=1e-12, atol=1e-12)
    pts = _gid(fig, "neurons-0").get_offsets()
    up = W[:, 0] > 0
    kink = -W[up, 1] / W[up, 0]
    lo, hi = fig.axes[0].get_xlim()
    inside = (kink > lo) & (kink < hi)
    np.testing.assert_allclose(np.sort(pts[:, 0]), np.sort(kink[inside]))


def test_direction_picture_uses_the_final_principal_axes():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((3, 8, 5))
    a = rng.standard_normal((3, 8))
    fig = plots.plot_directions([0.0, 1.0, 2.0], a, W)
    pts = _gid(fig, "directions-2").get_offsets()
    _, _, vt = np.linalg.svd(W[-1], full_matrices=False)
    p = W[-1] @ vt[:2].T
    r = np.hypot(p[:, 0], p[:, 1])
    np.testing.assert_allclose(pts[:, 1], r / r.max(), rtol=1e-12)


def test_dana_epoch_budget_and_threshold_helper():
    assert epochs(200, 30) == int(1.5 * math.sqrt(6000) * math.log(6000) / 4 + 1)
    assert n50(np.array([10, 20, 30]), np.array([1.0, 0.6, 0.2])) == pytest.approx(22.5)
    assert n50(np.array([10, 20]), np.array([1.0, 0.9])) == math.inf
    assert n50(np.array([10, 20]), np.array([0.4, 0.0])) == 0.0


@pytest.mark.parametrize("name", ["boursier2022", "dana2025"])
def test_every_design_is_a_valid_sweep(name):
    for scale in ("smoke", "quick", "paper"):
        cfgs = EXPERIMENTS[name].configs(scale)
        assert cfgs and all(c["experiment"] == name for c in cfgs)
        ids = {normalize_config(c)["seed"] for c in cfgs}
        assert ids


def test_dana_pipeline_verdicts_follow_the_data(tmp_path):
    ex = EXPERIMENTS["dana2025"]
    design = DanaDesign(
        scale="smoke",
        dims=(10,),
        mults=(1, 4),
        reps=2,
        flow_dims=(),
        orth_n=10,
        orth_widths=(4, 12),
        orth_reps=6,
    )
    with ResultsStore(tmp_path / "s.sqlite") as store:
        summary = run_sweep(ex.configs(design), store, workers=1, progress=False)
        assert summary.failed == 0
        frame = store.frame(experiment="dana2025")
        a = ex.analyse(frame, store.arrays)
    o = a["orthogonal"]
    # the exact probability of a well-initialised draw, per run, from its label counts
    assert o["cells"]["predicted_fraction"].between(0, 1).all()
    assert o["converged_not_well"] == 0
    claims = {c.claim[:40]: c for c in ex.claims(a)}
    assert claims and all(
        c.verdict in ("confirmed", "not confirmed", "open") for c in claims.values()
    )
    # the edge-of-stability verdict is computed: flipping the measured sharpness flips it
    assert a["edge"]["runs"] == 4
    low = dict(a, edge=dict(a["edge"], median=0.3, median_lo=0.2, median_hi=0.4))
    eos = [c for c in ex.claims(low) if "edge of stability" in c.claim][0]
    assert eos.verdict == "not confirmed"
    fig = ex.figures(a)["dana2025"]
    assert _gid(fig, "well-exact") is not None
    tables = ex.tables(a)
    assert isinstance(tables["dana2025_cells"], pd.DataFrame)
