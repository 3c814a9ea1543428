"""Provenance records attached to every result."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
from typing import Any

import numpy as np

from ._version import __version__


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist() if x.size <= 16 else f"<array shape={x.shape}>"
    return x


def config_hash(config: dict[str, Any]) -> str:
    """A stable hash of a JSON-able configuration (sorted keys)."""
    blob = json.dumps(_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def provenance(**config: Any) -> dict[str, Any]:
    """Version, platform, time and the configuration (seed, sizes, tolerances) of a result."""
    cfg = _jsonable(config)
    return {
        "reluflow": __version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "config": cfg,
        "config_hash": config_hash(cfg),
    }
