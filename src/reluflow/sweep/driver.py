"""The sweep driver: run every configuration not yet in the store, on the chosen back-end.

Only this (driver) process writes the store, one transaction per run, as soon as
the run comes back: a sweep killed at any moment and started again runs only what
is missing.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _validate as V
from .._provenance import config_hash
from ..errors import InputError
from ..store import ResultsStore
from ._dask import CONNECT_TIMEOUT_S, _connect, _run_dask
from ._kernels import compile_kernels
from ._local import _run_processes, _run_serial
from ._slurm import SlurmJobs
from ._tally import _Tally
from .config import normalize_config
from .spec import CLUSTERS, _as_spec, execution_options, expand_spec


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep did.

    Attributes:
        total: distinct runs in the sweep. skipped: already in the store.
        ran: runs computed now. written: rows this sweep wrote (less than
            ``ran`` when another sweep on the same store wrote some first).
        failed: runs that raised (not written; a new sweep retries them).
        failures: ``(run_id, message)`` of each failure.
        store: the store file. executor: ``"serial"``, ``"processes"``, ``"dask"``
            or ``"slurm"``.
        workers: worker count used (Dask: workers when the sweep started; SLURM:
            jobs submitted at the start).
        wall_s: wall time of the sweep.
    """

    total: int
    skipped: int
    ran: int
    written: int
    failed: int
    failures: tuple[tuple[str, str], ...] = field(default=())
    store: str = ""
    executor: str = ""
    workers: int = 0
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["failures"] = [{"run_id": r, "message": m} for r, m in self.failures]
        return d


def run_sweep(
    sweep: Mapping[str, Any] | str | Path | Iterable[Mapping[str, Any]],
    store: str | Path | ResultsStore,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    cluster: str | None = None,
    progress: bool = True,
    cluster_options: Mapping[str, Any] | None = None,
    connect_timeout: float | None = None,
    retries: int = 2,
    batch: int | None = None,
) -> SweepSummary:
    """Run every configuration of a sweep that is not yet in ``store``.

    Runs execute in local processes (default), on an existing Dask cluster
    (``scheduler``) or on a SLURM cluster started through dask-jobqueue
    (``cluster="slurm"``); only this (driver) process writes the store, each
    run in its own transaction as soon as it finishes. Runs that raise are
    reported in the summary and not written, so the next sweep retries them.

    Args:
        sweep: a spec (path or dict) or a list of configurations.
        store: the results store (a path, or an open :class:`ResultsStore`).
        workers: local processes (default: the spec's ``[execution] workers``,
            else one per core; 1 runs in this process).
        scheduler: address of a Dask scheduler (``tcp://HOST:PORT``).
        cluster: ``"slurm"`` to start a dask-jobqueue SLURMCluster, or ``"local"``.
        progress: show a progress bar on stderr.
        cluster_options: SLURMCluster options (and ``jobs``), over the spec's ``[slurm]``.
        connect_timeout: seconds to wait for the scheduler (default 5).
        retries: local only: times a run is retried after its worker process died
            (on Dask the scheduler retries runs of dead workers itself).
        batch: runs per task (default 1, or the spec's ``[execution] batch``):
            more amortises the few milliseconds of scheduling per task over
            runs that take less.

    Returns:
        A :class:`SweepSummary`.

    Raises:
        InputError: invalid spec, unreachable scheduler, Dask not installed;
            nothing is run or written then.
    """
    wall0 = time.perf_counter()
    ex: dict[str, Any] = {"slurm": {}}
    if isinstance(sweep, Mapping | str | Path):
        spec = _as_spec(sweep)
        configs = expand_spec(spec)
        ex = execution_options(spec)
    else:
        configs = []
        seen: set[str] = set()
        for i, c in enumerate(sweep):
            try:
                cfg = normalize_config(c)
            except InputError as exc:
                raise InputError(f"configuration {i}: {exc}") from None
            rid = config_hash(cfg)
            if rid not in seen:
                seen.add(rid)
                configs.append(cfg)
    scheduler = scheduler if scheduler is not None else ex.get("scheduler")
    cluster = cluster if cluster is not None else ex.get("cluster")
    if cluster == "local":
        cluster = None
    if scheduler is not None and cluster is not None:
        raise InputError("give scheduler or cluster, not both")
    if workers is None:
        workers = ex.get("workers")
    workers = V.positive_int("workers", workers) if workers is not None else _cpu_count()
    retries = V.positive_int("retries", retries, minimum=0)
    batch = V.positive_int("batch", batch if batch is not None else ex.get("batch", 1))
    timeout = connect_timeout if connect_timeout is not None else ex.get("connect_timeout")
    timeout = CONNECT_TIMEOUT_S if timeout is None else float(timeout)

    client = slurm = None
    if scheduler is not None or cluster is not None:
        # Connect before opening the store: an unreachable scheduler writes nothing.
        options = {**ex["slurm"], **({"jobs": ex["jobs"]} if "jobs" in ex else {})}
        options.update(cluster_options or {})
        if scheduler is not None:
            client = _connect(scheduler, timeout)
        elif cluster == "slurm":
            slurm = SlurmJobs(options)
            client = slurm.client
        else:
            raise InputError(f"cluster must be one of {', '.join(CLUSTERS)}, got {cluster!r}")
    try:
        with contextlib.ExitStack() as stack:
            if isinstance(store, ResultsStore):
                db = store
            else:
                db = stack.enter_context(ResultsStore(store))
            done = db.done_ids()
            todo = {}
            for cfg in configs:
                rid = config_hash(cfg)
                if rid not in done:
                    todo[rid] = cfg
            items = list(todo.items())
            batches = [items[i : i + batch] for i in range(0, len(items), batch)]
            if client is None and batches:
                # before the pool starts and the progress bar's clock runs
                compile_kernels(todo.values(), announce=progress)
            tally = _Tally(db, len(todo), progress)
            stack.callback(tally.bar.close)
            if client is not None:
                executor = "dask"
                n_workers = len(client.scheduler_info().get("workers", {}))
                if slurm is not None:
                    executor = "slurm"
                    slurm.start(len(batches))
                    n_workers = slurm.target
                    if batches:
                        _run_dask(batches, tally, client, watch=slurm.watch)
                elif batches:
                    _run_dask(batches, tally, client)
            elif workers == 1 or len(batches) <= 1:
                executor, n_workers = "serial", 1
                _run_serial(batches, tally)
            else:
                executor, n_workers = "processes", min(workers, len(batches))
                _run_processes(batches, tally, workers, retries)
            return SweepSummary(
                total=len(configs),
                skipped=len(configs) - len(todo),
                ran=tally.ran,
                written=tally.written,
                failed=len(tally.failures),
                failures=tuple(tally.failures),
                store=str(db.path),
                executor=executor,
                workers=n_workers,
                wall_s=time.perf_counter() - wall0,
            )
    finally:
        if slurm is not None:
            slurm.close()  # its client, and scancel of every job
        elif client is not None:
            client.close()


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
