"""The flow at any initialisation scale: λ taken exactly, log-scale engines, located activations.

Each test confronts the log-scale engines with something independent: the
float64 engine at moderate λ, the other engine, a second integration in other
coordinates (scipy), the λ → 0 limit, or the conservation law.
"""

import json
import math
import time

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import reluflow as rf
from reluflow import _validate as V
from reluflow._dynamics import StopRules, activation_level
from reluflow.flow import _gradient_flow_numpy

LN10 = math.log(10.0)


# --------------------------------------------------------------------------- λ given exactly


@pytest.mark.parametrize(
    "value, log10",
    [(1e-8, -8.0), ("1e-8", -8.0), ("1e-1000", -1000.0), ("2.5e-400", -400 + math.log10(2.5))],
)
def test_scale_is_parsed_exactly(value, log10):
    lam, got = V.scale_log10(value)
    assert got == pytest.approx(log10, abs=1e-12)
    assert lam == (10.0**log10 if log10 > -320 else 0.0) or lam == pytest.approx(10.0**log10)


@pytest.mark.parametrize(
    "value, match",
    [
        (0, "must be > 0"),
        (-1e-8, "must be > 0"),
        ("-1e-1000", "must be > 0"),
        (float("nan"), "finite"),
        ("nan", "finite"),
        (float("inf"), "finite"),
        ("1e-2000000", "below 1e-1000000"),
        ("1e200", "above 1e100"),
        ("tiny", "decimal string"),
        (True, "decimal string"),
    ],
)
def test_scales_that_cannot_be_meant_or_represented_are_refused(value, match):
    data = rf.orthogonal_data(4, seed=0)
    with pytest.raises(rf.InputError, match=match) as err:
        rf.init_network(data, 2, value)
    assert "scale" in str(err.value)


def test_scale_once_through_value_or_log10():
    data = rf.orthogonal_data(6, seed=0)
    a = rf.init_network(data, 3, "1e-1000", seed=2)
    b = rf.init_network(data, 3, log10_scale=-1000, seed=2)
    np.testing.assert_array_equal(a.log_scale, b.log_scale)
    with pytest.raises(rf.InputError, match="scale once"):
        rf.init_network(data, 3, 1e-8, log10_scale=-8)


def test_a_network_at_any_scale_is_lambda_times_the_network_at_one():
    # the initial |a_j| were computed from squares that underflow below ~1e-160
    data = rf.orthogonal_data(20, seed=1)
    unit = rf.init_network(data, 5, 1.0, seed=1)
    for log10 in (-8, -170, -1000, -10000):
        net = rf.init_network(data, 5, f"1e{log10}", seed=1)
        assert net.log10_scale == log10
        np.testing.assert_allclose(
            net.log_abs_a - unit.log_abs_a, log10 * LN10, rtol=0, atol=1e-12 * abs(log10) + 1e-13
        )
        p, q = net.log_params, unit.log_params
        np.testing.assert_array_equal(np.sign(p.u_hat), np.sign(q.u_hat))
        np.testing.assert_allclose(p.u_hat, q.u_hat, rtol=1e-14)
    tiny = rf.init_network(data, 5, "1e-1000", seed=1)
    assert tiny.scale == 0.0 and np.all(tiny.a == 0.0)  # the float64 values underflow ...
    assert np.all(np.isfinite(tiny.log_abs_a))  # ... the representation does not
    assert tiny.log_inv_scale == pytest.approx(1000 * LN10, rel=1e-15)


def test_save_and_load_keep_the_exact_representation(tmp_path):
    data = rf.orthogonal_data(10, seed=3)
    net = rf.init_network(data, 4, "1e-5000", seed=3)
    path = rf.save_init(tmp_path / "tiny.npz", data, net)
    _, back = rf.load_init(path)
    assert back.log10_scale == -5000
    np.testing.assert_array_equal(back.log_scale, net.log_scale)
    np.testing.assert_array_equal(back.log_params.u_hat, net.log_params.u_hat)


