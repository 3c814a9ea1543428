"""The SLURM back-end: a dask-jobqueue ``SLURMCluster`` whose batch jobs run Dask workers.

The driver (this process, on a login node) submits up to ``jobs`` batch jobs with
``sbatch``; each starts Dask workers that connect back to the driver's scheduler
and run tasks as in :mod:`reluflow.sweep._dask`. Only the driver writes the store,
so the jobs need no shared filesystem.

Jobs end early on a real cluster (walltime, preemption, ``scancel``, a node
failure). The scheduler gives the runs of a lost worker to the others, and
:meth:`SlurmJobs.watch` asks SLURM for a replacement job (dask-jobqueue does not:
its ``scale(jobs=...)`` still counts the ended job). A job whose workers did work
is always replaced, so a sweep may outlast any walltime; jobs that end before their
workers start are replaced a few times only, and when no job is left the remaining
runs are reported as failed instead of waiting forever.
"""

from __future__ import annotations

import getpass
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from .. import _validate as V
from ..errors import InputError

# Jobs that end before any of their workers connect (a worker that cannot start, say) are
# replaced until this many more than the jobs asked for have failed so: not forever.
EXTRA_JOBS = 2


class SlurmJobs:
    """A SLURM cluster of Dask workers for one sweep.

    Args:
        options: ``dask_jobqueue.SLURMCluster`` options (``queue``, ``account``,
            ``cores``, ``processes``, ``memory``, ``walltime``,
            ``job_extra_directives``, ...) and ``jobs``, the number of batch jobs.

    Raises:
        InputError: dask-jobqueue missing, no ``sbatch`` here, invalid options.
    """

    def __init__(self, options: Mapping[str, Any]):
        try:
            from distributed import Client
        except ImportError:
            raise InputError(
                "running on Dask needs dask and distributed: pip install 'reluflow[dask]'"
            ) from None
        try:
            from dask_jobqueue import SLURMCluster
        except ImportError:
            raise InputError(
                "--cluster slurm needs dask-jobqueue: pip install 'reluflow[dask]'"
            ) from None
        kwargs = dict(options)
        self.jobs = V.positive_int("jobs", kwargs.pop("jobs", 1))
        if shutil.which(str(kwargs.get("submit_command", "sbatch")).split()[0]) is None:
            raise InputError(
                "--cluster slurm needs SLURM's sbatch on this machine (run the sweep on a login "
                "node), or connect to a running cluster with --scheduler tcp://HOST:PORT"
            )
        try:
            self.cluster = SLURMCluster(**kwargs)
        except (TypeError, ValueError) as exc:
            raise InputError(f"invalid SLURM cluster options {kwargs}: {exc}") from None
        self.client = Client(self.cluster, set_as_default=False)
        self.target = 0
        self.replaced = 0  # replacement jobs submitted
        self.ended: list[str] = []  # ids of the jobs seen to end during the sweep
        self.worked: set[str] = set()  # ids of the jobs whose workers connected
        self.failed_starts = 0  # jobs that ended before any of their workers connected

    def start(self, tasks: int) -> None:
        """Submit the jobs: ``jobs``, or fewer when there are fewer tasks than that."""
        self.target = min(self.jobs, max(tasks, 0))
        if self.target:
            self.cluster.scale(jobs=self.target)

    def job_ids(self) -> dict[str, str]:
        """Job name -> SLURM job id of every job submitted and not yet closed by us."""
        return {
            name: str(job.job_id)
            for name, job in list(self.cluster.workers.items())
            if getattr(job, "job_id", None)
        }

    def watch(self) -> str | None:
        """Replace jobs that ended; a reason to give up, or None.

        Called every few seconds while the sweep runs.
        """
        ids = self.job_ids()
        if not ids:
            return None  # nothing submitted yet
        self._note_workers(ids)
        queued = _queued_jobs()
        if queued is None:
            return None  # squeue did not answer this time: look again later
        gone = [name for name, jid in ids.items() if jid not in queued]
        new = [name for name in gone if ids[name] not in self.ended]
        if not new:
            return None
        self.ended += [ids[name] for name in new]
        # A job whose workers connected did its share (walltime, preemption, scancel): it is
        # always replaced. One that ended before any worker connected failed to start:
        # replaced only while such failures stay few.
        failed = [name for name in new if ids[name] not in self.worked]
        self.failed_starts += len(failed)
        replace = len(new) - len(failed)
        if self.failed_starts <= self.target + EXTRA_JOBS:
            replace += len(failed)
        self.replaced += replace
        alive = len(ids) - len(gone)

        def resubmit() -> None:
            # Forget the ended jobs (dask-jobqueue would count them forever, and would not
            # start a new job under a name it still holds), then submit replacements up to
            # the target.
            spec = self.cluster.worker_spec
            for name in gone:
                spec.pop(name, None)
                self.cluster.workers.pop(name, None)
            self.cluster.scale(jobs=min(self.target, len(spec) + replace))

        self.cluster.loop.add_callback(resubmit)
        if alive == 0 and replace == 0:
            return (
                f"every SLURM job of the sweep ended (job ids {', '.join(self.ended)}; "
                f"{self.failed_starts} before any of their workers started); see the jobs' "
                "logs (slurm-JOBID.out, or log_directory)"
            )
        return None

    def _note_workers(self, jobs: Mapping[str, str]) -> None:
        """Remember the jobs (by id) whose Dask workers have connected to the scheduler."""
        info = getattr(self.cluster, "scheduler_info", None) or {}
        names = {str(w.get("name")) for w in list(info.get("workers", {}).values())}
        for job in jobs:
            if job in names or any(n.startswith(f"{job}-") for n in names):
                self.worked.add(jobs[job])

    def close(self) -> None:
        """Close the client and cancel every job of this sweep (scancel)."""
        try:
            self.client.close()
        finally:
            self.cluster.close()


def _queued_jobs() -> set[str] | None:
    """The ids of this user's jobs that SLURM still holds (pending or running)."""
    try:
        out = subprocess.run(
            ["squeue", "-h", "-u", getpass.getuser(), "-o", "%i %T"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    ids = set()
    for line in out.stdout.splitlines():
        jid, _, state = line.strip().partition(" ")
        if jid and state not in ("COMPLETING", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT"):
            ids.add(jid)
    return ids
