"""Sweeps: a grid of configurations, run in parallel, each finished run written to a store.

A *configuration* is a flat dict naming one run completely: the dynamics
(``"flow"``, ``"descent"`` or ``"limit"``), the data, the width, the scale λ, the
seed and the solver options. :func:`normalize_config` validates it and fills in
the defaults; its hash (:func:`run_id`) is the run's key in the
:class:`~reluflow.store.ResultsStore`, so a run is computed once whatever the
sweep, the order or the machine. :func:`run_config` computes one run from its
configuration with the public API alone: the same configuration gives
bit-identical results in any process, locally or on a Dask worker.

A *spec* (TOML or YAML) describes a grid: every key whose value is a list is an
axis of the grid, every other key is fixed, and ``seeds`` lists the seeds::

    experiment = "width"
    dynamics = "limit"
    n = 256
    m = [4, 8, 16, 32]
    labels = "balanced"
    seeds = "0:100"            # or a list [0, 1, 2], or a count 100

    [solver]                   # solver options (also accepted at the top level)
    rtol = 1e-8

    [execution]                # how to run: never part of a run's configuration
    workers = 2                # local processes (default: one per core)
    # scheduler = "tcp://10.0.0.5:8786"      # an existing Dask cluster
    # cluster = "slurm"                       # or a SLURM cluster via dask-jobqueue
    # jobs = 4

    [slurm]                    # passed to dask_jobqueue.SLURMCluster
    queue = "normal"
    cores = 8
    memory = "16GB"

:func:`run_sweep` skips the runs already in the store and writes each finished
run from the driver process only (workers never touch the store), one
transaction per run: a sweep killed at any moment and started again runs only
what is missing.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import itertools
import math
import os
import platform
import re
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _validate as V
from ._provenance import config_hash
from ._provenance import provenance as _provenance
from ._version import __version__
from .errors import InputError
from .store import ResultsStore, RunRecord

__all__ = [
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

DYNAMICS = ("flow", "descent", "limit")
DATA_KINDS = ("orthogonal", "gaussian")
LABELS = ("balanced", "random", "gaussian")
FRAMES = ("canonical", "random")
INITS = ("balanced", "independent")
ENGINES = ("auto", "numpy", "numba")

# Final loss below this fraction of the initial loss mean(y²)/2 counts as interpolating
# (flow and descent; the jump process knows exactly whether it fitted every sample).
INTERPOLATION_RTOL = 1e-6
# Dask: how long to wait for a scheduler before saying it cannot be reached.
CONNECT_TIMEOUT_S = 5.0
# Largest grid a spec may expand to.
MAX_RUNS = 1_000_000


# --------------------------------------------------------------------------- configurations


class ConfigError(InputError):
    """An invalid configuration value; ``key`` names the offending key."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(message)


def _opt_float(name: str, low: float, low_open: bool) -> Any:
    allowed = f"a finite number {'>' if low_open else '>='} {low:g}"
    return lambda v: V.finite_float(name, v, low=low, low_open=low_open, allowed=allowed)


def _norms(v: Any) -> Any:
    if isinstance(v, str):
        return V.choice("norms", v, ("uniform",))
    if isinstance(v, bool):
        raise InputError(f"norms must be a positive number or 'uniform', got {v!r}")
    return V.finite_float(
        "norms", v, low=0.0, low_open=True, allowed="a positive number or 'uniform'"
    )


def _d(v: Any) -> int | None:
    return None if v is None else V.positive_int("d", v)


def _string(name: str) -> Any:
    def check(v: Any) -> str:
        if not isinstance(v, str) or not v.strip():
            raise InputError(f"{name} must be a non-empty string, got {v!r}")
        return v

    return check


