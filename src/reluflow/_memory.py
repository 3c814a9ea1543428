"""Memory estimates checked before allocating: a size that cannot fit is an input error.

Each entry point that allocates arrays growing with the problem (the data
generators, :func:`reluflow.init_network`, the dynamics) calls :func:`require`
with its own estimate ``fixed + per_unit · units`` in bytes, measured with
``tracemalloc`` on this code (the margins are in the callers' constants and
are tested against the measured peaks). When the estimate exceeds the memory
available to the process, :class:`~reluflow.errors.InputError` names the size,
the estimate, the memory available and the largest size that fits, instead of
a ``MemoryError`` (or the kernel's OOM killer) deep inside numpy.
"""

from __future__ import annotations

import os

from .errors import InputError

# bytes per sample (and per sample and neuron) measured by tracemalloc, with margin
DATA_PER_SAMPLE = 32  # orthogonal_data: labels, norms, their permutation
LIMIT_PER_SAMPLE = 160  # jump_process: ~57 + m bytes measured, ~140 at m = 16 with a tie
LIMIT_PER_ENTRY = 2  # jump_process, per sample and neuron
INIT_PER_ENTRY = 48  # init_network: u (m, n), the Gaussian draw and a temporary (~33 measured)
FLOW_PER_ENTRY = 320  # gradient_flow: Runge-Kutta stages and work arrays (~225 measured)
DESCENT_PER_ENTRY = 128  # gradient_descent: velocity, mask and temporaries (~75 measured)
GRAM_COPIES = 4  # general data: K, its factorisation or pseudo-inverse, temporaries


def available_bytes() -> int | None:
    """Memory this process may still allocate: ``MemAvailable``, capped by a cgroup limit.

    ``None`` where neither can be read (then nothing is refused).
    """
    avail: int | None = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, AttributeError):
            avail = None
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        if limit != "max":
            room = max(int(limit) - used, 0)
            avail = room if avail is None else min(avail, room)
    except (OSError, ValueError):
        pass
    return avail


def format_bytes(nbytes: float) -> str:
    """``1.5 GiB``-style size."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(nbytes) < 1024 or unit == "PiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} PiB"  # pragma: no cover


def require(
    what: str,
    size: str,
    nbytes: float,
    *,
    per_n: float,
    fixed: float = 0.0,
    at: str = "",
    available: int | None = None,
) -> None:
    """Refuse a computation whose estimated memory exceeds what is available.

    Args:
        what: the computation, e.g. ``"the jump process"``.
        size: the size asked for, e.g. ``"n = 10000000000, m = 80"``.
        nbytes: the estimate in bytes.
        per_n: bytes per sample at the other sizes fixed, to say the largest ``n`` that fits.
        fixed: bytes that do not grow with ``n`` (at the other sizes fixed).
        at: the sizes held fixed for that largest ``n``, e.g. ``"m = 80"``.
        available: bytes available (default :func:`available_bytes`).

    Raises:
        InputError: when ``nbytes`` exceeds the memory available.
    """
    avail = available_bytes() if available is None else available
    if avail is None or nbytes <= avail:
        return
    fits = int(max(avail - fixed, 0) // per_n) if per_n > 0 else 0
    where = f" at {at}" if at else ""
    raise InputError(
        f"{size}: {what} needs about {format_bytes(nbytes)} of memory (estimate), but "
        f"{format_bytes(avail)} is available; {'at most n = ' + f'{fits:.3g}' if fits else 'no n'}"
        f" fits{where}: use a smaller n (or a machine with more memory)"
    )


def check_data(n: int, d: int | None = None) -> None:
    """Before generating data: orthogonal (``d`` None: O(n)) or Gaussian (an ``n x d`` array)."""
    if d is None:
        per_n = DATA_PER_SAMPLE
        require("the dataset", f"n = {n}", per_n * n, per_n=per_n)
    else:
        per_n = DATA_PER_SAMPLE + 16 * d  # X and its scaled copy
        require("the dataset", f"n = {n}, d = {d}", per_n * n, per_n=per_n, at=f"d = {d}")


def check_init(n: int, m: int, d: int, orthogonal: bool) -> None:
    """Before :func:`reluflow.init_network`: ``u`` (m, n), and ``W`` (m, d) on general data."""
    per_n = INIT_PER_ENTRY * m
    fixed = 0.0 if orthogonal else 3 * 8.0 * m * d
    require(
        "the initial network",
        f"n = {n}, m = {m}",
        fixed + per_n * n,
        per_n=per_n,
        fixed=fixed,
        at=f"m = {m}",
    )


def check_limit(n: int, m: int) -> None:
    """Before :func:`reluflow.jump_process`: O(n) bookkeeping, one byte-sized entry per (j, i)."""
    per_n = LIMIT_PER_SAMPLE + LIMIT_PER_ENTRY * m
    require("the jump process", f"n = {n}, m = {m}", per_n * n, per_n=per_n, at=f"m = {m}")


def check_dynamics(
    what: str, n: int, m: int, orthogonal: bool, per_entry: float = FLOW_PER_ENTRY
) -> None:
    """Before the flow or descent: work arrays (m, n), and the Gram matrix on general data.

    The n² term is bounded by its value at the largest n that fits the linear term,
    which makes "at most n" a safe (slightly pessimistic) answer.
    """
    per_n = per_entry * m
    gram = 0.0 if orthogonal else GRAM_COPIES * 8.0 * n * n
    require(
        what,
        f"n = {n}, m = {m}",
        per_n * n + gram,
        per_n=per_n + (0.0 if orthogonal else GRAM_COPIES * 8.0 * n),
        at=f"m = {m}",
    )


def check_run(what: str, n: int, m: int, d: int | None = None) -> None:
    """A whole command before it starts: the data, then the network and dynamics (``what``).

    ``what`` is ``"limit"`` (the jump process), ``"flow"`` or ``"descent"`` (the initial
    network and the dynamics); ``d`` is the dimension of Gaussian data (None: orthogonal data). The answer
    "at most n" then holds for the command as a whole, not only for its first allocation.
    """
    per_n = DATA_PER_SAMPLE + (16.0 * d if d is not None else 0.0)
    fixed = 0.0
    if what == "limit":
        per_n += LIMIT_PER_SAMPLE + LIMIT_PER_ENTRY * m
        gram = 0.0
    else:
        dyn = FLOW_PER_ENTRY if what == "flow" else DESCENT_PER_ENTRY
        per_n += (INIT_PER_ENTRY + dyn) * m
        gram = 0.0 if d is None else GRAM_COPIES * 8.0 * n * n
        fixed = 0.0 if d is None else 3 * 8.0 * m * d
    require(
        "the jump process" if what == "limit" else "the run",
        f"n = {n}, m = {m}" + (f", d = {d}" if d is not None else ""),
        fixed + per_n * n + gram,
        per_n=per_n + (GRAM_COPIES * 8.0 * n if d is not None else 0.0),
        fixed=fixed,
        at=f"m = {m}" + (f", d = {d}" if d is not None else ""),
    )
