"""``reluflow sweep``: run a grid of configurations into a results store (resumable)."""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..store import ResultsStore
from ..sweep import execution_options, expand_spec, load_spec, run_id, run_sweep
from ._common import add_parser, print_json

EXAMPLE = """\
spec (TOML; YAML works the same):
  experiment = "width"
  dynamics = "limit"          # flow | descent | limit (a list makes it an axis)
  n = 256
  m = [4, 8, 16, 32]          # every list is an axis of the grid
  seeds = "0:100"             # 'A:B', a count, or a list
  [solver]                    # rtol, atol, t_max, tau_max, loss_tol, lr, steps, ...
  [execution]                 # workers, scheduler, cluster, jobs, batch, connect_timeout
  [slurm]                     # dask_jobqueue.SLURMCluster options (queue, cores, memory, ...)

examples:
  reluflow sweep width.toml --store width.sqlite --workers 2
  reluflow sweep width.toml --store width.sqlite --scheduler tcp://10.0.0.5:8786
  reluflow sweep width.toml --dry-run        # the runs, one line each, then the count
  reluflow sweep width.toml --cluster slurm --jobs 4 --cluster-option queue=normal
      (SLURM: docs/slurm.md; a one-node cluster to try it: scripts/slurm-local.sh start)
  reluflow results width.sqlite --where "m >= 16" --format csv"""


def register(sub: Any) -> None:
    p = add_parser(
        sub,
        "sweep",
        "run a grid of configurations into a results store (resumable)",
        "Expand SPEC (a TOML or YAML grid of dynamics, data, n, m, scale (the λ of the "
        "initialisation; 'lambda' is accepted as another spelling), labels, solver options "
        "and seeds) into runs, skip those already in the store, run the rest in "
        "parallel and write each finished run to the store (a SQLite file) in one "
        "transaction. Killed at any moment and started again, a sweep runs only what is "
        "missing. Runs go to local processes by default, to an existing Dask cluster with "
        "--scheduler, or to a SLURM cluster (dask-jobqueue) with --cluster slurm; only this "
        "process writes the store.\n\n" + EXAMPLE,
    )
    p.add_argument("spec", metavar="SPEC", help="the sweep spec (.toml, .yaml or .yml)")
    p.add_argument(
        "--store",
        metavar="FILE",
        default=None,
        help="results store (default: SPEC with the suffix .sqlite)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="K",
        help="local worker processes (default: the spec's, else one per core)",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=None,
        metavar="B",
        help="runs per task (default 1): more amortises scheduling over runs of a few ms",
    )
    d = p.add_argument_group("Dask")
    d.add_argument(
        "--scheduler",
        metavar="ADDR",
        default=None,
        help="send the runs to the Dask cluster at ADDR (tcp://HOST:PORT)",
    )
    d.add_argument(
        "--cluster",
        choices=("local", "slurm"),
        default=None,
        help="slurm: start a SLURM cluster through dask-jobqueue (needs sbatch)",
    )
    d.add_argument("--jobs", type=int, default=None, help="SLURM jobs to start (--cluster slurm)")
    d.add_argument(
        "--cluster-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a SLURMCluster option (repeat), e.g. queue=normal, cores=8, memory=16GB",
    )
    d.add_argument(
        "--connect-timeout",
        type=float,
        default=None,
        metavar="S",
        help="seconds to wait for the scheduler (default 5)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list the runs, one line each (run id, done/todo, the parameters that vary), "
        "then the count; run nothing",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the summary as JSON (with --dry-run: one JSON object per run and line, "
        "then one with the counts)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_sweep_cmd)


def _option_value(text: str) -> Any:
    """A command-line option value: a TOML literal (8, true, "x", [1, 2]) or else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_cluster_options(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--cluster-option must be KEY=VALUE, got {item!r}")
        out[key.strip()] = _option_value(value.strip())
    return out


def run_sweep_cmd(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    store = Path(args.store) if args.store else Path(args.spec).with_suffix(".sqlite")
    if args.dry_run:
        return _dry_run(args, spec, store)
    options = parse_cluster_options(args.cluster_option)
    if args.jobs is not None:
        options["jobs"] = args.jobs
    summary = run_sweep(
        spec,
        store,
        workers=args.workers,
        scheduler=args.scheduler,
        cluster=args.cluster,
        progress=not (args.quiet or args.json),
        cluster_options=options or None,
        connect_timeout=args.connect_timeout,
        batch=args.batch,
    )
    if args.json:
        print_json(summary.as_dict())
    else:
        out = sys.stdout
        out.write(
            f"sweep {args.spec}: {summary.total} runs: {summary.skipped} already in the store, "
            f"{summary.ran} ran ({summary.written} written), {summary.failed} failed; "
            f"{summary.executor} x {summary.workers}, {summary.wall_s:.1f} s -> {summary.store}\n"
        )
        for rid, msg in summary.failures[:20]:
            out.write(f"  failed {rid}: {msg}\n")
        if summary.failed > 20:
            out.write(f"  ... {summary.failed - 20} more (use --json)\n")
    return 0 if summary.ok else 1


def _dry_run(args: argparse.Namespace, spec: Any, store: Path) -> int:
    """List the runs of SPEC (one line each) and the count, writing nothing."""
    configs = expand_spec(spec)
    done: set[str] = set()
    if store.exists():
        with ResultsStore(store, create=False) as db:
            done = db.done_ids()
    ids = [run_id(c) for c in configs]
    n_done = sum(r in done for r in ids)
    execution = execution_options(spec)
    out = sys.stdout
    if args.json:
        for rid, cfg in zip(ids, configs, strict=True):
            out.write(json.dumps({"run_id": rid, "done": rid in done, "config": cfg}) + "\n")
        counts = {"total": len(configs), "done": n_done, "todo": len(configs) - n_done}
        out.write(json.dumps({**counts, "store": str(store), "execution": execution}) + "\n")
        return 0
    # the keys that vary from run to run on each line; the fixed ones once, first
    keys = list(dict.fromkeys(k for c in configs for k in c))
    varying = [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]
    fixed = {k: configs[0][k] for k in keys if k not in varying and k in configs[0]}
    out.write("# fixed: " + " ".join(f"{k}={v}" for k, v in fixed.items()) + "\n")
    for rid, cfg in zip(ids, configs, strict=True):
        params = " ".join(f"{k}={cfg[k]}" for k in varying if k in cfg)
        out.write(f"{rid}  {'done' if rid in done else 'todo'}  {params}\n")
    out.write(
        f"{args.spec}: {len(configs)} runs, {n_done} already in {store}, "
        f"{len(configs) - n_done} to run; {_describe_execution(execution)}\n"
    )
    return 0


def _describe_execution(ex: dict[str, Any]) -> str:
    if ex.get("scheduler"):
        return f"on the Dask scheduler {ex['scheduler']}"
    if ex.get("cluster") == "slurm":
        opts = ", ".join(f"{k}={v}" for k, v in ex["slurm"].items())
        return f"on SLURM, {ex.get('jobs', 1)} job(s)" + (f" ({opts})" if opts else "")
    workers = ex.get("workers")
    return f"in {workers} local process(es)" if workers else "in local processes (one per core)"
