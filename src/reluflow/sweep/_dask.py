"""The Dask back-end: runs as tasks on a Dask cluster, results gathered by the driver.

The workers never touch the store: each task returns its records and the driver
writes them. A worker that dies takes its tasks with it; the scheduler gives them
to another worker (and reports ``KilledWorker`` after repeated deaths), so a run is
lost only as a reported failure, never silently.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

from ..errors import InputError
from ._tally import _Tally
from .runs import Batch, _describe, _run_batch
from .spec import _check_address

# How long to wait for a scheduler before saying it cannot be reached.
CONNECT_TIMEOUT_S = 5.0
# How often the runs' watch (e.g. SLURM jobs that ended) looks.
WATCH_S = 1.0


def _connect(scheduler: str, connect_timeout: float) -> Any:
    """A client of the Dask scheduler at ``scheduler`` (an InputError if unreachable)."""
    try:
        from distributed import Client
    except ImportError:
        raise InputError(
            "running on Dask needs dask and distributed: pip install 'reluflow[dask]'"
        ) from None
    address = _check_address(scheduler)
    try:
        return Client(address, timeout=connect_timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise InputError(
            f"cannot reach the Dask scheduler at {address} within {connect_timeout:g} s "
            f"({type(exc).__name__}: {exc}); check the address and that `dask scheduler` "
            "is running there (nothing was run or written)"
        ) from None


def _run_dask(
    batches: list[Batch],
    tally: _Tally,
    client: Any,
    watch: Callable[[], str | None] | None = None,
) -> None:
    """Run ``batches`` as Dask tasks; each result goes to ``tally`` as it arrives.

    Args:
        watch: called every :data:`WATCH_S` seconds while runs are out (the SLURM
            back-end replaces ended jobs there); when it returns a reason, the runs
            not yet back are cancelled and reported as failed with that reason.
    """
    from distributed import as_completed

    tag = uuid.uuid4().hex[:8]
    futures = {
        client.submit(
            _run_batch,
            [cfg for _, cfg in batch],
            key=f"reluflow-runs-{batch[0][0]}-{len(batch)}-{tag}",
            pure=False,
        ): batch
        for batch in batches
    }
    gave_up: list[str] = []
    stop = threading.Event()

    def watcher() -> None:
        while not stop.wait(WATCH_S):
            why = watch()
            if why:
                gave_up.append(why)
                client.cancel(list(futures))
                return

    thread = None
    if watch is not None:
        thread = threading.Thread(target=watcher, daemon=True, name="reluflow-watch")
        thread.start()
    try:
        # with_results: the results are fetched in the background as runs finish,
        # not one round trip at a time from this loop.
        for fut, result in as_completed(
            futures, loop=client.loop, with_results=True, raise_errors=False
        ):
            if isinstance(result, BaseException) or fut.status != "finished":
                # the task raised, or its workers kept dying (KilledWorker), or we gave up
                if gave_up:
                    why = gave_up[0]
                elif isinstance(result, BaseException):
                    why = _describe(result)
                else:
                    why = fut.status
                result = [(rid, None, why) for rid, _ in futures[fut]]
            tally.take(result)
            fut.release()
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        stop.set()
        if thread is not None:
            thread.join()
