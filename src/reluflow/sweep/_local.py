"""Local back-ends: runs in this process, or in a pool of worker processes on this machine.

The pool's processes are spawned (never forked from a driver holding an open
database) and exit when the driver dies. A worker process that dies (killed, out
of memory) breaks the pool: the runs not yet returned are run again in a new pool,
up to ``retries`` times, then reported as failed; none is lost silently.
"""

from __future__ import annotations

import os
import time

from ._tally import _Tally
from .runs import Batch, _describe, _run_batch


def _exit_with_parent(parent: int) -> None:
    """Worker-process initializer: exit when the driver dies (even by SIGKILL).

    Orphaned pool workers would otherwise wait forever on their task queue.
    """
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="reluflow-parent-watch").start()


def _run_serial(batches: list[Batch], tally: _Tally) -> None:
    for batch in batches:
        tally.take(_run_batch([cfg for _, cfg in batch]))


def _run_processes(batches: list[Batch], tally: _Tally, workers: int, retries: int) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    pending = dict(enumerate(batches))
    attempts = dict.fromkeys(pending, 0)
    ctx = mp.get_context("spawn")  # no fork of the driver's open database or threads
    while pending:
        broken = False
        with ProcessPoolExecutor(
            max_workers=min(workers, len(pending)),
            mp_context=ctx,
            initializer=_exit_with_parent,
            initargs=(os.getpid(),),
        ) as pool:
            futures = {
                pool.submit(_run_batch, [cfg for _, cfg in batch]): i
                for i, batch in pending.items()
            }
            try:
                for fut in as_completed(futures):
                    i = futures[fut]
                    try:
                        results = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        continue
                    except Exception as exc:  # e.g. a result that cannot be sent back
                        results = [(rid, None, _describe(exc)) for rid, _ in pending[i]]
                    tally.take(results)
                    del pending[i]
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        if broken:  # a worker process died (killed, out of memory): run the rest again
            for i in list(pending):
                attempts[i] += 1
                if attempts[i] > retries:
                    for rid, _ in pending.pop(i):
                        tally.fail(
                            rid, f"a worker process died {attempts[i]} times while running it"
                        )
