"""Sweeps: spec validation (key and line), deterministic runs, SIGKILL and resume, concurrent sweeps."""

from __future__ import annotations

import io
import json
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

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
        np.testing.assert_allclose(x["a_abs"][-1], np.abs(net.a), rtol=1e-13)
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

KILL_RUNS = 36
# ~20 ms per run (no ties: Gaussian labels): a sweep lasts long enough to be killed in it
KILL_SPEC = f"""
experiment = "killed"
dynamics = "limit"
n = 8000
m = 48
labels = "gaussian"
seeds = {KILL_RUNS}
"""
# A sweep driver (two pool workers) that says what it writes: "mid-write" when it is
# about to execute its HOLD-th INSERT, inside the run's transaction, and then waits there
# to be killed; "written RUN_ID" when the store's put has returned; the summary at the end.
DRIVER = """
import json, sys, time
from reluflow.store import ResultsStore
from reluflow.sweep import run_sweep
spec, path, hold = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = ResultsStore(path)
inserts = 0
def trace(statement):
    global inserts
    if statement.startswith("INSERT"):
        inserts += 1
        if inserts == hold:
            print("mid-write", flush=True)
            time.sleep(600)
store._con.set_trace_callback(trace)
put = store.put
def reporting_put(record):
    new = put(record)
    print("written", record.run_id, flush=True)
    return new
store.put = reporting_put
summary = run_sweep(spec, store, workers=2, progress=False)
print("summary", json.dumps(summary.as_dict()), flush=True)
"""


class Driver:
    """The DRIVER in a subprocess (its own process group), read line by line."""

    def __init__(self, spec, store, hold: int = 0):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", DRIVER, str(spec), str(store), str(hold)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        self.written: set[str] = set()
        self.summary: dict | None = None

    def read_until(self, stop) -> str:
        """Read lines until ``stop(line)``; the line."""
        for line in self.proc.stdout:
            if line.startswith("written "):
                self.written.add(line.split()[1])
            elif line.startswith("summary "):
                self.summary = json.loads(line.split(" ", 1)[1])
            if stop(line):
                return line
        self.proc.wait()
        raise AssertionError(
            f"the driver ended ({self.proc.returncode}): {self.proc.stderr.read()}"
        )

    def kill(self) -> None:
        """SIGKILL the driver alone; its pool workers must notice and exit by themselves."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        deadline = time.monotonic() + 15
        try:
            while _group_alive(self.proc.pid):
                assert time.monotonic() < deadline, "worker processes outlived the driver"
                time.sleep(0.05)
        finally:
            if _group_alive(self.proc.pid):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.stdout.close()
        self.proc.stderr.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _committed(store) -> set[str]:
    """The runs another connection sees (only committed transactions are visible)."""
    if not store.exists():
        return set()
    con = sqlite3.connect(store, isolation_level=None)
    try:
        return {r[0] for r in con.execute("SELECT run_id FROM runs")}
    except sqlite3.OperationalError:  # no schema yet
        return set()
    finally:
        con.close()


def _survivors(store) -> set[str]:
    with ResultsStore(store) as s:
        assert s.integrity_ok(), "a run without its arrays (or a damaged file)"
        return s.done_ids()


@pytest.fixture(scope="module")
def kill_spec(tmp_path_factory):
    """The spec, and the reference: its runs computed in this process."""
    folder = tmp_path_factory.mktemp("kill")
    spec = write(folder / "spec.toml", KILL_SPEC)
    run_sweep(spec, folder / "reference.sqlite", workers=1, progress=False)
    return spec, folder / "reference.sqlite"


def test_driver_killed_at_random_instants_keeps_every_committed_run(kill_spec, tmp_path):
    """Three SIGKILLs of the driver (inside a write's transaction, before its row and between
    its row and its arrays, and at a random instant), each followed by a resume; every run committed before a kill survives it,
    no run is ever half-written, and the end is the reference, each run once."""
    spec, reference = kill_spec
    store = tmp_path / "killed.sqlite"
    rng = np.random.default_rng(15)
    for kind in ("mid-write row", "any instant", "mid-write arrays"):
        before = _survivors(store) if store.exists() else set()
        if kind.startswith("mid-write"):
            # a few runs in, this driver's INSERT of a row (odd) or of its arrays (even)
            hold = 2 * int(rng.integers(2, 8)) + (1 if kind.endswith("row") else 2)
            driver = Driver(spec, store, hold=hold)
            driver.read_until(lambda line: line.startswith("mid-write"))
            committed = _committed(store)
            driver.kill()
            # blocked inside a transaction: exactly the runs whose put returned are there
            assert committed == before | driver.written
            assert _survivors(store) == committed, f"kill in INSERT {hold}"
        else:
            driver = Driver(spec, store)
            n = int(rng.integers(2, 8))
            driver.read_until(lambda line, d=driver, n=n: len(d.written) >= n)
            time.sleep(float(rng.uniform(0.0, 0.15)))
            committed = _committed(store) | driver.written
            driver.kill()
            assert committed <= _survivors(store)
        assert len(_survivors(store)) < KILL_RUNS, f"the {kind} kill came after the end"

    killed_at = _survivors(store)
    driver = Driver(spec, store)
    driver.read_until(lambda line: line.startswith("summary "))
    driver.proc.wait()
    s = driver.summary
    assert (s["total"], s["skipped"], s["failed"]) == (KILL_RUNS, len(killed_at), 0)
    assert s["ran"] == KILL_RUNS - len(killed_at)  # only what was missing
    with ResultsStore(store) as db:
        assert db.integrity_ok()
        df = db.frame()
    assert len(df) == KILL_RUNS and df.run_id.is_unique
    assert_same_results(store, reference)


def _pool_workers(parent: int) -> list[int]:
    """The pids of the worker processes of ``parent``'s process pool (not its helpers)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()  # noqa: SIM115
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read()  # noqa: SIM115
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            out.append(int(entry))
    return out


