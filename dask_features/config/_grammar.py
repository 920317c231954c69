"""What a config expression may use: the allowed names, operators and resource limits.

:mod:`dask_features.config.expressions` checks a ``func`` string against these tables and interprets
it with them; keeping the vocabulary apart lets a reviewer read, in one place, everything an
expression from a data file can reach.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "ARRAY_ATTRIBUTES",
    "ARRAY_METHODS",
    "BINOPS",
    "BOUNDED_ARGS",
    "BUDGET_KEY",
    "BUILTINS",
    "CMPOPS",
    "ELEMENTS_PER_INPUT",
    "MAX_CONSTANT_EXPONENT",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_OUTPUT_WIDTH",
    "MAX_STRING",
    "MIN_ELEMENT_BUDGET",
    "NUMPY_CONSTANTS",
    "NUMPY_FUNCTIONS",
    "UNARYOPS",
    "depth",
    "is_text",
    "read_only",
]

#: NumPy functions an expression may call (no constructors that take a size: no np.ones(10**12)).
NUMPY_FUNCTIONS: frozenset[str] = frozenset(
    {
        "abs", "absolute", "all", "any", "arccos", "arcsin", "arctan", "arctan2", "argmax", "argmin",
        "around", "asarray", "ceil", "clip", "column_stack", "concatenate", "cos", "cosh", "cumprod",
        "cumsum", "deg2rad", "diff", "divide", "exp", "expm1", "fabs", "floor", "fmax", "fmin",
        "gradient", "hypot", "interp", "isfinite", "isinf", "isnan", "log", "log10", "log1p", "log2",
        "max", "maximum", "mean", "median", "min", "minimum", "multiply", "nan_to_num", "nanargmax",
        "nanargmin", "nancumsum", "nanmax", "nanmean", "nanmedian", "nanmin", "nanpercentile",
        "nanquantile", "nanstd", "nansum", "nanvar", "percentile", "power", "prod", "ptp",
        "quantile", "rad2deg", "reciprocal", "rint", "round", "sign", "sin", "sinh", "sort", "sqrt",
        "square", "stack", "std", "subtract", "sum", "tan", "tanh", "trunc", "var", "vstack",
        "hstack", "where",
    }
)  # fmt: skip
NUMPY_CONSTANTS = {"pi": np.pi, "e": np.e, "nan": np.nan, "inf": np.inf}

#: Methods that may be called on array values.
ARRAY_METHODS: frozenset[str] = frozenset(
    {
        "all", "any", "argmax", "argmin", "clip", "copy", "cumprod", "cumsum", "flatten", "max",
        "mean", "min", "prod", "ptp", "ravel", "round", "squeeze", "std", "sum", "var", "transpose",
    }
)  # fmt: skip
#: Non-callable array attributes.
ARRAY_ATTRIBUTES: frozenset[str] = frozenset({"T", "shape", "ndim", "size"})

BUILTINS: dict[str, Callable[..., Any]] = {
    "abs": np.abs,
    "min": min,
    "max": max,
    "len": len,
    "float": float,
    "int": int,
    "round": np.round,
}

_SEQUENCES = (str, bytes, tuple, list)


def is_text(value: Any) -> bool:
    """A string, or an array of strings/objects (NumPy 2 repeats strings with ``*`` and np.multiply)."""
    return isinstance(value, str | bytes) or (isinstance(value, np.ndarray) and value.dtype.kind in "USOT")


def _numeric_only(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``op`` refusing str/bytes/tuple operands at run time.

    The static check only sees literals; a string param (``lambda x, s='a': s * int(1e9)``) or a
    shape tuple (``x.shape * int(1e9)``) would otherwise allocate without bound.
    """

    def checked(a: Any, b: Any) -> Any:
        if is_text(a) or is_text(b) or isinstance(a, _SEQUENCES) or isinstance(b, _SEQUENCES):
            raise TypeError(
                f"arithmetic on {type(a).__name__} and {type(b).__name__} is not allowed (numbers and arrays only)"
            )
        return op(a, b)

    return checked


BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: _numeric_only(operator.add),
    ast.Sub: _numeric_only(operator.sub),
    ast.Mult: _numeric_only(operator.mul),
    ast.Div: _numeric_only(operator.truediv),
    ast.FloorDiv: _numeric_only(operator.floordiv),
    ast.Mod: _numeric_only(operator.mod),
    ast.Pow: _numeric_only(lambda a, b: np.power(_floatify(a), _floatify(b))),
    ast.BitAnd: _numeric_only(operator.and_),
    ast.BitOr: _numeric_only(operator.or_),
    ast.BitXor: _numeric_only(operator.xor),
}
UNARYOPS: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
    ast.Not: operator.not_,
    ast.Invert: operator.invert,
}
CMPOPS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
MAX_STRING = 64
MAX_CONSTANT_EXPONENT = 1e4
MAX_LENGTH = 2000  # characters; a config expression is one line of arithmetic
# Nesting depth of the syntax tree: the checker and the interpreter recurse once per level, so a
# 2000-character "------x" would otherwise end in RecursionError instead of a clear rejection.
MAX_DEPTH = 100
#: Arguments that set an iteration count inside NumPy (function -> (keyword, position, maximum)):
#: ``np.diff(x, n=int(1e9))`` loops a billion times even on an empty array.
BOUNDED_ARGS: dict[str, tuple[str, int, int]] = {"diff": ("n", 1, 100)}
#: Elements one operation may allocate: this many, or :data:`ELEMENTS_PER_INPUT` times the
#: elements of all inputs together if that is more. Checked *before* the operation runs, so
#: ``x[:, None] * x[None, :]`` on a long column is refused instead of allocating gigabytes.
MIN_ELEMENT_BUDGET = 10_000_000
ELEMENTS_PER_INPUT = 16
#: Values per step a derived feature may return (each becomes a Parquet column).
MAX_OUTPUT_WIDTH = 1024
BUDGET_KEY = "_budget"  # env slot; parameter names may not start with "_", so it cannot clash


def _floatify(value: Any) -> Any:
    # Python ints have unbounded precision: 10**10**10 would run forever. Floats overflow to inf.
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    return value


def depth(tree: ast.AST) -> int:
    """Depth of a syntax tree, computed without recursion."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in ast.iter_child_nodes(node))
    return deepest


def read_only(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        view = value.view()
        view.flags.writeable = False
        return view
    return value
