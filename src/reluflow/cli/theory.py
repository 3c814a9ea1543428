"""``reluflow theory``: the closed forms of the interpolation threshold (docs/limit.md)."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import add_parser, count, number, print_json

_ALLOWED = (
    "Counts: n+ >= 0 and n- >= 0 with n = n+ + n- >= 1 samples (as every other command, "
    "which refuses n = 0); width m >= 1."
)


def register(sub: Any) -> None:
    p = add_parser(
        sub,
        "theory",
        "closed forms: interpolation probability, width needed",
        "Exact formulas for orthogonal data with Gaussian initialisation: the probability "
        "that the lambda -> 0 limit interpolates, and the width it needs.\n\n" + _ALLOWED,
    )
    tsub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    q = add_parser(
        tsub,
        "interp-prob",
        "P(interpolation) for n+ positive and n- negative labels, width m",
        "P = sum_k C(m,k) 2^-m (1 - 2^-k)^n+ (1 - 2^-(m-k))^n-\n\n"
        + _ALLOWED
        + "\n\nexample: reluflow theory interp-prob --n-pos 50 --n-neg 50 --m 12",
    )
    q.add_argument("--n-pos", type=count, required=True, help="number of positive labels n+")
    q.add_argument("--n-neg", type=count, required=True, help="number of negative labels n-")
    q.add_argument("--m", type=count, required=True, help="width")
    q.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    q.set_defaults(func=run_prob)
    q = add_parser(
        tsub,
        "width",
        "smallest width m with P(interpolation) >= p",
        "Inverse of interp-prob in m.\n\n"
        + _ALLOWED
        + "\n\nexample: reluflow theory width --n-pos 500 --n-neg 500 --p 0.95",
    )
    q.add_argument("--n-pos", type=count, required=True, help="number of positive labels n+")
    q.add_argument("--n-neg", type=count, required=True, help="number of negative labels n-")
    q.add_argument("--p", type=number, required=True, help="target probability in (0, 1)")
    q.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    q.set_defaults(func=run_width)


def run_prob(args: argparse.Namespace) -> int:
    from ..theory import interpolation_probability

    p = interpolation_probability(args.n_pos, args.n_neg, args.m)
    if args.json:
        print_json({"n_pos": args.n_pos, "n_neg": args.n_neg, "m": args.m, "probability": p})
    else:
        print(
            f"P(interpolation) = {p:.12g}   (n+ = {args.n_pos}, n- = {args.n_neg}, m = {args.m}; "
            "lambda -> 0 limit, orthogonal data)"
        )
    return 0


def run_width(args: argparse.Namespace) -> int:
    from ..theory import interpolation_probability, width_for_probability

    m = width_for_probability(args.n_pos, args.n_neg, args.p)
    prob = interpolation_probability(args.n_pos, args.n_neg, m)
    if args.json:
        print_json(
            {"n_pos": args.n_pos, "n_neg": args.n_neg, "p": args.p, "m": m, "probability": prob}
        )
    else:
        print(
            f"width m = {m}   (smallest m with P(interpolation) >= {args.p:g}: "
            f"P = {prob:.6g}; n+ = {args.n_pos}, n- = {args.n_neg})"
        )
    return 0
