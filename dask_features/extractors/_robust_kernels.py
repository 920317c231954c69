"""Compiled per-row loops of the transfer features (see :mod:`._robust_math` for the robust maths).

Applying the local-fit weights, refitting each peak, estimating each row's noise floor and finding
the extremes of a sweep half's derivative are short loops per row; in NumPy they cost more in
temporaries than in arithmetic. Single-threaded on purpose
(Dask parallelises over chunks); compiled like the tau kernels (:mod:`dask_features._compiled`).
"""

from __future__ import annotations

import numpy as np

from dask_features._compiled import kernel

__all__ = [
    "apply_rows",
    "extremes",
    "half_slope_extremes",
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


@kernel()
def _key(v: float, reduction: int) -> float:
    """What a reduction maximises: ``v`` (max), ``-v`` (min: negation is exact) or ``|v|``."""
    return v if reduction == 0 else -v if reduction == 1 else abs(v)


@kernel()
def _settle(
    best: float,
    col: int,
    lo: int,
    at: int,
    patch: float,
    patch_first: bool,
    reduction: int,
    value: np.ndarray,
    index: np.ndarray,
    i: int,
    h: int,
) -> bool:
    """Store a half's extreme: the largest key ``best`` of columns ``[lo, hi)`` (first at ``col``)
    against ``patch`` at column ``at``, the half's end inside the sweep, which comes before
    (``patch_first``, wins ties) or after them. An all-zero half reports its first column for the
    magnitude. False when a value that decides is not finite."""
    key = _key(patch, reduction)
    if not (abs(best) < np.inf and abs(key) < np.inf):
        return False
    if (key >= best) if patch_first else (key > best):
        best, col = key, at
    if reduction == 2 and best == 0.0:
        col = min(lo, at)
    value[i, h] = -best if reduction == 1 else best
    index[i, h] = col
    return True


@kernel()
def _half_extreme(
    d: np.ndarray,
    lo: int,
    hi: int,
    at: int,
    patch: float,
    patch_first: bool,
    reduction: int,
    value: np.ndarray,
    index: np.ndarray,
    i: int,
    h: int,
) -> bool:
    """The extreme (``value[i, h]``, first column ``index[i, h]``) of a half: the derivative ``d`` over
    columns ``[lo, hi)`` and ``patch`` (see :func:`_settle`); ``reduction`` 0 max, 1 min, 2 largest
    magnitude. False when a value that decides is not finite."""
    best, col = _key(d[lo], reduction), lo
    nan = best != best
    for k in range(lo + 1, hi):
        key = _key(d[k], reduction)
        nan |= key != key
        if key > best:
            best, col = key, k
    return not nan and _settle(best, col, lo, at, patch, patch_first, reduction, value, index, i, h)


#: Bound [-] of ``|rough - glibc's ln|`` in :func:`_rough_log` (its series: 1e-9; glibc: 1 ulp).
_ROUGH_LOG_ERROR = 1e-6


@kernel()
def _rough_log(y: np.ndarray, i: int, floor_bits: int, a: np.ndarray, e: np.ndarray) -> None:
    """``a[k] = ln max(|y[i, k]|, floor)`` within :data:`_ROUGH_LOG_ERROR`, in loops the compiler
    vectorises (``e``: work buffer; ``floor_bits``: the bits of the floor, a positive normal number).

    On the bits (for positive numbers their order is that of the values): exponent and mantissa
    ``m``, ``ln m = 2 atanh(s)`` with ``s = (m - 1) / (m + 1)``, ``|s| <= 0.172``, to the ninth power.
    """
    bits, y_bits = a.view(np.int64), y[i].view(np.int64)
    for k in range(a.shape[0]):
        b = max(y_bits[k] & 0x7FFFFFFFFFFFFFFF, floor_bits)  # |y| (finite) clipped at the floor
        e[k] = np.float64(np.int32((b >> 52) - 1023))
        bits[k] = (b & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000  # mantissa in [1, 2)
    for k in range(a.shape[0]):
        m, x = a[k], e[k]
        if m > 1.4142135623730951:
            m, x = m * 0.5, x + 1.0
        s = (m - 1.0) / (m + 1.0)
        s2 = s * s
        a[k] = x * 0.6931471805599453 + 2.0 * s * (1.0 + s2 * (1 / 3 + s2 * (1 / 5 + s2 * (1 / 7 + s2 / 9))))


@kernel()
def _log_slope(vg: np.ndarray, y: np.ndarray, i: int, k: int, dx_floor: float, log_floor: float) -> float:
    """The slope of ``ln max(|y|, log_floor)`` from column ``k`` to ``k + 1``, as the full pass has it."""
    dx = vg[i, k + 1] - vg[i, k]
    if dx < dx_floor and dx > -dx_floor:
        dx = dx_floor
    return (np.log(max(abs(y[i, k + 1]), log_floor)) - np.log(max(abs(y[i, k]), log_floor))) / dx


@kernel()
def _screened_extreme(
    d: np.ndarray,
    margin: float,
    lo: int,
    hi: int,
    reduction: int,
    vg: np.ndarray,
    y: np.ndarray,
    i: int,
    dx_floor: float,
    log_floor: float,
) -> tuple[float, int, int]:
    """Largest key of the exact log derivative over ``[lo, hi)`` from the rough one ``d``.

    A column whose rough key is more than twice the error ``margin`` below the largest rough key is
    not the extreme; the others are computed exactly, in the full pass's operations. Returns
    ``(key, first column, columns computed)``, ``(0, 0, -1)`` when more than a few columns remain
    (computing every logarithm is then cheaper).
    """
    last = d.shape[0] - 1
    floor = -np.inf
    for k in range(lo, hi):
        key = _key(d[k], reduction)
        if key > floor:
            floor = key
    floor -= 2.0 * margin
    best, col, count = -np.inf, lo, 0
    for k in range(lo, hi):
        if _key(d[k], reduction) < floor:
            continue
        count += 1
        if count > 16 + (hi - lo) // 8:
            return 0.0, 0, -1
        if k == 0 or k == last:
            exact = _log_slope(vg, y, i, 0 if k == 0 else k - 1, dx_floor, log_floor)
        else:
            before = _log_slope(vg, y, i, k - 1, dx_floor, log_floor)
            exact = (before + _log_slope(vg, y, i, k, dx_floor, log_floor)) * 0.5
        if count == 1 or _key(exact, reduction) > best:
            best, col = _key(exact, reduction), k
    return best, col, count


@kernel("b1(f8[:, ::1], f8[:, ::1], i8, b1, i8, f8, f8, f8[:, ::1], i8[:, ::1])")
def half_slope_extremes(
    vg: np.ndarray,
    y: np.ndarray,
    turn: int,
    log: bool,
    reduction: int,
    dx_floor: float,
    log_floor: float,
    value: np.ndarray,
    index: np.ndarray,
) -> bool:
    """Extreme of the derivative over each half of full sweeps that all turn at column ``turn``.

    The derivative is :func:`._transfer_math.derivative`'s of ``y`` (or of ``ln max(|y|, log_floor)``
    with ``log``) with ``|dVg| < dx_floor`` replaced by ``dx_floor``, with the half-end slopes of
    :attr:`._transfer_math.Derivative.edges`, in the same operations, so the values are the same bit
    for bit. ``value[i]`` and ``index[i]`` receive, for the forward (columns ``[0, turn]``) and the
    reverse half (``[turn + 1, w)``), the maximum (``reduction`` 0), minimum (1) or largest magnitude
    (2) and its first column, by the rules of :func:`._transfer_extremes.extreme` over a common span.
    Needs ``1 <= turn <= w - 3`` (2 points in each half) and finite inputs. Returns False, the
    outputs then being partial, when a value that decides is not finite: the caller then takes the
    general path, which has the rules for NaN and infinities.

    The logarithm costs most. With ``log`` each row is first differentiated with a rough logarithm
    (:func:`_rough_log`), then only the columns that may hold the extreme are computed exactly
    (:func:`_screened_extreme`). The log derivative of finite inputs is finite (``|ln| < 710``,
    ``|dVg| >= dx_floor``).
    """
    n, w = vg.shape
    ordinate, work, q, d = np.empty(w), np.empty(w), np.empty(w - 1), np.empty(w)
    floor_bits = np.full(1, log_floor).view(np.int64)[0]
    for i in range(n):
        rough = log
        while True:
            if rough:
                _rough_log(y, i, floor_bits, ordinate, work)
            elif log:
                for k in range(w):
                    ordinate[k] = np.log(max(abs(y[i, k]), log_floor))
            else:
                ordinate[:] = y[i]
            # Slopes and the whole sweep's derivative in simple loops the compiler can vectorise.
            for k in range(w - 1):
                dx = vg[i, k + 1] - vg[i, k]
                if dx < dx_floor and dx > -dx_floor:
                    dx = dx_floor
                q[k] = (ordinate[k + 1] - ordinate[k]) / dx
            d[0], d[w - 1] = q[0], q[w - 2]
            for k in range(1, w - 1):
                d[k] = (q[k - 1] + q[k]) * 0.5
            if rough:
                step = np.inf  # the row's smallest |dVg| (at least dx_floor once floored)
                for k in range(w - 1):
                    dx = abs(vg[i, k + 1] - vg[i, k])
                    if dx < step:
                        step = dx
                # Bound of |rough - exact| on d (a slope, or the mean of two): 2 log errors over
                # |dVg|, plus roundings of about 1e-12 / |dVg| (|ln| < 710); three times that.
                margin = 6.0 * _ROUGH_LOG_ERROR / max(step, dx_floor)
            if not rough:
                ok = _half_extreme(d, 0, turn, turn, q[turn - 1], False, reduction, value, index, i, 0)
                if not (
                    ok
                    and _half_extreme(
                        d, turn + 2, w, turn + 1, q[turn + 1], True, reduction, value, index, i, 1
                    )
                ):
                    return False
                break
            best, col, count = _screened_extreme(d, margin, 0, turn, reduction, vg, y, i, dx_floor, log_floor)
            best1, col1, count1 = _screened_extreme(
                d, margin, turn + 2, w, reduction, vg, y, i, dx_floor, log_floor
            )
            if count < 0 or count1 < 0:
                rough = False  # too many columns to check: every logarithm, exactly
                continue
            forward = _log_slope(vg, y, i, turn - 1, dx_floor, log_floor)
            reverse = _log_slope(vg, y, i, turn + 1, dx_floor, log_floor)
            ok = _settle(best, col, 0, turn, forward, False, reduction, value, index, i, 0)
            if not (
                ok and _settle(best1, col1, turn + 2, turn + 1, reverse, True, reduction, value, index, i, 1)
            ):
                return False
            break
    return True
