"""One run's configuration: the table of keys, their checks and defaults, and the run's id.

A configuration is a flat dict naming one run completely: the dynamics
(``"flow"``, ``"descent"`` or ``"limit"``), the data, the width, the scale λ, the
seed and the solver options. :func:`normalize_config` validates it and fills in
the defaults; its hash (:func:`run_id`) is the run's key in the
:class:`~reluflow.store.ResultsStore`, so a run is computed once whatever the
sweep, the order or the machine.

Adding a key is one line in a table: :data:`CONFIG_KEYS` (a key of the data,
the network or the run: its check), or :data:`SOLVER_OPTIONS` (a solver option:
the dynamics it applies to and its check); a default goes in :data:`DEFAULTS`, a
restriction to some dynamics in :data:`KEY_DYNAMICS`, another spelling in
:data:`ALIASES`. The order of the tables is the order of the keys in a
normalised configuration (and of the axes of a grid).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import _validate as V
from .._loss import LOSSES
from .._provenance import config_hash
from ..errors import InputError
from ..generators import TOY_EXAMPLES
from ..inits import INITS

DYNAMICS = ("flow", "descent", "limit")
# orthogonal, gaussian: reluflow.orthogonal_data / gaussian_data; sphere: reluflow.sphere_data,
# sphere_orthogonal: the same with orthogonal=True; teacher: reluflow.teacher_data;
# toy1d: reluflow.toy_1d_data (the example in toy_example, with its bias feature)
DATA_KINDS = ("orthogonal", "gaussian", "sphere", "sphere_orthogonal", "teacher", "toy1d")
LABELS = ("balanced", "random", "gaussian", "signed_uniform")
FRAMES = ("canonical", "random")
ENGINES = ("auto", "numpy", "numba")
# keys of the field's setups, left out of a configuration at their default so that
# the run ids of configurations written before they existed do not change
_OMIT_AT_DEFAULT = {"bias": False, "loss": "half_mean", "snapshots": False}


def _flag(name: str) -> Any:
    def check(v: Any) -> bool:
        if not isinstance(v, bool | int) or v not in (0, 1):
            raise InputError(f"{name} must be true or false, got {v!r}")
        return bool(v)

    return check


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
    # also store the full weights at a few times around the first activation (explicit data)
    "snapshots": (("flow", "descent"), _flag("snapshots")),
}

# Configuration keys (besides the solver options): key -> check of one value.
CONFIG_KEYS: dict[str, Any] = {
    "experiment": _string("experiment"),
    "dynamics": lambda v: V.choice("dynamics", v, DYNAMICS),
    "data": lambda v: V.choice("data", v, DATA_KINDS),
    "n": lambda v: V.positive_int("n", v),
    "d": _d,
    "m": lambda v: V.positive_int("m", v),
    "scale": lambda v: _scale(v),
    "log10_scale": lambda v: V.log10_scale(v),
    "labels": lambda v: V.choice("labels", v, LABELS),
    "norms": _norms,
    "frame": lambda v: V.choice("frame", v, FRAMES),
    "init": lambda v: V.choice("init", v, INITS),
    "bias": _flag("bias"),
    "teacher_width": lambda v: V.positive_int("teacher_width", v),
    "toy_example": lambda v: V.choice("toy_example", v, TOY_EXAMPLES),
    "loss": lambda v: V.choice("loss", v, LOSSES),
    "seed": lambda v: V.seed("seed", v),
}
# Other spellings accepted in a configuration or a spec; the store holds the canonical name only.
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
    "bias": False,
    "loss": "half_mean",
    "seed": 0,
}
# Configuration keys that apply to some dynamics only (dropped for the others).
KEY_DYNAMICS: dict[str, tuple[str, ...]] = {
    "scale": ("flow", "descent"),
    "log10_scale": ("flow", "descent"),
    "loss": ("flow", "descent"),
}


# Scales below this (log10) are held as ``log10_scale`` in a normalised configuration:
# a float64 λ would be subnormal or 0 there (docs/any-scale.md).
LOG10_SCALE_AS_FLOAT = -300.0


def _scale(value: Any) -> float | str:
    """λ as given (float or decimal string), checked; below 1e-300 its exact decimal string."""
    lam, log10 = V.scale_log10(value)
    return lam if log10 >= LOG10_SCALE_AS_FLOAT else V.format_scale(log10)


def _canonical_scale(cfg: dict[str, Any]) -> None:
    """One spelling per λ: ``scale`` (float) from 1e-300 up, ``log10_scale`` below."""
    if "scale" in cfg and "log10_scale" in cfg:
        raise ConfigError("log10_scale", "give scale or log10_scale, not both")
    if isinstance(cfg.get("scale"), str):
        cfg["log10_scale"] = V.scale_log10(cfg.pop("scale"))[1]
    if "log10_scale" in cfg and cfg["log10_scale"] >= LOG10_SCALE_AS_FLOAT:
        cfg["scale"] = 10.0 ** cfg.pop("log10_scale")


def applies_to(key: str) -> tuple[str, ...]:
    """The dynamics that a configuration key or solver option applies to."""
    if key in SOLVER_OPTIONS:
        return SOLVER_OPTIONS[key][0]
    return KEY_DYNAMICS.get(key, DYNAMICS)


def check_value(key: str, value: Any) -> Any:
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
    dyn = check_value("dynamics", raw["dynamics"])
    for key in ("n", "m"):
        if key not in raw:
            raise ConfigError(key, f"{key} is required (a positive integer)")
    cfg: dict[str, Any] = {}
    for key in CONFIG_ORDER:
        if dyn not in applies_to(key):
            continue
        if key in raw:
            cfg[key] = check_value(key, raw[key])
        elif key in DEFAULTS:
            cfg[key] = DEFAULTS[key]
    _field_setups(cfg, raw, dyn)
    n = cfg["n"]
    if cfg["data"] in ("orthogonal", "sphere_orthogonal"):
        d = cfg.get("d") or n
        if d < n:
            raise ConfigError("d", f"d must be >= n = {n} for orthogonal data, got {d}")
        cfg["d"] = d
        if dyn == "limit" and cfg["frame"] != "canonical":
            cfg["frame"] = "canonical"  # the jump process never sees the frame
        if cfg["data"] == "sphere_orthogonal":
            for key in ("norms", "frame"):
                if cfg[key] != DEFAULTS[key]:
                    raise ConfigError(
                        key,
                        f"{key} applies to data 'orthogonal' only (sphere_orthogonal "
                        "has norms U[1, 2] in the canonical frame)",
                    )
            del cfg["norms"], cfg["frame"]
    else:
        kind = cfg["data"]
        if "d" not in cfg:
            raise ConfigError("d", f"data {kind!r} needs d (the input dimension)")
        for key in ("norms", "frame"):
            if cfg[key] != DEFAULTS[key]:
                raise ConfigError(key, f"{key} applies to orthogonal data only, got data {kind!r}")
        del cfg["norms"], cfg["frame"]
        if dyn == "limit" and kind != "toy1d":
            raise ConfigError(
                "data",
                f"dynamics 'limit' (the jump process) needs orthogonal data, got {kind!r}",
            )
    _canonical_scale(cfg)
    if dyn in applies_to("scale") and "scale" not in cfg and "log10_scale" not in cfg:
        raise ConfigError(
            "scale",
            f"dynamics {dyn!r} needs scale (the initialisation scale λ), e.g. 1e-8 or "
            "'1e-1000' (or log10_scale = -1000)",
        )
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


def _field_setups(cfg: dict[str, Any], raw: Mapping[str, Any], dyn: str) -> None:
    """Checks and defaults of the field's data kinds, initialisations, bias and loss (in place)."""
    kind = cfg["data"]
    if cfg.get("labels") == "signed_uniform" and kind not in ("sphere", "sphere_orthogonal"):
        raise ConfigError(
            "labels",
            f"labels 'signed_uniform' apply to data 'sphere' or 'sphere_orthogonal', "
            f"got data {kind!r}",
        )
    if kind == "teacher":
        cfg.setdefault("teacher_width", 6)
        if "labels" in raw:
            raise ConfigError("labels", "data 'teacher' takes its labels from the teacher network")
        cfg.pop("labels", None)
    elif "teacher_width" in cfg:
        raise ConfigError("teacher_width", f"teacher_width applies to data 'teacher', got {kind!r}")
    if kind == "toy1d":
        from ..generators import toy_1d_data

        cfg.setdefault("toy_example", "orthogonal")
        size = toy_1d_data(cfg["toy_example"]).n
        if cfg["n"] != size:
            raise ConfigError(
                "n", f"toy example {cfg['toy_example']!r} has n = {size}, got {cfg['n']}"
            )
        if "labels" in raw:
            raise ConfigError("labels", "data 'toy1d' has its own labels")
        cfg.pop("labels", None)
        cfg["d"] = 2
        cfg["bias"] = True  # the example's inputs carry the bias feature
    elif "toy_example" in cfg:
        raise ConfigError("toy_example", f"toy_example applies to data 'toy1d', got {kind!r}")
    if cfg.get("bias") and kind in ("orthogonal", "sphere_orthogonal") and dyn == "limit":
        raise ConfigError(
            "bias",
            "the jump process needs orthogonal data; with the bias feature the samples "
            "are not orthogonal (<(x_i,1),(x_k,1)> = <x_i,x_k> + 1 = 1)",
        )
    if dyn == "limit" and cfg["init"] not in ("balanced", "independent"):
        raise ConfigError(
            "init", f"the jump process takes init 'balanced' or 'independent', got {cfg['init']!r}"
        )
    for key, default in _OMIT_AT_DEFAULT.items():
        if key in cfg and cfg[key] == default:
            del cfg[key]


def run_id(config: Mapping[str, Any]) -> str:
    """The key of a run in a store: the hash of its normalised configuration."""
    return config_hash(normalize_config(config))
