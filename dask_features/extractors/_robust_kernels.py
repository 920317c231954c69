"""Compiled per-row loops of the transfer features (see :mod:`._robust_math` for the robust maths).

Applying the local-fit weights, refitting each peak, estimating each row's noise floor and finding
a row's extremes are short loops per row; in NumPy they cost more in temporaries than in
arithmetic. Single-threaded on purpose
(Dask parallelises over chunks); compiled like the tau kernels (:mod:`dask_features._compiled`).
"""

from __future__ import annotations

import numpy as np

from dask_features._compiled import kernel

__all__ = [
    "apply_rows",
    "extremes",
    "noise_rows",
    "rows_equal_first",
    "signed_range",
    "slope_peak",
    "steepest_region",
]


@kernel("void(i8[:, ::1], f8[:, :, ::1], f8[:, :, ::1], i8[::1], f8[:, ::1], b1, f8[:, ::1], f8[:, ::1])")
def apply_rows(
    first: np.ndarray,
    w0: np.ndarray,
    w1: np.ndarray,
    groups: np.ndarray,
    y: np.ndarray,
    value: bool,
    out0: np.ndarray,
    out1: np.ndarray,
) -> None:
    """``out0/out1[i, c] = sum_j w0/w1[g, c, j] * y[i, first[g, c] + j]`` with ``g = groups[i]``.

    Points whose weights are all zero (outside the smoothed halves) get NaN; a zero weight never
    reads its sample, so NaN padding cannot leak in.
    """
    n, w = y.shape
    groups_n, _, window = w0.shape
    # Slots in use per point (weights past a short half are zero): the inner loop then has no branch.
    width = np.zeros((groups_n, w), np.int64)
    for g in range(groups_n):
        for c in range(w):
            for j in range(window):
                if w0[g, c, j] != 0.0 or w1[g, c, j] != 0.0:
                    width[g, c] = j + 1
    for i in range(n):
        g = groups[i]
        for c in range(w):
            m = width[g, c]
            if m == 0:
                out1[i, c] = np.nan
                if value:
                    out0[i, c] = np.nan
                continue
            base = first[g, c]
            s0 = 0.0
            s1 = 0.0
            if value:
                for j in range(m):
                    v = y[i, base + j]
                    s0 += w0[g, c, j] * v
                    s1 += w1[g, c, j] * v
                out0[i, c] = s0
            else:
                for j in range(m):
                    s1 += w1[g, c, j] * y[i, base + j]
            out1[i, c] = s1


@kernel("f8[::1](f8[:, ::1], f8[:, ::1], i8[::1], i8[::1], i8[::1])")
def noise_rows(
    y: np.ndarray, fitted: np.ndarray, start: np.ndarray, stop: np.ndarray, count: np.ndarray
) -> np.ndarray:
    """RMS residual ``y - fitted`` over the ``count`` points at the off end of each row's half.

    The off end is the end of the half with the smaller fitted ``|Id|``; there the absolute noise of
    the instrument dominates (the relative part scales with the current).
    """
    n = y.shape[0]
    out = np.full(n, np.nan)
    for i in range(n):
        s, e = start[i], stop[i]
        if e <= s:
            continue
        m = min(count[i], e - s)
        a, b = abs(fitted[i, s]), abs(fitted[i, e - 1])
        lo = s if not b < a else e - m
        total = 0.0
        used = 0
        for j in range(lo, lo + m):
            r = y[i, j] - fitted[i, j]
            if r == r:
                total += r * r
                used += 1
        if used:
            out[i] = np.sqrt(total / used)
    return out


@kernel("void(f8[:, ::1], i8[::1], i8[::1], f8[:, ::1], i8[:, ::1])")
def extremes(
    values: np.ndarray, start: np.ndarray, stop: np.ndarray, out: np.ndarray, cols: np.ndarray
) -> None:
    """Per row: ``out = (min |v|, max |v|)`` over ``[start, stop)`` and ``cols`` = their first columns.

    Non-finite values are skipped; rows without any give NaN and column ``start``.
    """
    n = values.shape[0]
    for i in range(n):
        lo, hi = np.inf, -np.inf
        clo, chi = start[i], start[i]
        for j in range(start[i], stop[i]):
            v = abs(values[i, j])
            if v == v:
                if v < lo:
                    lo, clo = v, j
                if v > hi:
                    hi, chi = v, j
        out[i, 0] = lo if lo < np.inf else np.nan
        out[i, 1] = hi if hi > -np.inf else np.nan
        cols[i, 0] = clo
        cols[i, 1] = chi


