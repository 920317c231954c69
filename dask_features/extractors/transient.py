"""Transient extractors (``transient.*``) other than the tau fitter.

Names and parameters follow oect-infra's features_v2 extractors so existing configs keep working.
``peak_current`` and ``decay_time`` are vectorised over the flat samples of the chunk (``decay_time``
solves every step's least-squares fit together); ``cycles`` loops over steps because each step
needs its own peak search (:mod:`._peaks`: the peaks of ``scipy.signal.find_peaks``, oect-infra's
definition, found by a compiled kernel so that extracting cycles imports neither SciPy nor numba).

Differences to oect-infra, on purpose:

* ``cycles`` defaults to ``n_cycles="auto"``: the number of gate periods in the step (from the
  workflow's period), instead of a fixed 100 that pads every row with NaN.
* ``cycles`` with ``peak_detection`` can find a peak on the last sample, and when there are more
  peaks than cycles it keeps the most *prominent* ones (noise spikes have small prominence) instead
  of the largest |I|, which prefers the cycles of whichever end of a drifting trace is higher.
* Results are float64 (oect-infra: float32). Empty steps, or steps whose value cannot be computed,
  give NaN and a per-step report instead of a silent NaN or 0.

Units: time in s, current in A as stored in the file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from dask_features.errors import InvalidParameterError
from dask_features.extractors import _decay_fit
from dask_features.extractors import _peaks as peak_finder
from dask_features.extractors.registry import Output, register
from dask_features.io.chunks import TransientChunk

__all__ = ["cycles", "decay_time", "peak_current", "peak_search_input"]

CycleMethod = Literal["peak_detection", "fixed_interval", "percentile"]

_PARTIAL_PERIOD = 0.05
"""A trailing fraction of a period shorter than this is not counted as a cycle by ``n_cycles='auto'``."""


@register("transient.peak_current", source="transient", output=Output.scalar(), unit="A")
def peak_current(chunk: TransientChunk, *, use_abs: bool = True) -> np.ndarray:
    """Largest drain current of each step [A].

    Parameters
    ----------
    chunk : TransientChunk
        Steps to process.
    use_abs : bool, default True
        Maximum of ``|I|`` (True) or of the signed ``I``.

    Returns
    -------
    ndarray of float64, shape (n,)
        NaN samples are ignored; empty or all-NaN steps give NaN (reported).
    """
    lengths = chunk.lengths
    values = chunk.current[: chunk.offsets[-1]]
    values = np.abs(values) if use_abs else values
    out = np.full(chunk.n_steps, np.nan)
    nonempty = lengths > 0
    if nonempty.any():
        # Empty steps add no samples, so the starts of the non-empty steps delimit exactly their samples.
        out[nonempty] = np.fmax.reduceat(values, chunk.offsets[:-1][nonempty])
    missing = np.isnan(out)
    if missing.any():
        chunk.report(missing, "no finite current sample")
    return out


# --- cycles ---------------------------------------------------------------------------------------


def _cycles_output(params: Mapping[str, Any]) -> Output:
    n = params.get("n_cycles", "auto")
    return Output.vector(None) if n == "auto" else Output.vector(int(n))


def _check_cycles(params: Mapping[str, Any]) -> None:
    problems: list[str] = []
    n = params["n_cycles"]
    if n != "auto" and (isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1):
        problems.append(f"n_cycles must be 'auto' or a positive integer, got {n!r}")
    if params["method"] not in ("peak_detection", "fixed_interval", "percentile"):
        problems.append(f"unknown method {params['method']!r}")
    d = params["min_distance"]
    if isinstance(d, bool) or not isinstance(d, int | np.integer) or d < 1:
        problems.append(f"min_distance must be a positive integer (samples), got {d!r}")
    p = params["prominence"]
    if p is not None and (isinstance(p, bool) or not isinstance(p, int | float) or not p >= 0):
        problems.append(f"prominence must be None or a non-negative number [A], got {p!r}")
    if problems:
        raise InvalidParameterError(problems)


def cycles_in_step(n_samples: int, time_step: float, period: float) -> int | None:
    """Number of (possibly partial) gate periods a step of ``n_samples`` covers; None if unknown.

    A trailing partial period shorter than 5 % of a period is not counted.
    """
    if not (np.isfinite(time_step) and np.isfinite(period) and period > 0 and time_step > 0):
        return None
    return max(1, math.ceil(n_samples * time_step / period - _PARTIAL_PERIOD))


def _fixed_interval(current: np.ndarray, k: int) -> np.ndarray:
    if len(current) < k:
        return current.copy()  # NaN-padded by the caller, as oect-infra does
    return current[np.linspace(0, len(current) - 1, k).astype(int)]


def _percentile(current: np.ndarray, k: int) -> np.ndarray:
    magnitude = np.abs(current)
    threshold = np.percentile(magnitude, 100 * max(0.0, 1 - k / len(current)))
    selected = current[magnitude >= threshold]
    if len(selected) <= k:
        return selected
    return selected[np.linspace(0, len(selected) - 1, k).astype(int)]


def peak_search_input(current: np.ndarray, prominence: float | None) -> tuple[np.ndarray, float]:
    """The signal and minimum prominence the peak search of one step runs on.

    Parameters
    ----------
    current : ndarray of float64, shape (n,)
        Drain current of the step without NaN [A], ``n >= 1``.
    prominence : float or None
        Minimum prominence [A]; None: 10 % of the 75th percentile of ``|I|``.

    Returns
    -------
    magnitude : ndarray of float64, shape (n + 1,)
        ``|I|`` with a sample below everything appended at the end, which lets a peak on the last
        sample be found (the edges themselves never are peaks).
    prominence : float
        Minimum prominence [A].
    """
    magnitude = np.abs(current)
    prom = 0.1 * float(np.percentile(magnitude, 75)) if prominence is None else prominence
    low, high = magnitude.min(), magnitude.max()
    return np.append(magnitude, low - ((high - low) or 1.0)), prom


def _peaks(current: np.ndarray, k: int | None, min_distance: int, prominence: float | None) -> np.ndarray:
    """Signed current at the detected peaks of |I|, in time order; at most ``k`` of them."""
    magnitude, prom = peak_search_input(current, prominence)
    idx, prominences = peak_finder.find_peaks(magnitude, min_distance, prom)
    if k is not None and len(idx) > k:
        keep = np.sort(np.argsort(-prominences, kind="stable")[:k])
        idx = idx[keep]
    return current[idx]


@register(
    "transient.cycles",
    source="transient",
    output=_cycles_output,
    check=_check_cycles,
    unit="A",
    cost=55.0,  # measured: a compiled peak search per step, ~0.8x the time of SciPy's (bench_peaks.py)
)
def cycles(
    chunk: TransientChunk,
    *,
    n_cycles: int | Literal["auto"] = "auto",
    method: CycleMethod = "peak_detection",
    min_distance: int = 10,
    prominence: float | None = None,
) -> np.ndarray:
    """One current value per gate cycle of each step [A].

    Methods (oect-infra's definitions, on the drain current I of a step, NaN samples dropped):

    ``peak_detection``
        Peaks of ``|I|`` as ``scipy.signal.find_peaks(distance=min_distance,
        prominence=prominence)`` finds them (oect-infra's definition; computed by :mod:`._peaks`,
        without SciPy); the value is the signed I at each peak, in time order. A peak on
        the last sample counts (the step may end at the top of a cycle). With more peaks than
        ``n_cycles`` the most prominent are kept (ties: earlier first) and put back in time order; with
        none the step falls back to ``fixed_interval``.
    ``fixed_interval``
        ``I`` at ``n_cycles`` evenly spaced sample indices.
    ``percentile``
        Samples with ``|I|`` at or above the ``100 (1 - n_cycles / len)`` percentile, evenly
        sub-sampled to ``n_cycles``.

    Parameters
    ----------
    chunk : TransientChunk
        Steps to process.
    n_cycles : int or "auto", default "auto"
        Values per step. ``auto`` = the number of gate periods the step covers,
        ``ceil(samples * time_step / period - 0.05)``, from the workflow; when the period is unknown,
        ``peak_detection`` keeps every peak and the other methods give NaN (reported).
    method : {"peak_detection", "fixed_interval", "percentile"}, default "peak_detection"
        See above.
    min_distance : int, default 10
        Minimum distance between peaks [samples].
    prominence : float, optional
        Minimum peak prominence [A]; default 0.1 × the 75th percentile of ``|I|`` of the step.

    Returns
    -------
    ndarray of float64, shape (n, n_cycles)
        NaN-padded when a step has fewer values. With ``auto`` the width is the largest count in the
        chunk (the engine pads chunks of one experiment to a common width).
    """
    rows: list[np.ndarray | None] = []
    no_period: list[int] = []
    for i in range(chunk.n_steps):
        _, current = chunk.step(i)
        current = current[np.isfinite(current)]
        if len(current) == 0:
            rows.append(None)
            continue
        if n_cycles == "auto":
            k = cycles_in_step(len(current), float(chunk.time_step[i]), float(chunk.period[i]))
            if k is None and method != "peak_detection":
                no_period.append(i)
                rows.append(None)
                continue
        else:
            k = int(n_cycles)
        if method == "peak_detection":
            values = _peaks(current, k, min_distance, prominence)
            if len(values) == 0:
                values = _fixed_interval(current, k if k is not None else 1)
        else:
            assert k is not None  # an unknown period was reported and skipped above for these methods
            values = _fixed_interval(current, k) if method == "fixed_interval" else _percentile(current, k)
        rows.append(values)
    width = int(n_cycles) if n_cycles != "auto" else max((len(r) for r in rows if r is not None), default=0)
    out = np.full((chunk.n_steps, width), np.nan)
    for i, row in enumerate(rows):
        if row is not None:
            out[i, : min(len(row), width)] = row[:width]
    empty = [i for i, r in enumerate(rows) if r is None and i not in no_period]
    if empty:
        chunk.report(np.array(empty), "no finite current sample")
    if no_period:
        chunk.report(
            np.array(no_period), f"n_cycles='auto' with method {method!r} needs the gate period, unknown here"
        )
    return out


# --- decay_time -----------------------------------------------------------------------------------


def _check_decay(params: Mapping[str, Any]) -> None:
    fr = params["fit_range"]
    if not (isinstance(fr, Sequence) and len(fr) == 2 and 0 <= float(fr[0]) < float(fr[1]) <= 1):
        raise ValueError(f"fit_range must be [start, stop] fractions with 0 <= start < stop <= 1, got {fr!r}")


_DECAY_UNRESOLVED = {
    2: "decay_time: |I| falls within one sample (fitted tau below half a sample interval, or tending to "
    "0): the transition is faster than the sampling resolves; tau not resolved",
    3: "decay_time: the least-squares fit did not converge",
}


def _decay_batch(chunk: TransientChunk, fit_range: Sequence[float], method: str) -> np.ndarray:
    windows, too_few, no_span = _decay_fit.select_windows(
        chunk.time, chunk.current, chunk.offsets, (float(fit_range[0]), float(fit_range[1]))
    )
    out = np.full(chunk.n_steps, np.nan)
    if len(too_few):
        chunk.report(too_few, "decay_time: fewer than 3 usable samples in the fit range")
    if len(no_span):
        chunk.report(no_span, "decay_time: all usable samples of the fit range have the same time")
    if len(windows.rows) == 0:
        return out
    if method == "linear":
        slope = _decay_fit.fit_log_linear_slopes(windows)
        with np.errstate(divide="ignore"):
            out[windows.rows] = -windows.duration / slope
        flat = windows.rows[slope == 0]
        out[flat] = np.nan
        if len(flat):
            chunk.report(flat, "decay_time: log-current has zero slope")
        return out
    kappa, status = _decay_fit.fit_exponential_rates(windows)
    out[windows.rows] = windows.duration / kappa
    # No decay: the best fit with tau > 0 is the limit tau -> inf (a constant current). That is the
    # exact answer of the model; oect-infra returns wherever its optimiser stopped on the way there.
    out[windows.rows[status == 1]] = np.inf
    for code, reason in _DECAY_UNRESOLVED.items():
        rows = windows.rows[status == code]
        if len(rows):
            chunk.report(rows, reason)
    return out


@register(
    "transient.decay_time",
    source="transient",
    output=Output.scalar(),
    check=_check_decay,
    unit="s",
    cost=300.0,  # measured: ~10 vectorised passes over the window samples
)
def decay_time(
    chunk: TransientChunk,
    *,
    fit_range: Sequence[float] = (0.1, 0.9),
    method: Literal["exponential", "linear"] = "exponential",
) -> np.ndarray:
    """Time constant [s] of one exponential fitted to a **whole step** (kept for old configs).

    This is **not** a device time constant: a transient step holds many gate cycles, and one
    decaying exponential fitted across all of them (oect-infra's definition, reproduced here) mostly
    measures the drift of the whole record (≈ 5 s on data whose true on/off taus are 5–40 ms). Use
    the tau extractor for per-cycle ``tau_on``/``tau_off``.

    Per step: take samples ``[int(a m), int(b m))`` of the ``m`` samples (``fit_range = (a, b)``),
    use ``|I|``, drop non-positive and non-finite samples (at least 3 must remain), and fit
    ``I0 exp(-(t - t_first) / tau)`` by least squares with ``I0, tau >= 0``: oect-infra's model,
    window and bounds. The fit is solved for all steps of the chunk at once (see
    :mod:`dask_features.extractors._decay_fit`), starting from oect-infra's initial guess
    ``tau = duration / 2``; it agrees with oect-infra's ``curve_fit`` to ~1e-7 wherever that
    converges, and is also right where it does not (oect-infra's fit of ~1e-6 A currents can stop at
    its initial guess).

    Parameters
    ----------
    chunk : TransientChunk
        Steps to process.
    fit_range : (float, float), default (0.1, 0.9)
        Start and stop of the fitted window as fractions of the step.
    method : {"exponential", "linear"}, default "exponential"
        ``exponential``: the least-squares fit above. Steps whose current does not decay (the best
        fit is a constant or rising current) give ``inf``, the limit the bounded fit tends to. Steps
        whose current drops within one sample (the fit tends to ``tau -> 0``, or its tau is below half
        the interval between the window's first two samples, where it is set by the level the current
        drops to rather than by a decay the samples resolve) give NaN (reported): oect-infra reports
        wherever its optimiser stopped, or a half-life estimate, for those.
        ``linear``: ``tau = -1 / slope`` of a straight line fitted to ``ln |I|``
        against time (negative for a rising current, as in oect-infra).

    Returns
    -------
    ndarray of float64, shape (n,)
        NaN (reported) for steps that cannot be fitted.
    """
    return _decay_batch(chunk, fit_range, method)
