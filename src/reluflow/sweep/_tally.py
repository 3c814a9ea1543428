"""The driver's tally: every finished run written to the store as it arrives, with a progress bar."""

from __future__ import annotations

import sys

from .._version import __version__
from ..store import ResultsStore, RunRecord


class _Tally:
    """Counts runs written and failed; writes each finished run in its own transaction."""

    def __init__(self, store: ResultsStore, total: int, progress: bool):
        from tqdm.auto import tqdm

        self.store = store
        self.ran = self.written = 0
        self.failures: list[tuple[str, str]] = []
        self.bar = tqdm(
            total=total,
            desc="sweep",
            unit="run",
            disable=not progress,
            file=sys.stderr,
            leave=False,
            # the rate (and ETA) averaged over the last ~20 runs, not the last one or two:
            # runs finish in bursts when several workers start together
            smoothing=0.05,
        )

    def done(self, rid: str, record: RunRecord) -> None:
        if record.version != __version__:
            self.fail(
                rid,
                f"computed by reluflow {record.version} but the driver runs {__version__}: "
                "install the same version on the workers",
            )
            return
        self.written += self.store.put(record)
        self.ran += 1
        self.bar.update()

    def take(self, results: list[tuple[str, RunRecord | None, str]]) -> None:
        for rid, record, error in results:
            if record is None:
                self.fail(rid, error)
            else:
                self.done(rid, record)

    def fail(self, rid: str, message: str) -> None:
        self.failures.append((rid, message))
        self.bar.update()
        self.bar.set_postfix(failed=len(self.failures))
