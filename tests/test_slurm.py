"""Sweeps on a real SLURM cluster through dask-jobqueue, end to end.

The cluster is the single-node one of ``scripts/slurm-local.sh start`` (``.ci/run``
starts it). Each test drives ``reluflow sweep SPEC --store S --cluster slurm --jobs 2``
as a user would, watches the worker jobs in ``squeue`` and checks the store against
the same sweep run locally, bit for bit. In CI (``CI=true``) a cluster that is not up
fails these tests; elsewhere they are skipped with the reason.

Jobs pend a few seconds before they start: everything here polls, nothing sleeps
blindly. Runs are jump processes of a few tens of milliseconds, so that a sweep is
still running when a job is cancelled or the driver is killed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
from _stores import assert_same_results

from reluflow.store import ResultsStore
from reluflow.sweep import run_sweep

pytest.importorskip("dask_jobqueue")

CLI = "import sys; from reluflow.cli import main; sys.exit(main(sys.argv[1:]))"
RUNS = 96
# ~20 ms per run, no ties (Gaussian labels)
SPEC = f"""
experiment = "slurm"
dynamics = "limit"
n = 8000
m = 48
labels = "gaussian"
seeds = {RUNS}
"""
# one single-threaded worker per job; workers that lose the driver exit within seconds
SLURM = """
[slurm]
cores = 1
processes = 1
memory = "1GB"
walltime = "00:10:00"
death_timeout = 5
job_name = "{name}"
log_directory = "{logs}"
"""


def _cluster_problem() -> str | None:
    if shutil.which("sbatch") is None:
        return "SLURM is not installed here (no sbatch): run scripts/slurm-local.sh start"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
        nodes = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"SLURM does not answer ({exc}): run scripts/slurm-local.sh start"
    if "UP" not in ping.stdout:
        said = (ping.stdout.strip().splitlines() or ["no answer"])[0]
        return f"no SLURM controller ({said}): run scripts/slurm-local.sh start"
    states = nodes.stdout.split()
    if not any(s.rstrip("*~#").split("+")[0] in ("idle", "mixed", "allocated") for s in states):
        return f"no SLURM node takes jobs (states {states}): run scripts/slurm-local.sh start"
    return None


@pytest.fixture(scope="module")
def slurm():
    problem = _cluster_problem()
    if problem is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI needs the SLURM test cluster: {problem}")
        pytest.skip(problem)


@pytest.fixture(scope="module")
def local_store(tmp_path_factory):
    """The reference: the same runs computed in this process."""
    path = tmp_path_factory.mktemp("local") / "local.sqlite"
    spec = path.parent / "spec.toml"
    spec.write_text(textwrap.dedent(SPEC).lstrip())
    assert run_sweep(spec, path, workers=1, progress=False).ran == RUNS
    return path


class Sweep:
    """``reluflow sweep --cluster slurm --jobs 2`` in a subprocess, with its own job name."""

    def __init__(self, tmp_path, jobs: int = 2):
        self.name = f"rf-{uuid.uuid4().hex[:8]}"
        self.tmp = tmp_path
        self.spec = tmp_path / "spec.toml"
        self.store = tmp_path / "s.sqlite"
        self.spec.write_text(
            textwrap.dedent(SPEC).lstrip()
            + textwrap.dedent(SLURM).format(name=self.name, logs=tmp_path / "logs")
        )
        self.jobs = jobs
        self.seen: dict[str, set[str]] = {}  # job id -> states seen
        self.proc: subprocess.Popen | None = None

    def start(self) -> Sweep:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CLI, "sweep", str(self.spec), "--store", str(self.store),
             "--cluster", "slurm", "--jobs", str(self.jobs), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=self.tmp,
            start_new_session=True,
        )  # fmt: skip
        return self

    def queue(self) -> dict[str, str]:
        """This sweep's jobs in squeue: id -> state."""
        out = subprocess.run(
            ["squeue", "-h", "--name", self.name, "-o", "%i %T"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout  # fmt: skip
        jobs = dict(line.split() for line in out.splitlines() if line.strip())
        for job, state in jobs.items():
            self.seen.setdefault(job, set()).add(state)
        return jobs

    def stored(self) -> set[str]:
        """Run ids committed to the store (a second connection; empty before it exists)."""
        if not self.store.exists():
            return set()
        try:
            with ResultsStore(self.store, create=False) as s:
                return s.done_ids()
        except Exception:  # the file exists but its schema is not committed yet
            return set()

    def wait_until(self, condition, what: str, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while True:
            self.queue()
            value = condition()
            if value:
                return value
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"the sweep exited ({self.proc.returncode}) before {what}: "
                    f"{self.proc.stderr.read()}"
                )
            assert time.monotonic() < deadline, f"no {what} within {timeout:g} s"
            time.sleep(0.05)

    def finish(self, timeout: float = 120.0) -> dict:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            self.queue()
            assert time.monotonic() < deadline, "the sweep did not finish"
            time.sleep(0.1)
        out, err = self.proc.communicate()
        assert self.proc.returncode == 0, err
        return json.loads(out)

    def assert_no_jobs_left(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.queue():
            assert time.monotonic() < deadline, f"stray jobs in squeue: {self.queue()}"
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def cancel_all(self) -> None:
        subprocess.run(["scancel", "--name", self.name], timeout=20, check=False)


@pytest.fixture
def sweeps(slurm, tmp_path):
    made: list[Sweep] = []

    def make(**kw) -> Sweep:
        made.append(Sweep(tmp_path, **kw))
        return made[-1]

    yield make
    for s in made:  # whatever happened, leave nothing behind
        s.kill()
        s.cancel_all()


def _check_store(store, local_store) -> None:
    with ResultsStore(store) as s:
        assert s.integrity_ok()
        df = s.frame()
    assert len(df) == RUNS and df.run_id.is_unique
    assert_same_results(store, local_store)


def test_slurm_sweep_runs_in_worker_jobs_and_equals_the_local_run(sweeps, local_store):
    sweep = sweeps().start()
    jobs = sweep.wait_until(lambda: len(q := sweep.queue()) == 2 and q, "two jobs in squeue")
    summary = sweep.finish()
    assert (summary["executor"], summary["workers"]) == ("slurm", 2)
    assert (summary["total"], summary["ran"], summary["written"], summary["failed"]) == (
        RUNS, RUNS, RUNS, 0,
    )  # fmt: skip
    assert all("RUNNING" in sweep.seen[j] for j in jobs)  # both jobs ran workers
    _check_store(sweep.store, local_store)
    with ResultsStore(sweep.store) as s:
        hosts = {s.record(r).provenance["host"] for r in list(s.done_ids())[:5]}
    assert hosts  # computed in the jobs, written by the driver
    sweep.assert_no_jobs_left()


def test_slurm_worker_job_cancelled_mid_sweep_loses_and_duplicates_nothing(sweeps, local_store):
    sweep = sweeps().start()
    sweep.wait_until(lambda: len(sweep.stored()) >= 3, "runs in the store")
    running = [j for j, state in sweep.queue().items() if state == "RUNNING"]
    victim = running[0]
    subprocess.run(["scancel", victim], timeout=20, check=True)
    cancelled_at = len(sweep.stored())
    summary = sweep.finish()
    assert cancelled_at < RUNS, "the sweep should still be running when its job is cancelled"
    assert (summary["total"], summary["ran"], summary["failed"]) == (RUNS, RUNS, 0)
    _check_store(sweep.store, local_store)
    sweep.assert_no_jobs_left()


def test_slurm_sweep_survives_losing_every_job_through_replacements(sweeps, local_store):
    sweep = sweeps().start()
    sweep.wait_until(lambda: len(sweep.stored()) >= 3, "runs in the store")
    first = set(sweep.queue())
    sweep.cancel_all()  # no worker left: only replacement jobs can finish the sweep
    lost_at = len(sweep.stored())
    summary = sweep.finish()
    assert lost_at < RUNS, "the sweep should still be running when its jobs are cancelled"
    assert (summary["total"], summary["ran"], summary["failed"]) == (RUNS, RUNS, 0)
    replacements = set(sweep.seen) - first
    assert len(replacements) >= 2, f"each job should be replaced (jobs seen: {sweep.seen})"
    _check_store(sweep.store, local_store)
    sweep.assert_no_jobs_left()


def test_slurm_sweep_killed_then_resumed_submits_only_what_is_missing(sweeps, local_store):
    sweep = sweeps().start()
    sweep.wait_until(lambda: len(sweep.stored()) >= 5, "runs in the store")
    sweep.kill()  # SIGKILL: the driver cannot cancel its jobs
    committed = sweep.stored()  # what the killed driver had committed
    assert 5 <= len(committed) < RUNS
    # started again at once; the killed driver's workers lose their scheduler and their
    # jobs end meanwhile (checked at the end: the same job name)
    again = sweeps()
    again.store, again.spec = sweep.store, sweep.spec
    again.name = sweep.name
    summary = again.start().finish()
    assert committed <= again.stored()  # every committed run survived
    assert (summary["total"], summary["skipped"]) == (RUNS, len(committed))
    assert (summary["ran"], summary["failed"]) == (RUNS - len(committed), 0)
    _check_store(sweep.store, local_store)
    again.assert_no_jobs_left()


def test_slurm_jobs_that_cannot_start_end_the_sweep_with_a_reason(sweeps, tmp_path):
    sweep = sweeps(jobs=1)
    # workers that cannot start: every job ends at once, replacements too
    sweep.spec.write_text(sweep.spec.read_text() + 'python = "/nonexistent/python3"\n')
    sweep.start()
    deadline = time.monotonic() + 90
    while sweep.proc.poll() is None:
        sweep.queue()
        assert time.monotonic() < deadline, "the sweep waits forever for workers"
        time.sleep(0.1)
    out, err = sweep.proc.communicate()
    assert sweep.proc.returncode == 1, err
    summary = json.loads(out)
    assert (summary["ran"], summary["failed"]) == (0, RUNS)
    why = summary["failures"][0]["message"]
    assert "every SLURM job of the sweep ended" in why and "logs" in why
    assert len(sweep.seen) > 1  # replacements were tried before giving up
    assert not sweep.store.exists() or not sweep.stored()
    sweep.assert_no_jobs_left()
