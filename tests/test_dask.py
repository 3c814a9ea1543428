"""Sweeps on Dask: a real scheduler and two workers on 127.0.0.1, started as subprocesses.

Only the driver writes the store; the workers never see it. A worker killed in the
middle of the sweep loses nothing: its runs are computed elsewhere, each run is
written once, and every result is bit-identical to a local sweep's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from _stores import assert_same_results

from reluflow.cli.sweep import parse_cluster_options
from reluflow.errors import InputError
from reluflow.store import ResultsStore
from reluflow.sweep import run_sweep

distributed = pytest.importorskip("distributed")

# ~0.1 s per run, no ties (Gaussian labels)
SPEC = """
experiment = "dask"
dynamics = "limit"
n = 100000
m = 48
labels = "gaussian"
seeds = "0:24"
"""
CLI = "import sys; from reluflow.cli import main; sys.exit(main(sys.argv[1:]))"


def _dask(*args: str, log) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dask", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


class LoopbackCluster:
    """``dask scheduler`` and ``dask worker`` processes listening on 127.0.0.1 only."""

    def __init__(self, tmp, n_workers: int):
        self.tmp = tmp
        self.log = open(tmp / "dask.log", "ab")  # noqa: SIM115
        sched_file = tmp / "scheduler.json"
        self.scheduler = _dask(
            "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
            "--scheduler-file", str(sched_file), "--idle-timeout", "300", log=self.log,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not sched_file.exists() or not sched_file.read_text().strip():
            assert self.scheduler.poll() is None, (tmp / "dask.log").read_text()
            assert time.monotonic() < deadline, "no scheduler after 60 s"
            time.sleep(0.1)
        time.sleep(0.1)
        self.address = json.loads(sched_file.read_text())["address"]
        assert self.address.startswith("tcp://127.0.0.1:")
        self.workers = [self._worker(i) for i in range(n_workers)]
        with distributed.Client(self.address, timeout=30) as client:
            client.wait_for_workers(n_workers, timeout=90)

    def _worker(self, i: int) -> subprocess.Popen:
        return _dask(
            "worker", self.address, "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny",
            "--no-dashboard", "--name", f"w{i}", "--death-timeout", "30", log=self.log,
        )  # fmt: skip

    def close(self) -> None:
        for p in [*self.workers, self.scheduler]:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        self.log.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LoopbackCluster(tmp_path_factory.mktemp("dask"), n_workers=2)
    yield c
    c.close()


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "dask.toml"
    path.write_text(textwrap.dedent(SPEC).lstrip())
    return path


@pytest.fixture(scope="module")
def local_store(spec):
    """The same sweep, computed locally in this process."""
    store = spec.parent / "local.sqlite"
    summary = run_sweep(spec, store, workers=1, progress=False)
    assert summary.ran == 24
    return store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_fails_fast_and_writes_nothing(spec, tmp_path):
    store = tmp_path / "never.sqlite"
    address = f"tcp://127.0.0.1:{_free_port()}"
    t0 = time.monotonic()
    with pytest.raises(InputError, match="cannot reach the Dask scheduler"):
        run_sweep(spec, store, scheduler=address, progress=False)
    assert time.monotonic() - t0 < 15
    assert not store.exists()
    res = subprocess.run(
        [sys.executable, "-c", CLI, "sweep", str(spec), "--store", str(store),
         "--scheduler", address, "--connect-timeout", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 2 and "cannot reach" in res.stderr and "Traceback" not in res.stderr
    assert not store.exists()


def test_without_dask_installed_the_error_says_what_to_install(spec, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(InputError, match=r"pip install 'reluflow\[dask\]'"):
        run_sweep(spec, tmp_path / "s.sqlite", scheduler="tcp://127.0.0.1:1", progress=False)
    assert not (tmp_path / "s.sqlite").exists()


def test_cluster_options_parse_as_toml_literals():
    assert parse_cluster_options(["cores=8", "memory=16GB", 'job_extra_directives=["-C cpu"]']) == {
        "cores": 8,
        "memory": "16GB",
        "job_extra_directives": ["-C cpu"],
    }
    with pytest.raises(InputError, match="KEY=VALUE"):
        parse_cluster_options(["cores"])


def test_slurm_without_sbatch_is_refused(spec, tmp_path, monkeypatch):
    pytest.importorskip("dask_jobqueue")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch on this PATH, installed or not
    with pytest.raises(InputError, match="sbatch"):
        run_sweep(spec, tmp_path / "s.sqlite", cluster="slurm", progress=False)
    assert not (tmp_path / "s.sqlite").exists()


def test_dask_sweep_is_bit_identical_to_local(cluster, spec, local_store, tmp_path):
    # the scheduler comes from the spec's [execution] table; two runs per Dask task
    on_dask = tmp_path / "on_dask.toml"
    on_dask.write_text(
        spec.read_text() + f'\n[execution]\nscheduler = "{cluster.address}"\nbatch = 2\n'
    )
    store = tmp_path / "dask.sqlite"
    summary = run_sweep(on_dask, store, progress=False)
    assert (summary.executor, summary.workers) == ("dask", 2)
    assert (summary.ran, summary.written, summary.failed) == (24, 24, 0)
    assert_same_results(store, local_store)
    with ResultsStore(store) as s:
        hosts = {s.record(r).provenance["host"] for r in s.done_ids()}
    assert hosts  # computed by the workers, written here


def test_worker_killed_mid_sweep(cluster, spec, local_store, tmp_path):
    store = tmp_path / "killed.sqlite"
    watcher = distributed.Client(cluster.address, timeout=30)
    names = {w["name"]: a for a, w in watcher.scheduler_info()["workers"].items()}
    sweep = subprocess.Popen(
        [sys.executable, "-c", CLI, "sweep", str(spec), "--store", str(store),
         "--scheduler", cluster.address, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            n = 0
            if store.exists():
                try:
                    with ResultsStore(store, create=False) as s:
                        n = len(s)
                except Exception:
                    n = 0
            if n >= 3:
                break
            assert sweep.poll() is None, sweep.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        busy = watcher.processing()[names["w0"]]
        victim = cluster.workers[0]
        victim.send_signal(signal.SIGKILL)  # a worker dies in the middle of its run
        victim.wait()
        out, err = sweep.communicate(timeout=120)
    finally:
        watcher.close()
        if sweep.poll() is None:
            sweep.kill()
    assert n < 24 and busy, "the worker should die while it holds runs"
    assert sweep.returncode == 0, err
    summary = json.loads(out)
    assert (summary["total"], summary["ran"], summary["failed"]) == (24, 24, 0)
    with ResultsStore(store) as s:
        assert s.integrity_ok()
        df = s.frame()
    assert len(df) == 24 and df.run_id.is_unique
    assert_same_results(store, local_store)
