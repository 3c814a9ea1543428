"""``reluflow reproduce`` and ``reluflow report``: the experiments, the figures' data, the store path.

The figures must show what they claim: every data series drawn is read back
(by its gid) and compared with the runs in the results store. The report is
rebuilt from the store alone and must give the same numbers. The real
``--scale quick`` runs once, end to end, through the command line.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from reluflow.errors import InputError
from reluflow.experiments import EXPERIMENTS, VERDICTS
from reluflow.experiments._stats import interpolated as _interpolated
from reluflow.experiments._stats import wilson_interval
from reluflow.experiments.bias import width
from reluflow.experiments.threshold import analyse_threshold
from reluflow.report import build_report
from reluflow.reproduce import experiment_configs
from reluflow.theory import interpolation_probability

# --------------------------------------------------------------------------- design


def test_plans_cover_the_brief():
    paper = experiment_configs("paper")
    quick = experiment_configs("quick")
    for cfgs in (paper, quick):
        assert set(cfgs) == set(EXPERIMENTS)
        for e, runs in cfgs.items():
            assert runs and all(c["experiment"] == e for c in runs)
            assert all(isinstance(c["seed"], int) and c["seed"] >= 0 for c in runs)
            if e not in ("boursier2022", "dana2025"):  # the peers' setups: their own data
                assert all(
                    c["data"] == "orthogonal" and c["dynamics"] in ("flow", "limit") for c in runs
                )
            # a flow's scale is `scale`, or `log10_scale` below the float64 range
            assert all("scale" in c or "log10_scale" in c for c in runs if c["dynamics"] == "flow")
            # no configuration twice (the store keys runs by configuration)
            keys = {json.dumps(c, sort_keys=True) for c in runs}
            assert len(keys) == len(runs)
    thr = pd.DataFrame(paper["threshold"])
    assert sorted(thr["n"].unique()) == [2**e for e in range(4, 17)]
    # the flow on the lower part of the n range (0.05 s a run at n = 1024)
    assert thr[thr["dynamics"] == "flow"]["n"].max() <= 2**10
    bias = pd.DataFrame(paper["bias"])
    assert bias[bias["dynamics"] == "limit"]["n"].max() >= 10**6
    assert 1000 <= bias[bias["dynamics"] == "flow"]["n"].max() <= 10**4
    inc = pd.DataFrame(paper["incremental"])
    assert (inc["dynamics"] == "flow").sum() >= 3 and (inc["dynamics"] == "limit").sum() == 1
    assert inc["seed"].nunique() == 1 and inc["n"].nunique() == 1
    # quick is the same study on a coarser grid
    qthr = pd.DataFrame(quick["threshold"])
    assert set(qthr["n"]) <= set(thr["n"]) and qthr["n"].max() == thr["n"].max()
    qb = pd.DataFrame(quick["bias"])
    assert qb[qb["dynamics"] == "limit"]["n"].max() >= 10**6


def test_threshold_widths_span_the_transition():
    thr = pd.DataFrame(experiment_configs("quick")["threshold"])
    for n, d in thr[thr["dynamics"] == "limit"].groupby("n"):
        probs = [interpolation_probability(n - n // 2, n // 2, int(m)) for m in d["m"].unique()]
        assert min(probs) < 0.1 and max(probs) > 0.9, (n, probs)


def test_unknown_scale_is_refused():
    with pytest.raises(InputError, match="scale"):
        experiment_configs("huge")


def test_only_selects_experiments_by_name():
    assert list(experiment_configs("smoke", only="bias,threshold")) == ["threshold", "bias"]
    with pytest.raises(InputError, match="only.*'nope'"):
        experiment_configs("smoke", only="bias,nope")


def test_every_experiment_is_documented():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "experiments.md").read_text()
    for name in EXPERIMENTS:
        assert f"## Experiment `{name}`" in text, f"docs/experiments.md has no section for {name}"


def test_every_experiment_implements_the_interface():
    from reluflow.experiments import SCALES, Experiment

    for name, ex in EXPERIMENTS.items():
        assert isinstance(ex, Experiment) and ex.name == name
        assert set(ex.designs) == set(SCALES) and ex.title and len(ex.description) > 80
        for scale in SCALES:
            assert ex.design(scale).scale == scale


# --------------------------------------------------------------------------- statistics


def test_wilson_interval_known_values():
    lo, hi = wilson_interval([0, 5, 10], [10, 10, 10])
    # reference values (Wilson 1927 / statsmodels proportion_confint(method="wilson"))
    np.testing.assert_allclose(lo, [0.0, 0.236593, 0.722467], atol=1e-6)
    np.testing.assert_allclose(hi, [0.277533, 0.763407, 1.0], atol=1e-6)


def test_wilson_interval_coverage():
    """Over many binomial draws the 95% interval holds the true p about 95% of the time."""
    rng = np.random.default_rng(0)
    for p in (0.1, 0.5, 0.9):
        k = rng.binomial(40, p, size=20000)
        lo, hi = wilson_interval(k, np.full(k.shape, 40))
        cover = np.mean((lo <= p) & (p <= hi))
        assert 0.92 <= cover <= 0.98, (p, cover)


def test_threshold_analysis_recovers_the_exact_boundary():
    """Feed the analysis cells drawn from the exact probability: c comes back near c_exact."""
    rng = np.random.default_rng(1)
    rows = []
    for e in range(4, 15, 2):
        n = 2**e
        for m in range(int(1.2 * e), int(4 * e) + 6, 2):
            p = interpolation_probability(n - n // 2, n // 2, m)
            for s in range(200):
                rows.append(
                    {
                        "n": n,
                        "m": m,
                        "seed": s,
                        "dynamics": "limit",
                        "interpolates": rng.random() < p,
                    }
                )
    a = analyse_threshold(pd.DataFrame(rows))
    f = a["fit"]
    assert abs(f["c"] - f["c_exact"]) < 3 * f["c_se"] + 0.05, f
    assert 1.8 < f["c_exact"] < 2.6  # about 2 log2 n for balanced labels (docs/limit.md)


def test_verdict_from_interval():
    from reluflow.experiments import verdict_from_interval as v

    assert v(0.48, 0.52, 0.45, 0.55) == "confirmed"
    assert v(0.60, 0.70, 0.45, 0.55) == "not confirmed"
    assert v(0.50, 0.60, 0.45, 0.55) == "open"
    assert v(math.nan, 0.5, 0.45, 0.55) == "open"


def _cells_from(prob, rng, reps=120):
    rows = []
    for e in (4, 6, 8, 10):
        n = 2**e
        for m in range(e + 2, 4 * e + 4, 3):
            p = prob(n, m)
            rows += [{"n": n, "m": m, "seed": s, "dynamics": "limit",
                      "interpolates": rng.random() < p} for s in range(reps)]
    return pd.DataFrame(rows)


def test_threshold_verdicts_follow_the_data():
    """Counts drawn from the exact formula confirm it; counts from a shifted law do not."""
    ex = EXPERIMENTS["threshold"]
    rng = np.random.default_rng(7)

    def exact(n, m):
        return interpolation_probability(n - n // 2, n // 2, m)

    def shifted(n, m):  # the same curves, three neurons later
        return interpolation_probability(n - n // 2, n // 2, max(1, m - 3))

    good = {c.claim[:16]: c.verdict for c in ex.claims(ex.analyse(_cells_from(exact, rng), None))}
    bad = {c.claim[:16]: c.verdict for c in ex.claims(ex.analyse(_cells_from(shifted, rng), None))}
    assert good["P(interpolation)"] == "confirmed", good
    assert bad["P(interpolation)"] == "not confirmed", bad


def test_bias_verdicts_follow_the_data():
    """A sqrt(n) law with a bounded ratio confirms both claims; an n^0.7 law refutes both."""
    from reluflow.experiments.bias import BiasDesign, width

    ex = EXPERIMENTS["bias"]
    rng = np.random.default_rng(3)

    def frame(power):
        rows = []
        for e in range(6, 21, 2):
            n = 2**e
            mn = 2 * (math.sqrt(n - n // 2) + math.sqrt(n // 2))
            m = width(n, BiasDesign())  # the experiment's reference width
            for s in range(8):
                norm = 2.2 * mn * (n / 2**6) ** (power - 0.5) * (1 + 0.01 * rng.standard_normal())
                rows.append({"n": n, "m": m, "seed": s, "dynamics": "limit", "scale": math.nan,
                             "interpolates": True, "norm_sq": norm, "min_norm_sq": mn})
        return pd.DataFrame(rows)

    good = {c.claim[:30]: c.verdict for c in ex.claims(ex.analyse(frame(0.5), None))}
    bad = {c.claim[:30]: c.verdict for c in ex.claims(ex.analyse(frame(0.7), None))}
    key_sqrt = "The interpolator learned by th"
    key_ratio = "The learned ‖θ‖² stays within "
    assert good[key_sqrt] == good[key_ratio] == "confirmed", good
    assert bad[key_sqrt] == bad[key_ratio] == "not confirmed", bad


# --------------------------------------------------------------------------- smoke run


@pytest.fixture(scope="module")
def smoke(reproduce_smoke, tmp_path_factory):
    res = reproduce_smoke
    rep = build_report(res.store, tmp_path_factory.mktemp("check") / "check.html",
                       keep_figures=True)
    yield res, rep
    import matplotlib.pyplot as plt

    for fig in rep.figure_objects.values():
        plt.close(fig)


def _frame(res):
    from reluflow.store import ResultsStore

    with ResultsStore(res.store) as st:
        return st.frame(), {rid: st.arrays(rid) for rid in st.frame()["run_id"]}


def _by_gid(fig, gid):
    found = [a for ax in fig.axes for a in ax.get_children() if a.get_gid() == gid]
    assert found, f"no artist with gid {gid!r}"
    return found[0]


def test_outputs_written(smoke):
    res, _ = smoke
    for name in EXPERIMENTS:  # every experiment's figures, named after it, in both formats
        for ext in ("pdf", "png"):
            files = [f for f in (res.out / "figures").glob(f"{name}*.{ext}")
                     if f.stem == name or f.stem.startswith(name + "_")]
            assert files and all(f.stat().st_size > 1000 for f in files), (name, ext)
    for f in ("summary.csv", "summary.json", "report.html", "reproduce.json", "results.sqlite"):
        assert (res.out / f).exists(), f
    summary = pd.read_csv(res.out / "summary.csv")
    assert set(summary["figure"]) == set(EXPERIMENTS)
    assert {"value", "error", "runs", "seeds", "configuration"} <= set(summary.columns)
    js = json.loads((res.out / "summary.json").read_text())
    assert js["plan"]["scale"] == "smoke"
    for name in EXPERIMENTS:  # one object per experiment
        assert js[name]["provenance"]["runs"] > 0 and js[name]["quantities"], name
    claims = pd.read_csv(res.out / "claims.csv")
    assert set(claims["verdict"]) <= set(VERDICTS) and len(claims) >= 5
    assert json.loads((res.out / "summary.json").read_text())["claims"] == json.loads(
        claims.to_json(orient="records"))


def test_staircase_figure_is_the_stored_trajectories(smoke):
    res, rep = smoke
    frame, arrays = _frame(res)
    fig = rep.figure_objects["incremental"]
    inc = frame[frame["experiment"] == "incremental"]
    flows = inc[inc["dynamics"] == "flow"]
    assert len(flows) == len(EXPERIMENTS["incremental"].design("smoke").scales)
    for _, r in flows.iterrows():
        a = arrays[r["run_id"]]
        lam = float(r["scale"])
        ln = _by_gid(fig, f"flow-loss-{lam:g}")
        np.testing.assert_array_equal(ln.get_xdata(), a["tau"])
        np.testing.assert_array_equal(ln.get_ydata(), a["loss"])
        for j in range(a["a_abs"].shape[1]):
            ln = _by_gid(fig, f"flow-a-{lam:g}-{j}")
            np.testing.assert_array_equal(ln.get_ydata(), a["a_abs"][:, j])
        for t_ev, j in zip(a["event_tau"], a["event_neuron"], strict=True):
            vl = _by_gid(fig, f"flow-event-{lam:g}-{int(j)}")
            assert vl.get_xdata()[0] == pytest.approx(float(t_ev))
    lim = inc[inc["dynamics"] == "limit"].iloc[0]
    la = arrays[lim["run_id"]]
    st = _by_gid(fig, "limit-staircase")
    x, y = np.asarray(st.get_xdata()), np.asarray(st.get_ydata())
    np.testing.assert_array_equal(x[1:-1], la["tau"])
    np.testing.assert_array_equal(y[1:-1], la["plateau_loss"])
    assert y[0] == pytest.approx(float(np.asarray(la["initial_loss"]).reshape(-1)[0]))
    # the staircase is the limit: the flow at the smallest λ ends on its last plateau
    smallest = flows.loc[flows["scale"].idxmin()]
    assert arrays[smallest["run_id"]]["loss"][-1] == pytest.approx(la["plateau_loss"][-1], abs=1e-3)


def test_threshold_figure_is_the_stored_runs(smoke):
    res, rep = smoke
    frame, _ = _frame(res)
    fig = rep.figure_objects["threshold"]
    thr = frame[(frame["experiment"] == "threshold") & (frame["dynamics"] == "limit")]
    for n, d in thr.groupby("n"):
        g = d.assign(ok=_interpolated(d)).groupby("m")["ok"].agg(["sum", "size"]).sort_index()
        ln = _by_gid(fig, f"limit-mc-n{n}")
        np.testing.assert_array_equal(np.asarray(ln.get_xdata(), float), g.index.to_numpy())
        np.testing.assert_allclose(
            np.asarray(ln.get_ydata(), float), (g["sum"] / g["size"]).to_numpy()
        )
        ex = _by_gid(fig, f"exact-n{n}")
        want = [interpolation_probability(n - n // 2, n // 2, int(m)) for m in ex.get_xdata()]
        np.testing.assert_allclose(np.asarray(ex.get_ydata(), float), want)
        col = _by_gid(fig, f"collapse-mc-n{n}")
        np.testing.assert_allclose(
            np.asarray(col.get_xdata(), float), g.index.to_numpy() / math.log2(n)
        )
    fl = frame[(frame["experiment"] == "threshold") & (frame["dynamics"] == "flow")]
    for n in fl["n"].unique():
        _by_gid(fig, f"flow-mc-n{n}")
    # the boundary line is the reported fit
    f = rep.analyses["threshold"]["fit"]
    ln = _by_gid(fig, "boundary-fit")
    x, y = np.asarray(ln.get_xdata()), np.asarray(ln.get_ydata())
    np.testing.assert_allclose(y, f["c"] * x + f["b"])


def test_bias_figure_is_the_stored_runs(smoke):
    res, rep = smoke
    frame, _ = _frame(res)
    fig = rep.figure_objects["bias"]
    b = frame[frame["experiment"] == "bias"]
    # the reference series: the width m(n) and, for the flow, the largest λ (the width
    # axis and the smaller λ have their own figures)
    design = EXPERIMENTS["bias"].design("smoke")
    b = b[b["m"] == b["n"].map(lambda n: width(int(n), design))]
    b = b[(b["dynamics"] == "limit") | (b["scale"] == b["scale"].max())]
    for dyn in ("limit", "flow"):
        d = b[(b["dynamics"] == dyn) & _interpolated(b)]
        means = d.groupby("n")["norm_sq"].mean().sort_index()
        ln = _by_gid(fig, f"norm-{dyn}")
        np.testing.assert_array_equal(np.asarray(ln.get_xdata(), float), means.index.to_numpy())
        np.testing.assert_allclose(np.asarray(ln.get_ydata(), float), means.to_numpy())
    mn = _by_gid(fig, "min-norm")
    n = np.asarray(mn.get_xdata(), dtype=float)
    np.testing.assert_allclose(
        np.asarray(mn.get_ydata(), float), 2 * (np.sqrt(n - n // 2) + np.sqrt(n // 2))
    )  # docs/limit.md with unit norms, ±1 labels
    assert rep.analyses["bias"]["fits"]["min_norm"]["slope"] == pytest.approx(0.5, abs=0.02)


def test_bias_width_and_scales_figures_are_the_stored_runs(smoke):
    from reluflow.width_law import coverage_depth

    res, rep = smoke
    frame, _ = _frame(res)
    b = frame[frame["experiment"] == "bias"]
    lim = b[(b["dynamics"] == "limit") & _interpolated(b)]
    fig = rep.figure_objects["bias_width"]
    for n, d in lim.groupby("n"):
        means = (d["norm_sq"] / d["min_norm_sq"]).groupby(d["m"]).mean().sort_index()
        ln = _by_gid(fig, f"width-{n}")
        np.testing.assert_allclose(np.asarray(ln.get_xdata(), float),
                                   coverage_depth(n, means.index.to_numpy()))
        np.testing.assert_allclose(np.asarray(ln.get_ydata(), float), means.to_numpy())
    design = EXPERIMENTS["bias"].design("smoke")
    flows = b[(b["dynamics"] == "flow") & _interpolated(b)]
    assert sorted(flows["scale"].unique()) == sorted(design.flow_scales)
    fig = rep.figure_objects["bias_scales"]
    for k, lam in enumerate(sorted(design.flow_scales, reverse=True)):
        d = flows[flows["scale"] == lam]
        means = (d["norm_sq"] / d["min_norm_sq"]).groupby(d["n"]).mean().sort_index()
        ln = _by_gid(fig, f"ratio-flow-{k}")
        np.testing.assert_allclose(np.asarray(ln.get_ydata(), float), means.to_numpy())


def test_finite_scale_ratio_figure_is_the_stored_runs(smoke):
    res, rep = smoke
    frame, _ = _frame(res)
    f = frame[(frame["experiment"] == "finite_scale") & (frame["dynamics"] == "flow")]
    assert f["n"].nunique() == len(EXPERIMENTS["finite_scale"].design("smoke").log2n)
    fig = rep.figure_objects["finite_scale_ratio"]
    for n, d in f.groupby("n"):
        means = (d["norm_sq"] / d["min_norm_sq"]).groupby(-np.log10(d["scale"])).mean().sort_index()
        ln = _by_gid(fig, f"ratio-flow-{n}")
        np.testing.assert_allclose(np.asarray(ln.get_xdata(), float), means.index.to_numpy())
        np.testing.assert_allclose(np.asarray(ln.get_ydata(), float), means.to_numpy())
    js = json.loads((res.out / "summary.json").read_text())["finite_scale"]
    assert {"exponent", "prefactor", "rows"} <= set(js)
    for row in js["rows"]:
        assert {"n", "L_star_5pct", "L_star_5pct_ci", "L_star_1pct", "L_star_1pct_ci"} <= set(row)


def test_report_rebuilds_from_the_store_alone(smoke, tmp_path):
    """`reluflow report` gives the same numbers as the reproduce run, and embeds every figure."""
    from reluflow.cli import main

    res, rep = smoke
    out = tmp_path / "r.html"
    assert main(["report", str(res.store), "-o", str(out), "--tables", str(tmp_path)]) == 0
    a = pd.read_csv(res.out / "summary.csv")
    b = pd.read_csv(tmp_path / "summary.csv")
    pd.testing.assert_frame_equal(a, b)
    text = out.read_text()
    pngs = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(pngs) == len(rep.figure_objects) >= 3
    import matplotlib.image as mpimg

    for p in pngs:
        img = mpimg.imread(io.BytesIO(base64.b64decode(p)), format="png")
        assert img.shape[0] > 100 and img.shape[1] > 100
    assert "provenance" in text and "config_hash_digest" in text
    assert "<script" not in text.lower()  # self-contained and static
    assert "http://" not in text and "https://" not in text


def test_rerun_resumes(smoke):
    from reluflow.reproduce import reproduce

    res, _ = smoke
    again = reproduce(res.out, "smoke", workers=2, progress=False)
    assert again.computed == 0
    pd.testing.assert_frame_equal(again.summary, res.summary)


def test_report_of_missing_store_is_a_clear_error(tmp_path):
    from reluflow.cli import main

    assert main(["report", str(tmp_path / "nope.sqlite"), "-o", str(tmp_path / "x.html")]) == 2


# --------------------------------------------------------------------------- any store


@pytest.fixture(scope="module")
def sweep_store(tmp_path_factory):
    """A sweep store as the README makes one: one experiment no analysis knows, limit runs."""
    from reluflow.sweep import expand_spec, run_sweep

    path = tmp_path_factory.mktemp("sweep") / "width.sqlite"
    spec = {"experiment": "width", "dynamics": "limit", "data": "orthogonal",
            "n": [16, 64], "m": [3, 6, 12], "labels": "balanced", "seeds": "0:12"}
    run_sweep(expand_spec(spec), path, workers=1, progress=False)
    return path


def test_report_of_a_sweep_store(sweep_store, tmp_path):
    """`reluflow report` on a plain sweep store: the store's account, its numbers, its figure."""
    from reluflow.cli import main
    from reluflow.store import ResultsStore

    out = tmp_path / "width.html"
    assert main(["report", str(sweep_store), "-o", str(out), "--tables", str(tmp_path)]) == 0
    rep = build_report(sweep_store, tmp_path / "again.html", keep_figures=True)
    with ResultsStore(sweep_store) as st:
        frame = st.frame()
    assert rep.analyses == {} and len(rep.claims) == 0
    counts = rep.overview["counts"]
    assert counts["runs"].sum() == len(frame) == 2 * 3 * 12
    table = pd.read_csv(tmp_path / "store_width_by_parameter.csv")
    assert list(table.columns[:2]) == ["m", "n"]  # d = n is not a second axis
    fig = rep.figure_objects["store_width"]
    for n, d in frame.groupby("n"):
        want = d.groupby("m")["interpolates"].mean().sort_index()
        ln = _by_gid(fig, f"p-n = {n}")
        np.testing.assert_array_equal(np.asarray(ln.get_xdata(), float), want.index.to_numpy())
        np.testing.assert_allclose(np.asarray(ln.get_ydata(), float), want.to_numpy())
        exact = _by_gid(fig, f"p-exact-n = {n}")
        np.testing.assert_allclose(
            np.asarray(exact.get_ydata(), float),
            [interpolation_probability(n - n // 2, n // 2, int(m)) for m in want.index])
        ok = d[d["interpolates"].astype(bool)]
        if len(ok):
            r = ok.groupby("m")["ratio"].mean()
            ln = _by_gid(fig, f"right-n = {n}")
            got = pd.Series(np.asarray(ln.get_ydata(), float),
                            index=np.asarray(ln.get_xdata(), float))
            np.testing.assert_allclose(got.dropna().to_numpy(), r.to_numpy())
    text = out.read_text()
    assert "What the store holds" in text and "id='fig-store_width'" in text
    js = json.loads((tmp_path / "summary.json").read_text())
    assert js["overview"]["counts"][0]["runs"] == len(frame)
    import matplotlib.pyplot as plt

    for f in rep.figure_objects.values():
        plt.close(f)


def test_unrecognised_runs_of_a_known_experiment_are_summarised(sweep_store, tmp_path):
    """Runs labelled 'incremental' that are not its design: skipped with the reason, summarised."""
    import shutil

    from reluflow.sweep import expand_spec, run_sweep

    path = tmp_path / "mixed.sqlite"
    shutil.copy(sweep_store, path)
    spec = {"experiment": "incremental", "dynamics": "limit", "n": [16, 32], "m": 4,
            "seeds": 2}
    run_sweep(expand_spec(spec), path, workers=1, progress=False)
    rep = build_report(path, tmp_path / "mixed.html")
    assert "incremental" in rep.skipped and "flow and limit" in rep.skipped["incremental"]
    assert set(rep.overview["generic"]) == {"width", "incremental"}
    assert "was not analysed" in (tmp_path / "mixed.html").read_text()


def test_report_of_an_empty_store_is_a_clear_error(tmp_path):
    from reluflow.cli import main
    from reluflow.store import ResultsStore

    ResultsStore(tmp_path / "empty.sqlite").close()
    assert main(["report", str(tmp_path / "empty.sqlite"), "-o", str(tmp_path / "x.html")]) == 2


# --------------------------------------------------------------------------- the real quick run


@pytest.mark.e2e
def test_quick_reproduce_end_to_end(tmp_path):
    """The README's command, through the installed CLI: sane numbers, verdicts, renders.

    Minutes long, so not in the default run (CI runs it with ``-m e2e``). Its wall time is
    printed, not asserted: speed is measured by benchmarks, not by tests.
    """
    out = tmp_path / "quick"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "reluflow.cli",
            "reproduce",
            "--out",
            str(out),
            "--scale",
            "quick",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "summary" in proc.stdout and "report:" in proc.stdout
    print(f"quick reproduce: {wall:.0f} s wall")
    s = pd.read_csv(out / "summary.csv")

    def value(pattern):
        row = s[s["quantity"].str.contains(pattern, regex=False)]
        assert len(row) >= 1, pattern
        return row.iloc[0]

    c = value("c in m50")
    assert 1.6 < c["value"] < 2.8 and c["error"] < 0.5  # m50 ≈ 2 log2 n (docs/limit.md)
    slope = value("(limit_large_n)")
    assert abs(slope["value"] - 0.5) < 0.1  # ‖θ‖² ∝ sqrt(n)
    r = value("apparent limit of the ratio")
    assert 2.0 < r["value"] < 3.0
    cover = value("fraction of cells whose Wilson")
    assert cover["value"] >= 0.8
    claims = pd.read_csv(out / "claims.csv")
    assert set(claims["verdict"]) <= set(VERDICTS)
    # the paper's threshold, formula and sqrt(n) law hold at the quick scale (README numbers)
    for start in ("The network interpolates with high proba", "P(interpolation) = Σ_k C(m,k)",
                  "The interpolator learned by the incremen"):
        verdicts = [v for c, v in zip(claims["claim"], claims["verdict"], strict=True)
                    if c.startswith(start)]
        assert verdicts == ["confirmed"], (start, claims.to_string())
    from test_report_browser import assert_renders, browser_missing

    why = browser_missing()
    if why:
        pytest.skip(f"quick run checked; browser check skipped: {why}")
    assert_renders(out / "report.html", EXPERIMENTS)