def test_killed_pool_worker_loses_no_run(kill_spec, tmp_path):
    """SIGKILL one worker of the local pool, twice, at seeded random moments: the runs it
    held run again, none is dropped or written twice, and the sweep ends complete."""
    spec, reference = kill_spec
    store = tmp_path / "pool.sqlite"
    rng = np.random.default_rng(12)
    driver = Driver(spec, store)
    victims = []
    for _ in range(2):
        n = len(driver.written) + int(rng.integers(3, 8))
        driver.read_until(lambda line, n=n: len(driver.written) >= n)
        workers = sorted(_pool_workers(driver.proc.pid))
        assert len(workers) == 2, workers
        victim = workers[int(rng.integers(len(workers)))]
        committed = _committed(store) | driver.written
        os.kill(victim, signal.SIGKILL)
        victims.append((victim, len(committed)))
        assert committed <= _committed(store)
    driver.read_until(lambda line: line.startswith("summary "))
    driver.proc.wait()
    assert driver.proc.returncode == 0
    assert all(n < KILL_RUNS for _, n in victims), f"the kills came after the end: {victims}"
    s = driver.summary
    assert (s["total"], s["ran"], s["written"], s["failed"]) == (KILL_RUNS,) * 3 + (0,)
    with ResultsStore(store) as db:
        assert db.integrity_ok()
        df = db.frame()
    assert len(df) == KILL_RUNS and df.run_id.is_unique
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
    df = pd.read_csv(io.StringIO(out))
    assert len(df) == 3 and set(df.m) == {8} and {"run_id", "ratio", "version"} <= set(df.columns)

    assert (
        main(["results", str(store), "--format", "json", "--columns", "run_id,norm_sq,ratio"]) == 0
    )
    rows = json.loads(capsys.readouterr().out)
    with ResultsStore(store) as s:
        ref = s.frame(order="parameters")
    assert [r["run_id"] for r in rows] == list(ref.run_id)
    assert [r["norm_sq"] for r in rows] == list(ref.norm_sq)  # floats exact through JSON
    assert [r["ratio"] for r in rows] == [None if math.isnan(v) else v for v in ref.ratio]

    pq = tmp_path / "r.parquet"
    assert main(["results", str(store), "-o", str(pq)]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(pq), ref, check_dtype=False)

    assert main(["results", str(store)]) == 0
    assert "run_id" in capsys.readouterr().out
    assert main(["results", str(tmp_path / "none.sqlite")]) == 2
    assert main(["results", str(store), "--where", "bogus > 1"]) == 2
    assert "bogus" in capsys.readouterr().err


