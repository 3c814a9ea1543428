"""Sweep specs: a grid of configurations in a TOML or YAML file, checked and expanded.

Every key whose value is a list is an axis of the grid, every other key is fixed,
and ``seeds`` lists the seeds::

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

The scale λ is ``scale`` (as in the store, the Python API and the CLI);
``lambda`` and ``λ`` are accepted as other spellings of the same key, with the
same checks, and are stored as ``scale``.

Every error names the key and its line in the file, before anything runs.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import _validate as V
from .._provenance import config_hash
from ..errors import InputError
from .config import (
    ALIASES,
    CONFIG_ORDER,
    DYNAMICS,
    SOLVER_OPTIONS,
    ConfigError,
    applies_to,
    check_value,
    normalize_config,
)

# Largest grid a spec may expand to.
MAX_RUNS = 1_000_000


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
            out.append(check_value(key, v))
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
                f"unknown key; allowed: {', '.join(CONFIG_ORDER)} (lambda is accepted for scale), "
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
        applies = applies_to(key)
        if not dynamics & set(applies):
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
