"""Extremes of a per-step quantity over each sweep's segment, vectorised over a chunk.

:func:`extreme` finds, for every row of an ``(n, m)`` matrix of sweeps (:class:`Sweeps` from
:mod:`._transfer_math`), the maximum, minimum or largest/smallest magnitude of a quantity over the
row's forward, reverse or whole segment and the **first** column where it occurs. When every row
turns at the same column (:attr:`Sweeps.common_turn`) the segments are one column slice, reduced
without masks; otherwise masked rows are reduced. Both paths give the same values bit for bit
(``tests/extractors/test_transfer_math.py``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from dask_features.extractors import _slope_kernels as sk
from dask_features.extractors._transfer_math import (
    DX_FLOOR,
    LOG_FLOOR,
    Direction,
    Reduction,
    Sweeps,
    segment,
    segment_mask,
)

__all__ = ["HALF_REDUCTIONS", "extreme", "half_slope_extremes"]

#: The reductions :func:`half_slope_extremes` computes, by their number in its kernel.
HALF_REDUCTIONS = {"max": 0, "min": 1, "absmax": 2}


def extreme(
    values: np.ndarray,
    sweeps: Sweeps,
    direction: Direction,
    *,
    reduction: Reduction,
    mask: np.ndarray | Literal["auto"] | None = "auto",
    edge: tuple[np.ndarray, np.ndarray] | None = None,
    scratch: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Extreme of ``values`` over each row's segment, with the **first** column where it occurs.

    Parameters
    ----------
    values : ndarray of float64, shape (n, w)
        Per-point quantity of the whole sweep (Id or a derivative), NaN past each row's points.
    sweeps : Sweeps
        The chunk's sweeps.
    direction : {"forward", "reverse", "raw"}
        Segment (:func:`segment`).
    reduction : {"max", "min", "absmax", "absmin"}
        ``absmax``/``absmin`` compare and return absolute values (oect-infra's ``absgm_max``,
        ``absI_max``, ``absI_min``).
    mask : ndarray of bool or None or "auto", default "auto"
        :func:`segment_mask` of the same direction (passed in so callers can share it); ``"auto"``
        computes it if needed (it is not when the sweeps have a :attr:`Sweeps.common_turn`).
    edge : (ndarray of int64, ndarray of float64), optional
        Marks ``values`` as a derivative of the whole sweep (:attr:`Derivative.edges` of this
        direction): at the half's end inside the sweep the value is replaced by the one-sided slope,
        as if the half had been differentiated alone, and the segment needs at least 2 points.
    scratch : ndarray of float64, shape (n, w), optional
        Work buffer (overwritten) to avoid a temporary; ``values`` is never modified.

    Returns
    -------
    value : ndarray of float64, shape (n,)
        NaN for rows whose segment is too short.
    index : ndarray of int64, shape (n,)
        Column of the extremum in the compacted sweeps (0 where ``value`` is NaN).
    ok : ndarray of bool, shape (n,)
        Rows that have a value.
    """
    span = _common_span(sweeps, direction)
    if span is not None:
        found = _extreme_in_span(values, span, direction, reduction, edge)
        if found is not None:
            return found
    if isinstance(mask, str):
        mask = segment_mask(sweeps, direction)
    start, stop = segment(sweeps, direction)
    ok = (stop - start) >= (1 if edge is None else 2)
    absolute = reduction in ("absmax", "absmin")
    largest = reduction in ("max", "absmax")
    work = np.empty_like(values) if scratch is None else scratch
    if mask is None and not absolute:
        work = values  # read only: no patching happens without a mask (raw segment)
    elif mask is None:
        np.abs(values, out=work)
    else:
        # Outside the segment: -inf/+inf, or 0 for |.|max (|values| >= 0, so a 0 outside can only
        # win when the whole segment is 0; the index is moved back to the segment below).
        work.fill(0.0 if reduction == "absmax" else -np.inf if largest else np.inf)
        np.copyto(work, values, where=mask)
        if absolute:
            np.abs(work, out=work)
    if edge is not None and direction != "raw":
        rows = np.flatnonzero(ok)
        patch = edge[1][rows]
        work[rows, edge[0][rows]] = np.abs(patch) if absolute else patch
    index = work.argmax(axis=1) if largest else work.argmin(axis=1)
    value = work[np.arange(work.shape[0]), index]
    if reduction == "absmax" and mask is not None:
        index = np.where(value == 0, start, index)
    value[~ok] = np.nan
    index[~ok] = 0
    return value, index, ok


