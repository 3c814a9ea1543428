"""``reluflow theory``: closed forms of THEORY.md §5."""

from __future__ import annotations

import argparse
from typing import Any

from ..theory import interpolation_probability, width_for_probability
from ._common import add_parser, print_json


def register(sub: Any) -> None:
    p = add_parser(
        sub,
        "theory",
        "closed forms: interpolation probability, width needed",
        "Exact formulas for orthogonal data with Gaussian initialisation (THEORY.md section 5).",
    )
    tsub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    q = add_parser(
        tsub,
        "interp-prob",
        "P(interpolation) for n+ positive and n- negative labels, width m",
        "P = sum_k C(m,k) 2^-m (1 - 2^-k)^n+ (1 - 2^-(m-k))^n-",
    )
    q.add_argument("--n-pos", type=count, required=True, help="number of positive labels")
    q.add_argument("--n-neg", type=count, required=True, help="number of negative labels")
    q.add_argument("--m", type=count, required=True, help="width")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=run_prob)
    q = add_parser(
        tsub, "width", "smallest width m with P(interpolation) >= p", "Inverse of interp-prob in m."
    )
    q.add_argument("--n-pos", type=count, required=True, help="number of positive labels")
    q.add_argument("--n-neg", type=count, required=True, help="number of negative labels")
    q.add_argument("--p", type=number, required=True, help="target probability in (0, 1)")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=run_width)


def run_prob(args: argparse.Namespace) -> int:
    p = interpolation_probability(args.n_pos, args.n_neg, args.m)
    if args.json:
        print_json({"n_pos": args.n_pos, "n_neg": args.n_neg, "m": args.m, "probability": p})
    else:
        print(f"{p:.12g}")
    return 0


def run_width(args: argparse.Namespace) -> int:
    m = width_for_probability(args.n_pos, args.n_neg, args.p)
    if args.json:
        print_json(
            {
                "n_pos": args.n_pos,
                "n_neg": args.n_neg,
                "p": args.p,
                "m": m,
                "probability": interpolation_probability(args.n_pos, args.n_neg, m),
            }
        )
    else:
        print(m)
    return 0
