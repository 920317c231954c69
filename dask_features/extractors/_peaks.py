"""Peak finding of ``transient.cycles``: the peaks ``scipy.signal.find_peaks(x, distance=, prominence=)`` reports.

The definition is SciPy's (oect-infra's cycle detection calls it), reproduced here so that a fresh
process extracting cycles imports neither SciPy (~1.5 s) nor numba (the kernels are compiled ahead
of time like the others, :mod:`dask_features._compiled`, and release the GIL). For a 1-D float64
``x`` it returns the same indices and prominences, in the same order, including which of two equally
high peaks closer than ``distance`` survives. In SciPy's order:

1. **Local maxima**: a sample higher than its left neighbour, followed by a run of equal samples
   (possibly empty) and then a lower sample. A flat top reports its middle sample (rounded down);
   a run that reaches either end of ``x`` is not a peak, so the first and last samples never are.
2. **Distance**: peaks are visited from the highest down (the order of ``numpy.argsort`` of their
   heights, read backwards, as SciPy does; that decides between equal heights), and each one still
   standing removes every other peak less than ``ceil(distance)`` samples away.
3. **Prominence** of each remaining peak: from the peak, walk left while the samples are not higher
   than the peak (stop at a strictly higher sample or the start) and take the lowest sample seen;
   likewise to the right. The prominence is the peak's height minus the higher of these two minima
   (SciPy's ``wlen=None``). Peaks with a prominence below ``prominence`` are dropped. The minima
   come from these walks unless they would visit more than ``walk_budget`` samples per sample of
   ``x`` (quadratic on signals whose peaks keep growing); then from one linear pass, same values.
"""

from __future__ import annotations

import math

import numpy as np

from dask_features._compiled import kernel
from dask_features.errors import InvalidArgumentError

__all__ = ["find_peaks", "local_maxima", "select_peaks"]

_NO_ORDER = np.empty(0, np.int64)


@kernel("i8(f8[::1], i8[::1])")
def local_maxima(x: np.ndarray, out: np.ndarray) -> int:
    """Write the indices of the local maxima of ``x`` (step 1) into ``out``; return their number.

    ``out`` needs room for ``len(x) // 2 + 1`` indices (two peaks are at least two samples apart).
    """
    n = x.shape[0]
    count = 0
    i = 1
    while i < n - 1:
        if x[i] > x[i - 1]:
            # A rise into i: skip the samples equal to x[i]; the run is a peak if what follows is lower.
            end = i + 1
            while end < n - 1 and x[end] == x[i]:
                end += 1
            if x[end] < x[i]:
                out[count] = (i + end - 1) // 2
                count += 1
            # Nothing inside the run can start another peak: its samples are not above their left one.
            i = end
        else:
            i += 1
    return count


@kernel("i8(f8[::1], i8[::1], i8[::1], i8, f8, i8, f8[::1])")
def select_peaks(
    x: np.ndarray,
    peaks: np.ndarray,
    order: np.ndarray,
    distance: int,
    min_prominence: float,
    walk_budget: int,
    prominences: np.ndarray,
) -> int:
    """Keep the peaks that pass the distance and then the prominence rule (steps 2 and 3).

    ``peaks`` (increasing indices into ``x``) is compacted in place to the kept peaks and their
    prominences are written to the start of ``prominences`` (room for ``len(peaks)``); returns how
    many were kept. ``order`` is ``numpy.argsort(x[peaks])`` (only read when ``distance > 1`` and there
    are two or more peaks). ``walk_budget``: samples the walks of step 3 may visit in all before
    :func:`_lowest_towards_higher` computes the minima instead (the same values; see there).
    """
    m = peaks.shape[0]
    if distance > 1 and m > 1:
        gone = np.zeros(m, np.bool_)
        for r in range(m - 1, -1, -1):  # highest first
            j = order[r]
            if gone[j]:
                continue
            # Peaks are sorted by index: the ones too close to j are its immediate neighbours.
            k = j - 1
            while k >= 0 and peaks[j] - peaks[k] < distance:
                gone[k] = True
                k -= 1
            k = j + 1
            while k < m and peaks[k] - peaks[j] < distance:
                gone[k] = True
                k += 1
        kept = 0
        for j in range(m):
            if not gone[j]:
                peaks[kept] = peaks[j]
                kept += 1
        m = kept
    left = np.empty(m)
    right = np.empty(m)
    if not _walk(x, peaks, m, walk_budget, left, right):
        _lowest_towards_higher(x, peaks, m, True, left)
        _lowest_towards_higher(x, peaks, m, False, right)
    kept = 0
    for j in range(m):
        base = right[j] if right[j] > left[j] else left[j]  # the higher minimum (the first if equal)
        prom = x[peaks[j]] - base
        if min_prominence <= prom:
            peaks[kept] = peaks[j]
            prominences[kept] = prom
            kept += 1
    return kept


