"""Argument checks of a compiled kernel's signature, without numba.

An ahead-of-time compiled function converts whatever it is given to its declared types (numba checks
little more than an array's item size), so a float32 array or a strided view would be read as the
wrong data. Each argument is therefore checked against the signature first, in Python; a call that
does not match exactly runs numba's JIT instead (see :mod:`dask_features._compiled`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from dask_features.errors import InvalidArgumentError

__all__ = ["ArgCheck", "parse_signature"]

ArgCheck = Callable[[Any], bool]

_DTYPES = {
    "f8": np.dtype(np.float64),
    "i8": np.dtype(np.int64),
    "b1": np.dtype(np.bool_),
    "u1": np.dtype(np.uint8),
}
_ARRAY = re.compile(r"^(f8|i8|b1|u1)\[(.*)\]$")


def _scalar(code: str) -> ArgCheck:
    if code == "f8":
        # np.float64 is a float; JIT would compile float32 (or int) arguments with other arithmetic.
        return lambda x: isinstance(x, float)
    if code == "i8":
        return lambda x: type(x) is int or type(x) is np.int64
    if code == "b1":
        return lambda x: type(x) is bool or type(x) is np.bool_
    raise InvalidArgumentError(f"unsupported scalar type {code!r} in a kernel signature (use f8, i8 or b1)")


def _array(code: str, dims: str) -> ArgCheck:
    parts = [p.strip() for p in dims.split(",")]
    ndim = len(parts)
    contiguous = parts[-1] == "::1"
    if any(p != ":" for p in parts[:-1]) or parts[-1] not in (":", "::1"):
        raise InvalidArgumentError(
            f"unsupported array layout [{dims}] in a kernel signature (use [:, ::1] or [:, :])"
        )
    dtype = _DTYPES[code]

    def check(a: Any) -> bool:
        # Exactly an ndarray (numba types subclasses differently), native byte order, aligned and
        # writeable (a compiled function may write into any array argument).
        if type(a) is not np.ndarray or a.dtype != dtype or a.ndim != ndim:
            return False
        flags = a.flags
        return bool(flags.aligned and flags.writeable and (flags.c_contiguous or not contiguous))

    return check


def _split(text: str) -> list[str]:
    """Split at the commas outside brackets and parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_signature(signature: str) -> tuple[ArgCheck, ...]:
    """One check per argument of a numba signature string ``"ret(arg, ...)"``.

    Raises
    ------
    ValueError
        A type other than f8, i8, b1, arrays of them or of u1 (bytes) (C-contiguous or any layout) as argument.
    """
    text = signature.strip()
    if not text.endswith(")"):
        raise InvalidArgumentError(f"kernel signature {signature!r} is not of the form 'ret(args)'")
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(text[i], 0)
        if depth == 0:
            break
    checks = []
    for arg in _split(text[i + 1 : -1]):
        m = _ARRAY.match(arg)
        checks.append(_array(m.group(1), m.group(2)) if m else _scalar(arg))
    return tuple(checks)
