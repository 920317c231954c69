"""Per-half-cycle checks of ``transient.tau_on_off`` that need more than one row: rhythm and neighbours."""

from __future__ import annotations

import numpy as np

from dask_features.extractors.tau._edges import StepEdges
from dask_features.extractors.tau._kernels import rhythm_excess
from dask_features.extractors.tau._status import DRIFT_MIN_SHIFT, DRIFT_NEIGHBOURS, DRIFT_Z, RHYTHM_Z

__all__ = ["drifting", "off_rhythm", "running_median"]


def running_median(values: np.ndarray, groups: np.ndarray, half: int) -> np.ndarray:
    """Median of each column of ``values`` over the rows within ``half`` rows of the same group (NaN ignored)."""
    n = values.shape[0]
    idx = np.arange(n)[:, None] + np.arange(-half, half + 1)
    inside = (idx >= 0) & (idx < n)
    idx = np.clip(idx, 0, max(n - 1, 0))
    same = inside & (groups[idx] == groups[:, None])
    out = np.full(values.shape, np.nan)
    for j in range(values.shape[1]):
        # Sorting puts the NaN last; the median is the middle of the finite ones (np.nanmedian is slow here).
        win = np.sort(np.where(same, values[idx, j], np.nan), axis=1)
        count = np.isfinite(win).sum(axis=1)
        lo = np.take_along_axis(win, np.maximum((count - 1) // 2, 0)[:, None], axis=1)[:, 0]
        hi = np.take_along_axis(win, np.maximum(count // 2, 0)[:, None], axis=1)[:, 0]
        out[:, j] = np.where(count > 0, 0.5 * (lo + hi), np.nan)
    return out


def off_rhythm(
    current: np.ndarray,
    offsets: np.ndarray,
    step_of_row: np.ndarray,
    gstart: np.ndarray,
    m_row: np.ndarray,
    edges: list[StepEdges],
    fitted: np.ndarray,
) -> np.ndarray:
    """Half-cycles whose edge in the raw trace is clearly away from where the period puts it.

    The box width is about one tau of the step's profile (at most a quarter of either window), the
    threshold :data:`RHYTHM_Z` noise units of the box contrast (local noise of the window).
    """
    bad = np.zeros(fitted.shape, bool)
    rr, dd = np.nonzero(fitted)
    if rr.size == 0:
        return bad
    srow = step_of_row[rr]
    per_step = np.array([[e.k_rise, e.k_fall, e.var_rise, e.var_fall, e.sign, e.scale] for e in edges])[srow]
    k_prof = per_step[np.arange(rr.size), dd]
    var = per_step[np.arange(rr.size), 2 + dd]
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(k_prof > 0, 1.0 / k_prof, 1.0)
    m_min = m_row[rr].min(axis=1)
    h = np.clip(np.rint(tau), 1, np.maximum(m_min // 4, 1)).astype(np.int64)
    # Rising |I| is a rising sign * I; a fall of |I| is the opposite.
    sgn = per_step[:, 4] * np.where(dd == 0, 1.0, -1.0)
    excess = rhythm_excess(
        current,
        np.ascontiguousarray(gstart[rr, dd]),
        np.ascontiguousarray(offsets[srow]),
        np.ascontiguousarray(offsets[srow + 1]),
        h,
        np.ascontiguousarray(sgn),
    )
    noise = per_step[:, 5] * np.sqrt(2.0 * var / h)
    bad[rr, dd] = excess > RHYTHM_Z * noise
    return bad


def drifting(
    fit: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    judged: np.ndarray,
    usable: np.ndarray,
    step_of_row: np.ndarray,
    cycle: np.ndarray,
    samples_per_period: np.ndarray,
) -> np.ndarray:
    """Half-cycles whose tau a drifting baseline moves by more than its standard error.

    Written for the flat model, whose *level* is the asymptote ``c``; with ``baseline="drift"`` the
    level is the fitted drift ``d`` per sample, whose slope over the cycles is the baseline's
    curvature (``2 q`` for ``q u^2``), and ``gain`` the fit's sensitivity to it (see
    :class:`~dask_features.extractors.tau._rows.ExpFit`); the rest reads the same.

    The drift rate is the slope of the fitted asymptote ``c`` over the cycles: a weighted (1 / se_c^2)
    least-squares line through the ``usable`` half-cycles of the same step and direction within
    :data:`DRIFT_NEIGHBOURS` cycles, per sample (through those of the other direction, as for a drift
    of the whole baseline, where fewer than two of its own direction are usable). The transition's
    shape repeats every cycle, so only a drift moves ``c`` from cycle to cycle; a non-exponential shape
    does not (within one window it would look like a linear term too). A drift of ``b`` per sample
    moves ln tau by ``-gain * b`` (first order). Flagged: ``judged`` rows where the slope differs from 0
    by more than :data:`DRIFT_Z` of its standard error and moves ln tau by more than its standard
    error ``se`` (and more than :data:`DRIFT_MIN_SHIFT`). Rows without two usable neighbours in either
    direction cannot be judged (a record of one cycle says nothing about its drift).

    Parameters
    ----------
    fit : (c, se_c, gain, se), each ndarray of shape (rows, 2)
        Asymptote (the level) and its standard error, drift gain ``d ln k / d b`` and standard error
        of ln tau.
    judged, usable : ndarray of bool, shape (rows, 2)
        Half-cycles to judge, and those whose asymptote measures the drift.
    step_of_row, cycle : ndarray of int, shape (rows,)
        Step and cycle number of each row (rows of a step contiguous, in cycle order).
    samples_per_period : ndarray of float64, shape (rows,)
        Of each row's step.
    """
    c, se_c, gain, se = fit
    n = judged.shape[0]
    if n == 0:
        return np.zeros(judged.shape, bool)
    idx = np.arange(n)[:, None] + np.arange(-DRIFT_NEIGHBOURS, DRIFT_NEIGHBOURS + 1)
    inside = (idx >= 0) & (idx < n)
    idx = np.clip(idx, 0, n - 1)
    same = inside & (step_of_row[idx] == step_of_row[:, None])
    x = (cycle[idx] - cycle[:, None]).astype(np.float64)
    slope, z = np.full(judged.shape, np.nan), np.full(judged.shape, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(2):
            use = same & usable[idx, j] & (se_c[idx, j] > 0)
            w = np.where(use, 1.0 / np.where(use, se_c[idx, j], 1.0) ** 2, 0.0)
            dx = x - (w * x).sum(axis=1, keepdims=True) / w.sum(axis=1, keepdims=True)
            sxx = (w * dx * dx).sum(axis=1)
            measured = use.sum(axis=1) >= 2
            slope[:, j] = np.where(
                measured, (w * dx * np.where(use, c[idx, j], 0.0)).sum(axis=1) / sxx, np.nan
            )
            z[:, j] = slope[:, j] * np.sqrt(sxx)
        own = np.isfinite(z)
        slope = np.where(own, slope, slope[:, ::-1])
        z = np.where(own, z, z[:, ::-1])
        shift = gain * slope / samples_per_period[:, None]
        return judged & (np.abs(z) > DRIFT_Z) & (np.abs(shift) > np.fmax(se, DRIFT_MIN_SHIFT))