# --------------------------------------------------------------------------- spec names, dry run


def test_scale_is_the_canonical_name_and_lambda_an_alias(tmp_path):
    base = 'experiment = "s"\ndynamics = "flow"\nn = 6\nm = 3\nseeds = 2\n'
    canonical = write(tmp_path / "scale.toml", base + "scale = [1e-4, 1e-6]\n")
    alias = write(tmp_path / "lambda.toml", base + "lambda = [1e-4, 1e-6]\n")
    assert expand_spec(alias) == expand_spec(canonical)
    # the same checks under either name, the message naming the key as written
    for key in ("scale", "lambda"):
        bad = write(tmp_path / f"bad_{key}.toml", base + f"{key} = [1e-4, -1e-6]\n")
        with pytest.raises(InputError, match=rf"line 6: key '{key}'.*> 0"):
            expand_spec(bad)
    both = write(tmp_path / "both.toml", base + "scale = 1e-4\nlambda = 1e-6\n")
    with pytest.raises(InputError, match="given twice"):
        expand_spec(both)
    # one name in the store, whichever the spec used
    store = tmp_path / "s.sqlite"
    run_sweep(alias, store, workers=1, progress=False)
    with ResultsStore(store) as s:
        df = s.frame()
        configs = [s.record(r).config for r in df.run_id]
    assert "scale" in df.columns and "lambda" not in df.columns
    assert all("scale" in c and "lambda" not in c for c in configs)
    # the examples use the canonical name
    examples = Path(__file__).resolve().parents[1] / "examples"
    for f in examples.glob("*.*ml"):
        assert not re.search(r"^\s*(lambda|\"?λ\"?)\s*[:=]", f.read_text(), re.M), f