def _common_span(sweeps: Sweeps, direction: str) -> tuple[int, int] | None:
    """Columns ``[a, b)`` of a segment shared by every row (:attr:`Sweeps.common_turn`), else None."""
    turn, w = sweeps.common_turn, sweeps.shape[1]
    if turn is None:
        return None
    return {"forward": (0, turn + 1), "reverse": (turn + 1, w), "raw": (0, w)}.get(direction)


def _extreme_in_span(
    values: np.ndarray,
    span: tuple[int, int],
    direction: str,
    reduction: Reduction,
    edge: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """:func:`extreme` when every row's segment is the column slice ``[a, b)`` of full sweeps.

    Reduces over a view of the slice instead of a masked full-width copy (no work buffer is
    needed), and compares the patched half-end value (``edge``) with the rest separately instead of
    writing it in. Gives exactly what the masked path gives: same first-occurrence rule (the end
    point of a forward half comes last and wins only when strictly better, that of a reverse half
    comes first and wins ties), same values. Returns None (the caller takes the masked path) when a
    candidate is not finite, where NaN propagation or a tie with the masked path's ``+-inf`` fill
    would need its exact rules.
    """
    a, b = span
    n = values.shape[0]
    if b - a < (1 if edge is None else 2):
        return np.full(n, np.nan), np.zeros(n, np.int64), np.zeros(n, bool)
    absolute = reduction in ("absmax", "absmin")
    largest = reduction in ("max", "absmax")
    patched = edge is not None and direction != "raw"
    lo, hi = a, b
    if patched:
        lo, hi = (a, b - 1) if direction == "forward" else (a + 1, b)
    part, rows = values[:, lo:hi], np.arange(n)
    if reduction == "absmax":
        # The largest |x| is at the largest or at the smallest x; on a tie the first of the two is
        # the first largest |x|. Two reductions over a view instead of |x| over the whole matrix.
        at_max, at_min = part.argmax(axis=1), part.argmin(axis=1)
        top, bottom = np.abs(part[rows, at_max]), np.abs(part[rows, at_min])
        value = np.maximum(top, bottom)
        index = np.where(top > bottom, at_max, np.where(bottom > top, at_min, np.minimum(at_max, at_min)))
    else:
        source = np.abs(part) if absolute else part
        index = source.argmax(axis=1) if largest else source.argmin(axis=1)
        value = source[rows, index]
    index += lo
    if not np.isfinite(value).all():
        return None
    if patched:
        assert edge is not None
        at, patch = (b - 1 if direction == "forward" else a), edge[1]
        if absolute:
            patch = np.abs(patch)
        if not np.isfinite(patch).all():
            return None
        if direction == "forward":
            take = patch > value if largest else patch < value
        else:
            take = patch >= value if largest else patch <= value
        index = np.where(take, at, index)
        value = np.where(take, patch, value)
    if reduction == "absmax" and direction != "raw":
        # As the masked path: an all-zero segment reports its first column.
        index = np.where(value == 0, a, index)
    return value, index, np.ones(n, bool)


def half_slope_extremes(
    sweeps: Sweeps, log: bool, reduction: Reduction
) -> tuple[np.ndarray, np.ndarray] | None:
    """A derivative's extreme over both halves in one compiled pass, when the sweeps allow it.

    The usual chunk (full sweeps turning at one column, 2+ points per half, finite derivatives)
    needs neither the derivative's ``(n, w)`` matrix nor that of ln|Id|: the kernel
    (:func:`._slope_kernels.half_slope_extremes`) differentiates row by row and reduces as it goes.
    The values are those of :func:`._transfer_math.derivative` (of Id, or of ln|Id| with ``log``)
    and :func:`extreme` with the half-end ``edge``, bit for bit.

    Returns
    -------
    (value, index) or None
        Arrays of shape ``(n, 2)`` (forward, reverse half) as :func:`extreme` gives them (every row
        has a value); None for other sweeps, which take that general path.
    """
    turn, (n, w) = sweeps.common_turn, sweeps.shape
    if turn is None or not 1 <= turn <= w - 3:
        return None
    value, index = np.empty((n, 2)), np.empty((n, 2), dtype=np.int64)
    vg, id_ = np.ascontiguousarray(sweeps.vg), np.ascontiguousarray(sweeps.id)
    code = HALF_REDUCTIONS[reduction]
    done = sk.half_slope_extremes(vg, id_, turn, log, code, DX_FLOOR, LOG_FLOOR, value, index)
    return (value, index) if done else None
