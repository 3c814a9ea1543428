"""Gradient flow on general (non-orthogonal) data: closed-form initial phase, compiled engine,
Gaussian data through its Gram matrix (docs/general-data.md)."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from scipy.stats import ks_2samp

import reluflow as rf
from reluflow._engines.dynamics import Recorder, StopRules
from reluflow._engines.field import Field
from reluflow._engines.general import blas_threads
from reluflow._engines.general_phase import general_initial_phase

REL = 1e-6  # engine agreement required; observed ~1e-12


def _phase(data, net, eps):
    rules = StopRules.build(data, net, None, None, None, None)
    rec = Recorder(data, net, 200, t0=1e-3 / rules.gamma_all)
    rec.add(0.0, net.a, net.u, (net.u > 0).astype(float))
    return general_initial_phase(data, net, Field(data), rec, eps, math.inf), rec


@pytest.mark.parametrize(
    "n,d,m,labels,init,seed",
    [
        (24, 240, 5, "balanced", "balanced", 0),  # nearly orthogonal: sliding from dying coordinates
        (16, 24, 5, "gaussian", "independent", 3),  # strongly correlated: activations, exits
    ],
)
def test_closed_form_phase_matches_a_tight_solve(n, d, m, labels, init, seed):
    # The phase (outputs below eps of the labels) in closed form, kinks and sliding modes
    # included, against the reference solver run from t = 0 at rtol 1e-11 to the same time.
    data = rf.gaussian_data(n, d, labels=labels, seed=seed)
    net = rf.init_network(data, m, 1e-8, seed=seed, init=init)
    phase, rec = _phase(data, net, eps=1e-10)
    assert phase is not None and phase.kink_t.size > 10
    ode = rf.gradient_flow(
        data, net, t_max=phase.t1, rtol=1e-11, engine="numpy", closed_form_start=False
    )
    size = np.maximum(np.abs(ode.final.a), np.abs(ode.final.u).max(axis=1))
    assert np.max(np.abs(phase.a - ode.final.a) / size) < 2e-9
    assert np.max(np.abs(phase.u - ode.final.u).max(axis=1) / size) < 2e-9
    # the same switching events (coordinate, direction, sliding entry), at the same times
    k = ode.kinks()
    ode_ev = sorted(
        zip(
            k["neuron"].to_numpy() * n + k["sample"].to_numpy(),
            k["activated"].to_numpy(),
            k["sliding"].to_numpy(),
            k["t"].to_numpy(),
            strict=True,
        )
    )
    cf_ev = sorted(
        zip(phase.kink_flat, phase.kink_up, phase.kink_sliding, phase.kink_t, strict=True)
    )
    assert [e[:3] for e in ode_ev] == [e[:3] for e in cf_ev]
    np.testing.assert_allclose([e[3] for e in cf_ev], [e[3] for e in ode_ev], rtol=1e-8)
    assert phase.sliding_entries == ode.stats.sliding > 0
    # the modes it hands to the solver are those the solver ends with
    np.testing.assert_array_equal(phase.sliding, (ode.final.u == 0) & phase.sliding)
    # the recorded rows: balance conserved by the closed form to rounding
    assert rec.drift < 1e-12


def _assert_same(A, B, rel=REL):
    assert A.status == B.status and A.success == B.success
    assert A.stats.kinks == B.stats.kinks and A.stats.sliding == B.stats.sliding
    assert abs(A.stats.steps - B.stats.steps) <= max(2, 0.01 * A.stats.steps)
    # the same events (two kinks of different neurons a rounding error apart may be
    # logged in either order)
    oa = np.lexsort((A.kink_t, A.kink_sample, A.kink_neuron))
    ob = np.lexsort((B.kink_t, B.kink_sample, B.kink_neuron))
    for f in ("kink_neuron", "kink_sample", "kink_up", "kink_sliding"):
        np.testing.assert_array_equal(getattr(A, f)[oa], getattr(B, f)[ob])
    np.testing.assert_allclose(A.kink_t[oa], B.kink_t[ob], rtol=rel)
    size = np.maximum(np.abs(A.final.a), np.abs(A.final.u).max(axis=1))
    assert np.all(np.abs(A.final.a - B.final.a) <= rel * size)
    assert np.all(np.abs(A.final.u - B.final.u) <= rel * size[:, None])
    np.testing.assert_array_equal(A.final.u > 0, B.final.u > 0)
    assert A.t.shape == B.t.shape
    np.testing.assert_allclose(A.t, B.t, rtol=rel)
    np.testing.assert_allclose(A.loss, B.loss, rtol=rel, atol=1e-14)
    np.testing.assert_allclose(A.w_norm, B.w_norm, rtol=rel, atol=rel * A.w_norm.max())
    np.testing.assert_array_equal(A.n_active, B.n_active)
    # the drift is a max over rows of error-level quantities, computed from u K⁺ u by the
    # reference and from u · z (z = K⁺ u carried along) here: equal in size, not to rounding
    assert B.conservation_drift == pytest.approx(A.conservation_drift, rel=0.2, abs=1e-12)


@pytest.mark.parametrize(
    "n,d,m,scale,labels,init,seed,kw",
    [
        (20, 200, 5, 1e-8, "balanced", "balanced", 0, {}),
        (12, 20, 4, 1e-4, "random", "independent", 1, {}),
        (20, 60, 6, 1e-6, "gaussian", "balanced", 2, dict(tau_max=0.7)),
        (20, 60, 6, 1e-6, "gaussian", "balanced", 2, dict(max_steps=60)),
        (20, 60, 6, 1e-6, "balanced", "balanced", 4, dict(record_kinks=False, rtol=1e-6)),
    ],
)
def test_compiled_engine_matches_the_reference(n, d, m, scale, labels, init, seed, kw, monkeypatch):
    # the reference is the NumPy loop on float64 parameters (no log-scale frame, no
    # plateau jumps): the algorithm the compiled engine runs, step for step
    import reluflow.flow as F

    plain = functools.partial(F._gradient_flow_numpy, log_coordinates=False)
    monkeypatch.setattr(F, "_gradient_flow_numpy", plain)
    data = rf.gaussian_data(n, d, labels=labels, seed=seed)
    net = rf.init_network(data, m, scale, seed=seed, init=init)
    A = rf.gradient_flow(data, net, engine="numpy", **kw)
    B = rf.gradient_flow(data, net, engine="numba", closed_form_start=False, **kw)
    assert A.provenance["config"]["engine"] == "numpy"
    assert B.provenance["config"]["engine"] == "numba"
    _assert_same(A, B)
    assert B.stats.kinks > 0 and (B.stats.sliding > 0 or "max_steps" in kw)


def test_closed_form_start_changes_nothing_but_the_cost():
    data = rf.gaussian_data(40, 400, seed=5)
    net = rf.init_network(data, 8, 1e-10, seed=5)
    fast = rf.gradient_flow(data, net)
    slow = rf.gradient_flow(data, net, closed_form_start=False)
    assert fast.provenance["config"]["engine"] == "numba"
    assert fast.stats.closed_form_t > 0 and slow.stats.closed_form_t == 0
    assert fast.stats.kink_steps < slow.stats.kink_steps / 2
    assert fast.status == slow.status and fast.success
    ev_f, ev_s = rf.activation_events(fast), rf.activation_events(slow)
    assert list(ev_f.neuron) == list(ev_s.neuron)
    np.testing.assert_allclose(ev_f.tau, ev_s.tau, rtol=1e-6)
    assert fast.final.norm_sq(data) == pytest.approx(slow.final.norm_sq(data), rel=1e-6)
    assert fast.final_loss <= fast.provenance["config"]["loss_tol"]
    assert fast.conservation_drift < 1e-7
    assert fast.t[0] == 0 and np.all(np.diff(fast.t) > 0)


def test_engine_dispatch_on_general_data():
    data = rf.gaussian_data(6, 20, seed=0)
    net = rf.init_network(data, 3, 1e-3, seed=0)
    tr = rf.gradient_flow(data, net, tau_max=0.05)
    assert tr.provenance["config"]["engine"] == "numba"
    assert tr.provenance["config"]["blas_threads"] >= 1
    tiny = rf.init_network(data, 3, 1e-200, seed=0)
    assert rf.gradient_flow(data, tiny, tau_max=0.02).provenance["config"]["engine"] == "numpy"
    with pytest.raises(rf.InputError, match="scale >= 1e-150"):
        rf.gradient_flow(data, tiny, engine="numba")


def test_blas_threads_follow_the_product_size():
    assert blas_threads(16, 100, cores=2) == 1  # 1.6e5 multiply-adds: one thread
    assert blas_threads(24, 1000, cores=2) == 1
    assert blas_threads(24, 2000, cores=2) == 2
    assert blas_threads(24, 2000, cores=1) == 1
    assert blas_threads(200, 4000, cores=8) == 8


# --------------------------------------------------------------------------- data at scale


def _stats(data, net):
    K = data.gram()
    return [
        K[0, 0],
        K[0, 1],
        K[2, 1],
        np.linalg.eigvalsh(K)[0],
        net.u[0, 0],
        net.u[1, 2],
        net.u[0] @ np.linalg.solve(K, net.u[1]),
        net.w_perp_sq[0],
        net.a[1],
    ]


def test_gram_representation_has_the_law_of_the_explicit_one():
    # (K, u(0), ‖w^⊥‖², a(0)) drawn from the Bartlett factor against explicit X and W
    n, d, m, reps = 3, 6, 2, 1000
    gram, expl = [], []
    for s in range(reps):
        g = rf.gaussian_data(n, d, seed=s, representation="gram")
        e = rf.gaussian_data(n, d, seed=s, representation="explicit")
        gram.append(_stats(g, rf.init_network(g, m, 0.5, seed=s)))
        expl.append(_stats(e, rf.init_network(e, m, 0.5, seed=s)))
    gram, expl = np.array(gram), np.array(expl)
    pvals = [ks_2samp(gram[:, k], expl[:, k]).pvalue for k in range(gram.shape[1])]
    assert min(pvals) > 1e-3, pvals  # 9 statistics: a false alarm has probability < 1 %
    # the test has power: the law at 4 d (correlations half as large) is told apart
    wrong = [
        _stats(g, rf.init_network(g, m, 0.5, seed=s))
        for s in range(300)
        for g in [rf.gaussian_data(n, 4 * d, seed=s, representation="gram")]
    ]
    assert ks_2samp(np.array(wrong)[:, 1], expl[:, 1]).pvalue < 1e-4


def test_gram_representation_gives_inputs_and_weights_on_demand():
    g = rf.gaussian_data(12, 40, labels="gaussian", seed=4, representation="gram")
    net = rf.init_network(g, 5, 0.3, seed=4)
    assert "X" not in g.__dict__  # nothing of size n x d until asked
    X = g.to_array()
    np.testing.assert_allclose(X @ X.T, g.gram(), atol=1e-14)
    W = net.weights(g)
    np.testing.assert_allclose(W @ X.T, net.u, atol=1e-14)
    np.testing.assert_allclose((W**2).sum(axis=1), net.w_norm_sq(g), rtol=1e-12)
    np.testing.assert_allclose(net.predict(g, X), net.outputs(), atol=1e-14)
    np.testing.assert_allclose(net.a**2, net.w_norm_sq(g), rtol=1e-12)  # balanced
    # a trained network predicts its training outputs through the on-demand X
    tr = rf.gradient_flow(g, net, tau_max=2.0)
    np.testing.assert_allclose(tr.final.predict(g, X), tr.final.outputs(), atol=1e-10)


def test_auto_representation_keeps_large_d_in_gram_form():
    g = rf.gaussian_data(500, 100_000, seed=0)
    assert isinstance(g, rf.GaussianGramData) and g.describe()["representation"] == "gram"
    assert "X" not in g.__dict__
    small = rf.gaussian_data(50, 500, seed=0)
    assert not isinstance(small, rf.GaussianGramData)  # unchanged draws at small sizes
    with pytest.raises(rf.InputError, match="d >= n"):
        rf.gaussian_data(10, 5, representation="gram")


def test_small_neurons_kinks_in_bulk_match_the_cut_steps(monkeypatch):
    # A wide network from a tiny scale: after the closed-form phase some neurons stay
    # below eps of the labels. Their switching events are integrated inside the solver's
    # steps (each alone, against the step's residual) instead of cutting every neuron's
    # step; the reference cuts the step at each of them. Same events, same times, same end.
    import reluflow._engines.general as FG

    data = rf.gaussian_data(20, 40, labels="gaussian", seed=0)
    net = rf.init_network(data, 40, 1e-12, seed=0)
    original = FG.gradient_flow_general
    runs = {}
    for bulk in (False, True):
        monkeypatch.setattr(FG, "gradient_flow_general", functools.partial(original, bulk=bulk))
        runs[bulk] = rf.gradient_flow(data, net, t_max=200.0)
    A, B = runs[False], runs[True]
    assert A.status == B.status == "t_max"
    # the bulk path was taken: fewer steps cut by an event, the same events
    assert B.stats.kink_steps < A.stats.kink_steps
    assert A.stats.kinks == B.stats.kinks and A.stats.sliding == B.stats.sliding
    oa = np.lexsort((A.kink_t, A.kink_sliding, A.kink_up, A.kink_sample, A.kink_neuron))
    ob = np.lexsort((B.kink_t, B.kink_sliding, B.kink_up, B.kink_sample, B.kink_neuron))
    for f in ("kink_neuron", "kink_sample", "kink_up", "kink_sliding"):
        np.testing.assert_array_equal(getattr(A, f)[oa], getattr(B, f)[ob])
    np.testing.assert_allclose(A.kink_t[oa], B.kink_t[ob], rtol=1e-6)
    size = np.maximum(np.abs(A.final.a), np.abs(A.final.u).max(axis=1))
    assert np.all(np.abs(A.final.a - B.final.a) <= 1e-7 * size)
    assert np.all(np.abs(A.final.u - B.final.u) <= 1e-7 * size[:, None])
    # rows on the recorder's grid agree (the reference also writes a row at each event
    # that cuts its step, the bulk path none at a small neuron's event; rows at events
    # agree in time to 1e-6 only, hence compared through the kink times above)
    common, ia, ib = np.intersect1d(A.t, B.t, return_indices=True)
    assert common.size > B.t.size // 2
    np.testing.assert_allclose(A.loss[ia], B.loss[ib], rtol=1e-6)
    np.testing.assert_allclose(A.w_norm[ia], B.w_norm[ib], rtol=1e-6)
    assert B.conservation_drift < 1e-7


def test_sliding_exit_search_on_the_polynomial_form_agrees_with_the_direct_one(monkeypatch):
    # The exit search evaluates α(θ) = −N(θ)/r(θ) from degree-8 polynomials built once per
    # step; the direct form evaluates the dense state and the sliding rows of the field at
    # each trial point. At every exit search of a run: the same α at interior points, the
    # same located exit (or none).
    import reluflow._engines.general_numba as NB

    poly = NB.locate_exit_poly
    seen = []

    def both(P, h, th_max, a, u, Ka, Ku, y, Kg, mask, scnt, sidx, sinv, alpha):
        args = (y, Kg, mask, scnt, sidx, sinv)
        direct = NB.locate_exit(P, h, th_max, a, u, Ka, Ku, *args, alpha.copy())
        R, N, ca = NB._exit_polys(P, h, a, u, Ka, Ku, y, Kg, mask, scnt, sidx, sinv)
        m, n = u.shape
        for th in (0.3 * th_max, 0.8 * th_max):
            al_d, al_p = alpha.copy(), alpha.copy()
            NB._excess(
                P, th, h, a, u, Ka, Ku, *args, al_d, np.empty(m), np.empty((m, n)),
                np.empty((m, max(1, sidx.shape[1]))), np.empty((1, 1)), np.empty((1, 1)),
                np.empty(n), np.empty((1, 1)),
            )  # fmt: skip
            NB._excess_poly(th, R, N, ca, scnt, sidx, al_p)
            for j in np.flatnonzero(scnt):
                np.testing.assert_allclose(al_p[j, : scnt[j]], al_d[j, : scnt[j]], rtol=1e-8, atol=1e-10)
        got = poly(P, h, th_max, a, u, Ka, Ku, *args, alpha)
        seen.append((direct, got))
        return got

    monkeypatch.setattr(NB, "locate_exit_poly", both)
    data = rf.gaussian_data(20, 60, labels="gaussian", seed=2)
    net = rf.init_network(data, 6, 1e-6, seed=2)
    tr = rf.gradient_flow(data, net, closed_form_start=False)
    assert tr.success and tr.stats.sliding > 0
    d = np.array(seen)
    assert len(d) > 5 and (d[:, 1] > 0).sum() > 2
    np.testing.assert_array_equal(d[:, 0] < 0, d[:, 1] < 0)
    # (to the conditioning of the root: a rounding of α moves θ by 1e-16 / |dα/dθ|)
    np.testing.assert_allclose(d[:, 1], d[:, 0], rtol=1e-8, atol=1e-12)



@pytest.mark.parametrize("n,d,scale,seed", [(40, 12, 1e-8, 0), (30, 10, 1e-6, 1)])
@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_sign_change_of_a_while_sliding_releases_the_coordinate(n, d, scale, seed, engine):
    # n > d, init="independent": an output weight a_j crosses 0 while one of its
    # coordinates slides; past that point the coordinate repels and must leave its mode
    # (docs/general-data.md, rank-deficient data). Both solvers, from t = 0 at a tight
    # rtol, must agree with the closed-form phase (itself confronted with gradient
    # descent at first order in tests/test_general_phase.py); releasing the coordinate
    # only at the neuron's next event put them 1e-3 to 0.2 off.
    import math

    from reluflow._engines import general_phase as GP
    from reluflow._engines.dynamics import Recorder, StopRules
    from reluflow._engines.field import Field

    data = rf.gaussian_data(n, d, labels="gaussian", seed=seed)
    net = rf.init_network(data, 5, scale, seed=seed, init="independent")
    rules = StopRules.build(data, net, None, None, None, None)
    rec = Recorder(data, net, 200, t0=1e-3 / rules.gamma_all)
    phase = GP.general_initial_phase(data, net, Field(data), rec, 1e-8, math.inf)
    assert np.any(np.sign(phase.a) != np.sign(net.a))
    ode = rf.gradient_flow(
        data, net, t_max=phase.t1, rtol=1e-11, engine=engine, closed_form_start=False
    )
    assert ode.status == "t_max"
    size = np.maximum(np.abs(phase.a), np.abs(phase.u).max(axis=1))
    err = np.maximum(np.abs(ode.final.a - phase.a), np.abs(ode.final.u - phase.u).max(axis=1))
    assert np.max(err / size) < 1e-8
    assert ode.stats.kinks == phase.kink_t.size


def test_a_coordinate_resolved_at_zero_does_not_chatter_at_a_loose_tolerance(monkeypatch):
    # docs/general-data.md §4, the detection band. At rtol = 1e-4 on this problem a
    # coordinate set to 0 by a zero-set resolution, with a velocity there on the wrong
    # side only within the resolution's margin (or none, and an acceleration across),
    # ended each step a hair past 0: the step was cut there, the resolution kept the
    # mode, and the next step did the same. Without the band the NumPy engine stopped as
    # "failed" (stuck at a switching point, t ≈ 396), the compiled one at max_steps
    # (20 000 steps at t ≈ 373), the default flow as "failed" (t ≈ 395).
    import reluflow.flow as F

    data = rf.gaussian_data(40, 400, seed=6)
    net = rf.init_network(data, 13, 1e-8, seed=6)
    ref = rf.gradient_flow(data, net, rtol=1e-11)
    default = rf.gradient_flow(data, net, rtol=1e-4)
    B = rf.gradient_flow(data, net, rtol=1e-4, engine="numba", closed_form_start=False)
    plain = functools.partial(F._gradient_flow_numpy, log_coordinates=False)
    monkeypatch.setattr(F, "_gradient_flow_numpy", plain)
    A = rf.gradient_flow(data, net, rtol=1e-4, engine="numpy")
    assert ref.status == default.status == A.status == "loss_tol"
    # the band is the same algorithm in both engines: same events, same end (to rounding)
    _assert_same(A, B)
    # and a loose tolerance costs fewer steps than a tight one, not a chattering run
    assert default.stats.steps < ref.stats.steps
    # within the loose tolerance of the tight reference (observed: activation times 1.4e-5
    # with the closed-form phase, 1.9e-4 from t = 0; ‖θ‖² 7e-6)
    ev_r = rf.activation_events(ref)
    for run in (default, A):
        ev = rf.activation_events(run)
        assert list(ev.neuron) == list(ev_r.neuron)
        np.testing.assert_allclose(ev.t, ev_r.t, rtol=1e-3)
        assert run.final.norm_sq(data) == pytest.approx(ref.final.norm_sq(data), rel=1e-3)


def test_updated_inverses_of_the_sliding_sets_match_fresh_ones(monkeypatch):
    # K_ΣΣ⁻¹ is updated by Schur complements (an index leaves) and bordered inverses (an
    # index enters); over a random walk of sets, including several changes at once and the
    # periodic fresh inverse, it must match np.linalg.inv of the same block to rounding.
    from reluflow._engines import general as GE

    monkeypatch.setattr(GE, "_UPDATE_FROM", 1)  # every set size takes the update path

    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 800)) / np.sqrt(800)
    K = X @ X.T
    S = np.sort(rng.choice(80, 60, replace=False))
    hit = GE._updated_inverse(K, S, None)
    updated = 0
    for _ in range(120):
        members = set(S.tolist())
        for i in rng.integers(0, 80, size=rng.integers(1, 4)):
            members.symmetric_difference_update({int(i)})
        S = np.array(sorted(members))
        hit = GE._updated_inverse(K, S, hit)
        updated += hit[3] > 0
        ref = np.linalg.inv(K[np.ix_(S, S)])
        assert np.array_equal(hit[2], S)
        assert np.abs(hit[1] - ref).max() <= 1e-12 * np.abs(ref).max()
    assert updated > 60  # the update path was taken, not only fresh inverses


def test_compiled_engine_with_updated_inverses_matches_the_reference(monkeypatch):
    # the engine test above with every sliding set's inverse updated, not recomputed
    import reluflow._engines.general as GE
    import reluflow.flow as F

    monkeypatch.setattr(GE, "_UPDATE_FROM", 1)
    plain = functools.partial(F._gradient_flow_numpy, log_coordinates=False)
    monkeypatch.setattr(F, "_gradient_flow_numpy", plain)
    data = rf.gaussian_data(20, 200, labels="balanced", seed=0)
    net = rf.init_network(data, 5, 1e-8, seed=0)
    A = rf.gradient_flow(data, net, engine="numpy")
    B = rf.gradient_flow(data, net, engine="numba", closed_form_start=False)
    _assert_same(A, B)
    assert B.stats.sliding > 0
