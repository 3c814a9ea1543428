"""Options and output helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ._parser import HelpFormatter, count, number

if TYPE_CHECKING:  # pragma: no cover
    from ..data import Dataset

__all__ = ["HelpFormatter", "count", "number"]


def add_parser(sub: Any, name: str, help: str, description: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=description, formatter_class=HelpFormatter)


# the data kinds, initialisations and loss conventions of the commands that simulate (flow,
# descent): the names of reluflow.sweep.config's DATA_KINDS, INITS and LOSSES, spelled out here
# so that `reluflow --help` imports nothing numerical (tests/test_cli.py checks they agree)
DATA_KINDS = ("orthogonal", "gaussian", "sphere", "sphere_orthogonal", "teacher")
LABELS = ("balanced", "random", "gaussian", "signed_uniform")
INITS = ("balanced", "independent", "width_scaled", "uniform_exp", "uniform_exp_mean_field")
LOSSES = ("half_mean", "mean")


def add_data_options(p: argparse.ArgumentParser, *, gaussian: bool = True) -> Any:
    """The data options (returns their group); without ``gaussian`` (orthogonal-only commands)
    ``--data`` is hidden and anything but ``orthogonal`` is refused by :func:`make_data` with
    a pointer to flow."""
    g = p.add_argument_group("data")
    g.add_argument("--n", type=count, required=True, help="number of samples (1000 or 1e3)")
    g.add_argument(
        "--data",
        choices=DATA_KINDS,
        default="orthogonal",
        help="orthogonal: orthogonal inputs (the closed forms of docs/orthogonal-flow.md); "
        "gaussian: x_i ~ N(0, I_d/d); sphere: directions uniform on the sphere of R^d, norms "
        "U[1, 2] (Dana et al. 2025); sphere_orthogonal: x_i = rho_i e_i, norms U[1, 2]; "
        "teacher: x_i ~ N(0, I_d) labelled by a random ReLU teacher of --teacher-width "
        "neurons (Boursier et al. 2022). gaussian, sphere and teacher need --d "
        "(docs/field-setups.md)"
        if gaussian
        else argparse.SUPPRESS,
    )
    g.add_argument(
        "--d", type=count, default=None, help="input dimension (orthogonal: >= n, default n)"
    )
    g.add_argument(
        "--labels",
        default=None,
        choices=LABELS if gaussian else LABELS[:3],
        help="balanced (the default): n/2 of each sign, shuffled; random: fair +-1; "
        "gaussian: N(0,1)"
        + ("; signed_uniform: +-U[1, 2] (sphere data only). Teacher data take the "
           "teacher's labels" if gaussian else ""),
    )
    g.add_argument(
        "--norms",
        default=None,
        help="sample norms |x_i| (orthogonal data): a positive number (default 1), or "
        "'uniform' for U[0.5, 1.5]",
    )
    g.add_argument(
        "--frame",
        default=None,
        choices=("canonical", "random"),
        help="orthonormal directions of orthogonal data (default canonical)",
    )
    return g


def make_data(args: argparse.Namespace, *, orthogonal_only: str | None = None) -> Dataset:
    """The dataset of the data options; ``orthogonal_only`` names a command that needs it."""
    from .. import _validate as V
    from ..data import gaussian_data, orthogonal_data

    kind = getattr(args, "data", "orthogonal")
    labels, frame = args.labels or "balanced", args.frame or "canonical"
    norms: Any = "1" if args.norms is None else args.norms
    if orthogonal_only and kind != "orthogonal":
        raise InputError(
            f"--data {kind}: {orthogonal_only} is for orthogonal data only (its closed form "
            f"needs <x_i, x_k> = 0); simulate {kind} data with the exact gradient flow: "
            f"`reluflow flow --data {kind} --d D ...`"
        )
    if kind == "gaussian":
        if args.d is None:
            raise InputError("--data gaussian needs --d (the input dimension)")
        return gaussian_data(args.n, args.d, labels=labels, seed=args.seed)
    if norms != "uniform":
        norms = V.finite_float(
            "--norms", norms, low=0.0, low_open=True, allowed="a positive number or 'uniform'"
        )
    return orthogonal_data(args.n, args.d, labels=labels, norms=norms, frame=frame, seed=args.seed)


def _default(o: Any) -> Any:
    import numpy as np

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


def check_output(option: str, path: str | None, formats: dict[str, str] | None = None) -> None:
    """Before any computation: ``path``'s folder exists and, for a figure, its format is known.

    Args:
        option: the option name, for the message (``--plot``).
        path: the file to be written (None: nothing to check).
        formats: extension -> description of the allowed formats (None: any file).
    """
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"{option} {path}: the folder {folder} does not exist; create it first")
    if formats is not None:
        ext = os.path.splitext(path)[1].lower().lstrip(".")
        if ext not in formats:
            raise InputError(
                f"{option} {path}: unknown figure format {ext!r} (from the file name); "
                f"use one of {', '.join('.' + e for e in sorted(formats))}, e.g. figure.pdf"
            )


def figure_formats() -> dict[str, str]:
    """matplotlib's savefig formats (extension -> name)."""
    from matplotlib.backend_bases import FigureCanvasBase

    return FigureCanvasBase.get_supported_filetypes()
