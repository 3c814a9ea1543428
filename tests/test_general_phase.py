"""The compiled closed-form initial phase on general data (docs/general-data.md §1–2):
its rollback and buffer machinery, and the events it hands back to Python."""

from __future__ import annotations

import math

import numpy as np
import pytest

import reluflow as rf
import reluflow._engines.general_phase as GP
from reluflow._engines.dynamics import Recorder, StopRules
from reluflow._engines.field import Field

FIELDS = ("a", "u", "mask", "sliding", "kink_t", "kink_flat", "kink_up", "kink_sliding")


def _phase(data, net, eps=1e-8):
    rules = StopRules.build(data, net, None, None, None, None)
    rec = Recorder(data, net, 200, t0=1e-3 / rules.gamma_all)
    rec.add(0.0, net.a, net.u, (net.u > 0).astype(float))
    return GP.general_initial_phase(data, net, Field(data), rec, eps, math.inf), rec


def test_bisection_rollbacks_leave_the_state_of_a_straight_run():
    # The phase advances grid interval by grid interval, rolls neurons back to their
    # snapshots (the matrices K_ΣΣ⁻¹ included) while bisecting for t1, and resumes. Each
    # neuron's events are processed in the same order whatever the route, so running
    # straight from 0 to t1 in one sweep must give the same state, modes and log, bit for bit.
    data = rf.gaussian_data(60, 600, seed=2)
    net = rf.init_network(data, 6, 1e-8, seed=2)
    phase, _ = _phase(data, net)
    assert phase is not None and phase.sliding_entries > 20
    nr = GP._Neurons(data, net, Field(data))
    nr.clear()
    nr.advance(phase.t1)
    a, u, _, _ = nr.state_at(phase.t1)
    kt, kf, ku, ks, entries = nr.log()
    np.testing.assert_array_equal(a, phase.a)
    np.testing.assert_array_equal(u, phase.u)
    np.testing.assert_array_equal(nr.mask, phase.mask)
    np.testing.assert_array_equal(nr.slid, phase.sliding)
    for x, y in zip((kt, kf, ku, ks), FIELDS[4:], strict=True):
        np.testing.assert_array_equal(x, getattr(phase, y))
    assert entries == phase.sliding_entries


def test_buffer_growth_changes_nothing(monkeypatch):
    # The kernel returns to Python to grow the pool of K_ΣΣ⁻¹ matrices, the event log
    # and the grid rows; starting from (almost) no room must give the same phase exactly.
    data = rf.gaussian_data(50, 500, seed=4)
    net = rf.init_network(data, 5, 1e-8, seed=4)
    big, rec_big = _phase(data, net)
    monkeypatch.setattr(GP, "_POOL_SIDE0", 1)
    monkeypatch.setattr(GP, "_LOG_PER_SAMPLE0", 0)
    monkeypatch.setattr(GP, "_ROWS0", 1)
    small, rec_small = _phase(data, net)
    assert big.t1 == small.t1 and big.sliding_entries == small.sliding_entries
    assert int(big.sliding.sum(axis=1).max()) > 2  # the pool did grow
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(big, f), getattr(small, f))
    np.testing.assert_array_equal(rec_big.t, rec_small.t)
    np.testing.assert_array_equal(rec_big.loss, rec_small.loss)


@pytest.mark.parametrize(
    "n,d,m,labels,init,seed",
    [
        (40, 400, 6, "balanced", "balanced", 1),  # nearly orthogonal: sliding sets of ~n/4
        (30, 45, 6, "gaussian", "independent", 2),  # correlated: activations and exits
        (40, 12, 5, "gaussian", "independent", 0),  # n > d, an a_j changes sign while sliding
    ],
)
def test_pivots_agree_with_the_box_qp(n, d, m, labels, init, seed, monkeypatch):
    # Two independent resolutions of every switching event: the kernel's single principal
    # pivots on K_ΣΣ⁻¹ kept by bordered inverses and downdates, against Python's
    # Field.resolve_zero_set (block pivoting / BVLS on K_ZZ) with K_ΣΣ⁻¹ inverted afresh.
    data = rf.gaussian_data(n, d, labels=labels, seed=seed)
    net = rf.init_network(data, m, 1e-8, seed=seed, init=init)
    fast, _ = _phase(data, net)
    monkeypatch.setattr(GP, "_PIVOTS", False)
    slow, _ = _phase(data, net)
    assert fast.sliding_entries == slow.sliding_entries > 10
    for f in ("mask", "sliding", "kink_flat", "kink_up", "kink_sliding"):
        np.testing.assert_array_equal(getattr(fast, f), getattr(slow, f))
    np.testing.assert_allclose(fast.kink_t, slow.kink_t, rtol=1e-11)
    assert fast.t1 == pytest.approx(slow.t1, rel=1e-11)
    size = np.maximum(np.abs(slow.a), np.abs(slow.u).max(axis=1))
    assert np.max(np.abs(fast.a - slow.a) / size) < 1e-10
    assert np.max(np.abs(fast.u - slow.u).max(axis=1) / size) < 1e-10


