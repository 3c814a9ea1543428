"""The compiled (numba) flow engine against the numpy reference on orthogonal data.

Both engines run the same algorithm (DOPRI5, per-neuron error control, kinks as
events on the dense output); they differ only in rounding (summation order), so
they must take the same steps, find the same kinks in the same order and agree
on times and states far below the integration tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest

from reluflow.data import array_data, gaussian_data, orthogonal_data
from reluflow.errors import InputError
from reluflow.flow import gradient_flow
from reluflow.network import init_network

REL = 1e-6  # required agreement; observed ~1e-12 or better


def _close(x, y, scale, rel=REL):
    return np.all(np.abs(np.asarray(x) - np.asarray(y)) <= rel * scale)


def _assert_same(A, B, rel=REL):
    assert A.status == B.status
    assert A.success == B.success
    assert A.message.split(" at t = ")[0] == B.message.split(" at t = ")[0]
    # the same kinks, in the same order
    assert A.stats.kinks == B.stats.kinks == len(A.kink_t) == len(B.kink_t)
    assert A.stats.kink_steps == B.stats.kink_steps
    np.testing.assert_array_equal(A.kink_neuron, B.kink_neuron)
    np.testing.assert_array_equal(A.kink_sample, B.kink_sample)
    np.testing.assert_array_equal(A.kink_up, B.kink_up)
    if len(A.kink_t):
        assert _close(A.kink_t, B.kink_t, np.abs(A.kink_t), rel)
    # essentially the same step sequence (step sizes may differ at rounding level
    # once the error estimate itself is rounding noise, in the final stall)
    assert abs(A.stats.steps - B.stats.steps) <= max(2, 0.01 * A.stats.steps)
    # final state, relative to each neuron's size
    fa, fb = A.final, B.final
    size = np.maximum(np.abs(fa.a), np.abs(fa.u).max(axis=1))
    assert _close(fa.a, fb.a, np.abs(fa.a), rel)
    assert _close(fa.u, fb.u, size[:, None], rel)
    np.testing.assert_array_equal(fa.u > 0, fb.u > 0)
    np.testing.assert_array_equal(fa.u == 0, fb.u == 0)
    # the recorded trajectory
    assert A.t.shape == B.t.shape
    assert _close(A.t, B.t, A.t, rel)
    assert _close(A.loss, B.loss, A.loss, rel)
    assert _close(A.a_abs, B.a_abs, A.a_abs.max(axis=1, keepdims=True), rel)
    assert _close(A.w_norm, B.w_norm, A.w_norm.max(axis=1, keepdims=True), rel)
    np.testing.assert_array_equal(A.n_active, B.n_active)
    assert abs(A.conservation_drift - B.conservation_drift) <= 1e-3 * max(
        A.conservation_drift, 1e-12
    )


CASES = [
    # n, m, scale, seed, labels, norms, init
    (8, 4, 1e-3, 0, "balanced", 1.0, "balanced"),
    (8, 6, 1e-12, 1, "gaussian", "uniform", "independent"),
    (8, 5, 1e-12, 2, "balanced", 2.5, "balanced"),
    (50, 8, 1e-12, 0, "gaussian", "uniform", "balanced"),
    (50, 10, 1e-3, 3, "balanced", 0.5, "independent"),
    (50, 8, 1e-3, 1, "gaussian", 1.0, "balanced"),
    (200, 12, 1e-3, 2, "balanced", 1.0, "independent"),
    (200, 10, 1e-12, 4, "gaussian", "uniform", "balanced"),
]


@pytest.mark.parametrize("n,m,scale,seed,labels,norms,init", CASES)
def test_engines_agree(n, m, scale, seed, labels, norms, init):
    d = orthogonal_data(n, labels=labels, norms=norms, seed=seed)
    net = init_network(d, m, scale, seed=seed, init=init)
    A = gradient_flow(d, net, engine="numpy")
    B = gradient_flow(d, net, engine="numba")
    assert A.provenance["config"]["engine"] == "numpy"
    assert B.provenance["config"]["engine"] == "numba"
    _assert_same(A, B)
    if n >= 50:
        assert B.stats.kinks > 0  # the event machinery is exercised


@pytest.mark.parametrize(
    "kw",
    [
        dict(tau_max=0.8),  # stops on t_max in the middle of the dynamics
        dict(max_steps=40),  # incomplete run
        dict(loss_tol=1e-2),  # stops on the loss
        dict(record_kinks=False, points_per_decade=17),
        dict(rtol=1e-6, tau_max=1.5),
        dict(atol=1e-9, stall_rate=1e-2),
    ],
)
def test_engines_agree_stopping_rules(kw):
    d = orthogonal_data(40, labels="gaussian", norms="uniform", seed=5)
    net = init_network(d, 8, 1e-6, seed=5)
    A = gradient_flow(d, net, engine="numpy", **kw)
    B = gradient_flow(d, net, engine="numba", **kw)
    _assert_same(A, B)
    assert A.message == B.message or A.status == "t_max"
    if "max_steps" in kw:
        assert B.status == "max_steps" and not B.success
        assert B.stats.steps == kw["max_steps"]


def test_numba_chunked_run_is_identical(monkeypatch):
    """progress=True runs the kernel in chunks of steps: the result must not change."""
    import reluflow.flow as F

    monkeypatch.setattr(F, "_PROGRESS_CHUNK", 37)
    d = orthogonal_data(60, labels="balanced", seed=7)
    net = init_network(d, 8, 1e-8, seed=7)
    A = gradient_flow(d, net, engine="numba")
    B = gradient_flow(d, net, engine="numba", progress=True)
    assert B.stats == A.stats and B.stats.steps > 5 * 37  # several chunks
    for f in ("t", "loss", "a_abs", "w_norm", "n_active", "kink_t", "kink_neuron", "kink_sample"):
        np.testing.assert_array_equal(getattr(A, f), getattr(B, f))
    np.testing.assert_array_equal(A.final.a, B.final.a)
    np.testing.assert_array_equal(A.final.u, B.final.u)


def test_engine_selection_and_validation():
    d = orthogonal_data(12, seed=0)
    net = init_network(d, 4, 1e-3, seed=0)
    assert gradient_flow(d, net, tau_max=0.2).provenance["config"]["engine"] == "numba"
    g = gaussian_data(6, 20, seed=0)
    gnet = init_network(g, 3, 1e-3, seed=0)
    # general data: the compiled BLAS engine (tests/test_general_flow.py)
    assert gradient_flow(g, gnet, tau_max=0.05).provenance["config"]["engine"] == "numba"
    with pytest.raises(InputError, match="engine must be one of"):
        gradient_flow(d, net, engine="fortran")


def test_orthogonal_array_data_uses_numba():
    """Explicit X with orthogonal rows is orthogonal data too (coherence 0)."""
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    norms = rng.uniform(0.5, 1.5, 30)
    X = (q.T * norms[:, None])[:20]
    y = rng.standard_normal(20)
    d = array_data(X, y)
    assert d.is_orthogonal
    net = init_network(d, 6, 1e-6, seed=1)
    A = gradient_flow(d, net, engine="numpy")
    B = gradient_flow(d, net)
    assert B.provenance["config"]["engine"] == "numba"
    _assert_same(A, B, rel=1e-6)
