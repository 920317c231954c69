"""Kernels of the robust transfer features: local polynomial smoothing in Vg, peaks, ELR, swing.

Everything works on the compacted ``(n, w)`` sweeps of :mod:`dask_features.extractors._transfer_math`
(valid points first, NaN after) and is vectorised over the rows of a chunk.

Smoothing is a Savitzky-Golay filter done as what it is, a least-squares polynomial of order ``p``
fitted to the ``window`` points around each point, **in Vg** (not in the point index), so it is exact
for polynomials of order ``p`` on any spacing. Near the ends of a half the window is shifted inward
(same width, point off-centre) instead of being shortened or padded. Windows never cross the turning
point: each half is smoothed on its own. The fit weights depend only on the Vg values, which are
usually identical for every step of an experiment, so they are computed once per distinct Vg row
and applied to all rows sharing it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dask_features.extractors import _transfer_math as tm

__all__ = [
    "LOG_CLIP",
    "Peak",
    "Smoothed",
    "apply_weights",
    "local_fit_weights",
    "noise_sigma",
    "peak",
    "row_groups",
    "smooth",
    "steepest",
]

LOG_CLIP = 1e-15
"""|Id| is clipped to at least this [A] before ``log10`` (far below any measured floor)."""

_BLOCK = 64  # distinct Vg rows whose weights are held in memory at once
_TIE = 1e-9  # relative tolerance for "equal to the maximum": the first such point is taken


@dataclass(frozen=True)
class Smoothed:
    """Fit weights of every point of every row, and which half each point belongs to.

    Attributes
    ----------
    groups : ndarray of int64, shape (n,)
        Row -> index of its distinct Vg row.
    first : ndarray of int64, shape (g, w)
        Column of the first window point of each point (window ``[first, first + window)``).
    w0, w1 : ndarray of float64, shape (g, w, window)
        Weights giving the fitted value and the fitted first derivative [1/V] at each point; zero
        for points outside both halves and for window slots past a half that is shorter than the
        window.
    enough : ndarray of bool, shape (n, 2)
        Per row, whether the forward / reverse half has at least ``order + 2`` points (one degree
        of freedom left); a half without is never smoothed (its columns are NaN).
    """

    groups: np.ndarray
    first: np.ndarray
    w0: np.ndarray
    w1: np.ndarray
    enough: np.ndarray


def row_groups(vg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of ``vg`` (bitwise, NaN padding included) and the group of every row.

    Returns
    -------
    representatives : ndarray of int64, shape (g,)
        One row index per group.
    groups : ndarray of int64, shape (n,)
    """
    n = vg.shape[0]
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if np.array_equal(vg, np.broadcast_to(vg[:1], vg.shape), equal_nan=True):
        return np.zeros(1, np.int64), np.zeros(n, np.int64)
    keys = np.ascontiguousarray(vg).view(np.dtype((np.void, vg.shape[1] * vg.itemsize))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first.astype(np.int64), inverse.astype(np.int64).ravel()


def local_fit_weights(
    x: np.ndarray, n_valid: np.ndarray, turn: np.ndarray, window: int, order: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares polynomial weights for rows of gate voltages.

    Parameters
    ----------
    x : ndarray of float64, shape (g, w)
        Compacted gate voltages [V].
    n_valid, turn : ndarray of int64, shape (g,)
        Valid points and turning-point column per row.
    window, order : int
        Points per fit (odd) and polynomial order (``order + 2 <= window``).

    Returns
    -------
    first : ndarray of int64, shape (g, w)
    w0, w1 : ndarray of float64, shape (g, w, window)
        See :class:`Smoothed`.
    enough : ndarray of bool, shape (g, 2)
    """
    g, w = x.shape
    cols = np.arange(w)
    forward = cols[None, :] <= turn[:, None]
    starts = np.where(forward, 0, turn[:, None] + 1)
    stops = np.where(forward, np.minimum(turn + 1, n_valid)[:, None], n_valid[:, None])
    inside = cols[None, :] < stops
    lengths = stops - starts
    enough_cols = inside & (lengths >= order + 2)
    width = np.minimum(window, lengths)
    first = np.clip(cols[None, :] - width // 2, starts, np.maximum(stops - width, starts))
    slots = np.arange(window)
    used = slots[None, None, :] < width[:, :, None]
    idx = np.minimum(first[:, :, None] + slots, np.maximum(stops - 1, 0)[:, :, None])
    rows = np.arange(g)[:, None, None]
    dx = np.where(used, x[rows, idx] - x[:, :, None], 0.0)
    scale = np.abs(dx).max(axis=2, keepdims=True)
    scale[~(scale > 0)] = 1.0  # "not > 0" also catches NaN
    z = dx / scale
    vander = np.where(used[..., None], z[..., None] ** np.arange(order + 1), 0.0)
    ok = enough_cols & np.isfinite(vander).all(axis=(2, 3))
    vander[~ok] = 0.0
    coef = np.linalg.pinv(vander)  # (g, w, order + 1, window): rows = polynomial coefficients
    w0 = np.where(ok[..., None], coef[:, :, 0, :], 0.0)
    w1 = np.where(ok[..., None], coef[:, :, 1, :] / scale, 0.0)
    turn_in = np.minimum(turn + 1, n_valid)
    enough = np.column_stack([turn_in >= order + 2, (n_valid - turn_in) >= order + 2])
    return first.astype(np.int64), w0, w1, enough


def smooth(sweeps: tm.Sweeps, window: int, order: int) -> Smoothed:
    """Fit weights of a chunk's sweeps, computed once per distinct Vg row."""
    reps, groups = row_groups(sweeps.vg)
    parts = [
        local_fit_weights(
            sweeps.vg[reps[a : a + _BLOCK]],
            sweeps.n_valid[reps[a : a + _BLOCK]],
            sweeps.turn[reps[a : a + _BLOCK]],
            window,
            order,
        )
        for a in range(0, len(reps), _BLOCK)
    ]
    if not parts:
        w = sweeps.shape[1]
        empty = np.zeros((0, w, window))
        return Smoothed(groups, np.zeros((0, w), np.int64), empty, empty, np.zeros((0, 2), bool))
    first, w0, w1, enough = (np.concatenate(p) for p in zip(*parts, strict=True))
    return Smoothed(groups, first, w0, w1, enough[groups])


def apply_weights(sm: Smoothed, y: np.ndarray, *, value: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Fitted value and first derivative of ``y`` at every point.

    Parameters
    ----------
    sm : Smoothed
        From :func:`smooth` on the same sweeps.
    y : ndarray of float64, shape (n, w)
        Ordinate aligned with the sweeps (NaN padding is never read with a non-zero weight).
    value : bool, default True
        Also compute the fitted value (else the first array is empty).

    Returns
    -------
    y0, y1 : ndarray of float64, shape (n, w)
        Fitted value [units of y] and slope [units of y per V]; NaN outside the smoothed halves.
    """
    n, w = y.shape
    window = sm.w0.shape[2]
    single = sm.first.shape[0] == 1
    pick = (lambda a: a[0]) if single else (lambda a: a[sm.groups])
    first, w0, w1 = pick(sm.first), pick(sm.w0), pick(sm.w1)
    dead = np.broadcast_to(pick(~(np.abs(sm.w1).sum(axis=-1) > 0)), (n, w))
    y0 = np.zeros((n, w)) if value else np.zeros((0, w))
    y1 = np.zeros((n, w))
    rows = np.arange(n)[:, None]
    with np.errstate(invalid="ignore", over="ignore"):
        safe = np.where(np.isfinite(y), y, 0.0)  # padding has zero weight; keep 0 * NaN out
        for j in range(window):
            col = np.minimum(first + j, w - 1)
            taken = safe[:, col] if single else safe[rows, col]
            if value:
                y0 += w0[..., j] * taken
            y1 += w1[..., j] * taken
    y1[dead] = np.nan
    if value:
        y0[dead] = np.nan
    return y0, y1


def noise_sigma(y: np.ndarray, fitted: np.ndarray, mask: np.ndarray, k: np.ndarray) -> np.ndarray:
    """RMS residual [units of y] of each row over its ``k`` points of smallest ``|fitted|`` in ``mask``.

    The absolute noise of a current shows in the off region (the relative part is negligible there);
    this is the noise floor of the row.
    """
    n, w = y.shape
    key = np.where(mask, np.abs(fitted), np.inf)
    kk = int(np.clip(k.max(initial=1), 1, w))
    low = np.argpartition(key, kk - 1, axis=1)[:, :kk] if kk < w else np.broadcast_to(np.arange(w), (n, w))
    rows = np.arange(n)[:, None]
    resid = (y - fitted)[rows, low]
    valid = np.isfinite(resid) & (np.arange(kk)[None, :] < k[:, None]) & np.isfinite(key[rows, low])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(np.where(valid, resid * resid, 0.0).sum(axis=1) / valid.sum(axis=1))


@dataclass(frozen=True)
class Peak:
    """Maximum of a slope curve over a half, refined between grid points.

    Attributes
    ----------
    index : ndarray of int64, shape (n,)
        Column of the largest point (first one within a relative ``1e-9`` of the maximum).
    x : ndarray of float64, shape (n,)
        Vg [V] of the vertex of the parabola through the largest point and its two neighbours
        (the point itself at a half's end).
    value : ndarray of float64, shape (n,)
        Slope at ``x`` (parabola vertex height).
    at_end : ndarray of bool, shape (n,)
        The largest point is the first or last point of the half.
    """

    index: np.ndarray
    x: np.ndarray
    value: np.ndarray
    at_end: np.ndarray


def peak(slope: np.ndarray, x: np.ndarray, start: np.ndarray, stop: np.ndarray, mask: np.ndarray) -> Peak:
    """Refined maximum of ``slope`` over the columns in ``mask`` (a half ``[start, stop)`` of each row)."""
    n, w = slope.shape
    rows = np.arange(n)
    work = np.where(mask & np.isfinite(slope), slope, -np.inf)
    top = work.max(axis=1) if w else np.full(n, -np.inf)
    with np.errstate(invalid="ignore"):
        k = np.argmax(work >= (top - _TIE * np.abs(top))[:, None], axis=1)
    at_end = (k == start) | (k == stop - 1)
    km, kp = np.clip(k - 1, 0, w - 1), np.clip(k + 1, 0, w - 1)
    x0, x1, x2 = x[rows, km], x[rows, k], x[rows, kp]
    g0, g1, g2 = work[rows, km], work[rows, k], work[rows, kp]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        d1 = (g1 - g0) / (x1 - x0)
        a = ((g2 - g1) / (x2 - x1) - d1) / (x2 - x0)
        vertex = np.where(a < 0, 0.5 * (x0 + x1) - d1 / (2 * a), x1)
        lo, hi = np.minimum(x0, x2), np.maximum(x0, x2)
        vertex = np.clip(vertex, lo, hi)
        height = g0 + d1 * (vertex - x0) + a * (vertex - x0) * (vertex - x1)
    interior = ~at_end & np.isfinite(height) & (height >= g1)
    return Peak(
        index=k.astype(np.int64),
        x=np.where(interior, vertex, x1),
        value=np.where(interior, height, g1),
        at_end=at_end,
    )


def steepest(slope: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Largest ``slope`` over ``region`` per row: ``(value, column, points in region)``."""
    work = np.where(region & np.isfinite(slope), slope, -np.inf)
    col = work.argmax(axis=1) if work.shape[1] else np.zeros(work.shape[0], np.int64)
    value = work[np.arange(work.shape[0]), col]
    return value, col.astype(np.int64), region.sum(axis=1)


@dataclass(frozen=True)
class PeakFit:
    """Maximum of the slope of a polynomial fitted around a peak (see :func:`peak_fit`).

    Attributes
    ----------
    x : ndarray, shape (n,)
        Vg [V] of the maximum.
    y, slope : ndarray, shape (n,)
        Fitted ordinate and its (oriented) slope there.
    pinned, at_edge : ndarray of bool, shape (n,)
        The window hit an end of the half / the maximum is at the edge of the searched zone.
    """

    x: np.ndarray
    y: np.ndarray
    slope: np.ndarray
    pinned: np.ndarray
    at_edge: np.ndarray


_ZONE = 101  # evaluation points of the fitted slope across the searched zone


def peak_fit(
    x: np.ndarray,
    y: np.ndarray,
    orient: np.ndarray,
    k: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    window: int,
    order: int,
    iterations: int = 3,
) -> PeakFit:
    """Refine a slope maximum with one wide polynomial fit centred on it, re-centred ``iterations`` times.

    A narrow fit (the gm curve) is noisy and its maximum is biased upwards by that noise; one
    polynomial of order ``order`` fitted to the ``window`` points around the peak averages the noise
    of all of them. The maximum of ``orient * dy/dx`` is searched in the central half of the window
    (up to the window's edge on a side where it is pinned to the end of the half), then the window
    is re-centred on it.

    Parameters
    ----------
    x, y : ndarray of float64, shape (n, w)
        Compacted gate voltage [V] and ordinate.
    orient : ndarray of float64, shape (n,)
        +1 / -1: which sign of the slope is the maximum sought.
    k : ndarray of int64, shape (n,)
        Starting column (the narrow fit's maximum).
    start, stop : ndarray of int64, shape (n,)
        The half ``[start, stop)``; rows with fewer than ``order + 2`` points give NaN.
    window, order, iterations : int
        Fit points, polynomial order and re-centring passes.
    """
    n, w = x.shape
    rows = np.arange(n)
    size = np.minimum(window, stop - start)
    ok = size >= order + 2
    size = np.where(ok, size, order + 2)
    slots = np.arange(int(size.max(initial=order + 2)))
    used = slots[None, :] < size[:, None]
    powers = np.arange(order + 1)
    t = np.linspace(0.0, 1.0, _ZONE)
    k = np.clip(k, 0, max(w - 1, 0))
    for _ in range(max(iterations, 1)):
        lo = np.clip(k - size // 2, start, np.maximum(stop - size, start))
        idx = np.clip(lo[:, None] + slots, 0, w - 1)
        xc = x[rows, k]
        dx = np.where(used, x[rows[:, None], idx] - xc[:, None], 0.0)
        scale = np.abs(dx).max(axis=1)
        scale[~(scale > 0)] = 1.0
        z = dx / scale[:, None]
        vander = np.where(used[..., None], z[..., None] ** powers, 0.0)
        vander[~ok] = 0.0
        vander[~ok, : order + 1, :] = np.eye(order + 1)  # any regular system; these rows give NaN
        with np.errstate(invalid="ignore", over="ignore"):
            yy = np.where(used & ok[:, None], y[rows[:, None], idx], 0.0)
            coef = _lstsq(vander, yy)
            z_first, z_last = z[:, 0], z[rows, size - 1]
            zmin, zmax = np.minimum(z_first, z_last), np.maximum(z_first, z_last)
            pinned_lo_x = np.where(z_first <= z_last, lo == start, lo + size == stop)
            pinned_hi_x = np.where(z_first <= z_last, lo + size == stop, lo == start)
            quarter = 0.25 * (zmax - zmin)
            zone_lo = np.where(pinned_lo_x, zmin, zmin + quarter)
            zone_hi = np.where(pinned_hi_x, zmax, zmax - quarter)
            zz = zone_lo[:, None] + t[None, :] * (zone_hi - zone_lo)[:, None]
            deriv = sum(p * coef[:, p, None] * zz ** (p - 1) for p in range(1, order + 1))
            best = np.argmax(orient[:, None] * np.where(np.isfinite(deriv), deriv, -np.inf), axis=1)
        z_best = zz[rows, best]
        x_best = xc + z_best * scale
        inside = (np.arange(w)[None, :] >= start[:, None]) & (np.arange(w)[None, :] < stop[:, None])
        k_new = np.where(inside, np.abs(x - x_best[:, None]), np.inf).argmin(axis=1)
        if np.array_equal(k_new, k):
            break
        k = k_new
    value = sum(coef[:, p] * z_best**p for p in range(order + 1))
    slope = orient * deriv[rows, best] / scale
    nan = np.where(ok, 1.0, np.nan)
    return PeakFit(
        x=x_best * nan,
        y=value * nan,
        slope=slope * nan,
        pinned=(lo == start) | (lo + size == stop),
        at_edge=(best == 0) | (best == _ZONE - 1),
    )


def _lstsq(vander: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares coefficients of each row (normal equations on the scaled Vandermonde)."""
    a = np.einsum("npi,npj->nij", vander, vander)
    b = np.einsum("npi,np->ni", vander, y)
    try:
        return np.linalg.solve(a, b[..., None])[..., 0]
    except np.linalg.LinAlgError:  # repeated Vg values: fall back to the pseudo-inverse
        return np.einsum("nip,np->ni", np.linalg.pinv(vander), y)