def test_descent_refuses_scales_it_cannot_hold():
    data = rf.orthogonal_data(8, seed=0)
    net = rf.init_network(data, 3, "1e-1000", seed=0)
    with pytest.raises(rf.InputError, match="gradient descent .* scale >= 1e-100.*gradient_flow"):
        rf.gradient_descent(data, net, 0.5)


def test_cli_takes_the_scale_exactly(capsys):
    from reluflow.cli import main

    assert main(["flow", "--n", "16", "--m", "6", "--scale", "1e-1000", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["log10_scale"] == -1000 and out["success"] and out["events"]
    assert out["provenance"]["config"]["log10_scale"] == -1000
    assert main(["flow", "--n", "16", "--m", "6", "--scale", "0", "--quiet"]) == 2
    assert "scale (lambda) must be > 0" in capsys.readouterr().err


# --------------------------------------------------------------------------- the engines


def _flow(data, net, log_coordinates, rtol=1e-8):
    rules = StopRules.build(data, net, None, None, None, None)
    opts = dict(
        rtol=rtol,
        atol=0.0,
        t_max=None,
        tau_max=None,
        loss_tol=rules.loss_tol,
        stall_rate=rules.stall_rate,
        max_steps=10**6,
    )
    return _gradient_flow_numpy(
        data,
        net,
        rules,
        opts,
        None,
        points_per_decade=200,
        record_kinks=True,
        progress=False,
        wall0=time.perf_counter(),
        log_coordinates=log_coordinates,
    )


@pytest.mark.parametrize(
    "kind, scale",
    [("orthogonal", 1e-8), ("orthogonal", 1e-30), ("general", 1e-8)],
)
def test_log_scale_engine_agrees_with_the_float64_engine(kind, scale):
    if kind == "orthogonal":
        data = rf.orthogonal_data(40, labels="gaussian", norms="uniform", seed=4)
        net = rf.init_network(data, 8, scale, seed=4)
    else:
        g = rf.gaussian_data(8, 30, seed=3)
        data = rf.array_data(g.X, 1.0 + 0.5 * np.arange(8) / 8)
        net = rf.init_network(data, 5, scale, seed=3)
    A = _flow(data, net, log_coordinates=True)
    B = _flow(data, net, log_coordinates=False)
    assert A.success and B.success
    assert A.stats.kinks == B.stats.kinks
    np.testing.assert_allclose(A.activation_t, B.activation_t, rtol=1e-6)
    size = np.maximum(np.abs(B.final.a), np.abs(B.final.u).max(axis=1))
    assert np.max(np.abs(A.final.a - B.final.a) / size) < 1e-5
    assert A.conservation_drift < 1e-8 and B.conservation_drift < 1e-8


@pytest.mark.parametrize("scale", ["1e-1000", "1e-10000"])
def test_numba_and_numpy_engines_agree_at_any_scale(scale):
    data = rf.orthogonal_data(64, seed=0)
    net = rf.init_network(data, 16, scale, seed=0)
    A = rf.gradient_flow(data, net, engine="numpy")
    B = rf.gradient_flow(data, net, engine="numba")
    assert A.success and B.success
    assert A.stats.plateau_jumps == B.stats.plateau_jumps > 0
    # the deaths of the initial phase and of the transitions are the same; late deaths of
    # coordinates on fitted samples, driven by residuals at rounding level, may differ
    assert abs(A.stats.kinks - B.stats.kinks) <= 0.05 * A.stats.kinks
    np.testing.assert_array_equal(np.isnan(A.activation_t), np.isnan(B.activation_t))
    np.testing.assert_allclose(A.activation_t, B.activation_t, rtol=1e-7)
    assert A.final.norm_sq(data) == pytest.approx(B.final.norm_sq(data), rel=1e-6)
    assert max(A.conservation_drift, B.conservation_drift) < 1e-8


def test_cost_does_not_grow_with_log_inv_scale():
    # plateaus last ~log(1/λ) in t; they are crossed in closed form
    data = rf.orthogonal_data(64, seed=0)
    steps = {}
    for scale in ("1e-1000", "1e-10000", "1e-100000"):
        tr = rf.gradient_flow(data, rf.init_network(data, 16, scale, seed=0))
        assert tr.success and tr.stats.plateau_jumps > 0
        steps[scale] = tr.stats.steps
    assert max(steps.values()) < 1.2 * min(steps.values()), steps


def test_recording_is_exact_at_tiny_scale():
    data = rf.orthogonal_data(32, labels="gaussian", seed=2)
    net = rf.init_network(data, 8, "1e-1000", seed=2)
    tr = rf.gradient_flow(data, net)
    assert tr.success and tr.conservation_drift < 1e-8
    assert np.all(tr.a_abs[0] == 0.0)  # underflows as a float64 ...
    np.testing.assert_allclose(tr.log_abs_a[0], net.log_abs_a, rtol=1e-15)  # ... not in logs
    # a balanced neuron starts at log-scale p = ln|a| / ln(1/λ) = −1 + O(1/ln(1/λ))
    assert np.all(np.abs(tr.log_scale[0] + 1) < 2.0 / tr.log_inv_scale)
    # the activated neurons end at O(1), the others stay at their saddle
    ev = rf.activation_events(tr)
    assert ev.located.all() and (ev.a_final > activation_level(data)).all()
    rest = np.setdiff1d(np.arange(8), ev.neuron)
    assert np.all(tr.log_scale[-1, rest] < -0.1)


def test_general_data_at_any_scale_settles_on_the_small_scale_trend():
    g = rf.gaussian_data(8, 30, seed=3)
    data = rf.array_data(g.X, 1.0 + 0.5 * np.arange(8) / 8)
    runs = {}
    for scale in ("1e-300", "1e-1000"):
        tr = rf.gradient_flow(data, rf.init_network(data, 5, scale, seed=3))
        assert tr.success and tr.conservation_drift < 1e-8
        runs[scale] = tr
    a, b = runs["1e-300"], runs["1e-1000"]
    ea, eb = rf.activation_events(a), rf.activation_events(b)
    # (the members of a tie activate at the same time: compare neuron by neuron)
    ea, eb = ea.sort_values("neuron"), eb.sort_values("neuron")
    assert list(ea.neuron) == list(eb.neuron) and len(ea) >= 2
    # in τ, the activation times move by O(1/log(1/λ)) between the two scales, and the
    # end point is the same interpolator up to O(1/log(1/λ)) too
    assert np.max(np.abs(ea.tau.to_numpy() - eb.tau.to_numpy())) < 5.0 / math.log(1e300)
    assert a.final.norm_sq(data) == pytest.approx(b.final.norm_sq(data), rel=1e-3)


# --------------------------------------------------------------------------- activation times


def _reference_activation_times(data, net, t_end, level):
    """Gradient flow in continuous log-scale coordinates, integrated by scipy (DOP853).

    Per neuron ``(ℓ_j, x_j)`` with ``x_j = (â_j, û_j)``, ``ℓ_j' = ⟨x_j, F_j⟩ / ⟨x_j, x_j⟩``
    and ``x_j' = F_j − ℓ_j' x_j``: another formulation than the engines' (no
    renormalisation, no growth frame, no closed forms). Kinks (orthogonal data:
    an active coordinate reaching 0 stays there) end a segment; activations are
    solve_ivp events ``ℓ_j + ln|â_j| = ln L``.
    """
    n, m = data.n, net.m
    D, y = data.sq_norms(), data.y
    p = net.log_params
    ell, a, u = p.ell.copy(), p.a_hat.copy(), p.u_hat.copy()
    mask = (u > 0).astype(float)

    def field(_t, z):
        ell, a, u = z[:m], z[m : 2 * m], z[2 * m :].reshape(m, n)
        w = np.exp(2.0 * ell)
        r = ((w * a) @ (u * mask) - y) / n
        fa = -(u * mask) @ r
        fu = -a[:, None] * r[None, :] * D[None, :] * mask
        g = (a * fa + (u * fu).sum(axis=1)) / (a * a + (u * u).sum(axis=1))
        return np.concatenate([g, fa - g * a, (fu - g[:, None] * u).ravel()])

    act = np.full(m, np.nan)
    t = 0.0
    z = np.concatenate([ell, a, u.ravel()])
    while t < t_end:
        zu = z[2 * m :].reshape(m, n)
        live = np.flatnonzero(mask.ravel())

        def kink(_t, z, live=live):
            return float(np.min(z[2 * m :][live])) if live.size else 1.0

        kink.terminal, kink.direction = True, -1
        evs = [kink]
        for j in range(m):

            def crossing(_t, z, j=j):
                return z[j] + math.log(abs(z[m + j])) - math.log(level)

            crossing.direction = 1
            evs.append(crossing)
        sol = solve_ivp(field, (t, t_end), z, method="DOP853", rtol=1e-12, atol=1e-14, events=evs)
        for j in range(m):
            if sol.t_events[j + 1].size and np.isnan(act[j]):
                act[j] = sol.t_events[j + 1][0]
        t, z = float(sol.t[-1]), sol.y[:, -1].copy()
        if sol.status == 1 and sol.t_events[0].size:
            zu = z[2 * m :].reshape(m, n)
            hit = (zu * mask < 1e-9 * np.abs(zu).max(axis=1, keepdims=True)) & (mask > 0)
            zu[hit] = 0.0
            mask[hit] = 0.0
        elif sol.status != 1:
            break
    return act


@pytest.mark.parametrize(
    "labels, n, m, seed, scale",
    [("gaussian", 10, 4, 7, 1e-30), ("balanced", 12, 5, 1, 1e-8), ("gaussian", 10, 4, 3, 1e-100)],
)
def test_activation_times_match_an_independent_integration(labels, n, m, seed, scale):
    # measured: relative error 4e-10 to 1.4e-9 at rtol = 1e-8, 1e-12 to 1.4e-11 at 1e-10
    data = rf.orthogonal_data(n, labels=labels, norms="uniform", seed=seed)
    net = rf.init_network(data, m, scale, seed=seed)
    ref_flow = rf.gradient_flow(data, net, rtol=1e-11)
    t_end = float(np.nanmax(ref_flow.activation_t)) * 1.05
    ref = _reference_activation_times(data, net, t_end, activation_level(data))
    assert np.isfinite(ref).sum() >= 2
    for rtol, tol in ((1e-8, 1e-8), (1e-10, 1e-10)):
        tr = rf.gradient_flow(data, net, rtol=rtol)
        np.testing.assert_array_equal(np.isnan(tr.activation_t), np.isnan(ref))
        err = np.nanmax(np.abs(tr.activation_t - ref) / ref)
        assert err < tol, (rtol, err)


def test_sweeps_take_any_scale_and_store_its_log10():
    from reluflow.sweep.config import normalize_config, run_id
    from reluflow.sweep.runs import run_config

    base = {"dynamics": "flow", "n": 16, "m": 6, "seed": 1}
    tiny = normalize_config({**base, "lambda": "1e-1000"})
    assert tiny["log10_scale"] == -1000 and "scale" not in tiny
    assert run_id({**base, "log10_scale": -1000}) == run_id({**base, "scale": "1e-1000"})
    # representable scales keep their float spelling (and their run ids)
    assert normalize_config({**base, "log10_scale": -8})["scale"] == 1e-8
    with pytest.raises(rf.InputError, match="not both"):
        normalize_config({**base, "scale": 1e-8, "log10_scale": -8})
    rec = run_config({**base, "scale": "1e-1000"})
    direct = rf.gradient_flow(
        rf.orthogonal_data(16, seed=1),
        rf.init_network(rf.orthogonal_data(16, seed=1), 6, "1e-1000", seed=1),
    )
    assert rec.results["log10_scale"] == -1000
    assert rec.results["norm_sq"] == pytest.approx(
        direct.final.norm_sq(rf.orthogonal_data(16, seed=1))
    )
