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


# The engine holds each neuron's log-scale ℓ_j = ln(size) in float64, with absolute
# precision |ℓ| · 1.1e-16, and the flow's time grows like ln(1/λ): below 1e-1000000
# (|ℓ| ≈ 2.3e6, absolute error ≈ 3e-10) that precision would approach the solver's
# tolerance, so smaller scales are refused rather than computed inaccurately.
LOG10_SCALE_MIN = -1.0e6
# Above 1e100 the squared weights of the initial network overflow float64.
LOG10_SCALE_MAX = 100.0
_SCALE_NAME = "scale (lambda)"
_SCALE_ALLOWED = (
    "a number > 0 given as a float (1e-8), a decimal string ('1e-1000') or through its "
    "log10 (log10_scale=-1000)"
)


def scale(value: Any) -> float:
    """λ as a float (0.0 when it underflows float64); see :func:`scale_log10`."""
    return scale_log10(value)[0]


def scale_log10(value: Any, name: str = _SCALE_NAME) -> tuple[float, float]:
    """Parse the initialisation scale λ exactly: ``(λ as float64, log10 λ)``.

    ``value`` is a number (float, int, numpy scalar) or a decimal string such as
    ``"1e-1000"``, ``"2.5e-400"`` (parsed with :mod:`decimal`, so that scales far
    below float64's range, 1e-308, keep their exact ``log10``). The float value
    underflows to 0.0 below about 5e-324; ``log10 λ`` never does.

    Raises:
        InputError: λ <= 0, NaN, infinite, not a number, or outside
            ``[10^LOG10_SCALE_MIN, 10^LOG10_SCALE_MAX]`` (what the engine represents).
    """
    if isinstance(value, bool):
        raise InputError(f"{name} must be {_SCALE_ALLOWED}, got {value!r}")
    if isinstance(value, str):
        import decimal

        text = value.strip().replace("_", "")
        try:
            dec = decimal.Decimal(text)
        except decimal.InvalidOperation:
            raise InputError(f"{name} must be {_SCALE_ALLOWED}, got {value!r}") from None
        if dec.is_nan() or dec.is_infinite():
            raise InputError(f"{name} must be finite and > 0, got {value!r}")
        if dec <= 0:
            raise InputError(f"{name} must be > 0, got {value!r}")
        with decimal.localcontext() as ctx:
            ctx.prec = 40
            log10 = float(dec.log10())
        lam = float(dec)
    else:
        try:
            lam = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{name} must be {_SCALE_ALLOWED}, got {value!r}") from None
        if math.isnan(lam) or math.isinf(lam):
            raise InputError(f"{name} must be finite and > 0, got {value!r}")
        if lam <= 0:
            raise InputError(f"{name} must be > 0, got {value!r}")
        log10 = math.log10(lam)
    return lam, log10_scale(log10, name)


def log10_scale(value: Any, name: str = "log10_scale") -> float:
    """Check ``log10 λ``: a finite number in ``[LOG10_SCALE_MIN, LOG10_SCALE_MAX]``."""
    if isinstance(value, bool):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a finite number (log10 of lambda), got {value!r}") from None
    if not math.isfinite(x):
        raise InputError(f"{name} must be finite (log10 of lambda > 0), got {value!r}")
    if x < LOG10_SCALE_MIN:
        raise InputError(
            f"{name}: lambda = {format_scale(x)} is below 1e{LOG10_SCALE_MIN:.0f}, the smallest scale "
            "the engine represents to its tolerance (per-neuron log-scales are float64; "
            "see docs/any-scale.md)"
        )
    if x > LOG10_SCALE_MAX:
        raise InputError(
            f"{name}: lambda = {format_scale(x)} is above 1e{LOG10_SCALE_MAX:.0f}: the initial "
            "network's squared weights would overflow float64"
        )
    return x


def format_scale(log10: float) -> str:
    """``λ`` for people: ``1e-08``, ``1e-1000``, ``3.2e-400`` (from its log10)."""
    if not math.isfinite(log10):
        return "0" if log10 < 0 else "inf"
    e = math.floor(log10)
    mant = 10.0 ** (log10 - e)
    if mant >= 9.9995:
        mant, e = 1.0, e + 1
    if abs(e) < 300:
        return f"{mant * 10.0**e:.4g}"
    return f"{mant:.4g}e{e:+d}".replace("e+", "e")


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
