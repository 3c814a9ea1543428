"""The benchmarks cannot rot: the PyTorch baseline against reluflow's own gradient descent
(same iteration, same trajectory: a correctness test of the default run), and, behind the
``bench`` marker (``pytest -m bench``, run separately by CI), their smoke mode at tiny sizes:
the step rule, the size ladders and the measurement in a child process."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import bench_torch as BT  # noqa: E402
import run_all  # noqa: E402

from reluflow import gradient_descent, gradient_flow, jump_process, orthogonal_data  # noqa: E402


def test_explicit_init_is_the_same_point():
    """X (d = n) and W reproduce init_network's reduced coordinates, W Xᵀ = u, balanced a."""
    for norms in (1.0, "uniform"):
        data = BT.orthogonal_data(20, norms=norms, seed=3)
        net = BT.init_network(data, 7, 1e-8, seed=5)
        X, W, a = BT.explicit_init(data, net)
        assert X.shape == (20, 20) and W.shape == (7, 20)
        np.testing.assert_allclose(X @ X.T, np.diag(data.sq_norms()), atol=1e-15)
        np.testing.assert_allclose(W @ X.T, net.u, rtol=1e-13, atol=1e-13 * np.abs(net.u).max())
        np.testing.assert_array_equal(a, net.a)
        assert np.all(net.w_perp_sq == 0)
        np.testing.assert_allclose(np.linalg.norm(W, axis=1), np.abs(a), rtol=1e-13)


def test_record_steps_are_reluflow_descent_samples():
    data, net = BT.problem(24, 8)
    lr, steps = 0.05, 3000
    tr = gradient_descent(data, net, lr, steps=steps, check_stability=False, stall_rate=0.0,
                          loss_tol=0.0, points_per_decade=BT.REC_PPD)
    ks = np.flatnonzero(BT.record_steps(data, lr, steps))
    ks = np.union1d(ks, [steps])
    np.testing.assert_array_equal(tr.t, ks * lr)


def test_torch_descent_equals_reluflow_descent():
    """Loss (1/2n)Σr², relu'(0) = 0 and θ ← θ − η∇L: torch GD with step η and reluflow's
    gradient_descent with step η give the same trajectory, sample by sample."""
    pytest.importorskip("torch")
    data, net = BT.problem(24, 8)
    lr, steps = 0.05, 6000
    tr = gradient_descent(data, net, lr, steps=steps, check_stability=False, stall_rate=0.0,
                          loss_tol=0.0, points_per_decade=BT.REC_PPD)
    X, W, a = BT.explicit_init(data, net)
    out = BT.torch_descent(X, data.y, a, W, lr, max_steps=steps, target_loss=-1.0,
                           rec_at=BT.record_steps(data, lr, steps))
    tt = BT.torch_trajectory(data, net, X, out, lr)
    assert out["steps"] == steps and out["status"] == "max_steps"
    size = np.abs(tr.final.a).max()
    assert size > 0.5  # neurons activated: the run went through its saddles
    np.testing.assert_allclose(tt.final.a, tr.final.a, rtol=0, atol=1e-12 * size)
    np.testing.assert_allclose(tt.final.u, tr.final.u, rtol=0, atol=1e-12 * size)
    np.testing.assert_array_equal(tt.t, tr.t)
    np.testing.assert_allclose(tt.a_abs, tr.a_abs, rtol=1e-9, atol=0)
    np.testing.assert_allclose(tt.w_norm, tr.w_norm, rtol=1e-9)
    np.testing.assert_array_equal(tt.n_active, tr.n_active)
    np.testing.assert_allclose(tt.loss, tr.loss, rtol=1e-9)
    ev_torch, ev_rf = BT.event_times(tt), BT.event_times(tr)
    assert ev_rf.size >= 5
    np.testing.assert_allclose(ev_torch, ev_rf, rtol=1e-10)
    # and the loss convention: torch's loss is the one reluflow reports
    assert math.isclose(out["rec_loss"][0], net.loss(data), rel_tol=1e-12)


