"""One run: compute a configuration from scratch into a :class:`~reluflow.store.RunRecord`.

:func:`run_config` uses the public API alone (data and network from the seed,
then the dynamics), so the same configuration gives bit-identical results in any
process, locally, on a Dask worker or in a SLURM job. :func:`_run_batch` is what
every execution back-end sends to its workers.
"""

from __future__ import annotations

import datetime as _dt
import math
import platform
import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._loss import LossConvention
from .._provenance import config_hash
from .._provenance import provenance as _provenance
from .._version import __version__
from ..store import RunRecord
from .config import SOLVER_OPTIONS, normalize_config

# Final loss below this fraction of the initial loss mean(y²)/2 counts as interpolating
# (flow and descent; the jump process knows exactly whether it fitted every sample).
INTERPOLATION_RTOL = 1e-6

Batch = list[tuple[str, dict[str, Any]]]  # (run_id, normalised configuration) pairs


def run_config(config: Mapping[str, Any]) -> RunRecord:
    """Run one configuration from scratch: data and network from its seed, then its dynamics.

    Deterministic: the same configuration gives bit-identical ``results`` and
    ``arrays`` in any process (only ``wall_s``, ``created`` and the host differ).

    Results (scalars): ``final_loss``, ``initial_loss``, ``norm_sq`` (‖θ‖² of the
    final or limit network), ``min_norm_sq`` (docs/limit.md, orthogonal data; NaN
    otherwise) and ``ratio = norm_sq / min_norm_sq`` (NaN unless the run interpolates,
    the reason in ``ratio_note``), ``interpolates`` (the jump
    process's flag; for flow and descent ``final_loss <= 1e-6 · mean(y²)/2``),
    ``n_events`` (activations), ``success``, ``status``, ``run_wall_s`` (the
    dynamics alone); the limit adds ``ties``, the flow and descent
    ``conservation_drift``, ``steps`` and ``kinks``.

    Arrays: flow and descent: ``t``, ``tau``, ``loss``, ``a_abs`` (T, m),
    ``event_tau``, ``event_neuron`` (:func:`reluflow.activation_events`); limit:
    ``tau``, ``plateau_loss``, ``event_fitted``, ``event_neuron`` (first neuron of
    each event), ``a``, ``initial_loss`` (0-d), ``competitor_gap`` (per event) and
    every (event, competitor) pair's ``rival_event``, ``rival_gap`` and
    ``rival_weight`` (:func:`reluflow.gaps.competitor_gaps`). All float64 or int64.
    """
    from ..analysis import activation_events
    from ..descent import gradient_descent
    from ..flow import gradient_flow
    from ..gaps import competitor_gaps
    from ..limit import jump_process
    from ..network import init_network
    from ..theory import _norm_ratio, min_norm_sq

    cfg = normalize_config(config)
    rid = config_hash(cfg)
    wall0 = time.perf_counter()
    dyn, seed = cfg["dynamics"], cfg["seed"]
    opts = {k: v for k, v in cfg.items() if k in SOLVER_OPTIONS}
    snapshots = opts.pop("snapshots", False)
    if dyn != "limit":
        opts["loss"] = cfg.get("loss", "half_mean")
    data = _dataset(cfg)
    y = np.asarray(data.y, dtype=np.float64)
    initial_loss = LossConvention(cfg.get("loss", "half_mean")).factor * float(y @ y) / (2 * data.n)
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
                "ratio_note": res.ratio_note,
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
                "competitor_gap": res.competitor_gap,
                "rival_event": res.rivals[:, 0].astype(np.int64),
                "rival_gap": res.rivals[:, 2],
                "rival_weight": competitor_gaps(res)["weight"].to_numpy(dtype=np.float64),
            }
            inner = res.provenance
        else:
            net = init_network(
                data,
                cfg["m"],
                cfg.get("scale"),
                log10_scale=cfg.get("log10_scale"),
                seed=seed,
                init=cfg["init"],
            )
            if dyn == "flow":
                traj = gradient_flow(data, net, **opts)
            else:
                traj = gradient_descent(data, net, opts.pop("lr"), **opts)
            ev = activation_events(traj)
            norm_sq = traj.final.norm_sq(data)
            if data.is_orthogonal:
                mn = min_norm_sq(y, np.sqrt(data.sq_norms()))
            else:
                mn = math.nan
            fits = bool(traj.final_loss <= INTERPOLATION_RTOL * initial_loss)
            ratio, ratio_note = _norm_ratio(norm_sq, mn, fits)
            results = {
                "log10_scale": float(net.log10_scale),
                "final_loss": traj.final_loss,
                "initial_loss": initial_loss,
                "norm_sq": norm_sq,
                "min_norm_sq": mn,
                "ratio": ratio,
                "ratio_note": ratio_note,
                "interpolates": fits,
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
            _field_results(results, arrays, data, net, traj, ev)
            if snapshots:
                arrays.update(_snapshots(data, net, traj, ev, cfg, opts))
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


def _dataset(cfg: Mapping[str, Any]) -> Any:
    """The dataset of a normalised configuration (see ``DATA_KINDS`` in the config module)."""
    from ..data import gaussian_data, orthogonal_data
    from ..generators import sphere_data, teacher_data, toy_1d_data, with_bias

    kind, seed, n = cfg["data"], cfg["seed"], cfg["n"]
    if kind == "toy1d":
        return toy_1d_data(cfg["toy_example"])
    if kind == "orthogonal":
        data = orthogonal_data(
            n, cfg["d"], labels=cfg["labels"], norms=cfg["norms"], frame=cfg["frame"], seed=seed
        )
    elif kind == "gaussian":
        data = gaussian_data(n, cfg["d"], labels=cfg["labels"], seed=seed)
    elif kind in ("sphere", "sphere_orthogonal"):
        data = sphere_data(
            n, cfg["d"], labels=cfg["labels"], orthogonal=kind == "sphere_orthogonal", seed=seed
        )
    else:
        data = teacher_data(n, cfg["d"], cfg["teacher_width"], seed=seed)
    return with_bias(data) if cfg.get("bias") else data


def _field_results(
    results: dict[str, Any], arrays: dict[str, Any], data: Any, net: Any, traj: Any, ev: Any
) -> None:
    """Results of the field's setups: coverage at the start, label counts, sharpness along the run.

    ``well_initialised``: every sample has a neuron with ``a_j y_i > 0`` and
    ``<w_j, x_i> > 0`` at ``t = 0`` (Dana et al. 2025's condition). Descent adds
    the sharpness measured at steps 1, 2, 4, … (arrays ``sharpness_step``,
    ``sharpness``), its maximum and ``edge_ratio = lr · max sharpness / 2`` (above 1:
    the step exceeded the stability bound 2 / sharpness at some point).
    """
    y = np.asarray(data.y)
    covered = ((net.a[:, None] * y[None, :] > 0) & (net.u > 0)).any(axis=0)
    results["well_initialised"] = bool(covered[y != 0].all())
    results["n_pos"] = int((y > 0).sum())
    results["n_neg"] = int((y < 0).sum())
    log = traj.provenance.get("sharpness")
    if traj.dynamics in ("descent", "sgd") and log:
        steps, sharp = (np.asarray(v) for v in zip(*log, strict=True))
        lr = float(traj.provenance["config"]["lr"])
        arrays["sharpness_step"] = steps.astype(np.int64)
        arrays["sharpness"] = sharp.astype(np.float64)
        results["max_sharpness"] = float(np.nanmax(sharp))
        results["edge_ratio"] = lr * float(np.nanmax(sharp)) / 2


def _snapshots(
    data: Any, net: Any, traj: Any, ev: Any, cfg: Mapping[str, Any], opts: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Full weights at ``0, t₁/4, t₁/2, 0.9 t₁, 1.5 t₁, t_end`` (``t₁``: first activation).

    Arrays ``snap_t`` (T,), ``snap_a`` (T, m), ``snap_W`` (T, m, d); without an
    activation the times are equally spaced on ``[0, t_end]``.
    """
    from ..snapshots import network_snapshots

    t_end = float(traj.t[-1])
    if len(ev):
        t1 = float(ev["t"].min())
        times = [0.0, t1 / 4, t1 / 2, 0.9 * t1] + ([1.5 * t1] if 1.5 * t1 < t_end else [])
        times.append(t_end)
    else:
        times = list(np.linspace(0.0, t_end, 6))
    kw = {k: v for k, v in opts.items() if k in ("rtol", "atol", "loss", "engine")}
    if cfg["dynamics"] == "descent":
        lr = float(cfg["lr"])
        times = sorted({round(t / lr) * lr for t in times})
        kw.pop("rtol", None)
        kw.pop("atol", None)
        snap = network_snapshots(data, net, times, dynamics="descent", lr=lr, **kw)
    else:
        snap = network_snapshots(data, net, times, dynamics="flow", **kw)
    return {"snap_t": snap.t, "snap_a": snap.a, "snap_W": snap.W}


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


def _run_batch(configs: list[dict[str, Any]]) -> list[tuple[str, RunRecord | None, str]]:
    """What a worker (process or Dask) executes: runs, each returned with its record or error."""
    out: list[tuple[str, RunRecord | None, str]] = []
    for cfg in configs:
        try:
            out.append((config_hash(cfg), run_config(cfg), ""))
        except Exception as exc:
            out.append((config_hash(cfg), None, _describe(exc)))
    return out


def _describe(exc: BaseException) -> str:
    msg = f"{type(exc).__name__}: {exc}"
    return msg if len(msg) < 2000 else msg[:2000] + "..."
