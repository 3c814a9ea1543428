"""``reluflow compare``: the flow at a ladder of λ converging to the limit."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import _validate as V
from ..errors import InputError
from ._common import (
    add_data_options,
    add_parser,
    check_output,
    count,
    figure_formats,
    make_data,
    number,
    print_json,
)

# the default lambda ladder (reluflow.compare.DEFAULT_SCALES; a test keeps them equal)
_DEFAULT_SCALES = "1e-8,1e-16,1e-32,1e-64,1e-128,1e-256,1e-1000"


def _scales(text: str) -> list[str]:
    """The ladder as decimal strings (any scale: 1e-1000 is not a float64)."""
    parts = [s.strip() for s in text.split(",") if s.strip()]
    if not parts:
        raise InputError(f"--scales must be comma-separated numbers like 1e-8,1e-1000, got {text!r}")
    for s in parts:
        V.scale_log10(s, f"--scales entry {s!r}")
    return parts


def register(sub: Any) -> None:
    p = add_parser(
        sub,
        "compare",
        "flow at a ladder of lambda against the limit, on one seed",
        "Run the exact gradient flow at each lambda of --scales and the jump process on "
        "the same seed (same neurons, same initial signs); report per event the flow's "
        "activation time (located on the solver's dense output) and its gap to the "
        "limit, the gaps in final |a_j| and in |theta|^2. Any lambda > 0 is exact "
        "(1e-1000 and below: per-neuron log-scales). The activation-time gaps shrink "
        "like 1/log(1/lambda); |theta|^2 settles on the limit's once log(1/lambda) "
        "separates the neurons (hundreds at n = 64).\n\n"
        "example: reluflow compare --n 64 --m 10 --seed 0 --plot staircase.pdf",
    )
    add_data_options(p, gaussian=False)
    p.add_argument("--m", type=count, required=True, help="width")
    p.add_argument("--seed", type=count, default=0, help="seed of the data and the initialisation")
    p.add_argument(
        "--scales",
        default=_DEFAULT_SCALES,
        help="comma-separated lambda ladder (decimal, any scale: 1e-1000, 1e-10000)",
    )
    p.add_argument("--rtol", type=number, default=1e-8, help="flow tolerance")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--plot", metavar="FILE", default=None, help="draw the staircases onto the limit's"
    )
    p.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    from ..compare import compare_to_limit

    check_output("--plot", args.plot, figure_formats() if args.plot else None)
    data = make_data(args, orthogonal_only="the comparison with the limit (reluflow compare)")
    cmp = compare_to_limit(
        data,
        args.m,
        seed=args.seed,
        scales=_scales(args.scales),
        rtol=args.rtol,
        progress=not args.json,
    )
    if args.plot:
        from ..plots import plot_convergence

        plot_convergence(
            cmp.trajectories,
            cmp.limit,
            args.plot,
            title=f"n = {data.n}, m = {args.m}, seed = {args.seed}",
            summary=cmp.summary,
        )
    if args.json:
        print_json(cmp.to_dict())
        return 0
    out = sys.stdout
    out.write(f"flow vs limit: {data!r}, m = {args.m}, seed = {args.seed}\n\nper event (tau):\n")
    piv = cmp.events.pivot_table(
        index=["event", "neuron", "tau_limit"], columns="log10_scale", values="tau_flow"
    )
    piv = piv[sorted(piv.columns, reverse=True)]  # largest λ first
    piv.columns = [V.format_scale(c) for c in piv.columns]
    out.write(piv.to_string(float_format=lambda v: f"{v:.4f}") + "\n\nper lambda:\n")
    cols = [
        "scale",
        "max_tau_gap",
        "a_gap",
        "norm_sq_flow",
        "norm_sq_limit",
        "norm_gap",
        "missing",
        "extra",
    ]
    out.write(cmp.summary[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}") + "\n")
    if args.plot:
        out.write(f"\nfigure: {args.plot}\n")
    return 0
