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

import math
import threading
from dataclasses import dataclass

import numpy as np

from dask_features.extractors import _peak_kernel as pk
from dask_features.extractors import _robust_kernels as rk
from dask_features.extractors import _transfer_math as tm

__all__ = [
    "LOG_CLIP",
    "PeakFit",
    "Smoothed",
    "apply_weights",
    "local_fit_weights",
    "noise_sigma",
    "peak_fit",
    "row_groups",
    "smooth",
    "student_factor",
]

LOG_CLIP = 1e-15
"""|Id| is clipped to at least this [A] before ``log10`` (far below any measured floor)."""

_BLOCK = 64  # distinct Vg rows whose weights are held in memory at once
# Weights of the last few single-grid chunks (a few hundred kB each): the chunks of one experiment
# almost always share one Vg grid, so a worker computes them once per experiment, not per chunk.
_WEIGHTS: dict[tuple[int, int, bytes], tuple[np.ndarray, ...]] = {}
_WEIGHTS_KEPT = 8
_WEIGHTS_LOCK = threading.Lock()


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
    if rk.rows_equal_first(vg):
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
    """Fit weights of a chunk's sweeps, computed once per distinct Vg row (and per process for the
    single grid most experiments sweep with every step)."""
    reps, groups = row_groups(sweeps.vg)
    if len(reps) == 1:
        key = (window, order, sweeps.vg[reps[0]].tobytes())
        cached = _WEIGHTS.get(key)
        if cached is None:
            cached = local_fit_weights(
                sweeps.vg[reps], sweeps.n_valid[reps], sweeps.turn[reps], window, order
            )
            with _WEIGHTS_LOCK:  # threaded schedulers share the module
                while len(_WEIGHTS) >= _WEIGHTS_KEPT:
                    _WEIGHTS.pop(next(iter(_WEIGHTS)))
                _WEIGHTS[key] = cached
        first, w0, w1, enough = cached
        return Smoothed(groups, first, w0, w1, enough[groups])
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
    y0 = np.empty((n, w) if value else (1, w))
    y1 = np.empty((n, w))
    if n and sm.first.shape[0]:
        rk.apply_rows(sm.first, sm.w0, sm.w1, sm.groups, y, value, y0, y1)
    else:
        y1.fill(np.nan)
        y0.fill(np.nan)
    return y0, y1


def noise_sigma(
    y: np.ndarray, fitted: np.ndarray, start: np.ndarray, stop: np.ndarray, count: np.ndarray
) -> np.ndarray:
    """RMS residual [units of y] of each row over the ``count`` points at the off end of its half.

    The off end is the end with the smaller fitted ``|y|``: the absolute noise of a current shows
    there (the relative part is negligible), so this is the noise floor of the row.
    """
    return rk.noise_rows(y, fitted, start, stop, count.astype(np.int64))


@dataclass(frozen=True)
class PeakFit:
    """Maximum of the slope of a polynomial fitted around a peak (see :func:`peak_fit`).

    Attributes
    ----------
    x : ndarray, shape (n,)
        Vg [V] of the maximum.
    y, slope : ndarray, shape (n,)
        Fitted ordinate and its (oriented) slope there.
    se_slope, se_x, se_y : ndarray, shape (n,)
        Standard errors of ``slope``, ``x`` [V] and ``y`` from the scatter of the fitted points
        (``se_x`` is inf where the fit has no curvature of a maximum at ``x``).
    end_excess : ndarray, shape (n,)
        Standard errors by which ``slope`` exceeds the fitted slope at the end of the half the window
        is pinned to (inf when it is pinned to none).
    pinned, at_edge : ndarray of bool, shape (n,)
        The window hit an end of the half / the maximum is at the edge of the searched zone.
    """

    x: np.ndarray
    y: np.ndarray
    slope: np.ndarray
    se_slope: np.ndarray
    se_x: np.ndarray
    se_y: np.ndarray
    end_excess: np.ndarray
    pinned: np.ndarray
    at_edge: np.ndarray


_ZONE = 41  # evaluation points of the fitted slope across the searched zone


def peak_fit(
    x: np.ndarray,
    y: np.ndarray,
    orient: np.ndarray,
    k: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    window: int | np.ndarray,
    order: int,
    iterations: int = 3,
    *,
    log: bool = False,
    errors: bool = False,
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
    window : int or ndarray of int64, shape (n,)
        Fit points (per row).
    order, iterations : int
        Polynomial order and re-centring passes.
    log : bool, default False
        Fit ``ln max(|y|, LOG_CLIP)`` instead of ``y`` (the log is taken of the fitted points only).
    errors : bool, default False
        Also the standard errors and the end excess of the final fit (else NaN).
    """
    n = x.shape[0]
    out = np.empty((n, 7))
    flags = np.empty((n, 2), dtype=np.bool_)
    pk.peak_fit_rows(
        x,
        y,
        np.asarray(orient, dtype=np.float64),
        k.astype(np.int64),
        start.astype(np.int64),
        stop.astype(np.int64),
        np.broadcast_to(np.asarray(window, dtype=np.int64), (n,)).copy(),
        int(order),
        int(iterations),
        _ZONE,
        LOG_CLIP if log else 0.0,
        errors,
        out,
        flags,
    )
    return PeakFit(
        x=out[:, 0],
        y=out[:, 1],
        slope=out[:, 2],
        se_slope=out[:, 3],
        se_x=out[:, 4],
        se_y=out[:, 5],
        end_excess=out[:, 6],
        pinned=flags[:, 0],
        at_edge=flags[:, 1],
    )


def student_factor(dof: np.ndarray, z: float) -> np.ndarray:
    """How much wider a ``z``-standard-error limit must be when the error comes from ``dof`` residuals.

    ``t / z`` for the Student-t quantile ``t`` with ``dof`` degrees of freedom at the normal
    probability of ``z``: exact for 1 and 2 degrees of freedom, Hill's Cornish-Fisher series above
    (within 0.7 % of the exact quantile at ``z <= 2.5``, 2.3 % at ``z = 3``, 3 degrees of freedom,
    closer with more); inf below 1 degree of freedom.
    """
    v = np.asarray(dof, dtype=np.float64)
    p = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        series = (
            z
            + (z**3 + z) / (4 * v)
            + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
            + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * v**4)
        )
    t = np.where(
        v >= 3,
        series,
        np.where(v >= 2, (2 * p - 1) / math.sqrt(2 * p * (1 - p)), math.tan(math.pi * (p - 0.5))),
    )
    return np.where(v >= 1, t / z, np.inf)
