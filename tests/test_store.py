"""The results store: idempotent one-transaction writes, exact round trips, concurrent writers."""

from __future__ import annotations

import math
import multiprocessing as mp
import sqlite3

import numpy as np
import pytest

from reluflow.errors import InputError
from reluflow.store import ResultsStore, RunRecord
from reluflow.sweep import run_config


def _record(i: int, experiment: str = "unit", **results) -> RunRecord:
    rng = np.random.default_rng(i)
    return RunRecord(
        run_id=f"run{i:04d}",
        experiment=experiment,
        config={"experiment": experiment, "dynamics": "limit", "n": 8 + i, "m": 4, "seed": i},
        results={"final_loss": float(rng.random()), "interpolates": i % 2 == 0, **results},
        arrays={"tau": rng.random(5), "event_neuron": np.arange(5), "x0": np.array(1.5)},
        version="0.0-test",
        seed=i,
        wall_s=0.1 * i,
        created="2026-01-01T00:00:00+00:00",
        provenance={"config_hash": f"run{i:04d}", "note": "unit"},
    )


def test_put_is_idempotent_and_round_trips_exactly(tmp_path):
    path = tmp_path / "s.sqlite"
    rec = run_config({"dynamics": "limit", "n": 40, "m": 6, "seed": 2, "labels": "gaussian"})
    with ResultsStore(path) as store:
        assert store.put(rec) is True
        assert store.put(rec) is False  # same run_id: nothing written
        assert store.done_ids() == {rec.run_id}
        assert len(store) == 1 and rec.run_id in store
    with ResultsStore(path) as store:  # reopened: a real file
        back = store.record(rec.run_id)
        arrays = store.arrays(rec.run_id)
    assert back.config == rec.config and back.provenance == rec.provenance
    # floats through JSON are exact, NaN included
    assert back.results.keys() == rec.results.keys()
    for k, v in rec.results.items():
        w = back.results[k]
        assert type(w) is type(v) and (w == v or (math.isnan(v) and math.isnan(w))), k
    assert set(arrays) == set(rec.arrays)
    for k, v in rec.arrays.items():
        assert arrays[k].dtype == v.dtype and arrays[k].shape == v.shape
        assert np.array_equal(arrays[k], v)
    assert arrays["a"].dtype == np.float64 and arrays["initial_loss"].shape == ()
    assert path.read_bytes()[:16] == b"SQLite format 3\x00"
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_frame_columns_nan_and_filters(tmp_path):
    with ResultsStore(tmp_path / "s.sqlite") as store:
        for i in range(6):
            store.put(
                _record(i, experiment="a" if i < 4 else "b", ratio=math.nan if i == 3 else 1.0)
            )
        df = store.frame()
        assert list(df.columns[:2]) == ["run_id", "experiment"]
        assert list(df.columns[-5:]) == ["version", "seed", "config_hash", "wall_s", "created"]
        assert {"dynamics", "n", "m", "final_loss", "interpolates", "ratio"} <= set(df.columns)
        assert list(df.run_id) == [f"run{i:04d}" for i in range(6)]  # insertion order
        assert math.isnan(df.ratio[3]) and df.interpolates.dtype == bool
        assert len(store.frame(experiment="b")) == 2
        assert list(store.frame(where="n >= 10 and experiment == 'a'").n) == [10, 11]
        sql = store.frame(where="experiment = 'a' AND NOT interpolates OR n <> n")
        assert list(sql.n) == [9, 11]
        with pytest.raises(InputError, match="no_such_column"):
            store.frame(where="no_such_column > 1")
        with pytest.raises(KeyError):
            store.arrays("missing")


def test_refuses_what_is_not_a_store(tmp_path):
    with pytest.raises(InputError, match="file path"):
        ResultsStore(":memory:")
    with pytest.raises(InputError, match="no results store"):
        ResultsStore(tmp_path / "absent.sqlite", create=False)
    (tmp_path / "text.sqlite").write_text("not a database at all, really")
    with pytest.raises(InputError, match="not a SQLite"):
        ResultsStore(tmp_path / "text.sqlite")
    con = sqlite3.connect(tmp_path / "other.db")
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(InputError, match="not a results store"):
        ResultsStore(tmp_path / "other.db")
    assert not (tmp_path / "absent.sqlite").exists()


def _writer(path: str, start: int, stop: int) -> int:
    written = 0
    with ResultsStore(path) as store:
        for i in range(start, stop):
            written += store.put(_record(i))
    return written


