"""``reluflow reproduce``: the reference experiments, their figures, claims and report."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import add_parser


def _experiment_lines() -> str:
    from ..experiments import EXPERIMENTS

    # lower-case the first letter only: the titles carry proper names
    return "\n".join(
        f"  {name}: {ex.title[:1].lower()}{ex.title[1:]}" for name, ex in EXPERIMENTS.items()
    )


def register(sub: Any) -> None:
    p = add_parser(
        sub,
        "reproduce",
        "run the reference experiments, write figures, tables, claims and a report",
        "Run the experiments into DIR/results.sqlite (parallel, resumable: a rerun only "
        "computes what the store lacks), then build from the store alone the figures "
        "(DIR/figures/*.pdf, *.png), the tables (DIR/*.csv), the claims and verdicts "
        "(DIR/claims.csv), the summary (DIR/summary.csv, DIR/summary.json: one object per "
        "experiment) and a self-contained DIR/report.html. docs/experiments.md describes each "
        "experiment at each scale.\n\n"
        f"{_experiment_lines()}\n\n"
        "--scale quick (a few minutes on 2 cores) keeps every part at a coarser grid; "
        "--scale paper is the full study.\n\n"
        "examples:\n  reluflow reproduce --out results --scale quick\n"
        "  reluflow reproduce --out results --only threshold,bias",
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
        metavar="NAME[,NAME]",
        help="run only these experiments (comma-separated names listed above)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_reproduce)


def run_reproduce(args: argparse.Namespace) -> int:
    import json

    from ..experiments import select
    from ..reproduce import reproduce

    names = select(args.only)  # refuse an unknown name before any work
    out = sys.stdout
    out.write(
        f"reluflow reproduce: scale {args.scale}, {args.workers} workers, "
        f"experiments {', '.join(names)}, into {args.out}\n"
    )
    res = reproduce(
        args.out, args.scale, only=names, workers=args.workers, progress=not args.quiet
    )
    if len(res.claims):
        out.write("\nclaims and verdicts:\n")
        for _, c in res.claims.iterrows():
            out.write(f"  [{c['verdict']}] {c['source']}: {c['claim']}\n      {c['measured']}\n")
    out.write("\nsummary (the numbers behind each figure):\n")
    cols = ["figure", "quantity", "value", "error", "error_kind", "runs", "seeds", "detail"]
    out.write(
        res.summary[cols].to_string(
            index=False, float_format=lambda v: f"{v:.4g}", max_colwidth=60, na_rep="-"
        )
        + "\n"
    )
    out.write(
        f"\nruns: {json.dumps(res.runs)} ({res.computed} computed now, {res.failed} failed), "
        f"wall {res.wall_s:.1f} s, design: {args.scale}\n"
    )
    out.write(f"report:  {res.report}\nstore:   {res.store}\n")
    out.write(f"summary: {res.out / 'summary.csv'}, {res.out / 'summary.json'}, "
              f"{res.out / 'claims.csv'}\n")
    out.write("figures: " + ", ".join(str(f) for f in res.figures) + "\n")
    return 0
