"""The command line as a user runs it: subprocesses of ``python -m reluflow``.

Checked: the JSON contract (keys, types, and values equal to the Python API on
the same seed), the exit codes (0; 1 when a solver stops short; 2 for user
errors, one line and no traceback), the files written (--plot, --save-init),
and that --version/--help load no numerical library. Sizes are tiny; each
subprocess costs about a second, so each one checks several things.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import reluflow as rf

SRC = str(Path(rf.__file__).resolve().parents[1])


def reluflow(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "reluflow", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def one_json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0])


def assert_user_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [s for s in proc.stderr.splitlines() if s.strip()]
    assert len(lines) == 1 or proc.stderr.startswith("usage:"), proc.stderr
    for w in words:
        assert w in proc.stderr, (w, proc.stderr)


def test_flow_json_files_and_api_agree(tmp_path):
    png, npz = tmp_path / "flow.png", tmp_path / "init.npz"
    out = one_json(
        reluflow(
            "flow", "--n", "1.6e1", "--m", "4", "--seed", "3", "--json",
            "--plot", str(png), "--save-init", str(npz),
        )
    )
    types = {
        "dynamics": str, "success": bool, "status": str, "message": str, "final_loss": float,
        "norm_sq": float, "events": list, "plateaus": list, "conservation_drift": float,
        "wall_s": float, "t_final": float, "tau_final": float, "stats": dict,
        "provenance": dict, "files": dict,
    }  # fmt: skip
    for key, typ in types.items():
        assert isinstance(out[key], typ), (key, out[key])
    assert out["dynamics"] == "flow" and out["success"]
    assert out["files"] == {"plot": str(png), "save_init": str(npz)}

    data = rf.orthogonal_data(16, seed=3)
    net = rf.init_network(data, 4, 1e-8, seed=3)
    tr = rf.gradient_flow(data, net)
    assert out["final_loss"] == pytest.approx(tr.final_loss, rel=1e-12, abs=1e-300)
    assert out["norm_sq"] == pytest.approx(tr.final.norm_sq(data), rel=1e-12)
    ev = rf.activation_events(tr)
    assert [e["neuron"] for e in out["events"]] == list(ev["neuron"])
    np.testing.assert_allclose([e["tau"] for e in out["events"]], ev["tau"], rtol=1e-12)

    # the figure is a real PNG; the initial state is the API's, and its limit runs
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.ndim == 3 and min(img.shape[:2]) > 100
    d2, n2 = rf.load_init(npz)
    np.testing.assert_array_equal(n2.u, net.u)
    np.testing.assert_array_equal(n2.a, net.a)
    np.testing.assert_array_equal(d2.y, data.y)
    assert n2.scale == net.scale


def test_descent_and_sgd_match_the_api_and_write_a_pdf(tmp_path):
    pdf = tmp_path / "d.pdf"
    out = one_json(
        reluflow("descent", "--n", "12", "--m", "4", "--lr", "0.5", "--json", "--plot", str(pdf))
    )
    data = rf.orthogonal_data(12, seed=0)
    net = rf.init_network(data, 4, 1e-8, seed=0)
    tr = rf.gradient_descent(data, net, 0.5)
    assert out["dynamics"] == "descent" and out["status"] == tr.status
    assert out["final_loss"] == pytest.approx(tr.final_loss, rel=1e-12, abs=1e-300)
    assert out["stats"]["steps"] == tr.stats.steps
    head, tail = pdf.read_bytes()[:5], pdf.read_bytes()[-1024:]
    assert head == b"%PDF-" and b"%%EOF" in tail

    sgd = one_json(
        reluflow(
            "descent", "--n", "24", "--m", "6", "--lr", "1", "--batch-size", "6",
            "--batch-seed", "2", "--json",
        )
    )  # fmt: skip
    data = rf.orthogonal_data(24, seed=0)
    tr = rf.gradient_descent(
        data, rf.init_network(data, 6, 1e-8, seed=0), 1.0, batch_size=6, batch_seed=2
    )
    assert sgd["dynamics"] == "sgd" and sgd["status"] == tr.status == "noise_floor"
    assert sgd["success"] and sgd["stats"]["steps"] == tr.stats.steps < 10_000_000
    assert sgd["final_loss"] == pytest.approx(tr.final_loss, rel=1e-12, abs=1e-300)


def test_limit_json_per_seed_matches_the_api_and_ratio_is_null_unless_interpolating():
    proc = reluflow("limit", "--n", "1e2", "--m", "17", "--seeds", "0:6", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(s) for s in proc.stdout.strip().splitlines()]
    assert [r["seed"] for r in rows] == list(range(6))
    kinds = set()
    for r in rows:
        res = rf.jump_process(rf.orthogonal_data(100, seed=r["seed"]), 17, seed=r["seed"])
        assert r["n"] == 100 and r["m"] == 17
        assert r["interpolates"] is res.interpolates
        assert r["norm_sq"] == pytest.approx(res.norm_sq, rel=1e-12)
        assert [e["tau"] for e in r["events"]] == pytest.approx(list(res.tau), rel=1e-12)
        assert isinstance(r["provenance"], dict) and isinstance(r["tie_details"], list)
        if r["interpolates"]:
            assert r["ratio"] >= 1.0 and r["ratio_note"] == ""
        else:
            assert r["ratio"] is None and "does not interpolate" in r["ratio_note"]
        kinds.add(r["interpolates"])
    assert kinds == {True, False}  # m = 17 at n = 100: P(interpolation) = 0.57, both occur


def test_limit_text_from_init_names_the_file_and_undefined_ratio(tmp_path):
    data = rf.orthogonal_data(64, seed=0)
    net = rf.init_network(data, 3, 1e-8, seed=0)
    rf.save_init(tmp_path / "s.npz", data, net)
    proc = reluflow("limit", "--init", str(tmp_path / "s.npz"))
    assert proc.returncode == 0, proc.stderr
    assert "seed = None" not in proc.stdout and f"from {tmp_path / 's.npz'}" in proc.stdout
    assert not rf.jump_process(data, net=net).interpolates
    assert "ratio undefined: does not interpolate" in proc.stdout


def test_compare_and_theory_json():
    out = one_json(reluflow("compare", "--n", "10", "--m", "4", "--scales", "1e-4,1e-8", "--json"))
    assert isinstance(out, dict) and out
    scales = sorted(float(s["scale"]) for s in out["summary"])
    assert scales == [1e-8, 1e-4]

    prob = one_json(
        reluflow("theory", "interp-prob", "--n-pos", "5", "--n-neg", "7", "--m", "9", "--json")
    )
    assert prob == {
        "n_pos": 5, "n_neg": 7, "m": 9, "probability": rf.interpolation_probability(5, 7, 9)
    }  # fmt: skip
    text = reluflow("theory", "width", "--n-pos", "50", "--n-neg", "50", "--p", "0.9")
    m = rf.width_for_probability(50, 50, 0.9)
    assert text.returncode == 0 and text.stdout.startswith(f"width m = {m} ")


def test_a_solver_stop_exits_1_with_one_line():
    proc = reluflow("flow", "--n", "16", "--m", "4", "--max-steps", "3", "--quiet")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "incomplete" in proc.stderr and "max_steps" in proc.stderr
    assert "stopped: max_steps" in proc.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (["flow", "--n", "8", "--m", "2", "--scale", "-1e-8"], ["scale", "> 0", "-1e-8"]),
        (["descent", "--n", "8", "--m", "2", "--lr", "-0.5"], ["lr", "> 0"]),
        (["flow", "--n", "1.5", "--m", "2"], ["--n", "integer"]),
        (["flow", "--n", "-5", "--m", "2"], ["n must be an integer >= 1", "-5"]),
        (["flow", "--n", "8", "--m", "2", "--plot", "out.xyz"], ["--plot", "'xyz'", ".pdf"]),
        (["limit", "--n", "8", "--m", "2", "--data", "gaussian"], ["orthogonal", "flow --data"]),
        (["theory", "interp-prob", "--n-pos", "0", "--n-neg", "0", "--m", "3"], [">= 1"]),
        (["limit", "--n", "1e13", "--m", "80"], ["n = 10000000000000", "memory", "at most n"]),
        (["flow", "--n", "1e9", "--m", "1000"], ["n = 1000000000", "memory", "at most n"]),
        (["limit", "--n", "8", "--m", "2", "--seeds", "5:2"], ["--seeds", "A < B"]),
    ],
)
def test_user_errors_exit_2_with_one_line(args, words, tmp_path):
    assert_user_error(reluflow(*args, cwd=tmp_path), *words)
    assert not list(tmp_path.iterdir())  # refused before writing anything


def test_version_and_help_are_instant_and_clean():
    code = (
        "import sys\nfrom reluflow.cli import main\n"
        "for argv in (['--version'], ['--help'], ['flow', '--help'], ['theory', 'width', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print('LOADED', sorted(m for m in ('numba', 'matplotlib', 'pandas', 'scipy') "
        "if m in sys.modules))"
    )
    env = dict(os.environ, PYTHONPATH=SRC)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout
    assert f"reluflow {rf.__version__}" in proc.stdout
    assert "(default: None)" not in proc.stdout and "(default: False)" not in proc.stdout
    # the stopping default is stated once, by the help text itself
    assert proc.stdout.count("(default 1e-10") == 1  # --loss-tol's own words, once
    for cmd in ("flow", "descent", "limit", "compare", "theory", "sweep", "results", "report"):
        assert f"  {cmd} " in proc.stdout


def test_stability_warning_is_one_clean_line():
    proc = reluflow("descent", "--n", "8", "--m", "3", "--lr", "30", "--max-steps", "40")
    assert proc.returncode in (0, 1)
    warns = [s for s in proc.stderr.splitlines() if "StabilityWarning" in s]
    assert len(warns) == 1 and "reluflow: StabilityWarning: lr = 30 exceeds" in warns[0]
    assert "warnings.warn" not in proc.stderr and ".py:" not in proc.stderr


def test_compare_default_ladder_is_the_api_default():
    from reluflow.cli.compare import _DEFAULT_SCALES
    from reluflow.compare import DEFAULT_SCALES

    assert _DEFAULT_SCALES.split(",") == [str(s) for s in DEFAULT_SCALES]


def test_nan_is_written_as_null():
    from reluflow.cli._common import _clean

    assert _clean({"r": math.nan, "x": [1.0, math.inf]}) == {"r": None, "x": [1.0, None]}


def test_field_options_give_the_sweep_run_and_user_errors_are_one_line():
    # the teacher, the bias feature, PyTorch's init and loss: the same run as a sweep's
    from reluflow.sweep import run_config

    args = ["--n", "8", "--d", "3", "--m", "5", "--scale", "1e-3", "--seed", "2"]
    field = ["--data", "teacher", "--teacher-width", "3", "--bias", "--init", "uniform_exp",
             "--loss", "mean"]  # fmt: skip
    out = one_json(reluflow("descent", *args, *field, "--lr", "0.2", "--json", "--quiet"))
    rec = run_config(
        {"dynamics": "descent", "data": "teacher", "n": 8, "d": 3, "m": 5, "scale": 1e-3,
         "seed": 2, "teacher_width": 3, "bias": True, "init": "uniform_exp", "loss": "mean",
         "lr": 0.2}
    )  # fmt: skip
    assert out["status"] == rec.results["status"]
    assert out["final_loss"] == pytest.approx(rec.results["final_loss"], rel=1e-12, abs=1e-300)
    assert out["stats"]["steps"] == rec.results["steps"]
    cfg = out["provenance"]["config"]
    assert cfg["init"] == "uniform_exp" and cfg["loss"] == "mean"
    assert cfg["data"]["bias"] and cfg["data"]["d"] == 4 and "width=3" in cfg["data"]["labels"]
    # an option that does not apply to the data kind is refused, naming it
    assert_user_error(
        reluflow("flow", *args, "--data", "teacher", "--labels", "random"), "--labels", "teacher"
    )


def test_cli_choices_are_the_packages():
    from reluflow._loss import LOSSES
    from reluflow.cli import _common
    from reluflow.inits import INITS
    from reluflow.sweep.config import DATA_KINDS, LABELS

    assert _common.INITS == INITS and _common.LOSSES == LOSSES and _common.LABELS == LABELS
    assert set(_common.DATA_KINDS) == set(DATA_KINDS) - {"toy1d"}
