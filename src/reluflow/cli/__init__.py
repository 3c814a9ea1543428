"""The ``reluflow`` command line: a thin layer over the Python API.

Each subcommand lives in its own module with ``register(subparsers)``; this
module builds the parser, runs the command, and turns user errors
(:class:`~reluflow.errors.InputError`) into a one-line message and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from .._version import __version__
from ..errors import InputError

# subcommand modules, in the order --help lists them
_COMMANDS = ("reproduce", "flow", "limit", "compare", "theory", "sweep", "results", "report")

DESCRIPTION = """\
reluflow: training dynamics and implicit bias of two-layer ReLU networks
f(x) = sum_j a_j relu(<w_j, x>) from small initialisation (scale lambda).

  reproduce   run the reference experiments, write figures, tables and a report
  flow        exact gradient flow (and `descent`: gradient descent / SGD)
  limit       the lambda -> 0 saddle-to-saddle jump process (orthogonal data)
  compare     flow at a ladder of lambda against the limit, on one seed
  theory      closed forms: interpolation probability, width needed
  sweep       run a grid of configurations into a results store (resumable)
  results     list or export a results store
  report      rebuild the HTML report from a results store

Run `reluflow COMMAND --help` for each command's options."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reluflow",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"reluflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        try:
            mod = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:  # a command module not shipped in this build
            if exc.name != f"{__name__}.{name}":
                raise
            continue
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    warnings.simplefilter("default")
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"reluflow {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"reluflow {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