@kernel("i8[::1](f8[:, ::1], f8[::1], i8[::1], i8[::1], i8, f8[::1], i8[::1])")
def slope_peak(
    slope: np.ndarray,
    orient: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    skip: int,
    out: np.ndarray,
    wide: np.ndarray,
) -> np.ndarray:
    """First column of the largest ``orient * slope`` in each half, ``skip`` points in from both ends
    when the half is long enough; ``out`` receives that largest value (``-inf`` if none) and ``wide``
    the number of points of the half whose slope is at least half of it (the peak's full width at
    half maximum, in points)."""
    n = slope.shape[0]
    index = np.empty(n, np.int64)
    for i in range(n):
        s, e = start[i], stop[i]
        if e - s > 2 * skip + 2:
            s, e = s + skip, e - skip
        best, col = -np.inf, start[i]
        for j in range(s, e):
            v = orient[i] * slope[i, j]
            if v > best:
                best, col = v, j
        index[i] = col
        out[i] = best
        count = 0
        for j in range(start[i], stop[i]):
            if orient[i] * slope[i, j] >= 0.5 * best:
                count += 1
        wide[i] = count
    return index


@kernel(
    "i8[::1](f8[:, ::1], f8[:, ::1], f8[:, ::1], f8[::1], i8[::1], i8[::1], f8[::1], f8[::1], i8[:, ::1])"
)
def steepest_region(
    x: np.ndarray,
    id0: np.ndarray,
    id1: np.ndarray,
    orient: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    x_peak: np.ndarray,
    level: np.ndarray,
    bounds: np.ndarray,
) -> np.ndarray:
    """Steepest point of the subthreshold region of each half.

    The region is the points of ``[start, stop)`` on the off side of ``x_peak`` (``orient * (x -
    x_peak) < 0``) whose fitted ``|id0| >= level``; the log slope there is ``id1 / id0`` (d ln|Id| /
    dVg of the fit). ``bounds[i] = (first column, last column + 1, count)`` of the region; returns the
    column of the largest ``orient * id1 / id0`` in it (``start`` when empty).
    """
    n = x.shape[0]
    col = np.empty(n, np.int64)
    for i in range(n):
        lo, hi, count = stop[i], start[i] - 1, 0
        best = -np.inf
        col[i] = start[i]
        for j in range(start[i], stop[i]):
            m = abs(id0[i, j])
            if orient[i] * (x[i, j] - x_peak[i]) < 0.0 and m >= level[i] and m > 0.0:
                count += 1
                lo = min(lo, j)
                hi = max(hi, j)
                v = orient[i] * id1[i, j] / id0[i, j]
                if v > best:
                    best, col[i] = v, j
        bounds[i, 0] = lo
        bounds[i, 1] = hi + 1
        bounds[i, 2] = count
    return col


@kernel("void(f8[:, ::1], i8[::1], i8[::1], f8[:, ::1])")
def signed_range(x: np.ndarray, start: np.ndarray, stop: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = (min, max)`` of ``x[i, start:stop]`` over finite values (NaN when none)."""
    for i in range(x.shape[0]):
        lo, hi = np.inf, -np.inf
        for j in range(start[i], stop[i]):
            v = x[i, j]
            if v == v:
                lo = min(lo, v)
                hi = max(hi, v)
        out[i, 0] = lo if lo < np.inf else np.nan
        out[i, 1] = hi if hi > -np.inf else np.nan


@kernel("b1(f8[:, ::1])")
def rows_equal_first(x: np.ndarray) -> bool:
    """Whether every row of ``x`` equals its first row bit for bit (NaN padding included)."""
    n, w = x.shape
    for i in range(1, n):
        for j in range(w):
            a, b = x[i, j], x[0, j]
            if a != b and not (a != a and b != b):
                return False
    return True
