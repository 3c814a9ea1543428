"""Provenance of a group of stored runs: counts, seeds, shared configuration, versions, digest."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from ..experiments._stats import col

_WANTED = ("experiment", "data", "labels", "init", "n", "m", "scale", "rtol", "version")
_VARYING = ("dynamics", "n", "m", "scale", "rtol", "version")


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def provenance(df: pd.DataFrame) -> dict[str, Any]:
    """Runs, seeds, the configuration shared per dynamics, what varies, versions, a config-hash digest.

    The digest is the SHA-256 of the sorted configuration hashes (16 hex digits):
    two stores with the same runs have the same digest.
    """
    varying: dict[str, Any] = {}
    for c in _VARYING:
        if c not in df.columns:
            continue
        vals = df[c].dropna().unique()
        if 1 < len(vals) <= 12:
            varying[c] = sorted(_plain(x) for x in vals)
        elif len(vals) > 12:
            varying[c] = f"{len(vals)} values in [{vals.min()}, {vals.max()}]"
    hashes = sorted(str(h) for h in col(df, "config_hash", "").astype(str))
    seeds = df["seed"].astype(int)
    keep: dict[str, Any] = {}
    for dyn, dd in df.groupby("dynamics"):
        cfg = {}
        for c in _WANTED:
            if c in dd.columns:
                vals = dd[c].dropna().unique()
                if len(vals) == 1:
                    cfg[c] = _plain(vals[0])
        keep[str(dyn)] = cfg
    created = col(df, "created", "").astype(str)
    return {
        "runs": int(len(df)),
        "by_dynamics": {str(k): int(v) for k, v in df["dynamics"].value_counts().items()},
        "seeds": f"{seeds.min()}..{seeds.max()} ({seeds.nunique()} distinct)",
        "configuration": keep,
        "varying": varying,
        "versions": sorted(str(v) for v in col(df, "version", "?").dropna().unique()),
        "config_hash_digest": hashlib.sha256("\n".join(hashes).encode()).hexdigest()[:16],
        "compute_s": float(col(df, "wall_s", 0.0).fillna(0).sum()),
        "created": f"{created.min()} .. {created.max()}",
        "run_ids": f"{len(df)} run ids, e.g. {df['run_id'].iloc[0]}",
    }
