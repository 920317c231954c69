"""Per-half-cycle checks of ``transient.tau_on_off`` that need more than one row: rhythm and neighbours."""

from __future__ import annotations

import numpy as np

from dask_features.extractors.tau._edges import StepEdges
from dask_features.extractors.tau._kernels import rhythm_excess
from dask_features.extractors.tau._status import RHYTHM_Z

__all__ = ["off_rhythm", "running_median"]


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
