"""``reluflow reproduce``: the three reference experiments, their figures and report."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import add_parser


def register(sub: Any) -> None:
    p = add_parser(
        sub,
        "reproduce",
        "run the reference experiments, write figures, tables and a report",
        "Run the three experiments of THEORY.md §4-5 into DIR/results.sqlite (parallel, "
        "resumable: a rerun only computes what the store lacks), then build from the store "
        "alone the figures (DIR/figures/*.pdf, *.png), the tables (DIR/*.csv), the summary "
        "(DIR/summary.csv, DIR/summary.json) and a self-contained DIR/report.html.\n\n"
        "  1. incremental learning: loss staircase and every |a_j| at several lambda, on the limit\n"
        "  2. interpolation threshold: P(interpolation) over (n, m), exact curve, m ~ c log n\n"
        "  3. implicit bias: |theta|^2 against n, beside the minimal-norm interpolator\n\n"
        "--scale quick (a few minutes on 2 cores) keeps every part at a coarser grid; "
        "--scale paper is the full study.\n\n"
        "example: reluflow reproduce --out results --scale quick",
    )
    p.add_argument("--out", default="reluflow-reproduce", metavar="DIR", help="output folder")
    p.add_argument(
        "--scale",
        default="quick",
        choices=("quick", "paper", "smoke"),
        help="quick: minutes on 2 cores; paper: the full study; smoke: seconds (tests)",
    )
    p.add_argument("--workers", type=int, default=2, help="worker processes")
    p.add_argument(
        "--only",
        default=None,
        metavar="EXP",
        help="comma-separated subset of incremental,threshold,bias",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_reproduce)


def run_reproduce(args: argparse.Namespace) -> int:
    import json

    from ..reproduce import EXPERIMENTS, plan, reproduce

    exps = tuple(s.strip() for s in args.only.split(",")) if args.only else EXPERIMENTS
    pl = plan(args.scale)
    out = sys.stdout
    out.write(f"reluflow reproduce: scale {args.scale}, {args.workers} workers, into {args.out}\n")
    res = reproduce(
        args.out, args.scale, workers=args.workers, progress=not args.quiet, experiments=exps
    )
    out.write("\nsummary (the numbers behind each figure):\n")
    cols = ["figure", "quantity", "value", "error", "error_kind", "runs", "seeds", "detail"]
    with_pd = res.summary[cols]
    out.write(
        with_pd.to_string(
            index=False, float_format=lambda v: f"{v:.4g}", max_colwidth=60, na_rep="-"
        )
        + "\n"
    )
    out.write(
        f"\nruns: {json.dumps(res.runs)} ({res.computed} computed now), "
        f"wall {res.wall_s:.1f} s, design: {pl.scale}\n"
    )
    out.write(f"report:  {res.report}\nstore:   {res.store}\n")
    out.write(f"summary: {res.out / 'summary.csv'}, {res.out / 'summary.json'}\n")
    out.write("figures: " + ", ".join(str(f) for f in res.figures) + "\n")
    return 0
