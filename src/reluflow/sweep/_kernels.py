"""Compiled kernels: compile them once in the driver before the workers start.

The flow runs numba kernels (:mod:`reluflow._engines.orthogonal_numba` on orthogonal data,
:mod:`reluflow._engines.general_numba` on general data), compiled on first use and
cached on disk (``cache=True``). Compiling takes tens of
seconds; left to the workers, every worker of a new pool compiles it at the same
time while the progress bar sits at its first run with an absurd ETA. So the
driver first runs one tiny flow of each kernel the sweep needs: the kernels
are compiled once (or loaded from the cache) and the workers load them from the
cache. The progress bar starts after that.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from . import runs

# Say what is happening when getting the kernels ready takes longer than this
# (loading them from the cache takes about a second).
ANNOUNCE_AFTER_S = 1.0
MESSAGE = "compiling kernels (once, cached afterwards)"


# The data kinds whose flow runs the orthogonal-data kernel; the other kinds run the
# general-data kernel (above GENERAL_MIN_SCALE).
_ORTHOGONAL_KINDS = ("orthogonal", "sphere_orthogonal")
# The smallest run of each kernel (the same argument types as any run of that kernel).
_TINY = {
    "orthogonal": {"dynamics": "flow", "data": "orthogonal", "n": 4, "m": 2, "scale": 1e-6},
    "general": {"dynamics": "flow", "data": "gaussian", "n": 4, "d": 3, "m": 2, "scale": 1e-6},
}


def _kernel(cfg: Mapping[str, Any]) -> str | None:
    """The compiled kernel a normalised configuration runs (a key of ``_TINY``), or None."""
    from ..flow import GENERAL_MIN_SCALE

    engine = cfg.get("engine", "auto")
    if cfg.get("dynamics") != "flow" or engine == "numpy":
        return None
    if cfg.get("data") in _ORTHOGONAL_KINDS:
        return "orthogonal"
    if engine == "numba" or cfg.get("scale", 0.0) >= GENERAL_MIN_SCALE:
        return "general"
    return None


def compile_kernels(configs: Iterable[Mapping[str, Any]], *, announce: bool = True) -> float:
    """Compile (or load from the cache) the kernels that ``configs`` use, in this process.

    Args:
        configs: normalised configurations (those about to run).
        announce: print ``"compiling kernels (once, cached afterwards)"`` on stderr
            when it takes longer than :data:`ANNOUNCE_AFTER_S`, then the time it took.

    Returns:
        Seconds spent (0 when no configuration needs a compiled kernel). A tiny
        run that fails is ignored: the real runs will report the error.
    """
    kinds = {k for k in map(_kernel, configs) if k is not None}
    if not kinds:
        return 0.0
    t0 = time.perf_counter()
    done = threading.Event()

    def work() -> None:
        try:
            for kind in sorted(kinds):
                runs.run_config({**_TINY[kind], "engine": "numba", "tau_max": 2.0})
        except Exception:  # the real runs report their own errors
            pass
        finally:
            done.set()

    threading.Thread(target=work, daemon=True, name="reluflow-compile").start()
    shown = False
    if not done.wait(ANNOUNCE_AFTER_S) and announce:
        sys.stderr.write(f"{MESSAGE} ...\n")
        sys.stderr.flush()
        shown = True
    done.wait()
    wall = time.perf_counter() - t0
    if shown:
        sys.stderr.write(f"kernels ready in {wall:.0f} s\n")
    return wall
