"""Sweeps: spec validation (key and line), deterministic runs, SIGKILL and resume, concurrent sweeps."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
from _stores import assert_same_results

from reluflow.cli import main
from reluflow.errors import InputError
from reluflow.store import ResultsStore
from reluflow.sweep import expand_spec, load_spec, normalize_config, run_config, run_id, run_sweep
from reluflow.sweep import runs as S

# Columns that legitimately differ between two computations of the same run.


def cli(*argv: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """``reluflow ARGV`` in a fresh interpreter."""
    code = "import sys; from reluflow.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=timeout, **kw
    )


def write(path, text: str):
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


# --------------------------------------------------------------------------- specs


def test_grid_expansion_is_a_deterministic_product(tmp_path):
    spec = write(
        tmp_path / "g.toml",
        """
        experiment = "grid"
        dynamics = ["flow", "limit"]
        n = [8, 16]
        m = 4
        "λ" = [1e-4, 1e-8]
        seeds = "3:6"
        [solver]
        rtol = 1e-9
        """,
    )
    runs = expand_spec(spec)
    # flow: 2 n x 2 scales x 3 seeds; limit ignores the scale and the flow's rtol: 2 x 3
    assert len(runs) == 12 + 6
    assert runs == expand_spec(load_spec(spec))
    assert [r["seed"] for r in runs[:3]] == [3, 4, 5]  # seeds innermost
    flow = [r for r in runs if r["dynamics"] == "flow"]
    assert all(r["rtol"] == 1e-9 and r["experiment"] == "grid" for r in flow)
    assert all("scale" not in r and "rtol" not in r for r in runs if r["dynamics"] == "limit")
    assert len({run_id(r) for r in runs}) == len(runs)
    # the same run however it is written: aliases, defaults, int vs float
    a = normalize_config({"dynamics": "flow", "n": 8, "m": 4, "lambda": 0.0001, "t_max": 10})
    b = normalize_config(
        {"dynamics": "flow", "n": 8.0, "m": 4, "scale": 1e-4, "d": 8, "t_max": 10.0}
    )
    assert run_id(a) == run_id(b)
    yaml_spec = write(
        tmp_path / "g.yaml",
        """
        experiment: grid
        dynamics: [flow, limit]
        n: [8, 16]
        m: 4
        lambda: [1.0e-4, 1.0e-8]
        seeds: [3, 4, 5]
        solver: {rtol: 1.0e-9}
        """,
    )
    assert expand_spec(yaml_spec) == runs


BAD_SPECS = [
    # (spec text, key named, line named, words in the message)
    ('dynamics = "limit"\nn = 8\nm = 4\nwidht = 3\n', "widht", 4, "unknown key"),
    ('dynamics = "limit"\nn = "eight"\nm = 4\n', "n", 2, "integer"),
    ('dynamics = "limit"\nn = 8\nm = []\n', "m", 3, "empty"),
    ('dynamics = "limit"\nn = 8\nm = [4, 0]\n', "m", 3, ">= 1"),
    ('dynamics = "flow"\nn = 8\nm = 4\nscale = -1e-3\n', "scale", 4, "> 0"),
    ('dynamics = "limit"\nn = 8\nm = 4\nseeds = "5:5"\n', "seeds", 4, "empty"),
    ('dynamics = "limit"\nn = 8\nm = 4\ndata = "gaussian"\nd = 64\n', "data", 4, "orthogonal"),
    ('dynamics = "limit"\nn = 16\nd = 8\nm = 4\n', "d", 3, ">= n"),
    ('dynamics = "flow"\nn = 8\nm = 4\n', "scale", None, "needs scale"),
    ('dynamics = "flow"\nn = 8\nm = 4\nscale = 1e-6\nlr = 0.1\n', "lr", 5, "descent"),
    ('dynamics = "limit"\nn = 8\nm = 4\n[solver]\nrtool = 1e-8\n', "solver.rtool", 5, "unknown"),
    ('dynamics = "sgd"\nn = 8\nm = 4\n', "dynamics", 1, "flow"),
    (
        'dynamics = "limit"\nn = 8\nm = 4\n[execution]\nworkers = 0\n',
        "execution.workers",
        5,
        ">= 1",
    ),
]


@pytest.mark.parametrize(("text", "key", "line", "words"), BAD_SPECS)
def test_invalid_specs_name_the_key_and_line(tmp_path, text, key, line, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        expand_spec(path)
    msg = str(err.value)
    assert f"'{key}'" in msg and words in msg, msg
    if line is not None:
        assert f"line {line}" in msg, msg


def test_invalid_yaml_spec_names_the_line(tmp_path):
    path = write(tmp_path / "bad.yaml", "dynamics: limit\nn: 8\nm: 4\nlabels: balnced\n")
    with pytest.raises(InputError, match=r"line 4: key 'labels'.*'balanced'"):
        load_spec(path)
    write(tmp_path / "syntax.yaml", "dynamics: limit\nn: [8, 16\nm: 4\n")
    with pytest.raises(InputError, match="line"):
        load_spec(tmp_path / "syntax.yaml")
    write(tmp_path / "syntax.toml", 'dynamics = "limit"\nn = [8, 16\n')
    with pytest.raises(InputError, match="not valid TOML"):
        load_spec(tmp_path / "syntax.toml")


def test_cli_refuses_an_invalid_spec_before_running(tmp_path, capsys):
    spec = write(tmp_path / "bad.toml", 'dynamics = "limit"\nn = 8\nm = 4\nseeds = -3\n')
    store = tmp_path / "s.sqlite"
    assert main(["sweep", str(spec), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "line 4" in err and "'seeds'" in err and "Traceback" not in err
    assert not store.exists()


# --------------------------------------------------------------------------- runs


def _explicit_min_norm(data) -> float:
    """The smallest interpolating ‖θ‖², built: one balanced neuron per label sign with
    w± ∝ Σ_{±y_i>0} (y_i/‖x_i‖²) x_i, checked to interpolate on the explicit X."""
    X, y = data.to_array(), data.y
    a, W = [], []
    for side in (y > 0, y < 0):
        v = ((y * side / data.sq_norms())[:, None] * X).sum(axis=0)  # v·x_i = y_i on its side
        c = np.linalg.norm(v) ** -0.5  # a = 1/c, w = c v: balanced, a w·x_i = y_i
        a.append(np.sign(y[side][0]) / c)
        W.append(c * np.sign(y[side][0]) * v)
    a, W = np.array(a), np.array(W)
    np.testing.assert_allclose(a @ np.maximum(W @ X.T, 0), y, atol=1e-12)
    return float((a**2).sum() + (W**2).sum())


def _final_network(cfg):
    """The run's final network, recomputed through the public API on the same seed."""
    import reluflow as rf

    data = rf.orthogonal_data(
        cfg["n"], cfg["d"], labels=cfg["labels"], norms=cfg["norms"], seed=cfg["seed"]
    )
    if cfg["dynamics"] == "limit":
        return data, rf.jump_process(data, cfg["m"], seed=cfg["seed"]).network
    net = rf.init_network(data, cfg["m"], cfg["scale"], seed=cfg["seed"])
    if cfg["dynamics"] == "flow":
        return data, rf.gradient_flow(data, net).final
    return data, rf.gradient_descent(data, net, cfg["lr"], steps=cfg["steps"]).final


