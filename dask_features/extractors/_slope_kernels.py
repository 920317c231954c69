"""Compiled extremes of a sweep half's derivative, in one pass per row (``gm_max``, ``Von`` ...).

For the usual chunk (full sweeps that turn at one column) the kernel differentiates each row and
keeps each half's extreme as it goes, in the same floating-point operations and order as the
general NumPy path (:mod:`._transfer_extremes`), so values and columns are the same bit for bit; a
chunk where a non-finite value could decide goes to that path. ``d ln|Id| / dVg`` is screened with a
rough logarithm first and computed exactly only where it decides. Single-threaded on purpose
(Dask parallelises over chunks); compiled like the other kernels (:mod:`dask_features._compiled`).
"""

from __future__ import annotations

import numpy as np

from dask_features._compiled import kernel

__all__ = ["half_slope_extremes"]


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