@pytest.mark.bench
def test_step_selection_small():
    """The chosen step's activation times are within 1 % of an independent tight flow; twice
    the step fails the rule."""
    prep = BT.prepare(16)
    ref, sel = prep["ref"], prep["step"]
    assert ref["k"] == min(BT.K_EVENTS, len(ref["events"])) > 0
    by_lr = {t["lr"]: t for t in sel["trials"]}
    assert by_lr[sel["lr"]]["ok"] and not by_lr[2 * sel["lr"]]["ok"]
    data, net = BT.problem(16, ref["m"])
    truth = BT.event_times(gradient_flow(data, net, rtol=1e-12))
    gd = gradient_descent(data, net, sel["lr"], t_max=ref["t_end"], check_stability=False)
    err = BT.event_error(BT.event_times(gd), truth, ref["k"])
    assert err <= BT.EVENT_RTOL
    # descent's event lag is first order in the step: the rule did not pick a needlessly small one
    assert err > BT.EVENT_RTOL / 8


def _check_ladder(r: dict) -> None:
    """Sizes double; the largest n is the last one that ran within the limit; the stop is said."""
    ns = [p["n"] for p in r["points"]]
    assert ns and all(b == 2 * a for a, b in zip(ns, ns[1:], strict=False))
    ok = [p["n"] for p in r["points"] if p["status"] in ("ok", "estimated")]
    assert r["largest_n"] == (max(ok) if ok else None)
    if r["stopped_by"] in ("time", "memory"):
        assert r["points"][-1]["status"] != "ok" or r["points"][-1]["estimated"]


@pytest.mark.bench
def test_smoke_without_torch(tmp_path):
    """Parts 2 and 3 (flow, jump process, NumPy baseline) never need torch."""
    out = tmp_path / "r.json"
    assert run_all.main(["--smoke", "--inprocess", "--skip-torch", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["part1"] == {"skipped": "--skip-torch"}
    rows = res["part2"]["rows"]
    assert [r["n"] for r in rows] == [10**3, 10**4] and all(r["agree"] for r in rows)
    methods = {m["method"]: m for m in res["part3"]["methods"]}
    assert "skipped" in methods["torch"]
    for name in ("flow", "limit", "limit_baseline"):
        assert methods[name]["largest_n"] is not None
        _check_ladder(methods[name])
    # part 2's rows: the jump process and the baseline found the same events at each n
    assert all(r["events"] >= 1 for r in rows)


@pytest.mark.bench
def test_smoke_torch(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "r.json"
    assert run_all.main(["--smoke", "--inprocess", "--parts", "1", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["part1"]["rows"]
    assert [r["n"] for r in rows] == list(BT.SMOKE_SIZES)
    for r in rows:
        assert r["torch_checked"] is True  # the torch run itself: same events within 1 %
        assert r["flow_event_err"] <= BT.EVENT_RTOL
        assert not r["extrapolated"]
        assert r["gd_event_err"] <= BT.EVENT_RTOL  # the step torch ran meets the 1 % rule
        assert r["torch"]["peak_rss_mib"] >= r["torch"].get("rss_before_mib", 0.0)


@pytest.mark.bench
def test_measurement_in_a_child_process():
    """The isolated path: a fresh process computes what this one does and reports its own
    peak; past the limit it is stopped."""
    res = run_all.measure("limit", {"n": 2000, "m": 16}, {"inprocess": False})
    here = jump_process(orthogonal_data(2000, seed=0), 16, seed=0)
    assert res["isolated"] and res["events"] == here.n_events
    assert res["interpolates"] is here.interpolates
    assert res["peak_rss_mib"] >= res["rss_before_mib"] > 0
    res = run_all.measure("limit_baseline", {"n": 3 * 10**6, "m": 80}, {"inprocess": False},
                          limit_s=0.01)
    assert res.get("timed_out") is True and res["wall_s_lower_bound"] >= 0.01
