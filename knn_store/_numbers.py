"""Validation of user-supplied numbers (k, cut-offs, weights), judged by value."""

from __future__ import annotations

import math
from typing import TypeGuard

import numpy as np

__all__ = ["is_integer", "real_number"]


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


def is_integer(value: object) -> TypeGuard[int | np.integer]:
    """Whether ``value`` is an int or NumPy integer other than a bool.

    For the user's values, whatever their annotation says (a ``k: int`` may arrive as ``3.0`` or ``True``).
    """
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
