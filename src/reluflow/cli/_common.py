"""Options and output helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import numpy as np

from .. import _validate as V
from ..data import Dataset, gaussian_data, orthogonal_data
from ..errors import InputError


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def add_parser(sub: Any, name: str, help: str, description: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=description, formatter_class=HelpFormatter)


def add_data_options(p: argparse.ArgumentParser, *, gaussian: bool = True) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--n", type=int, required=True, help="number of samples")
    if gaussian:
        g.add_argument(
            "--data",
            choices=("orthogonal", "gaussian"),
            default="orthogonal",
            help="orthogonal inputs, or Gaussian x_i ~ N(0, I_d/d) (needs --d)",
        )
    g.add_argument(
        "--d", type=int, default=None, help="input dimension (orthogonal: >= n, default n)"
    )
    g.add_argument(
        "--labels",
        default="balanced",
        choices=("balanced", "random", "gaussian"),
        help="balanced: n/2 of each sign, shuffled; random: fair +-1; gaussian: N(0,1)",
    )
    g.add_argument(
        "--norms",
        default="1",
        help="sample norms |x_i| (orthogonal data): a positive number, or 'uniform' for U[0.5, 1.5]",
    )
    g.add_argument(
        "--frame",
        default="canonical",
        choices=("canonical", "random"),
        help="orthonormal directions of orthogonal data",
    )


def make_data(args: argparse.Namespace) -> Dataset:
    if getattr(args, "data", "orthogonal") == "gaussian":
        if args.d is None:
            raise InputError("--data gaussian needs --d (the input dimension)")
        return gaussian_data(args.n, args.d, labels=args.labels, seed=args.seed)
    norms: Any = args.norms
    if norms != "uniform":
        norms = V.finite_float(
            "--norms", norms, low=0.0, low_open=True, allowed="a positive number or 'uniform'"
        )
    return orthogonal_data(
        args.n, args.d, labels=args.labels, norms=norms, frame=args.frame, seed=args.seed
    )


def _default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(o: Any) -> Any:
    """NaN/inf are not JSON: write them as null."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    return o


def print_json(obj: Any) -> None:
    obj = json.loads(json.dumps(obj, default=_default))
    sys.stdout.write(json.dumps(_clean(obj), allow_nan=False) + "\n")
    sys.stdout.flush()


def progress_enabled(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False)