def test_zero_labels_go_to_python_and_match_a_tight_solve(monkeypatch):
    # A coordinate with a zero label is not handled by the kernel's pivots: its events come
    # back to Python (Field.resolve_zero_set). The phase must still agree with the reference
    # solver run from t = 0 at rtol 1e-11, as in test_general_flow. (A zero-label
    # coordinate at 0 together with a sliding one makes Field.resolve_zero_set itself
    # fail, in the phase and in the solver alike; this case has none.)
    n = 12
    base = rf.gaussian_data(n, 10 * n, seed=3)
    y = base.y.copy()
    y[2] = 0.0
    data = rf.array_data(base.X, y)
    net = rf.init_network(data, 4, 1e-8, seed=3)
    calls = []
    fallback = GP._Neurons._fallback

    def counted(self, j):
        calls.append(j)
        return fallback(self, j)

    monkeypatch.setattr(GP._Neurons, "_fallback", counted)
    phase, _ = _phase(data, net, eps=1e-10)
    assert phase is not None and len(calls) > 0 and phase.sliding_entries > 5
    ode = rf.gradient_flow(
        data, net, t_max=phase.t1, rtol=1e-11, engine="numpy", closed_form_start=False
    )
    size = np.maximum(np.abs(ode.final.a), np.abs(ode.final.u).max(axis=1))
    assert np.max(np.abs(phase.a - ode.final.a) / size) < 2e-9
    assert np.max(np.abs(phase.u - ode.final.u).max(axis=1) / size) < 2e-9
    k = ode.kinks()
    ode_ev = sorted(
        zip(
            k["neuron"].to_numpy() * n + k["sample"].to_numpy(),
            k["activated"].to_numpy(),
            k["sliding"].to_numpy(),
            strict=True,
        )
    )
    cf_ev = sorted(zip(phase.kink_flat, phase.kink_up, phase.kink_sliding, strict=True))
    assert ode_ev == cf_ev


def test_rank_deficient_sign_change_of_a_releases_sliding_as_descent_does():
    # n > d: K has rank 12 of 40. With init="independent" the output weight a_2 changes
    # sign at t ≈ 12.45 while its coordinate 32 slides (docs/general-data.md, rank-deficient
    # data): past that point the sliding mode repels and the coordinate leaves it. The
    # phase used to keep it sliding until a later event, ending 4 % off in a_2. Gradient
    # descent, an independent method (weight space, no event logic), must converge to the
    # phase at first order in its step for every neuron: halving the step halves the error.
    data = rf.gaussian_data(40, 12, labels="gaussian", seed=0)
    net = rf.init_network(data, 5, 1e-8, seed=0, init="independent")
    assert np.linalg.matrix_rank(data.gram()) == 12
    phase, _ = _phase(data, net)
    assert np.any(np.sign(phase.a) != np.sign(net.a)) and phase.sliding_entries > 10
    T = phase.t1
    size = np.maximum(np.abs(phase.a), np.abs(phase.u).max(axis=1))
    errs = []
    for k in (11, 12, 13):
        gd = rf.gradient_descent(data, net, T / 2**k, steps=2**k, check_stability=False)
        da = np.abs(gd.final.a - phase.a)
        du = np.abs(gd.final.u - phase.u).max(axis=1)
        errs.append(np.maximum(da, du) / size)
    for coarse, fine in zip(errs, errs[1:], strict=False):
        np.testing.assert_array_less(fine, 0.6 * coarse)
        np.testing.assert_array_less(0.4 * coarse, fine)
    assert errs[-1].max() < 6e-3