@kernel()
def _walk(x: np.ndarray, peaks: np.ndarray, m: int, budget: int, left: np.ndarray, right: np.ndarray) -> bool:
    """Lowest sample from each of the first ``m`` peaks to the nearest higher one, on the left and right.

    Walks from every peak until a strictly higher sample or the end (the first of equal minima met
    is kept: it matters only for the sign of a zero). Stops and returns False once more than
    ``budget`` samples were visited.
    """
    n = x.shape[0]
    visited = 0
    for j in range(m):
        p = peaks[j]
        top = x[p]
        low = top
        i = p - 1
        while i >= 0 and x[i] <= top:
            if x[i] < low:
                low = x[i]
            i -= 1
        left[j] = low
        visited += p - i
        low = top
        i = p + 1
        while i < n and x[i] <= top:
            if x[i] < low:
                low = x[i]
            i += 1
        right[j] = low
        visited += i - p
        if visited > budget:
            return False
    return True


@kernel()
def _lowest_towards_higher(
    x: np.ndarray, peaks: np.ndarray, m: int, leftwards: bool, out: np.ndarray
) -> None:
    """For each of the first ``m`` peaks, the lowest sample from it to the nearest higher one on one side.

    The same values as :func:`_walk`'s, in one pass over ``x`` that keeps, as a stack, the samples
    not yet followed by a higher or equal one, each with the lowest sample since the previous
    higher one. Its cost is linear in ``len(x)`` whatever the signal, where the walks visit as many
    samples as each peak's range, over and over on signals whose peaks grow along the walk (a
    rising saw: quadratic); on typical transients the walks visit 10-15 samples per sample of
    ``x`` and are still about twice as fast (fewer mispredicted branches).
    """
    n = x.shape[0]
    height = np.empty(n)
    lowest = np.empty(n)
    top = -1
    # The pass runs against the walk: left to right for the walks leftwards. j: the next peak it meets.
    j = 0 if leftwards else m - 1
    for r in range(n):
        i = r if leftwards else n - 1 - r
        v = x[i]
        low = v
        while top >= 0 and height[top] <= v:
            if lowest[top] < low:
                low = lowest[top]
            top -= 1
        top += 1
        height[top] = v
        lowest[top] = low
        if 0 <= j < m and peaks[j] == i:
            out[j] = low
            j += 1 if leftwards else -1


def find_peaks(
    x: np.ndarray, distance: float = 1, prominence: float = 0.0, *, walk_budget: float = 40.0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and prominences of the peaks of ``x`` (see the module docstring for the definition).

    Equal to ``idx, props = scipy.signal.find_peaks(x, distance=distance, prominence=prominence)``:
    ``(idx, props["prominences"])``.

    Parameters
    ----------
    x : array_like, 1-D
        Signal (converted to float64). NaN samples are neither peaks nor bases and end the walks of
        step 3, as in SciPy; callers with NaN usually drop them first.
    distance : float, default 1
        Minimum distance between peaks [samples], ``>= 1`` and finite; rounded up.
    prominence : float, default 0.0
        Minimum prominence [units of ``x``]; 0 keeps every peak that survives ``distance``.
    walk_budget : float, default 40.0
        Samples per sample of ``x`` the walks of step 3 may visit before a linear-time pass computes
        the prominences instead (identical values, a cost that cannot grow quadratically); 0 always
        uses the pass.

    Returns
    -------
    indices : ndarray of int64
        Peak indices, increasing.
    prominences : ndarray of float64
        Prominence of each peak [units of ``x``].

    Raises
    ------
    InvalidArgumentError
        ``x`` is not 1-D, or ``distance`` is below 1 or not finite (SciPy also rejects ``distance < 1``).
    """
    x = np.require(x, np.float64, ["C", "A", "W"])  # the compiled kernels' exact argument types
    if x.ndim != 1:
        raise InvalidArgumentError(f"x must be 1-D, got shape {x.shape}")
    if not (distance >= 1 and math.isfinite(distance)):
        raise InvalidArgumentError(f"distance must be a finite number >= 1 [samples], got {distance!r}")
    n = len(x)
    # Peaks are less than n samples apart, so any larger distance acts like n (and fits an int64).
    spacing = min(math.ceil(distance), max(n, 1))
    peaks = np.empty(n // 2 + 1, np.int64)
    peaks = peaks[: local_maxima(x, peaks)]
    # numpy's default argsort (not stable) is what SciPy uses: it decides which of two equal peaks stays.
    order = np.argsort(x[peaks]) if spacing > 1 and len(peaks) > 1 else _NO_ORDER
    prominences = np.empty(len(peaks))
    budget = int(min(walk_budget * n, 2**62))
    kept = select_peaks(x, peaks, order, spacing, float(prominence), budget, prominences)
    return peaks[:kept], prominences[:kept]
