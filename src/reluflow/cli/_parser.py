"""argparse, adjusted: negative numbers as values, integers in scientific notation, clean help.

Kept free of numerical imports so that ``reluflow --help`` and ``--version`` stay instant.
"""

from __future__ import annotations

import argparse
import math
import re

# A command-line word that is a number (sign, digits, decimal point, exponent, inf/nan):
# argparse's own pattern (``-\d+`` or ``-\d*\.\d+``) misses ``-1e-8``, which it then
# takes for an unknown option ("expected one argument") instead of a value.
_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$", re.IGNORECASE)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that reads ``-1e-8``, ``-5``, ``-inf`` as values, not options.

    A negative value then reaches the option's validator, whose message names the
    sign (``scale (lambda) must be > 0, got -1e-08``). Subparsers inherit the class.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NUMBER


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows ``(default: X)`` once, and only where there is a default worth showing.

    Options whose help already says what their default is, and options defaulting
    to ``None`` (no value: a rule computed from the data) or ``False`` (flags), keep
    their help as written.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        help = action.help or ""
        if action.default is None or action.default is False or "default" in help:
            return help
        return super()._get_help_string(action)


def count(text: str) -> int:
    """An integer option: ``1000``, ``1e3`` or ``1_000``; a non-integral value is refused.

    The sign is left to the API's validator (``--n -5`` reaches it and is refused there).
    """
    try:
        return int(text)
    except ValueError:
        pass
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be an integer (e.g. 1000 or 1e3), got {text!r}"
        ) from None
    if not math.isfinite(x) or not x.is_integer():
        raise argparse.ArgumentTypeError(f"must be an integer (e.g. 1000 or 1e3), got {text!r}")
    return int(x)


def number(text: str) -> float:
    """A real option (any float syntax); range checks are the API's."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a number (e.g. 0.5 or 1e-8), got {text!r}"
        ) from None
