"""The λ → 0 jump process (docs/limit.md) against the coverage formula, an independent
reference implementation, the finite-λ gradient flow and its own invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

from reluflow import _rng
from reluflow.data import OrthogonalData, array_data, gaussian_data, orthogonal_data
from reluflow.errors import NotOrthogonalError
from reluflow.flow import gradient_flow
from reluflow.limit import _alignment_amplitude, _seed_initial_rows, jump_process
from reluflow.network import Network, init_network
from reluflow.theory import interpolation_probability, min_norm_sq

# --------------------------------------------------------------------------- helpers


def _reference_events(y, x_sq, signs, positive):
    """A direct transcription of §4: every rate recomputed from scratch at every event.

    Returns a list of (tau, neuron, fitted sample set) with ties broken by index: only
    for data without ties (Gaussian labels).
    """
    n, m = y.shape[0], signs.shape[0]
    S = positive & (signs[:, None] * y[None, :] > 0)
    fitted = np.zeros(n, dtype=bool)
    done = np.zeros(m, dtype=bool)
    p = -np.ones(m)
    tau, events = 0.0, []
    while True:
        rem = S & ~fitted[None, :]
        gam = np.sqrt((rem * (y**2 * x_sq)[None, :]).sum(axis=1)) / n
        gam[done] = 0.0
        if not (gam > 0).any():
            return events
        dt = np.where(gam > 0, -p / np.where(gam > 0, gam, 1.0), np.inf)
        j = int(np.argmin(dt))
        p += gam * dt[j]
        tau += dt[j]
        events.append((tau, j, set(np.flatnonzero(rem[j]).tolist())))
        fitted |= rem[j]
        done[j] = True


def _plateaus(res, y):
    n = y.shape[0]
    out = []
    for k in range(res.n_events):
        unfitted = (res.fitted_at < 0) | (res.fitted_at > k)
        out.append(float((y[unfitted] ** 2).sum()) / (2 * n))
    return np.array(out)


def _full_flow(a0, u0, y, x_sq, lam, t_end):
    """High-accuracy gradient flow of the reduced orthogonal ODE from (λ a0, λ u0).

        r_i = Σ_j a_j σ(u_ji) − y_i,  da_j/dt = −(1/n) Σ_i r_i σ(u_ji),
        du_ji/dt = −(1/n) a_j r_i ‖x_i‖² 1[u_ji > 0].

    Each kink (an active coordinate reaching 0) is located as an event and the
    coordinate frozen at 0 (on orthogonal data it never revives), so the
    vector field is smooth on every solver step.
    """
    m, n = u0.shape
    alive = u0 > 0
    z = np.concatenate([a0, u0.ravel()]) * lam
    t0 = 0.0
    while True:
        mask = alive.copy()
        idx = np.flatnonzero(mask.ravel())

        def f(_t, z, mask=mask):
            a, u = z[:m], z[m:].reshape(m, n)
            su = u * mask
            r = a @ su - y
            return np.concatenate([-(su @ r) / n, (-(a[:, None] * (r * x_sq)[None, :]) * mask / n).ravel()])

        def kink(_t, z, idx=idx):
            return float(np.min(z[m + idx])) if idx.size else 1.0

        kink.terminal = True
        kink.direction = -1
        sol = solve_ivp(f, (t0, t_end), z, method="DOP853", rtol=1e-11, atol=1e-14 * lam, events=kink)
        assert sol.status >= 0, sol.message
        z, t0 = sol.y[:, -1].copy(), sol.t[-1]
        if sol.status == 0:
            return z[:m], z[m:].reshape(m, n)
        k = idx[np.argmin(z[m + idx])]
        alive.ravel()[k] = False
        z[m + k] = 0.0


def _handmade(U, signs, y, norms):
    a0 = signs * np.sqrt((U**2 / norms**2).sum(axis=1))  # balanced, w⊥ = 0
    return OrthogonalData(norms, y), Network(a=a0, u=U, w_perp_sq=np.zeros(len(signs)), scale=1.0)


# --------------------------------------------------------------------------- coverage


_FREQUENCY_CASES = [(16, 5), (16, 10), (64, 10), (64, 14), (256, 14), (256, 22)]


@pytest.mark.parametrize(("n", "m"), _FREQUENCY_CASES)
def test_interpolation_frequency_matches_formula(n, m):
    """Monte Carlo over 600 initialisation seeds, both sides of the threshold.

    An exact two-sided binomial test per case at level 1e-3 / (number of cases): the chance
    that any case fails when the formula and the jump process agree is at most 1e-3
    (Bonferroni), whatever the seeds. (A 3-sigma bound per case gives ~1.6 % over six cases:
    seeds 0-599 fail one case at z = -3.56, though 7 200 pooled seeds show no bias.)
    A frequency off by 0.08 is still caught at p ~ 0.5.
    """
    from scipy.stats import binomtest

    data = orthogonal_data(n, seed=0)
    seeds = range(10_000, 10_600)
    # Which neuron fits a shared sample of a tie never changes which samples get fitted,
    # so interpolation is checked without resolving ties (resolution is tested below).
    hits = sum(jump_process(data, m, seed=s, resolve_ties=False).interpolates for s in seeds)
    p = interpolation_probability(int((data.y > 0).sum()), int((data.y < 0).sum()), m)
    pvalue = binomtest(int(hits), len(seeds), p).pvalue if 0 < p < 1 else float(hits == p * len(seeds))
    assert pvalue > 1e-3 / len(_FREQUENCY_CASES), (hits, p, pvalue)


def test_resolving_ties_does_not_change_the_events():
    data = orthogonal_data(16, seed=0)
    for s in range(6):
        a = jump_process(data, 8, seed=s)
        b = jump_process(data, 8, seed=s, resolve_ties=False)
        assert np.array_equal(a.tau, b.tau) and a.event_neurons == b.event_neurons
        assert np.array_equal(a.fitted_at, b.fitted_at)


# --------------------------------------------------------------------------- the events


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_events_match_reference_implementation(seed):
    data = orthogonal_data(60, labels="gaussian", norms="uniform", seed=seed)
    res = jump_process(data, 9, seed=seed)
    assert res.n_ties == 0
    bits = _rng.sign_bits(seed, 9, 60)
    ref = _reference_events(data.y, data.sq_norms(), _rng.output_signs(seed, 9), bits)
    assert [e[1] for e in ref] == [g[0] for g in res.event_neurons]
    np.testing.assert_allclose(res.tau, [e[0] for e in ref], rtol=1e-12)
    for k, e in enumerate(ref):
        assert set(res.samples_of(k).tolist()) == e[2]


@pytest.mark.parametrize(("labels", "norms", "seed"), [("balanced", 1.0, 0), ("balanced", 1.0, 5),
                                                        ("gaussian", "uniform", 1), ("random", "uniform", 2)])
def test_limit_network_and_invariants(labels, norms, seed):
    data = orthogonal_data(48, labels=labels, norms=norms, seed=seed)
    res = jump_process(data, 16, seed=seed)
    # Events in increasing τ; a neuron never activates twice.
    assert np.all(np.diff(res.tau) >= 0) and np.all(res.tau > 0)
    flat = [j for g in res.event_neurons for j in g]
    assert len(flat) == len(set(flat))
    # Plateaus: (1/2n) Σ_{i ∉ F} y_i² after each event, decreasing.
    np.testing.assert_allclose(res.plateau_loss, _plateaus(res, data.y), rtol=1e-12, atol=1e-15)
    assert np.all(np.diff(res.plateau_loss) < 0)
    # Activated neurons have rate 0 afterwards; the final rates all vanish.
    for k, g in enumerate(res.event_neurons):
        assert np.all(res.rates[k, list(g)] == 0)
    assert np.all(res.rates[-1] == 0)
    net = res.network
    r = net.residuals(data)
    fitted = res.fitted_at >= 0
    assert np.max(np.abs(r[fitted])) < 1e-12
    np.testing.assert_array_equal(r[~fitted], -data.y[~fitted])
    assert res.interpolates == bool(np.all(fitted[data.y != 0]))
    # ‖θ‖² of the limit network equals the §4 formula (and the ties' resolved norms).
    assert net.norm_sq(data) == pytest.approx(res.norm_sq, rel=1e-9)
    solo = [g[0] for g in res.event_neurons if len(g) == 1]
    formula = sum(2 * math.sqrt(float((data.y[res.fitted_by == j] ** 2 / data.sq_norms()[res.fitted_by == j]).sum()))
                  for j in solo)
    tied_norm = sum(float(net.neuron_norm_sq(data)[list(t.neurons)].sum()) for t in res.ties)
    assert res.norm_sq == pytest.approx(formula + tied_norm, rel=1e-12)
    # Balanced neurons: a_j² = ‖w_j‖² (exactly for lone activations, to the group
    # flow's residual for ties).
    np.testing.assert_allclose(net.a**2, net.w_norm_sq(data), rtol=1e-8, atol=1e-14)
    assert res.min_norm_sq == pytest.approx(min_norm_sq(data.y, data.norms))
    if res.interpolates:
        assert res.ratio >= 1 - 1e-12


def test_determinism_and_signs_match_init_network():
    data = orthogonal_data(40, d=55, seed=3)
    m, seed = 12, 7
    a = jump_process(data, m, seed=seed)
    b = jump_process(data, m, seed=seed)
    assert np.array_equal(a.tau, b.tau) and np.array_equal(a.fitted_by, b.fitted_by)
    assert np.array_equal(a.a, b.a)
    net = init_network(data, m, 1e-3, seed=seed)
    S = (net.u > 0) & (np.sign(net.a)[:, None] * data.y[None, :] > 0)
    np.testing.assert_array_equal(np.sign(net.a), a.signs)
    gam0 = np.sqrt((S * (data.y**2 * data.sq_norms())[None, :]).sum(axis=1)) / data.n
    np.testing.assert_allclose(a.initial_rates, gam0, rtol=1e-14)
    for j in range(m):
        assert set(np.flatnonzero(a.fitted_by == j)) <= set(np.flatnonzero(S[j]))
    # The same initialisation given as a network gives the same process (ties included:
    # their amplitudes come from the Gaussians the seed path redraws row by row).
    c = jump_process(data, net=net)
    assert np.array_equal(a.tau, c.tau) and a.event_neurons == c.event_neurons
    np.testing.assert_allclose(c.a, a.a, rtol=1e-9)


def test_seed_rows_reproduce_init_network():
    data = orthogonal_data(30, d=45, norms="uniform", seed=2)
    for init in ("balanced", "independent"):
        net = init_network(data, 7, 1.0, seed=5, init=init)
        rows = np.array([2, 5])
        a0, u0 = _seed_initial_rows(data, 7, 5, init, rows, _rng.sign_bits(5, 7, 30), _rng.output_signs(5, 7))
        np.testing.assert_allclose(a0, net.a[rows], rtol=1e-15)
        np.testing.assert_allclose(u0, net.u[rows], rtol=1e-15)


def test_alignment_amplitude_matches_linear_ode():
    rng = np.random.default_rng(0)
    n = 12
    y = rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 2, n)
    x_sq = rng.uniform(0.5, 1.5, n) ** 2
    u0 = rng.standard_normal(n) * 0.3
    a0 = math.sqrt((u0**2 / x_sq).sum())
    c = _alignment_amplitude(a0, u0, y, x_sq)
    pos = (u0 > 0) & (y > 0)
    gam = math.sqrt((y[pos] ** 2 * x_sq[pos]).sum()) / n

    def f(_t, z):
        act = z[1:] > 0
        return np.concatenate([[(y * z[1:] * act).sum() / n], z[0] * y * x_sq * act / n])

    t = 60 / gam
    sol = solve_ivp(f, (0, t), np.concatenate([[a0], u0]), rtol=1e-12, atol=1e-14)
    assert sol.y[0, -1] * math.exp(-gam * t) == pytest.approx(c, rel=1e-8)
    assert _alignment_amplitude(-a0, u0, -y, x_sq) == pytest.approx(-c, rel=1e-14)


# --------------------------------------------------------------------------- ties


def test_first_event_tie_matches_gradient_flow():
    """Two positive neurons with equal rates tie exactly at the first event and share sample 1.

    The index order would give sample 1 to neuron 0; the flow splits it according to
    the O(1) amplitudes. Reached: the limit's a_j agree with the λ = 1e-20 flow to
    ~1e-10 relative (the group starts on the exact growth directions, so only the
    ODE tolerances remain); asserted at 1e-7.
    """
    y = np.array([1.0, 1.0, 1.0, -1.0])
    U = np.array([[0.8, 0.3, -0.4, 0.5], [-0.2, 0.6, 0.9, -0.3], [-0.1, 0.4, -0.3, 0.7]])
    signs = np.array([1.0, 1.0, -1.0])
    data, net = _handmade(U, signs, y, np.ones(4))
    res = jump_process(data, net=net)
    assert res.n_ties == 1
    tie = res.ties[0]
    assert tie.neurons == (0, 1) and tie.shared == 1
    assert tie.event == 0 and res.event_fitted[0] == 3
    lim = res.network
    a, u = _full_flow(net.a, net.u, y, np.ones(4), 1e-20, 60 * math.log(1e20))
    np.testing.assert_allclose(a, lim.a, rtol=1e-7)
    np.testing.assert_allclose(u, lim.u, rtol=1e-7, atol=1e-9)
    assert u[0, 1] > 0 and u[1, 1] > 0  # the shared sample is fitted by both neurons


def test_equal_sets_tie_splits_by_amplitude():
    """Identical S sets: the group stays aligned and a_1/a_0 equals the amplitude ratio c_1/c_0."""
    y = np.array([1.0, 1.0, 1.0, -1.0])
    U = np.array([[0.8, 0.3, 0.5, 0.5], [0.2, 0.6, 0.1, -0.3], [-0.1, 0.4, -0.3, 0.7]])
    data, net = _handmade(U, np.array([1.0, 1.0, -1.0]), y, np.ones(4))
    res = jump_process(data, net=net)
    tie = res.ties[0]
    assert tie.shared == 3
    c = [_alignment_amplitude(net.a[j], net.u[j], y, np.ones(4)) for j in (0, 1)]
    assert res.a[1] / res.a[0] == pytest.approx(c[1] / c[0], rel=1e-8)
    assert res.a[0] ** 2 + res.a[1] ** 2 == pytest.approx(math.sqrt(3), rel=1e-9)
    a, _ = _full_flow(net.a, net.u, y, np.ones(4), 1e-20, 60 * math.log(1e20))
    np.testing.assert_allclose(a, res.a, rtol=1e-7)


def _later_tie_case():
    """Neuron 0 fits {0, 1, 2, 3} first; neurons 1 ({0, 4, 5}) and 2 ({1, 5, 6}) then tie.

    The two tied neurons lose samples of different weight y²‖x‖² (1 and 4) to neuron 0,
    so their rates change differently (0.275 → 0.245 and 0.306 → 0.177); y_4 is chosen
    (by root finding on the τ at which each reaches p = 0) so that they still tie.
    """
    n = 8

    def labels(y4):
        return np.array([1.0, 2.0, 1.5, 1.5, y4, 1.0, 1.0, -1.0])

    def tie_gap(y4):
        y = labels(y4)
        rate = [math.sqrt((y[S] ** 2).sum()) / n for S in ([0, 1, 2, 3], [0, 4, 5], [4, 5], [1, 5, 6], [5, 6])]
        t1 = 1 / rate[0]
        return (1 - rate[1] * t1) / rate[2] - (1 - rate[3] * t1) / rate[4]

    y = labels(brentq(tie_gap, 0.5, 2.5, xtol=1e-15))
    norms = np.ones(n)
    rng = np.random.default_rng(1)
    U = -np.abs(rng.standard_normal((4, n))) * 0.3
    for j, S in enumerate([[0, 1, 2, 3], [0, 4, 5], [1, 5, 6], [7]]):
        U[j, S] = -U[j, S]
    U[0, 7], U[1, 7], U[3, 2] = 0.4, 0.2, 0.3  # wrong-sign coordinates that must die
    return (*_handmade(U, np.array([1.0, 1.0, 1.0, -1.0]), y, norms), y)


def test_later_event_tie_matches_gradient_flow():
    """A tie at the second event, after the tied neurons' rates changed differently.

    Their amplitudes depend on how each lived through neuron 0's activation (the
    transition integrated through neuron 0's own flow). Reached: the flows at
    λ = 1e-20 and 1e-80 agree with the jump process to 5e-10 and 4e-11 on the tied
    neurons. The instantaneous-change approximation (1 + γ'/γ)/2 is off by 1.8 %,
    and leaving the transition out by 0.6 %. Asserted at 1e-8.
    """
    data, net, y = _later_tie_case()
    res = jump_process(data, net=net)
    assert [t.neurons for t in res.ties] == [(1, 2)]
    tie = res.ties[0]
    assert tie.event == 1 and tie.shared == 1
    for lam in (1e-20, 1e-80):
        a, _ = _full_flow(net.a, net.u, y, np.ones(8), lam, 12 * math.log(1 / lam))
        np.testing.assert_allclose(res.a[1:3], a[1:3], rtol=1e-8)
        np.testing.assert_allclose(res.a[[0, 3]], a[[0, 3]], rtol=1e-5)


def test_ties_on_balanced_data_match_the_flow_at_any_scale():
    """Later-event ties on n = 256, m = 16 against the flow at λ = 1e-1000.

    The tied amplitudes of the limit differ from the flow's by 3e-5 / 3e-6 (seeds
    22 / 24) at λ = 1e-150, 4e-9 / 3e-11 at 1e-300 and 3e-11 / 3e-11 at 1e-1000:
    the finite-λ part is a competitor's share e^{−δ log(1/λ)}, and what remains is
    the solvers' tolerance. Asserted at 1e-8.
    """
    for seed in (22, 24):
        data = orthogonal_data(256, seed=seed)
        res = jump_process(data, 16, seed=seed)
        tie = next(t for t in res.ties if t.shared)
        assert tie.event > 0
        js = list(tie.neurons)
        traj = gradient_flow(data, init_network(data, 16, "1e-1000", seed=seed), rtol=1e-10)
        np.testing.assert_allclose(traj.final.a[js], res.a[js], rtol=1e-8)


# --------------------------------------------------------------------------- inputs


def test_refuses_non_orthogonal_data():
    data = gaussian_data(n=10, d=20, seed=0)
    with pytest.raises(NotOrthogonalError) as info:
        jump_process(data, 8, seed=0)
    assert f"{data.coherence:.3e}" in str(info.value)
    assert "gradient_flow" in str(info.value)


def test_accepts_explicit_orthogonal_array():
    base = orthogonal_data(12, frame="random", norms="uniform", seed=4)
    data = array_data(base.to_array(), base.y)
    assert data.coherence <= 1e-10
    res = jump_process(data, 10, seed=1)
    net = init_network(data, 10, 1.0, seed=1)
    S = (net.u > 0) & (np.sign(net.a)[:, None] * data.y[None, :] > 0)
    assert res.interpolates == bool(S.any(axis=0).all())
    lim = res.network
    assert np.max(np.abs(lim.residuals(data)[res.fitted_at >= 0])) < 1e-12
    assert lim.norm_sq(data) == pytest.approx(res.norm_sq, rel=1e-8)


def test_result_tables():
    res = jump_process(orthogonal_data(32, seed=1), 10, seed=2)
    df = res.events_frame(rates=True)
    assert len(df) == res.n_events and f"rate_{res.m - 1}" in df.columns
    rows = res.events(rates=True)
    assert [r["tau"] for r in rows] == list(res.tau) and len(rows[0]["rates"]) == res.m
    assert res.provenance["config"]["seed"] == 2 and res.provenance["config"]["tie_rtol"] == res.tie_rtol
    assert len(res.ties_frame()) == res.n_ties
