"""Sweeps: a grid of configurations, run in parallel, each finished run written to a store.

- :mod:`~reluflow.sweep.config`: one run's configuration (:func:`normalize_config`,
  :func:`run_id`): the table of keys, their checks and defaults.
- :mod:`~reluflow.sweep.runs`: one run computed from its configuration
  (:func:`run_config` → :class:`~reluflow.store.RunRecord`), bit-identical in any
  process.
- :mod:`~reluflow.sweep.spec`: a spec file (TOML or YAML) describing a grid
  (:func:`load_spec`, :func:`expand_spec`, :func:`execution_options`).
- :mod:`~reluflow.sweep.driver`: :func:`run_sweep`, which skips the runs already in
  the store and runs the rest in this process, in local worker processes, on an
  existing Dask cluster or on a SLURM cluster (dask-jobqueue); the back-ends are
  the private modules ``_local``, ``_dask`` and ``_slurm`` (docs/slurm.md),
  ``_tally`` writes what comes back and ``_kernels`` compiles the numba kernels once
  in the driver before a local pool starts.

Only the driver process writes the store, one transaction per run (its row and
its arrays together): a sweep killed at any moment and started again runs only
what is missing.
"""

from ..store import RunRecord
from .config import ConfigError, normalize_config, run_id
from .driver import SweepSummary, run_sweep
from .runs import run_config
from .spec import Spec, execution_options, expand_spec, load_spec

__all__ = [
    "ConfigError",
    "RunRecord",
    "Spec",
    "SweepSummary",
    "execution_options",
    "expand_spec",
    "load_spec",
    "normalize_config",
    "run_config",
    "run_id",
    "run_sweep",
]
