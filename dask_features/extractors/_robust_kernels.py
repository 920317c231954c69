"""Compiled per-row loops of the robust transfer features (see :mod:`._robust_math` for the maths).

Applying the local-fit weights, refitting each peak and estimating each row's noise floor are short
loops per row; in NumPy they cost more in temporaries than in arithmetic. Single-threaded on purpose
(Dask parallelises over chunks); compiled on first use and cached on disk like the tau kernels.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "apply_rows",
    "extremes",
    "noise_rows",
    "peak_fit_rows",
    "rows_equal_first",
    "signed_range",
    "slope_peak",
    "steepest_region",
]

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@_jit
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


@_jit
def _solve(a: np.ndarray, b: np.ndarray) -> bool:
    """Solve ``a x = b`` in place (Gaussian elimination with partial pivoting); False if singular."""
    m = b.shape[0]
    for col in range(m):
        piv = col
        for r in range(col + 1, m):
            if abs(a[r, col]) > abs(a[piv, col]):
                piv = r
        if not abs(a[piv, col]) > 1e-300:
            return False
        if piv != col:
            for cc in range(m):
                a[col, cc], a[piv, cc] = a[piv, cc], a[col, cc]
            b[col], b[piv] = b[piv], b[col]
        for r in range(col + 1, m):
            f = a[r, col] / a[col, col]
            for cc in range(col, m):
                a[r, cc] -= f * a[col, cc]
            b[r] -= f * b[col]
    for col in range(m - 1, -1, -1):
        s = b[col]
        for cc in range(col + 1, m):
            s -= a[col, cc] * b[cc]
        b[col] = s / a[col, col]
    return True


@_jit
def _slope_at(coef: np.ndarray, order: int, z: float) -> float:
    d = 0.0
    zp = 1.0
    for p in range(1, order + 1):
        d += p * coef[p] * zp
        zp *= z
    return d


@_jit
def peak_fit_rows(
    x: np.ndarray,
    y: np.ndarray,
    orient: np.ndarray,
    k0: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    window: np.ndarray,
    order: int,
    iterations: int,
    zone_points: int,
    out: np.ndarray,
    flags: np.ndarray,
) -> None:
    """Wide polynomial fit around each row's peak, re-centred; see :func:`._robust_math.peak_fit`.

    ``out[i] = (x*, y(x*), oriented slope at x*)`` (NaN when the half is too short or the fit is
    singular); ``flags[i] = (window pinned to an end of the half, maximum at the zone edge)``.
    """
    n = x.shape[0]
    p1 = order + 1
    a = np.empty((p1, p1))
    b = np.empty(p1)
    moments = np.empty(2 * order + 1)
    for i in range(n):
        out[i, 0] = np.nan
        out[i, 1] = np.nan
        out[i, 2] = np.nan
        flags[i, 0] = False
        flags[i, 1] = False
        s, e = start[i], stop[i]
        size = min(window[i], e - s)
        if size < order + 2:
            continue
        k = min(max(k0[i], s), e - 1)
        for _ in range(max(iterations, 1)):
            lo = min(max(k - size // 2, s), e - size)
            xc = x[i, k]
            scale = 0.0
            for j in range(lo, lo + size):
                scale = max(scale, abs(x[i, j] - xc))
            if not scale > 0.0:
                scale = 1.0
            moments[:] = 0.0
            b[:] = 0.0
            for j in range(lo, lo + size):
                z = (x[i, j] - xc) / scale
                zp = 1.0
                for p in range(2 * order + 1):
                    moments[p] += zp
                    if p < p1:
                        b[p] += zp * y[i, j]
                    zp *= z
            for r in range(p1):
                for cc in range(p1):
                    a[r, cc] = moments[r + cc]
            if not _solve(a, b):
                break
            z_first = (x[i, lo] - xc) / scale
            z_last = (x[i, lo + size - 1] - xc) / scale
            ascending = z_first <= z_last
            zmin, zmax = min(z_first, z_last), max(z_first, z_last)
            pinned_lo = (lo == s) if ascending else (lo + size == e)
            pinned_hi = (lo + size == e) if ascending else (lo == s)
            quarter = 0.25 * (zmax - zmin)
            z_lo = zmin if pinned_lo else zmin + quarter
            z_hi = zmax if pinned_hi else zmax - quarter
            best_t, best_d, best_z, low_d = -1, -np.inf, 0.0, np.inf
            for t in range(zone_points):
                z = z_lo + (z_hi - z_lo) * t / (zone_points - 1)
                d = 0.0
                zp = 1.0
                for p in range(1, p1):
                    d += p * b[p] * zp
                    zp *= z
                d *= orient[i]
                low_d = min(low_d, d)
                if d > best_d:
                    best_t, best_d, best_z = t, d, z
            if best_t < 0:
                break
            if best_d - low_d <= 1e-9 * abs(best_d):
                # A flat slope (a straight line) has no peak: every point is the maximum; take the
                # middle of the zone rather than an arbitrary edge.
                best_t = zone_points // 2
                best_z = z_lo + (z_hi - z_lo) * best_t / (zone_points - 1)
            if 0 < best_t < zone_points - 1:
                # Parabola through the best zone point and its neighbours (the zone grid is uniform).
                step = (z_hi - z_lo) / (zone_points - 1)
                dm = _slope_at(b, order, best_z - step) * orient[i]
                dp = _slope_at(b, order, best_z + step) * orient[i]
                curv = dm - 2.0 * best_d + dp
                if curv < 0.0:
                    shift = 0.5 * (dm - dp) / curv
                    best_z += shift * step
                    best_d = _slope_at(b, order, best_z) * orient[i]
            x_best = xc + best_z * scale
            value = 0.0
            zp = 1.0
            for p in range(p1):
                value += b[p] * zp
                zp *= best_z
            out[i, 0] = x_best
            out[i, 1] = value
            out[i, 2] = best_d / scale
            flags[i, 0] = lo == s or lo + size == e
            flags[i, 1] = best_t == 0 or best_t == zone_points - 1
            k_new = lo
            dist = np.inf
            for j in range(lo, lo + size):
                dj = abs(x[i, j] - x_best)
                if dj < dist:
                    dist, k_new = dj, j
            if k_new == k or (abs(k_new - k) <= 1 and not flags[i, 1]):
                break  # one point off-centre changes nothing that matters, unless heading for an end
            k = k_new


@_jit
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


@_jit
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


@_jit
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


@_jit
def steepest_region(
    x: np.ndarray,
    id_: np.ndarray,
    id0: np.ndarray,
    first: np.ndarray,
    w1: np.ndarray,
    groups: np.ndarray,
    orient: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    x_peak: np.ndarray,
    level: np.ndarray,
    logs: np.ndarray,
    bounds: np.ndarray,
) -> np.ndarray:
    """Steepest point of the subthreshold region of each half, on ``ln max(|Id|, 1e-15 A)``.

    The region is the points of ``[start, stop)`` on the off side of ``x_peak`` (``orient * (x -
    x_peak) < 0``) whose fitted ``|id0| >= level``. Only the log of the points the region's fits
    read is computed (into ``logs``; the rest stays untouched), and the fitted log slope only at region
    points. ``bounds[i] = (first column, last column + 1, count)`` of the region; returns the column
    of the largest ``orient * d ln|Id| / dVg`` in it (``start`` when empty).
    """
    n = x.shape[0]
    window = w1.shape[2]
    col = np.empty(n, np.int64)
    for i in range(n):
        g = groups[i]
        lo, hi, count = stop[i], start[i] - 1, 0
        for j in range(start[i], stop[i]):
            if orient[i] * (x[i, j] - x_peak[i]) < 0.0 and abs(id0[i, j]) >= level[i]:
                count += 1
                lo = min(lo, j)
                hi = max(hi, j)
        bounds[i, 0] = lo
        bounds[i, 1] = hi + 1
        bounds[i, 2] = count
        col[i] = start[i]
        if count == 0:
            continue
        a = max(start[i], lo - window)
        b = min(stop[i], hi + 1 + window)
        for j in range(a, b):
            logs[i, j] = np.log(max(abs(id_[i, j]), 1e-15))
        best = -np.inf
        for c in range(lo, hi + 1):
            if not (orient[i] * (x[i, c] - x_peak[i]) < 0.0 and abs(id0[i, c]) >= level[i]):
                continue
            d = 0.0
            base = first[g, c]
            for q in range(window):
                wt = w1[g, c, q]
                if wt != 0.0:
                    d += wt * logs[i, base + q]
            v = orient[i] * d
            if v > best:
                best, col[i] = v, c
    return col


@_jit
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


@_jit
def rows_equal_first(x: np.ndarray) -> bool:
    """Whether every row of ``x`` equals its first row bit for bit (NaN padding included)."""
    n, w = x.shape
    for i in range(1, n):
        for j in range(w):
            a, b = x[i, j], x[0, j]
            if a != b and not (a != a and b != b):
                return False
    return True