@pytest.mark.parametrize(
    "config",
    [
        {"dynamics": "limit", "n": 48, "m": 6, "seed": 1},
        {"dynamics": "limit", "n": 16, "m": 12, "seed": 4, "labels": "gaussian",
         "norms": "uniform"},
        {"dynamics": "flow", "n": 12, "m": 5, "scale": 1e-5, "seed": 2},
        {"dynamics": "flow", "n": 12, "m": 12, "scale": 1e-5, "seed": 2},
        {"dynamics": "descent", "n": 12, "m": 5, "scale": 1e-5, "lr": 0.5, "steps": 400},
    ],
    ids=["limit", "limit-interpolating", "flow", "flow-interpolating", "descent"],
)  # fmt: skip
def test_run_config_is_deterministic_and_consistent(config):
    a, b = run_config(config), run_config(dict(config))
    assert a.run_id == b.run_id == run_id(config)
    assert {k: v for k, v in a.results.items() if k != "run_wall_s"} == {
        k: v for k, v in b.results.items() if k != "run_wall_s"
    }
    for k in a.arrays:
        assert (
            a.arrays[k].tobytes() == b.arrays[k].tobytes()
            and a.arrays[k].dtype == b.arrays[k].dtype
        )
    r, x = a.results, a.arrays
    # interpolates, norm_sq and ratio from the final network's explicit weights and outputs
    # and the minimal norm built from the data, not from the definitions in run_config
    cfg = normalize_config(config)
    data, net = _final_network(cfg)
    X = data.to_array()
    W = (net.u / data.sq_norms()) @ X  # u = W Xᵀ with d = n: W = u K⁻¹ X
    out = net.a @ np.maximum(W @ X.T, 0)
    residual = np.abs(out - data.y).max() / np.abs(data.y).max()
    assert residual < 1e-4 or residual > 1e-2  # no borderline case
    assert r["interpolates"] is bool(residual < 1e-4)
    norm_sq = float((net.a**2).sum() + (W**2).sum())
    assert r["norm_sq"] == pytest.approx(norm_sq, rel=1e-9)
    min_norm = _explicit_min_norm(data)
    assert r["min_norm_sq"] == pytest.approx(min_norm, rel=1e-12)
    if r["interpolates"]:
        assert r["ratio"] == pytest.approx(norm_sq / min_norm, rel=1e-9)
        assert r["ratio"] >= 1 - 1e-9 and r["ratio_note"] == ""
    else:
        assert math.isnan(r["ratio"]) and "does not interpolate" in r["ratio_note"]
    if config["dynamics"] == "limit":
        assert len(x["tau"]) == r["n_events"] and np.all(np.diff(x["tau"]) >= 0)
        # the plateaus fall by the fitted samples' share of the loss
        drops = -np.diff(np.concatenate([[x["initial_loss"]], x["plateau_loss"]]))
        fitted = np.abs(out - data.y) < 1e-6 * np.abs(data.y)
        assert drops.sum() == pytest.approx((data.y[fitted] ** 2).sum() / (2 * cfg["n"]))
    else:
        assert x["a_abs"].dtype == np.float64 and x["a_abs"].shape == (len(x["t"]), config["m"])
        np.testing.assert_array_equal(x["a_abs"][-1], np.abs(net.a))
        assert x["loss"][-1] == r["final_loss"] and len(x["event_tau"]) == r["n_events"]
        assert np.allclose(x["tau"], x["t"] / np.log(1 / config["scale"]))
        if config["dynamics"] == "flow":
            assert r["conservation_drift"] < 1e-6


