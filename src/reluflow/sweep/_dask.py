"""The Dask back-end: runs as tasks on a Dask cluster, results gathered by the driver.

The workers never touch the store: each task returns its records and the driver
writes them. A worker that dies takes its tasks with it; the scheduler gives them
to another worker (and reports ``KilledWorker`` after repeated deaths), so a run is
lost only as a reported failure, never silently.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..errors import InputError
from ._tally import _Tally
from .runs import Batch, _describe, _run_batch
from .spec import _check_address

# How long to wait for a scheduler before saying it cannot be reached.
CONNECT_TIMEOUT_S = 5.0


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


def _run_dask(batches: list[Batch], tally: _Tally, client: Any) -> None:
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
    try:
        # with_results: the results are fetched in the background as runs finish,
        # not one round trip at a time from this loop.
        for fut, result in as_completed(
            futures, loop=client.loop, with_results=True, raise_errors=False
        ):
            if isinstance(result, BaseException) or fut.status != "finished":
                # the task raised, or its workers kept dying (KilledWorker)
                why = _describe(result) if isinstance(result, BaseException) else fut.status
                result = [(rid, None, why) for rid, _ in futures[fut]]
            tally.take(result)
            fut.release()
    except BaseException:
        client.cancel(list(futures))
        raise
