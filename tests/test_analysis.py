"""Activation events read off trajectories: which neurons activate, and when.

Simulation against simulation: the flow's activation events against the λ → 0 jump
process (:func:`reluflow.compare_to_limit`) on a case where many neurons tie, and
gradient descent against the flow.
"""

import math

import numpy as np

import reluflow as rf
from reluflow.compare import compare_to_limit


def _large_tie():
    # two orthogonal samples, 24 neurons: the limit activates 12 of them in one event
    # (every neuron whose pattern and sign fit a sample), and they share the two fits,
    # so most of them end far below the level L at which a lone neuron is counted
    return rf.orthogonal_data(2, seed=0), 24


def test_every_neuron_of_a_large_tie_activates_and_converges_to_the_limit():
    data, m = _large_tie()
    cmp = compare_to_limit(data, m, seed=0, scales=("1e-8", "1e-32", "1e-128"))
    (group,) = cmp.limit.event_neurons
    assert len(group) >= 10
    final = cmp.trajectories[-1].final
    assert np.sum(np.abs(final.a) < cmp.trajectories[-1].activation_level) >= len(group) // 2
    S = cmp.summary
    assert S.success.all()
    assert (S.missing == 0).all() and (S.extra == 0).all(), S
    # the τ gap to the limit's event falls like 1/log(1/λ) (a bounded gap · log(1/λ))
    x = -S.log10_scale.to_numpy() * math.log(10.0)
    gap = S.max_tau_gap.to_numpy()
    assert np.all(np.diff(gap) < 0) and np.all(gap * x < 4.0), gap * x
    # and the tie's members activate together: their spread in τ shrinks the same way
    for log10, tr in zip(S.log10_scale, cmp.trajectories, strict=True):
        ev = rf.activation_events(tr)
        assert sorted(ev.neuron) == sorted(group)
        assert (ev.tau.max() - ev.tau.min()) * -log10 * math.log(10.0) < 2.0


def test_descent_finds_the_same_tied_activations_as_the_flow():
    data, m = _large_tie()
    net = rf.init_network(data, m, 1e-8, seed=0)
    fl = rf.activation_events(rf.gradient_flow(data, net))
    gd = rf.activation_events(rf.gradient_descent(data, net, 0.02, check_stability=False))
    assert len(fl) >= 10 and sorted(fl.neuron) == sorted(gd.neuron)
    a = fl.set_index("neuron").t
    b = gd.set_index("neuron").t
    # descent is the flow to O(η) per unit time; activation after t ≈ 35
    assert np.max(np.abs(a - b.loc[a.index])) < 0.05 * a.max()
