"""NumPy's reductions for ``func`` expressions, NaN over nothing without NumPy's warning.

``np.nanmean`` of a step whose values are all NaN (a transient step without samples: its input's
error record says why), ``np.mean`` of an empty selection, ``np.nanstd(..., ddof=1)`` of one value:
NumPy returns NaN, the intended value, and also emits a ``RuntimeWarning`` ("Mean of empty slice",
"All-NaN slice encountered", "Degrees of freedom <= 0 for slice"), which reached the user's console
or notebook on every such step and, where warnings are errors, cost the feature of every step.

The functions here give NumPy's result bit for bit and no warning: slices with nothing to reduce
are filled with zeros before NumPy reduces them and set to NaN after. No warning filter is touched
(``warnings.catch_warnings`` changes process-wide state, unsafe with the threads of a local run).
"""

from __future__ import annotations

import inspect
import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["QUIET_METHODS", "QUIET_REDUCTIONS"]

#: Reductions taking ``ddof``: a slice needs more than ``ddof`` values.
_DDOF = frozenset({"std", "var", "nanstd", "nanvar"})


def _axes(axis: Any, ndim: int) -> tuple[int, ...] | None:
    """The reduced axes, as NumPy reads ``axis``; None where NumPy raises (TypeError for a non-integer)."""
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(operator.index(a) for a in (axis if isinstance(axis, tuple) else (axis,)))
    axes = tuple(a + ndim if a < 0 else a for a in axes)
    if any(not 0 <= a < ndim for a in axes) or len(set(axes)) != len(axes):
        return None  # out of bounds or repeated: NumPy words the error
    return axes


def _quiet(name: str) -> Callable[..., Any]:
    fn = getattr(np, name)
    signature = inspect.signature(fn)
    skips_nan = name.startswith("nan")
    has_q = name in ("nanpercentile", "nanquantile")

    def reduce(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return fn(*args, **kwargs)  # NumPy words the mistake
        given = bound.arguments
        x = np.asarray(given.get("a"))
        if "out" in given or "where" in given or x.dtype.kind not in "biufc":
            return fn(*args, **kwargs)
        try:
            axes = _axes(given.get("axis"), x.ndim)
            if axes is None:
                return fn(*args, **kwargs)
            threshold = given.get("ddof", 0) if name in _DDOF else 0
            values = ~np.isnan(x) if skips_nan and x.dtype.kind in "fc" else np.ones(x.shape, dtype=bool)
            empty = np.asarray(np.sum(values, axis=axes, keepdims=True) <= threshold)
        except (TypeError, ValueError):  # a bad axis or ddof: NumPy's own error
            return fn(*args, **kwargs)
        if not empty.any():
            return fn(*args, **kwargs)
        keepdims = bool(given.get("keepdims", False))
        mask = empty if keepdims else np.squeeze(empty, axis=axes)
        if math.prod(x.shape[i] for i in axes) > threshold:
            # Some values in every slice once zeros stand in for the slices that have none.
            given["a"] = np.where(empty, np.zeros((), dtype=x.dtype), x)
            result = fn(*bound.args, **bound.kwargs)
            return np.where(mask, np.asarray(np.nan, dtype=np.asarray(result).dtype), result)[()]
        # Slices too short for any value (an empty selection).
        if name in ("nanmin", "nanmax"):
            return fn(*args, **kwargs)  # NumPy's error: a minimum of nothing is no NaN of a step
        if has_q:  # NumPy checks q and shapes the result from one zero per slice
            given["a"] = np.zeros([1 if i in axes else n for i, n in enumerate(x.shape)], dtype=x.dtype)
            return np.full_like(fn(*bound.args, **bound.kwargs), np.nan)[()]
        kind = x.dtype if x.dtype.kind in "fc" else np.dtype(np.float64)
        return np.full(mask.shape, np.nan, dtype=np.empty(0, kind).real.dtype if name in _DDOF else kind)[()]

    reduce.__name__ = reduce.__qualname__ = name
    reduce.__doc__ = f"``np.{name}``, NaN without a warning for a slice with nothing to reduce."
    return reduce


#: Allow-listed NumPy reductions that warn when a slice has nothing to reduce, by name.
QUIET_REDUCTIONS: dict[str, Callable[..., Any]] = {
    name: _quiet(name)
    for name in (
        "mean",
        "median",
        "std",
        "var",
        "nanmean",
        "nanmedian",
        "nanstd",
        "nanvar",
        "nanmin",
        "nanmax",
        "nanpercentile",
        "nanquantile",
    )
}

#: Array methods that warn the same way (``x.mean()`` is ``np.mean(x)``).
QUIET_METHODS = frozenset({"mean", "std", "var"})
