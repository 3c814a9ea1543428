"""The SLURM back-end: a dask-jobqueue ``SLURMCluster`` whose batch jobs run Dask workers.

The driver (this process, on a login node) submits ``jobs`` batch jobs with
``sbatch``; each starts Dask workers that connect back to the driver's scheduler
and run tasks as in :mod:`reluflow.sweep._dask`. Only the driver writes the store,
so the jobs need no shared filesystem.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from typing import Any

from .. import _validate as V
from ..errors import InputError


def _start(options: Mapping[str, Any]) -> tuple[Any, Any]:
    """Start a SLURM cluster of ``options["jobs"]`` jobs: (client, cluster)."""
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
    jobs = V.positive_int("jobs", kwargs.pop("jobs", 1))
    if shutil.which(str(kwargs.get("submit_command", "sbatch")).split()[0]) is None:
        raise InputError(
            "--cluster slurm needs SLURM's sbatch on this machine (run the sweep on a login "
            "node), or connect to a running cluster with --scheduler tcp://HOST:PORT"
        )
    try:
        slurm = SLURMCluster(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InputError(f"invalid SLURM cluster options {kwargs}: {exc}") from None
    slurm.scale(jobs=jobs)
    return Client(slurm, set_as_default=False), slurm
