"""``reluflow results``: list or export a results store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..store import ORDERS, ResultsStore
from ._common import _clean, _default, add_parser

FORMATS = ("table", "csv", "json", "parquet")


def register(sub: Any) -> None:
    p = add_parser(
        sub,
        "results",
        "list or export a results store",
        "One row per run, sorted by the parameters (experiment, each configuration key, seed): "
        "run_id, experiment, every configuration key, every scalar result, "
        "then version, seed, config_hash, wall_s, created. Trajectories stay in the store "
        "(Python: ResultsStore(path).arrays(run_id)).\n\n"
        "examples:\n"
        "  reluflow results width.sqlite\n"
        "  reluflow results width.sqlite --where \"dynamics = 'limit' AND m >= 16\" --format csv\n"
        "  reluflow results width.sqlite --format parquet -o width.parquet",
    )
    p.add_argument("store", metavar="STORE", help="the results store (a SQLite file)")
    p.add_argument(
        "--where",
        default=None,
        metavar="EXPR",
        help="keep the runs where EXPR holds: comparisons of columns with values (==, !=, <, "
        "<=, >, >=, in [...]; SQL's =, <> too) joined by and/or/not, e.g. "
        "\"n >= 64 and dynamics == 'limit'\"",
    )
    p.add_argument(
        "--order",
        choices=ORDERS,
        default="parameters",
        help="parameters (default): by experiment, then each configuration key, then seed, the "
        "same for any store holding the same runs; written: the order the runs finished",
    )
    p.add_argument("--experiment", default=None, help="keep one experiment")
    p.add_argument(
        "--columns", default=None, metavar="A,B,...", help="keep these columns, in this order"
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="table, csv, json (an array of records) or parquet (needs -o and pyarrow); "
        "default: from the -o suffix, else table",
    )
    p.add_argument("-o", "--output", metavar="FILE", default=None, help="write here, not stdout")
    p.set_defaults(func=run_results)


def run_results(args: argparse.Namespace) -> int:
    with ResultsStore(args.store, create=False) as store:
        df = store.frame(where=args.where, experiment=args.experiment, order=args.order)
    if args.columns:
        cols = [c.strip() for c in args.columns.split(",") if c.strip()]
        unknown = [c for c in cols if c not in df.columns]
        if unknown:
            raise InputError(
                f"--columns names unknown column(s) {unknown}; columns: {', '.join(df.columns)}"
            )
        df = df[cols]
    fmt = args.format
    if fmt is None:
        suffix = Path(args.output).suffix.lower().lstrip(".") if args.output else ""
        fmt = {"csv": "csv", "json": "json", "parquet": "parquet", "pq": "parquet"}.get(
            suffix, "table"
        )
    if fmt == "parquet":
        if not args.output:
            raise InputError("--format parquet writes a binary file: give -o FILE")
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise InputError(
                "--format parquet needs pyarrow: pip install 'reluflow[parquet]'"
            ) from None
        df.to_parquet(args.output, index=False)
        return 0
    if fmt == "csv":
        text = df.to_csv(index=False)
    elif fmt == "json":
        records = json.loads(json.dumps(df.to_dict(orient="records"), default=_default))
        text = json.dumps(_clean(records), allow_nan=False) + "\n"
    else:
        text = (
            df.to_string(index=False) if len(df) else f"no runs ({len(df.columns)} columns)"
        ) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
