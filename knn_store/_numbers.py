"""Validation of user-supplied numbers (cut-offs, weights), judged by value."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["real_number"]


def real_number(value: object) -> float | None:
    """``value`` as a float if it is an int, float or NumPy number other than a bool, else None.

    Judged by value, not through NumPy: ``np.isfinite`` refuses a Python int beyond uint64 with a
    ``TypeError`` naming no parameter. An int beyond float range is ``±inf`` here, so a finiteness check
    rejects it.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    try:
        return float(value)
    except OverflowError:  # an int too large for a float
        return math.inf if value > 0 else -math.inf
