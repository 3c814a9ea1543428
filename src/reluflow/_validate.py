"""Validation at the API boundary: messages name the parameter, the value and what is allowed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import InputError


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def seed(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise InputError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def finite_float(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allowed: str | None = None,
) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise InputError(
            f"{name} must be finite, got {value!r}" + (f" (allowed: {allowed})" if allowed else "")
        )
    bad = (low is not None and (x <= low if low_open else x < low)) or (
        high is not None and (x >= high if high_open else x > high)
    )
    if bad:
        if allowed is None:
            lo = "" if low is None else (f"> {low:g}" if low_open else f">= {low:g}")
            hi = "" if high is None else (f"< {high:g}" if high_open else f"<= {high:g}")
            allowed = " and ".join(s for s in (lo, hi) if s)
        raise InputError(f"{name} must be {allowed}, got {value!r}")
    return x


def scale(value: Any) -> float:
    return finite_float(
        "scale (lambda)", value, low=0.0, low_open=True, allowed="a finite number > 0, e.g. 1e-8"
    )


def tolerance(name: str, value: Any) -> float:
    return finite_float(
        name,
        value,
        low=0.0,
        high=1.0,
        low_open=True,
        high_open=True,
        allowed="a number in (0, 1), e.g. 1e-8",
    )


def finite_array(name: str, value: Any, *, ndim: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a numeric array, got {type(value).__name__}") from None
    if arr.ndim != ndim:
        raise InputError(f"{name} must be a {ndim}-d array, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.argwhere(bad)[0]
        raise InputError(
            f"{name} must be finite, but holds {int(bad.sum())} NaN/inf value(s), "
            f"the first at index {tuple(int(i) for i in where)}: remove or impute them"
        )
    return arr


def choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value
