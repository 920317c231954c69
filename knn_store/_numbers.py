"""Validation of user-supplied numbers (k, cut-offs, weights, percentiles), judged by value."""

from __future__ import annotations

import math
from typing import TypeGuard

import numpy as np

__all__ = ["is_integer", "percentile_problem", "real_number"]


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


def percentile_problem(values: tuple[float, ...]) -> str | None:
    """What is wrong with a sorted set of density percentiles, or None.

    They must be a non-empty set within [0, 100] (NaN is not); several of them all within (0, 1] are
    fractions given as percentiles, which would run a grid at the lowest densities: a plausible table
    of the wrong search.
    """
    if not values or not all(0 <= p <= 100 for p in values):
        return f"density percentiles must be a non-empty set within [0, 100], got {values}"
    if len(values) > 1 and 0 < values[-1] <= 1:
        return (
            f"density percentiles {values} are all within (0, 1]: percentiles run from 0 to 100 "
            f"(did you mean {tuple(round(100 * p, 6) for p in values)}?)"
        )
    return None