# Solver options: key -> (the dynamics it applies to, check of one value).
SOLVER_OPTIONS: dict[str, tuple[tuple[str, ...], Any]] = {
    "rtol": (("flow",), lambda v: V.tolerance("rtol", v)),
    "atol": (("flow",), _opt_float("atol", 0.0, False)),
    "t_max": (("flow", "descent"), _opt_float("t_max", 0.0, True)),
    "tau_max": (("flow", "descent"), _opt_float("tau_max", 0.0, True)),
    "loss_tol": (("flow", "descent"), _opt_float("loss_tol", 0.0, False)),
    "stall_rate": (("flow", "descent"), _opt_float("stall_rate", 0.0, False)),
    "max_steps": (("flow", "descent"), lambda v: V.positive_int("max_steps", v)),
    "points_per_decade": (("flow", "descent"), lambda v: V.positive_int("points_per_decade", v)),
    "engine": (("flow",), lambda v: V.choice("engine", v, ENGINES)),
    "lr": (("descent",), _opt_float("lr", 0.0, True)),
    "steps": (("descent",), lambda v: V.positive_int("steps", v)),
    "batch_size": (("descent",), lambda v: V.positive_int("batch_size", v)),
    "batch_seed": (("descent",), lambda v: V.seed("batch_seed", v)),
    "tie_rtol": (("limit",), lambda v: V.tolerance("tie_rtol", v)),
}

# Configuration keys (besides the solver options): key -> check of one value.
CONFIG_KEYS: dict[str, Any] = {
    "experiment": _string("experiment"),
    "dynamics": lambda v: V.choice("dynamics", v, DYNAMICS),
    "data": lambda v: V.choice("data", v, DATA_KINDS),
    "n": lambda v: V.positive_int("n", v),
    "d": _d,
    "m": lambda v: V.positive_int("m", v),
    "scale": V.scale,
    "labels": lambda v: V.choice("labels", v, LABELS),
    "norms": _norms,
    "frame": lambda v: V.choice("frame", v, FRAMES),
    "init": lambda v: V.choice("init", v, INITS),
    "seed": lambda v: V.seed("seed", v),
}
ALIASES = {"lambda": "scale", "λ": "scale"}
# The order of keys in a normalised configuration (and of the axes of a grid).
CONFIG_ORDER = (*CONFIG_KEYS, *SOLVER_OPTIONS)
DEFAULTS = {
    "experiment": "sweep",
    "data": "orthogonal",
    "labels": "balanced",
    "norms": 1.0,
    "frame": "canonical",
    "init": "balanced",
    "seed": 0,
}
_SCALE_DYNAMICS = ("flow", "descent")


def _check_value(key: str, value: Any) -> Any:
    check = CONFIG_KEYS.get(key) or SOLVER_OPTIONS[key][1]
    try:
        return check(value)
    except InputError as exc:
        raise ConfigError(key, str(exc)) from None


