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
        "rebuild the HTML report from a results store",
        "Read the runs of `reluflow reproduce` from STORE and write one self-contained HTML "
        "file: the figures embedded, the tables of the numbers behind them and the "
        "provenance of each (runs, seeds, configuration, versions). Nothing is recomputed.\n\n"
        "example: reluflow report results/results.sqlite -o report.html",
    )
    p.add_argument("store", metavar="STORE", help="results store (results.sqlite)")
    p.add_argument("-o", "--output", default="report.html", help="HTML file to write")
    p.add_argument(
        "--figures", default=None, metavar="DIR", help="also write the figures (PDF, PNG) here"
    )
    p.add_argument(
        "--tables", default=None, metavar="DIR", help="also write the tables (CSV, JSON) here"
    )
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from ..report import build_report

    rep = build_report(args.store, args.output, figures_dir=args.figures, tables_dir=args.tables)
    cols = ["figure", "quantity", "value", "error", "runs"]
    sys.stdout.write(
        rep.summary[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-")
        + f"\n\nreport: {rep.html}\n"
    )
    return 0