def test_concurrent_writers_never_corrupt_or_duplicate(tmp_path):
    """Three processes write overlapping runs into one new file at the same time."""
    path = str(tmp_path / "shared.sqlite")
    ranges = [(0, 120), (60, 180), (100, 200)]
    with mp.get_context("spawn").Pool(3) as pool:
        written = pool.starmap(_writer, [(path, a, b) for a, b in ranges])
    assert sum(written) == 200  # every run written by exactly one writer
    with ResultsStore(path) as store:
        assert store.integrity_ok()
        df = store.frame()
        assert len(df) == 200 and df.run_id.is_unique
        for i in (0, 99, 150, 199):
            ref = _record(i)
            assert np.array_equal(store.arrays(ref.run_id)["tau"], ref.arrays["tau"])


def _view(spy: sqlite3.Connection) -> tuple[set[str], set[str]]:
    """What another connection sees: (run ids in runs, run ids in arrays)."""
    runs = {r[0] for r in spy.execute("SELECT run_id FROM runs")}
    arrays = {r[0] for r in spy.execute("SELECT run_id FROM arrays")}
    return runs, arrays


def test_a_run_and_its_arrays_are_one_transaction_committed_before_put_returns(tmp_path):
    """Watched from a second connection at every statement the store executes.

    Two transactions for the row and the arrays would show a row without arrays
    (or arrays without a row) in between; a commit deferred past ``put``'s return
    would show the run missing after ``put`` said it was written.
    """
    path = tmp_path / "s.sqlite"
    records = [_record(i) for i in range(8)]
    with ResultsStore(path) as store:
        spy = sqlite3.connect(path, isolation_level=None)
        torn: list[tuple[str, set[str], set[str]]] = []
        statements: list[str] = []

        def watch(statement: str) -> None:  # runs before each statement of the store
            statements.append(statement.split()[0].upper())
            runs, arrays = _view(spy)
            if runs != arrays:
                torn.append((statement, runs, arrays))

        store._con.set_trace_callback(watch)
        for i, rec in enumerate(records):
            assert store.put(rec) is True
            runs, arrays = _view(spy)
            assert runs == arrays == {r.run_id for r in records[: i + 1]}, f"put {i} not committed"
        assert store.put(records[0]) is False  # a duplicate writes nothing
        store._con.set_trace_callback(None)
        spy.close()
    assert not torn, f"another connection saw a half-written run: {torn[0]}"
    assert statements.count("INSERT") == 2 * len(records) + 1  # the watch saw every write


def test_a_result_named_like_a_config_key_gets_its_own_column_and_the_report_reads_it(tmp_path):
    # descent's `steps` is a configuration key (steps requested) and a result (steps taken)
    from reluflow.report import build_report
    from reluflow.report.overview import analyse_overview
    from reluflow.sweep import run_sweep

    spec = tmp_path / "gd.toml"
    spec.write_text(
        'experiment = "gd"\ndynamics = ["descent", "flow"]\nn = 6\nm = 4\n"λ" = 1e-3\n'
        'seeds = "0:2"\n[solver]\nlr = 0.5\nsteps = [30, 60]\n'
    )
    assert run_sweep(spec, tmp_path / "s.sqlite", workers=1, progress=False).failed == 0
    with ResultsStore(tmp_path / "s.sqlite") as store:
        df = store.frame()
        assert df.columns.is_unique and len(df) == 6
        assert len(store.frame(where="steps == 60 and result_steps == 60")) == 2
    gd, flow = df[df.dynamics == "descent"], df[df.dynamics == "flow"]
    assert sorted(gd["steps"]) == [30, 30, 60, 60] and flow["steps"].isna().all()
    # descent at a step count ran exactly that many steps; the flow's count is its own
    assert (gd["result_steps"] == gd["steps"]).all() and (flow["result_steps"] > 0).all()
    assert "result_log10_scale" in df.columns  # a result that restates a config key, too
    ov = analyse_overview(df)  # no config keys known: `steps` is a parameter, result_* are not
    params = set(ov["params"].parameter)
    assert "steps" in params and not any(p.startswith("result_") for p in params)
    assert "steps" in ov["generic"]["gd"]["axes"]
    rep = build_report(tmp_path / "s.sqlite", tmp_path / "r.html")
    table = rep.overview["generic"]["gd"]["table"]
    assert "steps" in table.columns and table["runs"].sum() == 6