def test_dry_run_lists_every_run_then_the_count(tmp_path, capsys):
    spec = write(
        tmp_path / "d.toml",
        'experiment = "d"\ndynamics = "limit"\nn = 16\nm = [2, 4]\nseeds = "0:3"\n',
    )
    store = tmp_path / "d.sqlite"
    runs = expand_spec(spec)
    ids = [run_id(c) for c in runs]
    run_sweep(runs[:2], store, workers=1, progress=False)  # two of six already done

    assert main(["sweep", str(spec), "--store", str(store), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = [ln for ln in lines if not ln.startswith("#")][:-1]
    assert [ln.split()[0] for ln in listed] == ids  # every run, in grid order
    assert [ln.split()[1] for ln in listed] == ["done"] * 2 + ["todo"] * 4
    assert "m=2" in listed[0] and "seed=0" in listed[0] and "m=4 seed=2" in listed[-1]
    assert "6 runs, 2 already in" in lines[-1] and "4 to run" in lines[-1]

    assert main(["sweep", str(spec), "--store", str(store), "--dry-run", "--json"]) == 0
    rows = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert [r["run_id"] for r in rows[:-1]] == ids
    assert [r["config"] for r in rows[:-1]] == runs
    assert [r["done"] for r in rows[:-1]] == [True, True, False, False, False, False]
    assert {k: rows[-1][k] for k in ("total", "done", "todo")} == {"total": 6, "done": 2, "todo": 4}
    with ResultsStore(store) as s:
        assert len(s) == 2  # nothing ran

    fresh = tmp_path / "never.sqlite"
    assert main(["sweep", str(spec), "--store", str(fresh), "--dry-run"]) == 0
    assert "6 to run" in capsys.readouterr().out and not fresh.exists()


# --------------------------------------------------------------------------- results order, filters


def test_results_come_sorted_by_parameters_whatever_the_write_order(tmp_path, capsys):
    runs = expand_spec(
        {"experiment": "o", "dynamics": "limit", "n": 12, "m": [8, 2, 4], "seeds": 3}
    )
    shuffled = [runs[i] for i in np.random.default_rng(0).permutation(len(runs))]
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    run_sweep(runs[::-1], a, workers=1, progress=False)
    run_sweep(shuffled, b, workers=1, progress=False)
    outs = []
    for store in (a, b):
        assert main(["results", str(store), "--columns", "run_id,m,seed", "--format", "csv"]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1]
    df = pd.read_csv(io.StringIO(outs[0]))
    assert list(zip(df.m, df.seed, strict=True)) == [(m, s) for m in (2, 4, 8) for s in range(3)]
    # the order they were written, on request
    assert main(["results", str(a), "--columns", "m", "--order", "written", "--format", "csv"]) == 0
    written = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(written.m) == [r["m"] for r in runs[::-1]] == [4] * 3 + [2] * 3 + [8] * 3


@pytest.mark.parametrize(
    ("where", "words"),
    [
        ("m >>= 3", "cannot read the filter 'm >>= 3'"),
        ("bogus > 1", "no column 'bogus'"),
        ("m + 1", "must be a condition"),
        ("dynamics > 3", "different types"),
        ("__import__('os').getcwd() == 1", "is not a column"),
    ],
)
def test_bad_filters_give_one_line_naming_the_filter_and_the_syntax(tmp_path, capsys, where, words):
    store = tmp_path / "w.sqlite"
    run_sweep({"dynamics": "limit", "n": 8, "m": [2, 4]}, store, workers=1, progress=False)
    capsys.readouterr()
    assert main(["results", str(store), "--where", where]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err
    assert "==" in err and "and/or/not" in err  # the allowed syntax
    assert "pandas" not in err and "Traceback" not in err and "Error" not in err


def test_filter_language_agrees_with_plain_python(tmp_path):
    with ResultsStore(tmp_path / "f.sqlite") as s:
        for rec in (
            run_config({"dynamics": "limit", "n": 8, "m": m, "seed": k})
            for m in (2, 4, 8)
            for k in range(2)
        ):
            s.put(rec)
        df = s.frame()
        rows = df.to_dict(orient="records")
        cases = {
            "m >= 4 and seed = 1": lambda r: r["m"] >= 4 and r["seed"] == 1,
            "NOT (m <> 2) OR seed == 0": lambda r: r["m"] == 2 or r["seed"] == 0,
            "2 < m <= 8": lambda r: 2 < r["m"] <= 8,
            "m in [2, 8] and not interpolates": lambda r: (
                r["m"] in (2, 8) and not r["interpolates"]
            ),
            "m not in [4] and dynamics == 'limit'": lambda r: r["m"] != 4,
            "norm_sq / min_norm_sq > 1": lambda r: r["norm_sq"] / r["min_norm_sq"] > 1,
            "-m < -3": lambda r: r["m"] > 3,
        }
        for where, keep in cases.items():
            got = list(s.frame(where=where).run_id)
            assert got == [r["run_id"] for r in rows if keep(r)], where


# --------------------------------------------------------------------------- compiled kernels


def test_kernels_are_compiled_once_in_the_driver_before_the_progress_bar(
    tmp_path, monkeypatch, capsys
):
    from reluflow.sweep import _kernels

    real, tiny = S.run_config, []

    def slow_first_call(cfg):  # a compilation that takes a while
        if cfg["n"] == 4 and cfg["m"] == 2:
            tiny.append(dict(cfg))
            time.sleep(_kernels.ANNOUNCE_AFTER_S + 0.3)
        return real(cfg)

    monkeypatch.setattr(S, "run_config", slow_first_call)
    spec = {"dynamics": ["flow", "limit"], "n": 8, "m": 3, "scale": 1e-6, "seeds": 2}
    summary = run_sweep(spec, tmp_path / "k.sqlite", workers=1, progress=True)
    err = capsys.readouterr().err
    assert summary.ran == 4 and summary.failed == 0
    assert len(tiny) == 1 and tiny[0]["dynamics"] == "flow"  # once, for the flow's kernel
    assert _kernels.MESSAGE in err and err.index(_kernels.MESSAGE) < err.index("sweep")
    with ResultsStore(tmp_path / "k.sqlite") as s:
        assert set(s.frame().n) == {8}  # the warm-up run is not stored
    # nothing to compile for the jump process, nothing said
    tiny.clear()
    run_sweep(
        {"dynamics": "limit", "n": 8, "m": 3}, tmp_path / "l.sqlite", workers=1, progress=True
    )
    assert not tiny and _kernels.MESSAGE not in capsys.readouterr().err
