"""Numbers given as extractor parameters, judged by value (not through NumPy)."""

from __future__ import annotations

import math
from numbers import Real

__all__ = ["positive_number", "real_number"]


def real_number(value: object) -> float | None:
    """``value`` as a float if it is a real number other than a bool (±inf beyond float range), else None.

    By value, not through NumPy: ``np.isfinite`` refuses a Python int beyond int64 (or a Fraction) with
    a ``TypeError`` that names no parameter.
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    try:
        return float(value)
    except OverflowError:  # an int too large for a float
        return -math.inf if value < 0 else math.inf


def positive_number(value: object) -> bool:
    """Whether ``value`` is a finite real number above 0 (see :func:`real_number`)."""
    number = real_number(value)
    return number is not None and math.isfinite(number) and number > 0
