"""Compiled kernels: compile them once in the driver before the workers start.

The flow on orthogonal data runs a numba kernel (:mod:`reluflow._flow_numba`),
compiled on first use and cached on disk (``cache=True``). Compiling takes tens of
seconds; left to the workers, every worker of a new pool compiles it at the same
time while the progress bar sits at its first run with an absurd ETA. So the
driver runs one tiny configuration of the kind the sweep needs first: the kernels
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


def _needs_kernels(cfg: Mapping[str, Any]) -> bool:
    """Whether a normalised configuration runs a compiled kernel."""
    return (
        cfg.get("dynamics") == "flow"
        and cfg.get("data") == "orthogonal"
        and cfg.get("engine", "auto") in ("auto", "numba")
    )


def _tiny(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The same kind of run (same kernels, same argument types) at the smallest size."""
    out = {k: v for k, v in cfg.items() if k not in ("t_max", "tau_max", "max_steps")}
    out.update(n=4, d=4, m=2, seed=0, tau_max=2.0)
    return out


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
    kinds = {}
    for cfg in configs:
        if _needs_kernels(cfg):
            kinds.setdefault(cfg.get("engine", "auto"), cfg)
    if not kinds:
        return 0.0
    t0 = time.perf_counter()
    done = threading.Event()

    def work() -> None:
        try:
            for cfg in kinds.values():
                runs.run_config(_tiny(cfg))
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
