"""``reluflow report``: rebuild the HTML report from a results store (no recomputation)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import add_parser


def register(sub: Any) -> None:
    p = add_parser(
        sub,
        "report",
        "write the HTML report of a results store",
        "Read STORE (written by `reluflow reproduce` or `reluflow sweep`) and write one "
        "self-contained HTML file: the claims each recognised experiment tests, with the number "
        "that tests it and a verdict; its figures, tables and the provenance of each (runs, "
        "seeds, configuration, versions); and for any store an account of what it holds (runs "
        "per dynamics and data, parameter ranges, successes, key results by parameter, with a "
        "figure). Nothing is recomputed. docs/experiments.md explains every part.\n\n"
        "examples:\n  reluflow report results/results.sqlite -o report.html\n"
        "  reluflow sweep examples/sweep_width.toml --store width.sqlite && "
        "reluflow report width.sqlite -o width.html",
    )
    p.add_argument("store", metavar="STORE", help="results store (.sqlite)")
    p.add_argument("-o", "--output", default="report.html", help="HTML file to write")
    p.add_argument(
        "--figures", default=None, metavar="DIR", help="also write the figures (PDF, PNG) here"
    )
    p.add_argument(
        "--tables", default=None, metavar="DIR",
        help="also write the tables (CSV), claims.csv and summary.json here",
    )
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from ..report import build_report

    rep = build_report(args.store, args.output, figures_dir=args.figures, tables_dir=args.tables)
    out = sys.stdout
    if len(rep.claims):
        out.write("claims and verdicts:\n")
        for _, c in rep.claims.iterrows():
            out.write(f"  [{c['verdict']}] {c['source']}: {c['claim']}\n      {c['measured']}\n")
        out.write("\n")
    out.write(rep.overview["text"] + "\n")
    if len(rep.summary):
        cols = ["figure", "quantity", "value", "error", "runs"]
        out.write("\n" + rep.summary[cols].to_string(
            index=False, float_format=lambda v: f"{v:.4g}", na_rep="-") + "\n")
    for name, why in rep.skipped.items():
        out.write(f"not analysed: {name}: {why}\n")
    out.write(f"\nreport: {rep.html}\n")
    return 0
