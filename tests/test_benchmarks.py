"""The benchmarks cannot rot: their smoke mode at tiny sizes, and the PyTorch baseline
against reluflow's own gradient descent (same iteration, same trajectory)."""

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

from reluflow import gradient_descent  # noqa: E402


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


def test_step_selection_small():
    """The chosen step passes and twice it fails; the flow itself meets the 1 % target."""
    prep = BT.prepare(16)
    ref, sel = prep["ref"], prep["step"]
    assert ref["k"] == min(BT.K_EVENTS, len(ref["events"])) > 0
    by_lr = {t["lr"]: t for t in sel["trials"]}
    assert by_lr[sel["lr"]]["ok"] and not by_lr[2 * sel["lr"]]["ok"]
    assert by_lr[sel["lr"]]["event_err"] <= BT.EVENT_RTOL


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
        assert all(p["wall_s"] > 0 for p in methods[name]["points"])


def test_smoke_torch(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "r.json"
    assert run_all.main(["--smoke", "--inprocess", "--parts", "1", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["part1"]["rows"]
    assert [r["n"] for r in rows] == list(BT.SMOKE_SIZES)
    for r in rows:
        assert r["torch_checked"] is True  # the torch run itself: same events within 1 %
        assert r["flow_event_err"] <= BT.EVENT_RTOL
        assert r["ratio"] > 0 and not r["extrapolated"]
        assert r["torch"]["peak_rss_mib"] > 0 and r["flow"]["peak_rss_mib"] > 0


def test_measurement_in_a_child_process():
    """The isolated path: a fresh process reports its own peak; past the limit it is stopped."""
    res = run_all.measure("limit", {"n": 2000, "m": 16}, {"inprocess": False})
    assert res["isolated"] and res["wall_s"] > 0 and res["peak_rss_mib"] > 0
    res = run_all.measure("limit_baseline", {"n": 3 * 10**6, "m": 80}, {"inprocess": False},
                          limit_s=0.01)
    assert res.get("timed_out") is True and res["wall_s_lower_bound"] is not None