def test_failed_runs_are_reported_and_not_stored(tmp_path, monkeypatch):
    real = S.run_config

    def flaky(config):
        if config["seed"] == 1:
            raise RuntimeError("solver exploded")
        return real(config)

    monkeypatch.setattr(S, "run_config", flaky)
    spec = {"dynamics": "limit", "n": 16, "m": 4, "seeds": 3}
    # a batch of three runs: the failure of one does not lose the others
    summary = run_sweep(spec, tmp_path / "s.sqlite", workers=1, batch=3, progress=False)
    assert (summary.total, summary.ran, summary.failed) == (3, 2, 1)
    assert "solver exploded" in summary.failures[0][1]
    monkeypatch.setattr(S, "run_config", real)
    again = run_sweep(spec, tmp_path / "s.sqlite", workers=1, progress=False)
    assert (again.skipped, again.ran, again.failed) == (2, 1, 0)


# --------------------------------------------------------------------------- crash safety

# ~0.1 s per run: long enough to kill the sweep in the middle
SLOW_SPEC = """
experiment = "killed"
dynamics = "limit"
n = 100000
m = 48
labels = "gaussian"
seeds = "0:36"
"""


def _count(path) -> int:
    if not path.exists():
        return 0
    try:
        with ResultsStore(path, create=False) as s:
            return len(s)
    except Exception:  # the schema may not exist yet
        return 0


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigkill_mid_sweep_then_resume_runs_each_run_once(tmp_path):
    spec = write(tmp_path / "slow.toml", SLOW_SPEC)
    store = tmp_path / "killed.sqlite"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from reluflow.cli import main; sys.exit(main(sys.argv[1:]))",
            "sweep",
            str(spec),
            "--store",
            str(store),
            "--workers",
            "2",
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a process group of its own: the driver and its workers
    )
    try:
        deadline = time.monotonic() + 60
        while _count(store) < 6:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the sweep wrote nothing in 60 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # the driver, in the middle of the sweep
        proc.wait()
        deadline = time.monotonic() + 15
        while _group_alive(proc.pid):  # its orphaned workers notice and exit
            assert time.monotonic() < deadline, "worker processes outlived the driver"
            time.sleep(0.1)
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with ResultsStore(store) as s:
        killed_at = len(s)
        assert s.integrity_ok()
    assert 6 <= killed_at < 36, killed_at

    res = cli("sweep", str(spec), "--store", str(store), "--workers", "2", "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["total"] == 36 and summary["failed"] == 0
    assert summary["skipped"] >= killed_at and summary["skipped"] + summary["ran"] == 36
    with ResultsStore(store) as s:
        assert s.integrity_ok()
        df = s.frame()
        assert len(df) == 36 and df.run_id.is_unique and sorted(df.seed) == list(range(36))

    reference = tmp_path / "reference.sqlite"
    run_sweep(spec, reference, workers=1, progress=False)
    assert_same_results(store, reference)


def test_two_sweeps_on_one_store(tmp_path):
    """Two sweeps with overlapping runs write into one store at the same time."""
    base = 'experiment = "both"\ndynamics = "limit"\nn = 300\nm = [4, 8]\n'
    spec_a = write(tmp_path / "a.toml", base + 'seeds = "0:150"\n')
    spec_b = write(tmp_path / "b.toml", base + 'seeds = "75:225"\n')
    store = tmp_path / "shared.sqlite"
    code = "import sys; from reluflow.cli import main; sys.exit(main(sys.argv[1:]))"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                "sweep",
                str(s),
                "--store",
                str(store),
                "--workers",
                "1",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in (spec_a, spec_b)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    summaries = [json.loads(o[0]) for o in outs]
    assert sum(s["written"] for s in summaries) == 2 * 225  # overlapping runs written once
    with ResultsStore(store) as s:
        assert s.integrity_ok()
        df = s.frame()
    assert len(df) == 450 and df.run_id.is_unique


# --------------------------------------------------------------------------- results CLI


def test_results_cli_lists_filters_and_exports(tmp_path, capsys):
    spec = write(
        tmp_path / "r.toml", 'experiment = "r"\ndynamics = "limit"\nn = 32\nm = [2, 8]\nseeds = 3\n'
    )
    store = tmp_path / "r.sqlite"
    assert main(["sweep", str(spec), "--store", str(store), "--workers", "1", "-q"]) == 0
    assert "6 ran" in capsys.readouterr().out
    assert main(["sweep", str(spec), "--store", str(store), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == 6

    assert main(["results", str(store), "--where", "m = 8", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    df = pd.read_csv(__import__("io").StringIO(out))
    assert len(df) == 3 and set(df.m) == {8} and {"run_id", "ratio", "version"} <= set(df.columns)

    assert main(["results", str(store), "--format", "json", "--columns", "run_id,seed,ratio"]) == 0
    rows = json.loads(capsys.readouterr().out)
    with ResultsStore(store) as s:
        ref = s.frame()
    assert [r["ratio"] for r in rows] == list(ref.ratio)  # floats exact through JSON

    pq = tmp_path / "r.parquet"
    assert main(["results", str(store), "-o", str(pq)]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(pq), ref, check_dtype=False)

    assert main(["results", str(store)]) == 0
    assert "run_id" in capsys.readouterr().out
    assert main(["results", str(tmp_path / "none.sqlite")]) == 2
    assert main(["results", str(store), "--where", "bogus > 1"]) == 2
    assert "bogus" in capsys.readouterr().err
