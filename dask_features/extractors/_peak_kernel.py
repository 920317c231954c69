"""Compiled wide polynomial fit around a peak, one row at a time (see :func:`._robust_math.peak_fit`).

Each row needs a least-squares fit of order 4-5 over a few tens of points, re-centred once or twice,
and a search of the fitted slope's maximum: a few microseconds of arithmetic that NumPy would spend
on temporaries. Compiled like the other kernels (:mod:`dask_features._compiled`).
"""

from __future__ import annotations

import numpy as np

from dask_features._compiled import kernel

__all__ = ["peak_fit_rows"]


@kernel()
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


@kernel()
def _slope_at(coef: np.ndarray, order: int, z: float) -> float:
    d = 0.0
    zp = 1.0
    for p in range(1, order + 1):
        d += p * coef[p] * zp
        zp *= z
    return d


@kernel()
def _variance(moments: np.ndarray, order: int, g: np.ndarray, a: np.ndarray, u: np.ndarray) -> float:
    """``g' M^-1 g`` for the normal matrix ``M`` of the moments: the variance of the linear
    functional ``g`` of the fitted coefficients per unit residual variance (inf if singular)."""
    p1 = order + 1
    for r in range(p1):
        u[r] = g[r]
        for cc in range(p1):
            a[r, cc] = moments[r + cc]
    if not _solve(a, u):
        return np.inf
    q = 0.0
    for r in range(p1):
        q += g[r] * u[r]
    return max(q, 0.0)


@kernel()
def _derivative_basis(order: int, z: float, nth: int, g: np.ndarray) -> None:
    """``g[p]`` = the ``nth`` derivative of ``z**p`` at ``z``."""
    for p in range(order + 1):
        if p < nth:
            g[p] = 0.0
            continue
        f = 1.0
        for q in range(nth):
            f *= p - q
        for _ in range(p - nth):
            f *= z
        g[p] = f


@kernel()
def _errors(
    xr: np.ndarray,
    yr: np.ndarray,
    orient: float,
    s: int,
    e: int,
    lo: int,
    size: int,
    xc: float,
    scale: float,
    best_z: float,
    flat: bool,
    order: int,
    log_clip: float,
    b: np.ndarray,
    moments: np.ndarray,
    a: np.ndarray,
    g: np.ndarray,
    u: np.ndarray,
    row_out: np.ndarray,
) -> None:
    """Columns 3-6 of a row of :func:`peak_fit_rows`: standard errors of its final fit (coefficients
    ``b`` of ``z = (x - xc) / scale`` over points ``[lo, lo + size)`` of the half ``[s, e)``)."""
    p1 = order + 1
    rss = 0.0
    for j in range(lo, lo + size):
        z = (xr[j] - xc) / scale
        yj = np.log(max(abs(yr[j]), log_clip)) if log_clip > 0.0 else yr[j]
        fj = 0.0
        zp = 1.0
        for p in range(p1):
            fj += b[p] * zp
            zp *= z
        rss += (yj - fj) ** 2
    s2 = rss / (size - p1)
    _derivative_basis(order, best_z, 1, g)
    row_out[3] = np.sqrt(s2 * _variance(moments, order, g, a, u)) / scale
    _derivative_basis(order, best_z, 0, g)
    row_out[5] = np.sqrt(s2 * _variance(moments, order, g, a, u))
    # x* is where the slope's derivative d1 is zero: its error is that of d1 over |d2|.
    _derivative_basis(order, best_z, 3, g)
    d2 = 0.0
    for p in range(p1):
        d2 += g[p] * b[p]
    d2 *= orient
    _derivative_basis(order, best_z, 2, g)
    se_d1 = np.sqrt(s2 * _variance(moments, order, g, a, u))
    row_out[4] = se_d1 / -d2 * scale if d2 < 0.0 else np.inf
    # On a window pinned to an end of the half: how many standard errors the slope at x*
    # exceeds the slope at that end (a rise to the end with the true maximum beyond it
    # can leave a fitted maximum just inside).
    excess = np.inf  # also for a flat slope: the same at x* as at the end, nothing beyond
    for j_end in (lo, lo + size - 1):
        if flat:
            break
        if (j_end == lo and lo != s) or (j_end == lo + size - 1 and lo + size != e):
            continue
        z_end = (xr[j_end] - xc) / scale
        _derivative_basis(order, best_z, 1, g)
        _derivative_basis(order, z_end, 1, u)
        rise = 0.0
        for p in range(p1):
            g[p] -= u[p]
            rise += g[p] * b[p]
        se_rise = np.sqrt(s2 * _variance(moments, order, g, a, u))
        t_rise = rise * orient / se_rise if se_rise > 0.0 else (np.inf if rise * orient > 0 else 0.0)
        excess = min(excess, t_rise)
    row_out[6] = excess


@kernel(
    "void(f8[:, ::1], f8[:, ::1], f8[::1], i8[::1], i8[::1], i8[::1], i8[::1], i8, i8, i8, f8, b1, f8[:, ::1], b1[:, ::1])"
)
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
    log_clip: float,
    errors: bool,
    out: np.ndarray,
    flags: np.ndarray,
) -> None:
    """Wide polynomial fit around each row's peak, re-centred; see :func:`._robust_math.peak_fit`.

    With ``log_clip > 0`` the fit is to ``ln max(|y|, log_clip)`` (computed on the fly, only for the
    points fitted). ``out[i] = (x*, y(x*), oriented slope at x*, standard error of that slope, of x*,
    of y(x*), and the excess of that slope over the slope at an end of the half the window reaches in
    standard errors (inf when it reaches none))`` (NaN when the half is too short or the fit is
    singular; the standard error of x* is inf where the fitted slope has no curvature of a maximum
    there; columns 3-6 only with ``errors``, else NaN); ``flags[i] = (window pinned to
    an end of the half, maximum at the zone edge)``. The standard errors come from the scatter of the
    points about the fit (residual variance over ``size - order - 1`` degrees of freedom).
    """
    n = x.shape[0]
    p1 = order + 1
    a = np.empty((p1, p1))
    b = np.empty(p1)
    g = np.empty(p1)
    u = np.empty(p1)
    coef = np.empty(p1)
    moments = np.empty(2 * order + 1)
    fit_moments = np.empty(2 * order + 1)
    for i in range(n):
        for c in range(out.shape[1]):
            out[i, c] = np.nan
        flags[i, 0] = False
        flags[i, 1] = False
        s, e = start[i], stop[i]
        fit_size = 0
        fit_lo, fit_xc, fit_scale, fit_z, fit_flat = 0, 0.0, 1.0, 0.0, False
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
                yj = np.log(max(abs(y[i, j]), log_clip)) if log_clip > 0.0 else y[i, j]
                zp = 1.0
                for p in range(2 * order + 1):
                    moments[p] += zp
                    if p < p1:
                        b[p] += zp * yj
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
            flat = best_d - low_d <= 1e-9 * abs(best_d)
            if flat:
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
            if errors:  # this fit's state, for the standard errors once it is final
                fit_lo, fit_size, fit_xc, fit_scale, fit_z, fit_flat = lo, size, xc, scale, best_z, flat
                coef[:] = b
                fit_moments[:] = moments
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
        if errors and fit_size > 0:
            _errors(
                x[i], y[i], orient[i], s, e, fit_lo, fit_size, fit_xc, fit_scale, fit_z, fit_flat, order,
                log_clip, coef, fit_moments, a, g, u, out[i],
            )  # fmt: skip
