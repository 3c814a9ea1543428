"""``reluflow limit``: the λ → 0 jump process, one seed or a range of seeds."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ._common import add_data_options, add_parser, count, make_data, print_json

if TYPE_CHECKING:  # pragma: no cover
    from ..limit import LimitResult


def parse_seeds(args: argparse.Namespace) -> list[int]:
    from .. import _validate as V

    if args.seeds is None:
        return [V.seed("--seed", args.seed)]
    try:
        a, b = (int(s) for s in args.seeds.split(":"))
    except ValueError:
        raise InputError(
            f"--seeds must be A:B (seeds A, A+1, ..., B-1), got {args.seeds!r}"
        ) from None
    if not 0 <= a < b:
        raise InputError(f"--seeds A:B needs 0 <= A < B, got {args.seeds!r}")
    return list(range(a, b))


def register(sub: Any) -> None:
    p = add_parser(
        sub,
        "limit",
        "the lambda -> 0 saddle-to-saddle jump process (orthogonal data)",
        "Compute the limit of gradient flow as the initialisation scale goes to 0 "
        "(docs/limit.md): the sequence of saddles, which neuron activates and "
        "which samples it fits, the plateaus, whether the network interpolates, and "
        "its |theta|^2 against the minimal-norm interpolator. Ties are resolved by "
        "the tied group's own gradient flow and reported.\n\n"
        "examples:\n  reluflow limit --n 1000000 --m 80 --seed 0\n"
        "  reluflow limit --n 256 --m 16 --seeds 0:100 --json > runs.jsonl",
    )
    add_data_options(p, gaussian=False)
    p.add_argument("--m", type=count, default=None, help="width (not needed with --init)")
    s = p.add_mutually_exclusive_group()
    s.add_argument("--seed", type=count, default=0, help="seed of the data and the initial signs")
    s.add_argument("--seeds", default=None, metavar="A:B", help="run seeds A..B-1, one result each")
    p.add_argument(
        "--init",
        metavar="FILE",
        default=None,
        help="start from a .npz written by `reluflow flow --save-init` (replaces the data options)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per seed, one per line")
    p.set_defaults(func=run_limit, n=None)
    for a in p._actions:  # --n is optional here: --init carries the data
        if a.dest == "n":
            a.required = False


def limit_json(seed: int | None, res: LimitResult) -> dict[str, Any]:
    ev = res.events_frame()
    return {
        "seed": seed,
        "n": res.n,
        "m": res.m,
        "interpolates": res.interpolates,
        "norm_sq": res.norm_sq,
        "min_norm_sq": res.min_norm_sq,
        "ratio": res.ratio,
        "ratio_note": res.ratio_note,
        "ties": res.n_ties,
        "final_loss": res.final_loss,
        "wall_s": res.wall_s,
        "events": [
            {
                "tau": float(r["tau"]),
                "neuron": [int(j) for j in r["neurons"]]
                if len(r["neurons"]) > 1
                else int(r["neurons"][0]),
                "fitted": int(r["fitted"]),
                "loss": float(r["loss"]),
            }
            for r in ev.to_dict(orient="records")
        ],
        "tie_details": [t.as_dict() for t in res.ties],
        "provenance": res.provenance,
    }


def run_limit(args: argparse.Namespace) -> int:
    from ..limit import jump_process
    from ..network import load_init

    if args.data != "orthogonal":
        make_data(args, orthogonal_only="the jump process (reluflow limit)")
    if args.init:
        data, net = load_init(args.init)
        results = [(None, jump_process(data, net=net))]
    else:
        if args.n is None or args.m is None:
            raise InputError("reluflow limit needs --n and --m (or --init FILE)")
        from .. import _memory

        _memory.check_run("limit", args.n, args.m)
        results = []
        seeds = parse_seeds(args)
        from tqdm.auto import tqdm

        for seed in tqdm(seeds, desc="limit", disable=args.json or len(seeds) < 20, leave=False):
            args.seed = seed
            data = make_data(args, orthogonal_only="the jump process (reluflow limit)")
            res = jump_process(data, args.m, seed=seed)
            if args.json:
                print_json(limit_json(seed, res))
            else:
                results.append((seed, res))
        if args.json:
            return 0
    out = sys.stdout
    for seed, res in results:
        if args.json:
            print_json(limit_json(seed, res))
            continue
        origin = f"from {args.init}" if seed is None else f"seed = {seed}"
        out.write(f"jump process: n = {res.n}, m = {res.m}, {origin}\n")
        ev = res.events_frame()
        out.write(f"  {len(ev)} events (tau, neuron(s), samples fitted, plateau loss after):\n")
        for r in ev.to_dict(orient="records")[:40]:
            out.write(
                f"    tau = {r['tau']:12.4f}   neuron {','.join(map(str, r['neurons'])):>8}   "
                f"{int(r['fitted']):8d}   {r['loss']:.6g}\n"
            )
        if len(ev) > 40:
            out.write(f"    ... {len(ev) - 40} more (use --json)\n")
        out.write(f"  interpolates      {res.interpolates}\n")
        ratio = (
            f"ratio {res.ratio:.4f}"
            if res.ratio_note == ""
            else f"ratio undefined: {res.ratio_note}"
        )
        out.write(
            f"  |theta|^2         {res.norm_sq:.6g}   (minimal-norm interpolator {res.min_norm_sq:.6g}, "
            f"{ratio})\n"
        )
        out.write(f"  ties              {res.n_ties}\n")
        out.write(f"  wall time         {res.wall_s:.3f} s\n")
    return 0