def normalize_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Validate one configuration and fill in its defaults.

    Keys that do not apply to the configuration's dynamics (``scale`` or ``rtol``
    for the jump process, ``lr`` for the flow, ...) are dropped, ``None`` means
    "the default", numbers are normalised (``1e-6`` and ``0.000001`` are the same
    run), and the keys come in a fixed order, so that equal runs have equal
    configurations and equal :func:`run_id`.

    Raises:
        ConfigError: (an :class:`~reluflow.errors.InputError`) naming the key.
    """
    if not isinstance(config, Mapping):
        raise InputError(f"a configuration must be a dict, got {type(config).__name__}")
    raw = {}
    for k, v in config.items():
        key = ALIASES.get(k, k)
        if key not in CONFIG_KEYS and key not in SOLVER_OPTIONS:
            raise ConfigError(
                str(k),
                f"unknown configuration key {k!r}; allowed: {', '.join(CONFIG_ORDER)}",
            )
        if key in raw and v is not None:
            raise ConfigError(str(k), f"{k!r} given twice (as {key!r} and an alias)")
        if v is not None:
            raw[key] = v
    if "dynamics" not in raw:
        raise ConfigError("dynamics", f"dynamics is required: one of {', '.join(DYNAMICS)}")
    dyn = _check_value("dynamics", raw["dynamics"])
    for key in ("n", "m"):
        if key not in raw:
            raise ConfigError(key, f"{key} is required (a positive integer)")
    cfg: dict[str, Any] = {}
    for key in CONFIG_ORDER:
        if key in SOLVER_OPTIONS and dyn not in SOLVER_OPTIONS[key][0]:
            continue
        if key == "scale" and dyn not in _SCALE_DYNAMICS:
            continue
        if key in raw:
            cfg[key] = _check_value(key, raw[key])
        elif key in DEFAULTS:
            cfg[key] = DEFAULTS[key]
    n = cfg["n"]
    if cfg["data"] == "orthogonal":
        d = cfg.get("d") or n
        if d < n:
            raise ConfigError("d", f"d must be >= n = {n} for orthogonal data, got {d}")
        cfg["d"] = d
        if dyn == "limit" and cfg["frame"] != "canonical":
            cfg["frame"] = "canonical"  # the jump process never sees the frame
    else:
        if "d" not in cfg:
            raise ConfigError("d", "data 'gaussian' needs d (the input dimension)")
        for key in ("norms", "frame"):
            if cfg[key] != DEFAULTS[key]:
                raise ConfigError(
                    key, f"{key} applies to orthogonal data only, got data 'gaussian'"
                )
        del cfg["norms"], cfg["frame"]
        if dyn == "limit":
            raise ConfigError(
                "data",
                "dynamics 'limit' (the jump process) needs data 'orthogonal', got 'gaussian'",
            )
    if dyn in _SCALE_DYNAMICS and "scale" not in cfg:
        raise ConfigError("scale", f"dynamics {dyn!r} needs scale (lambda), e.g. 1e-8")
    if dyn == "descent":
        if "lr" not in cfg:
            raise ConfigError("lr", "dynamics 'descent' needs lr (the step size), e.g. 0.5")
        if cfg.get("batch_size", 0) > n:
            raise ConfigError(
                "batch_size", f"batch_size must be <= n = {n}, got {cfg['batch_size']}"
            )
    if "t_max" in cfg and "tau_max" in cfg:
        raise ConfigError("tau_max", "give t_max or tau_max, not both")
    return {k: cfg[k] for k in CONFIG_ORDER if k in cfg}


def run_id(config: Mapping[str, Any]) -> str:
    """The key of a run in a store: the hash of its normalised configuration."""
    return config_hash(normalize_config(config))


# --------------------------------------------------------------------------- one run


def run_config(config: Mapping[str, Any]) -> RunRecord:
    """Run one configuration from scratch: data and network from its seed, then its dynamics.

    Deterministic: the same configuration gives bit-identical ``results`` and
    ``arrays`` in any process (only ``wall_s``, ``created`` and the host differ).

    Results (scalars): ``final_loss``, ``initial_loss``, ``norm_sq`` (‖θ‖² of the
    final or limit network), ``min_norm_sq`` (THEORY.md §5, orthogonal data; NaN
    otherwise) and ``ratio = norm_sq / min_norm_sq``, ``interpolates`` (the jump
    process's flag; for flow and descent ``final_loss <= 1e-6 · mean(y²)/2``),
    ``n_events`` (activations), ``success``, ``status``, ``run_wall_s`` (the
    dynamics alone); the limit adds ``ties``, the flow and descent
    ``conservation_drift``, ``steps`` and ``kinks``.

    Arrays: flow and descent: ``t``, ``tau``, ``loss``, ``a_abs`` (T, m),
    ``event_tau``, ``event_neuron`` (:func:`reluflow.activation_events`); limit:
    ``tau``, ``plateau_loss``, ``event_fitted``, ``event_neuron`` (first neuron of
    each event), ``a`` and ``initial_loss`` (0-d). All float64 or int64.
    """
    from .analysis import activation_events
    from .data import gaussian_data, orthogonal_data
    from .descent import gradient_descent
    from .flow import gradient_flow
    from .limit import jump_process
    from .network import init_network
    from .theory import min_norm_sq

    cfg = normalize_config(config)
    rid = config_hash(cfg)
    wall0 = time.perf_counter()
    dyn, seed = cfg["dynamics"], cfg["seed"]
    opts = {k: v for k, v in cfg.items() if k in SOLVER_OPTIONS}
    if cfg["data"] == "orthogonal":
        data = orthogonal_data(
            cfg["n"],
            cfg["d"],
            labels=cfg["labels"],
            norms=cfg["norms"],
            frame=cfg["frame"],
            seed=seed,
        )
    else:
        data = gaussian_data(cfg["n"], cfg["d"], labels=cfg["labels"], seed=seed)
    y = np.asarray(data.y, dtype=np.float64)
    initial_loss = float(y @ y) / (2 * data.n)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if dyn == "limit":
            res = jump_process(data, cfg["m"], seed=seed, init=cfg["init"], **opts)
            results: dict[str, Any] = {
                "final_loss": res.final_loss,
                "initial_loss": res.initial_loss,
                "norm_sq": res.norm_sq,
                "min_norm_sq": res.min_norm_sq,
                "ratio": res.ratio,
                "interpolates": bool(res.interpolates),
                "n_events": res.n_events,
                "ties": res.n_ties,
                "success": bool(res.ties_resolved),
                "status": "complete" if res.ties_resolved else "ties_unresolved",
                "run_wall_s": res.wall_s,
            }
            arrays = {
                "tau": res.tau,
                "plateau_loss": res.plateau_loss,
                "event_fitted": res.event_fitted,
                "event_neuron": np.array([g[0] for g in res.event_neurons], dtype=np.int64),
                "a": res.a,
                "initial_loss": np.array(res.initial_loss),
            }
            inner = res.provenance
        else:
            net = init_network(data, cfg["m"], cfg["scale"], seed=seed, init=cfg["init"])
            if dyn == "flow":
                traj = gradient_flow(data, net, **opts)
            else:
                traj = gradient_descent(data, net, opts.pop("lr"), **opts)
            ev = activation_events(traj)
            norm_sq = traj.final.norm_sq(data)
            if cfg["data"] == "orthogonal":
                mn = min_norm_sq(y, data.norms)
            else:
                mn = math.nan
            results = {
                "final_loss": traj.final_loss,
                "initial_loss": initial_loss,
                "norm_sq": norm_sq,
                "min_norm_sq": mn,
                "ratio": norm_sq / mn if mn > 0 else math.nan,
                "interpolates": bool(traj.final_loss <= INTERPOLATION_RTOL * initial_loss),
                "n_events": len(ev),
                "success": bool(traj.success),
                "status": traj.status,
                "conservation_drift": traj.conservation_drift,
                "steps": traj.stats.steps,
                "kinks": traj.stats.kinks,
                "run_wall_s": traj.wall_s,
            }
            arrays = {
                "t": traj.t,
                "tau": traj.tau,
                "loss": traj.loss,
                "a_abs": traj.a_abs,
                "event_tau": ev["tau"].to_numpy(dtype=np.float64),
                "event_neuron": ev["neuron"].to_numpy(dtype=np.int64),
            }
            inner = traj.provenance
    wall = time.perf_counter() - wall0
    results = {k: _scalar(v) for k, v in results.items()}
    arrays = {k: _array(v) for k, v in arrays.items()}
    prov = _provenance(**cfg)
    prov.update(
        host=platform.node(),
        warnings=[f"{w.category.__name__}: {w.message}" for w in caught],
        dynamics=_plain(inner),
    )
    return RunRecord(
        run_id=rid,
        experiment=cfg["experiment"],
        config=cfg,
        results=results,
        arrays=arrays,
        version=__version__,
        seed=seed,
        wall_s=wall,
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds"),
        provenance=prov,
    )


def _scalar(v: Any) -> Any:
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        return float(v)
    return str(v)


def _array(v: Any) -> np.ndarray:
    a = np.asarray(v)
    if a.dtype.kind == "f":
        return a.astype(np.float64, copy=False)
    if a.dtype.kind in "iu":
        return a.astype(np.int64, copy=False)
    return a


def _plain(obj: Any) -> Any:
    """JSON-able copy of a provenance dict (arrays summarised)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist() if obj.size <= 16 else f"<array shape={obj.shape}>"
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    return repr(obj)


# --------------------------------------------------------------------------- specs


class Spec(dict):
    """A parsed spec: the dict, plus the file it came from and the line of each key."""

    path: str | None = None
    lines: dict[tuple[str, ...], int]

    def locate(self, *key: str) -> str:
        lines = getattr(self, "lines", {})
        line = lines.get(tuple(key))
        if line is None and len(key) == 1:  # a solver option may sit in [solver]
            line = lines.get(("solver", key[0]))
        where = self.path or "spec"
        return f"{where}, line {line}" if line else where


SPEC_TABLES = ("solver", "execution", "slurm")
EXECUTION_KEYS = ("workers", "scheduler", "cluster", "jobs", "batch", "connect_timeout")
CLUSTERS = ("local", "slurm")
_SEED_KEYS = ("seed", "seeds")
_SPEC_KEYS = ("description", *_SEED_KEYS, *SPEC_TABLES)


def _toml_lines(text: str) -> dict[tuple[str, ...], int]:
    """The 1-based line of every ``key = value`` of a TOML file, by (table, key) path."""
    out: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    key_re = re.compile(
        r"""^\s*((?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'))*)\s*="""
    )
    for i, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if s.startswith("["):
            name = s.strip("[]").split("#")[0].strip()
            table = tuple(p.strip().strip("\"'") for p in name.split("."))
            out.setdefault(table, i)
            continue
        m = key_re.match(line)
        if m:
            parts = tuple(p.strip().strip("\"'") for p in m.group(1).split("."))
            out.setdefault(table + parts, i)
    return out


def _yaml_lines(text: str) -> dict[tuple[str, ...], int]:
    import yaml

    out: dict[tuple[str, ...], int] = {}

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = path + (str(k.value),)
                out.setdefault(key, k.start_mark.line + 1)
                walk(v, key)

    try:
        walk(yaml.compose(text, Loader=yaml.SafeLoader), ())
    except yaml.YAMLError:
        pass
    return out


def load_spec(path: str | Path) -> Spec:
    """Read and check a spec file (``.toml``, or ``.yaml``/``.yml``).

    Raises:
        InputError: unreadable file, syntax error, unknown key, wrong type,
            empty grid or impossible value, naming the key and its line.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no spec file at {str(p)!r}")
    text = p.read_text(encoding="utf-8")
    suffix = p.suffix.lower()
    if suffix == ".toml":
        import tomllib

        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{p}: not valid TOML: {exc}") from None
        lines = _toml_lines(text)
    elif suffix in (".yaml", ".yml"):
        import yaml

        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f", line {mark.line + 1}" if mark is not None else ""
            raise InputError(f"{p}{where}: not valid YAML: {exc}") from None
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise InputError(
                f"{p}: a spec must be a mapping of keys to values, got {type(raw).__name__}"
            )
        lines = _yaml_lines(text)
    else:
        raise InputError(f"spec must be a .toml, .yaml or .yml file, got {str(p)!r}")
    spec = Spec(raw)
    spec.path = str(p)
    spec.lines = lines
    _check_spec(spec)
    return spec


def _as_spec(spec: Mapping[str, Any] | str | Path) -> Spec:
    if isinstance(spec, str | Path):
        return load_spec(spec)
    if isinstance(spec, Spec):
        return spec
    if not isinstance(spec, Mapping):
        raise InputError(f"spec must be a dict or a path to a spec file, got {type(spec).__name__}")
    s = Spec(spec)
    s.lines = {}
    _check_spec(s)
    return s


def _fail(spec: Spec, key: tuple[str, ...], msg: str) -> InputError:
    return InputError(f"{spec.locate(*key)}: key {'.'.join(key)!r}: {msg}")


def _axis_values(spec: Spec, path: tuple[str, ...], value: Any) -> list[Any]:
    """The values of one grid axis (a list) or of a fixed key (a scalar)."""
    key = ALIASES.get(path[-1], path[-1])
    values = value if isinstance(value, list) else [value]
    if not values:
        raise _fail(spec, path, "empty list: the grid would have no runs")
    if isinstance(value, dict):
        raise _fail(spec, path, f"expected a value or a list of values, got a table {value!r}")
    out = []
    for v in values:
        if isinstance(v, list | dict):
            raise _fail(spec, path, f"expected a value or a flat list of values, got {value!r}")
        if key == "d" and v is None:
            out.append(None)
            continue
        try:
            out.append(_check_value(key, v))
        except ConfigError as exc:
            raise _fail(spec, path, str(exc)) from None
    if len(set(map(repr, out))) != len(out):
        raise _fail(spec, path, f"repeated values in {value!r}")
    return out


def _seeds(spec: Spec) -> tuple[tuple[str, ...], list[int]]:
    if "seed" in spec and "seeds" in spec:
        raise _fail(spec, ("seeds",), "give seed or seeds, not both")
    if "seeds" not in spec:
        return ("seed",), _axis_values(spec, ("seed",), spec.get("seed", 0))
    v = spec["seeds"]
    path = ("seeds",)
    if isinstance(v, str):
        m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", v)
        if not m:
            raise _fail(spec, path, f"a range of seeds is 'A:B' (A, A+1, ..., B-1), got {v!r}")
        a, b = int(m.group(1)), int(m.group(2))
        if b <= a:
            raise _fail(spec, path, f"'A:B' needs A < B (the range would be empty), got {v!r}")
        return path, list(range(a, b))
    if isinstance(v, int) and not isinstance(v, bool):
        if v < 1:
            raise _fail(spec, path, f"a number of seeds must be >= 1, got {v}")
        return path, list(range(v))
    if isinstance(v, list):
        vals = [_check_seed(spec, path, s) for s in v]
        if not vals:
            raise _fail(spec, path, "empty list: the grid would have no runs")
        if len(set(vals)) != len(vals):
            raise _fail(spec, path, f"repeated seeds in {v!r}")
        return path, vals
    raise _fail(spec, path, f"seeds must be 'A:B', a count or a list of integers, got {v!r}")


def _check_seed(spec: Spec, path: tuple[str, ...], s: Any) -> int:
    try:
        return V.seed("seed", s)
    except InputError as exc:
        raise _fail(spec, path, str(exc)) from None


def _flat_grid(spec: Spec) -> dict[str, tuple[tuple[str, ...], list[Any]]]:
    """Every configuration key of the spec -> (its key path in the file, its values)."""
    flat: dict[str, tuple[tuple[str, ...], list[Any]]] = {}
    allowed = (*CONFIG_ORDER, *ALIASES, *_SPEC_KEYS)
    for k, v in spec.items():
        if k not in allowed:
            raise _fail(
                spec,
                (k,),
                f"unknown key; allowed: {', '.join(CONFIG_ORDER)}, lambda (= scale), "
                f"seeds, description and the tables [{'], ['.join(SPEC_TABLES)}]",
            )
        if k in SPEC_TABLES:
            if not isinstance(v, dict):
                raise _fail(spec, (k,), f"must be a table of options, got {v!r}")
            continue
        if k in _SPEC_KEYS:
            continue
        key = ALIASES.get(k, k)
        if key in flat:
            raise _fail(spec, (k,), f"{key!r} is given twice (as {flat[key][0][-1]!r} and {k!r})")
        flat[key] = ((k,), _axis_values(spec, (k,), v))
    for k, v in (spec.get("solver") or {}).items():
        if k not in SOLVER_OPTIONS:
            raise _fail(
                spec, ("solver", k), f"unknown solver option; allowed: {', '.join(SOLVER_OPTIONS)}"
            )
        if k in flat:
            raise _fail(spec, ("solver", k), f"{k!r} is given twice (top level and [solver])")
        flat[k] = (("solver", k), _axis_values(spec, ("solver", k), v))
    if "description" in spec and not isinstance(spec["description"], str):
        raise _fail(spec, ("description",), f"must be a string, got {spec['description']!r}")
    return flat


def _check_spec(spec: Spec) -> None:
    _flat_grid(spec)
    _seeds(spec)
    execution_options(spec)


def execution_options(spec: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """The ``[execution]`` table of a spec (checked), plus ``slurm``: the ``[slurm]`` table."""
    s = spec if isinstance(spec, Spec) else _as_spec(spec)
    ex = dict(s.get("execution") or {})
    for k, v in ex.items():
        path = ("execution", k)
        if k not in EXECUTION_KEYS:
            raise _fail(s, path, f"unknown execution option; allowed: {', '.join(EXECUTION_KEYS)}")
        try:
            if k in ("workers", "jobs", "batch"):
                ex[k] = V.positive_int(k, v)
            elif k == "connect_timeout":
                ex[k] = V.finite_float(k, v, low=0.0, low_open=True, allowed="seconds > 0")
            elif k == "cluster":
                ex[k] = V.choice(k, v, CLUSTERS)
            elif k == "scheduler":
                ex[k] = _check_address(v)
        except InputError as exc:
            raise _fail(s, path, str(exc)) from None
    if ex.get("scheduler") and ex.get("cluster") not in (None, "local"):
        raise _fail(s, ("execution", "cluster"), "give scheduler or cluster, not both")
    slurm = s.get("slurm") or {}
    if not isinstance(slurm, dict):
        raise _fail(s, ("slurm",), f"must be a table of SLURMCluster options, got {slurm!r}")
    ex["slurm"] = dict(slurm)
    return ex


def _check_address(address: Any) -> str:
    if not isinstance(address, str) or not re.fullmatch(
        r"(tcp|tls|ws|wss|inproc|ucx)://\S+", address
    ):
        raise InputError(
            f"scheduler must be a Dask scheduler address like tcp://HOST:8786, got {address!r}"
        )
    return address


def expand_spec(spec: Mapping[str, Any] | str | Path) -> list[dict[str, Any]]:
    """The runs of a spec: the product of its axes (in a fixed key order) times its seeds.

    Each run is a normalised configuration (:func:`normalize_config`); runs that
    normalise to the same configuration (``scale`` has no meaning for the jump
    process) appear once. The order is deterministic: axes in the order of
    :data:`CONFIG_ORDER`, seeds innermost.

    Raises:
        InputError: naming the key and its line, before anything runs.
    """
    s = _as_spec(spec)
    flat = _flat_grid(s)
    seed_path, seeds = _seeds(s)
    flat["seed"] = (seed_path, seeds)
    if "dynamics" not in flat:
        raise _fail(s, ("dynamics",), f"missing: one of {', '.join(DYNAMICS)}")
    for key in ("n", "m"):
        if key not in flat:
            raise _fail(s, (key,), "missing (a positive integer, or a list of them)")
    dynamics = set(flat["dynamics"][1])
    for key, (path, _) in flat.items():
        applies = SOLVER_OPTIONS[key][0] if key in SOLVER_OPTIONS else None
        if key == "scale":
            applies = _SCALE_DYNAMICS
        if applies is not None and not dynamics & set(applies):
            raise _fail(
                s,
                path,
                f"applies to dynamics {'/'.join(applies)} only, but the spec runs "
                f"{'/'.join(sorted(dynamics))}",
            )
    keys = [k for k in CONFIG_ORDER if k in flat and k != "seed"] + ["seed"]
    total = math.prod(len(flat[k][1]) for k in keys)
    if total > MAX_RUNS:
        raise InputError(f"{s.locate()}: the grid has {total:,} runs, more than {MAX_RUNS:,}")
    experiment = flat.pop("experiment", (("experiment",), ["sweep"]))
    if len(experiment[1]) != 1:
        raise _fail(s, experiment[0], "experiment is one label, not a list")
    keys = [k for k in keys if k != "experiment"]
    out: dict[str, dict[str, Any]] = {}
    for combo in itertools.product(*(flat[k][1] for k in keys)):
        raw = {"experiment": experiment[1][0], **dict(zip(keys, combo, strict=True))}
        try:
            cfg = normalize_config(raw)
        except ConfigError as exc:
            path = flat[exc.key][0] if exc.key in flat else (exc.key,)
            shown = {k: v for k, v in raw.items() if k in ("dynamics", "data", "n", "d", "m")}
            raise _fail(s, path, f"{exc} (in the run {shown})") from None
        out.setdefault(config_hash(cfg), cfg)
    return list(out.values())


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep did.

    Attributes:
        total: distinct runs in the sweep. skipped: already in the store.
        ran: runs computed now. written: rows this sweep wrote (less than
            ``ran`` when another sweep on the same store wrote some first).
        failed: runs that raised (not written; a new sweep retries them).
        failures: ``(run_id, message)`` of each failure.
        store: the store file. executor: ``"serial"``, ``"processes"`` or ``"dask"``.
        workers: worker count used (Dask: workers when the sweep started).
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


Batch = list[tuple[str, dict[str, Any]]]  # (run_id, normalised configuration) pairs


def _run_batch(configs: list[dict[str, Any]]) -> list[tuple[str, RunRecord | None, str]]:
    """What a worker (process or Dask) executes: runs, each returned with its record or error."""
    out: list[tuple[str, RunRecord | None, str]] = []
    for cfg in configs:
        try:
            out.append((config_hash(cfg), run_config(cfg), ""))
        except Exception as exc:
            out.append((config_hash(cfg), None, _describe(exc)))
    return out


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


def _describe(exc: BaseException) -> str:
    msg = f"{type(exc).__name__}: {exc}"
    return msg if len(msg) < 2000 else msg[:2000] + "..."


class _Tally:
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


def _dask_client(
    scheduler: str | None, cluster: str | None, options: Mapping[str, Any], connect_timeout: float
) -> tuple[Any, Any]:
    """Connect to a scheduler, or start a SLURM cluster: (client, cluster or None)."""
    try:
        from distributed import Client
    except ImportError:
        raise InputError(
            "running on Dask needs dask and distributed: pip install 'reluflow[dask]'"
        ) from None
    if scheduler is not None:
        address = _check_address(scheduler)
        try:
            client = Client(address, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise InputError(
                f"cannot reach the Dask scheduler at {address} within {connect_timeout:g} s "
                f"({type(exc).__name__}: {exc}); check the address and that `dask scheduler` "
                "is running there (nothing was run or written)"
            ) from None
        return client, None
    if cluster != "slurm":
        raise InputError(f"cluster must be one of {', '.join(CLUSTERS)}, got {cluster!r}")
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
        client, slurm = _dask_client(scheduler, cluster, options, timeout)
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
            tally = _Tally(db, len(todo), progress)
            stack.callback(tally.bar.close)
            if client is not None:
                executor = "dask"
                n_workers = len(client.scheduler_info().get("workers", {}))
                if batches:
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
        if client is not None:
            client.close()
        if slurm is not None:
            slurm.close()


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
