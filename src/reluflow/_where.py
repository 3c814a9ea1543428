"""Row filters for results tables: ``n >= 64 and dynamics == 'limit'``.

A filter is a condition on the columns, in a small language checked before it
runs (no pandas or Python internals reach the user):

- comparisons ``==  !=  <  <=  >  >=`` (chains like ``4 <= m < 32`` too), and
  ``in`` / ``not in`` a list (``m in [4, 8]``);
- ``and``, ``or``, ``not``, parentheses;
- column names, numbers, quoted strings, ``true``/``false``, ``nan``, and
  arithmetic ``+ - * / **`` on them (``norm_sq / min_norm_sq > 1.1``);
- SQL spellings: ``=`` for ``==``, ``<>`` for ``!=``, ``AND``/``OR``/``NOT``.

A comparison with a missing value (NaN, or a key the run does not have) is false.
"""

from __future__ import annotations

import ast
import operator
import re
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError

SYNTAX = (
    "a filter compares columns with values (==, !=, <, <=, >, >=, in [...]; SQL's =, <> "
    "too), joined by and/or/not, e.g. \"n >= 64 and dynamics == 'limit'\""
)

_SQL_WORDS = {"and": "and", "or": "or", "not": "not"}
_TOKEN = re.compile(
    r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(<>|[<>!=]=|=)|\b(AND|OR|NOT)\b""", re.I
)
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_ARITH = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_NAMES = {"true": True, "false": False, "nan": float("nan"), "inf": float("inf")}


class _Bad(Exception):
    """The filter uses something outside the language (message: what)."""


def _sql_to_python(where: str) -> str:
    """SQL spellings to Python's: ``=`` → ``==``, ``<>`` → ``!=``, ``AND`` → ``and``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return m.group(1)
        if m.group(2):
            return {"=": "==", "<>": "!="}.get(m.group(2), m.group(2))
        return _SQL_WORDS[m.group(3).lower()]

    return _TOKEN.sub(sub, where)


def check_syntax(where: str) -> None:
    """Raise the :func:`where_mask` error if ``where`` cannot be read at all."""
    _parse(where)


def _parse(where: str) -> ast.Expression:
    try:
        return ast.parse(_sql_to_python(where).strip(), mode="eval")
    except SyntaxError:
        raise InputError(f"cannot read the filter {where!r}: {SYNTAX}") from None


def where_mask(df: pd.DataFrame, where: str) -> pd.Series:
    """The rows of ``df`` where the condition ``where`` holds (a boolean Series).

    Raises:
        InputError: one line naming the filter and what is wrong with it (syntax,
            an unknown column, a comparison of a number with a string).
    """
    tree = _parse(where)
    try:
        value = _eval(tree.body, df)
    except _Bad as exc:
        raise InputError(f"cannot use the filter {where!r}: {exc}; {SYNTAX}") from None
    except TypeError:
        raise InputError(
            f"cannot use the filter {where!r}: it compares or combines values of different "
            f"types (a number with a string?); {SYNTAX}"
        ) from None
    if isinstance(value, bool | np.bool_):
        return pd.Series(bool(value), index=df.index)
    if not isinstance(value, pd.Series) or value.dtype != bool:
        raise InputError(
            f"the filter {where!r} must be a condition (true or false for each run); {SYNTAX}"
        )
    return value


def _eval(node: ast.AST, df: pd.DataFrame) -> Any:
    if isinstance(node, ast.BoolOp):
        parts = [_as_bool(_eval(v, df)) for v in node.values]
        out = parts[0]
        for p in parts[1:]:
            out = (out & p) if isinstance(node.op, ast.And) else (out | p)
        return out
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, df)
        if isinstance(node.op, ast.Not):
            return ~_as_bool(v) if isinstance(v, pd.Series) else not v
        if isinstance(node.op, ast.USub):
            return -v
        if isinstance(node.op, ast.UAdd):
            return +v
        raise _Bad(f"the operator {type(node.op).__name__} is not allowed")
    if isinstance(node, ast.Compare):
        left = _eval(node.left, df)
        out = None
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, df) if not isinstance(op, ast.In | ast.NotIn) else _list(comp)
            if isinstance(op, ast.In | ast.NotIn):
                if not isinstance(left, pd.Series):
                    raise _Bad("'in' needs a column on its left")
                r = left.isin(right)
                r = ~r if isinstance(op, ast.NotIn) else r
            elif type(op) in _COMPARE:
                r = _COMPARE[type(op)](left, right)
                if isinstance(r, pd.Series):
                    r = r.fillna(False).astype(bool)
            else:
                raise _Bad(f"the comparison {type(op).__name__} is not allowed")
            out = r if out is None else (out & r)
            left = right
        return out
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _ARITH:
            raise _Bad(f"the operator {ast.unparse(node)!r} is not allowed")
        return _ARITH[type(node.op)](_eval(node.left, df), _eval(node.right, df))
    if isinstance(node, ast.Name):
        if node.id in df.columns:
            return df[node.id]
        if node.id.lower() in _NAMES:
            return _NAMES[node.id.lower()]
        raise _Bad(f"no column {node.id!r} (columns: {', '.join(map(str, df.columns))})")
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool):
        return node.value
    raise _Bad(f"{ast.unparse(node)!r} is not a column, a value or a comparison")


def _list(node: ast.AST) -> list[Any]:
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        values = []
        for v in node.elts:
            if isinstance(v, ast.UnaryOp) and isinstance(v.op, ast.USub):
                v, sign = v.operand, -1
            else:
                sign = 1
            if not isinstance(v, ast.Constant):
                raise _Bad("'in' needs a list of values, e.g. m in [4, 8]")
            values.append(sign * v.value if sign < 0 else v.value)
        return values
    raise _Bad("'in' needs a list of values, e.g. m in [4, 8]")


def _as_bool(v: Any) -> Any:
    if isinstance(v, pd.Series):
        if v.dtype != bool:
            raise _Bad("and/or/not join conditions, not values")
        return v
    if isinstance(v, bool | np.bool_):
        return bool(v)
    raise _Bad("and/or/not join conditions, not values")
