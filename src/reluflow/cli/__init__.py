"""The ``reluflow`` command line: a thin layer over the Python API.

Each subcommand lives in its own module with ``register(subparsers)``; this
module builds the parser, runs the command, and turns user errors
(:class:`~reluflow.errors.InputError`) into a one-line message and exit code 2.

Only the module of the command being run is imported (``reluflow --version``
and ``reluflow --help`` import none of them, hence neither numba, matplotlib
nor pandas), and warnings are printed as one line each, above any progress bar.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from typing import Any

from .._version import __version__
from ..errors import InputError
from ._parser import Parser

# subcommand modules, in the order --help lists them, with their one-line help
_COMMANDS = {
    "reproduce": "run the reference experiments, write figures, tables and a report",
    "flow": "exact gradient flow from small initialisation",
    "descent": "gradient descent / minibatch SGD from small initialisation",
    "limit": "the lambda -> 0 saddle-to-saddle jump process (orthogonal data)",
    "compare": "flow at a ladder of lambda against the limit, on one seed",
    "theory": "closed forms: interpolation probability, width needed",
    "sweep": "run a grid of configurations into a results store (resumable)",
    "results": "list or export a results store",
    "report": "rebuild the HTML report from a results store",
}
# the module that registers each command (``descent`` shares ``flow``'s)
_MODULE = {"descent": "flow"}

DESCRIPTION = (
    """\
reluflow: training dynamics and implicit bias of two-layer ReLU networks
f(x) = sum_j a_j relu(<w_j, x>) from small initialisation (scale lambda).

"""
    + "\n".join(f"  {name:<11} {text}" for name, text in _COMMANDS.items())
    + """

Run `reluflow COMMAND --help` for each command's options."""
)


def _command_in(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the first non-option word), if known."""
    for a in argv:
        if not a.startswith("-"):
            return a if a in _COMMANDS else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; ``command`` (or every command when ``"all"``) is fully registered.

    The other commands are registered by name only (no options), so that the
    "invalid choice" message lists them all without importing their modules; the top-level ``--help``
    lists them once, with their one-line help, in its description.
    """
    parser = Parser(
        prog="reluflow",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"reluflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = set(_COMMANDS) if command == "all" else {command} & set(_COMMANDS)
    for module in dict.fromkeys(_MODULE.get(name, name) for name in _COMMANDS if name in wanted):
        importlib.import_module(f"{__name__}.{module}").register(sub)
    for name in _COMMANDS:  # by name only: the description above lists them with their help
        if name not in sub.choices:
            sub.add_parser(name)
    return parser


def _one_line_warning(
    message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    """``warnings.showwarning`` for the CLI: ``reluflow: Category: message``, above any bar."""
    from tqdm.auto import tqdm

    text = " ".join(str(message).split())
    tqdm.write(f"reluflow: {category.__name__}: {text}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_in(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    warnings.simplefilter("default")
    shown = warnings.showwarning
    warnings.showwarning = _one_line_warning
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"reluflow {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"reluflow {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`reluflow limit ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
