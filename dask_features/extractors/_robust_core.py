"""Per-chunk analyses shared by the robust transfer extractors, each computed once per chunk.

Every analysis returns values *and* a status code per row; the extractors turn non-zero codes into
NaN plus one error record per reason (:func:`report`). Reports are filed by each extractor call, not
inside the cached computation, because the engine attributes a chunk's new reports to the feature
being computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from dask_features.extractors import _robust_kernels as rk
from dask_features.extractors import _robust_math as rm
from dask_features.extractors import _transfer_math as tm
from dask_features.extractors.transfer import sweeps
from dask_features.io.chunks import TransferChunk

__all__ = [
    "AT_END",
    "NOISE",
    "NO_PEAK",
    "NO_TURN_ON",
    "OUT_OF_RANGE",
    "TOO_FEW",
    "UNCERTAIN",
    "UNRESOLVED",
    "Curve",
    "Elr",
    "Fit",
    "Swing",
    "curve",
    "elr",
    "fit",
    "flagged",
    "half_mask",
    "report",
    "swing",
    "turn_on",
    "uncertain",
    "windows",
]

DeviceType = Literal["N", "P", "auto"]
Half = Literal["forward", "reverse"]
Form = Literal["linear", "saturation"]

# Status codes, most fundamental first (a row gets the first that applies).
OK, TOO_FEW, NOISE, NO_TURN_ON, AT_END, NO_PEAK, OUT_OF_RANGE, UNRESOLVED, UNCERTAIN = range(9)

_MESSAGES = {
    TOO_FEW: "{what}: the {direction} sweep has too few points for a {window}-point order-{order} fit "
    "(needs at least {min_points})",
    NOISE: "{what}: the {direction} sweep does not rise above its noise floor",
    NO_TURN_ON: "{what}: |Id| never increases in the turn-on direction of a {device} device on the "
    "{direction} sweep (wrong device_type?)",
    AT_END: "{what}: its defining point is at (or, within the noise, no higher than at) the end of "
    "the {direction} sweep, so the true extreme may lie outside the swept range",
    NO_PEAK: "{what}: the wide fit around the gm peak of the {direction} sweep has no maximum inside "
    "its window (no clear peak)",
    UNRESOLVED: "{what}: the off current is within {sigmas:g} standard errors of zero (not resolved "
    "from the noise)",
    OUT_OF_RANGE: "{what}: the value lies outside the swept Vg range of the {direction} sweep "
    "(an extrapolation, not a measurement)",
    UNCERTAIN: "{what}: its standard error on the {direction} sweep is above {limit} (noise; a wider "
    "window or peak_window averages more points)",
}
_KEY = "transfer_robust"
OFF_SIGMAS = 2.0
"""An off current below this many standard errors of its fitted value is not resolved from zero."""
END_SIGMAS = 2.5
"""A peak next to a sweep end must exceed the slope at that end by this many standard errors."""
PEAK_SHARE = 0.8
"""Points of the wide peak fit as a share of the gm peak's full width at half maximum."""
PEAK_DOF = 4
"""Fewest residual degrees of freedom of the wide peak fit (points beyond its coefficients)."""
_NOISE_RISE = 20.0  # a half whose smoothed |Id| rises less than this many noise sigmas is noise
REFERENCE_POINTS = 301
"""Points per sweep (both halves) the automatic windows are sized for: :data:`AUTO_WINDOW` and
:data:`AUTO_PEAK_WINDOW` points there, proportionally more on a finer sweep."""
AUTO_WINDOW, AUTO_PEAK_WINDOW = 11, 41
MAX_WINDOW, MAX_PEAK_WINDOW = 101, 401


def _odd(points: float) -> int:
    n = round(points)
    return n if n % 2 else n + 1


def windows(chunk: TransferChunk, window: int | str, peak_window: int | str) -> tuple[int, int]:
    """The fit windows [points], ``"auto"`` ones resolved for the chunk's sampling.

    An automatic window spans the same share of the sweep as :data:`AUTO_WINDOW` (gm curve) and
    :data:`AUTO_PEAK_WINDOW` (wide peak fit) points of a :data:`REFERENCE_POINTS`-point sweep, never
    fewer points (at most :data:`MAX_WINDOW` and :data:`MAX_PEAK_WINDOW`). A fixed number of points
    spans less and less voltage as a sweep is sampled more finely, and the slope of a fit over a
    narrow span is mostly noise. The sweep's points are the file's (the width of its transfer
    dataset, the same for every chunk), so the windows, and the values, do not depend on chunking.
    A file that mixes sweep densities gets the windows of its widest sweeps (too wide for the
    sparser ones: the subthreshold swing of a 301-point sweep in a 1,201-point-wide file reads +7 %):
    give ``window`` and ``peak_window`` explicitly for such a file.
    """
    scale = max(1.0, chunk.vg.shape[1] / REFERENCE_POINTS)
    w = min(_odd(AUTO_WINDOW * scale), MAX_WINDOW) if window == "auto" else int(window)
    pw = min(_odd(AUTO_PEAK_WINDOW * scale), MAX_PEAK_WINDOW) if peak_window == "auto" else int(peak_window)
    return w, pw


def uncertain(status: np.ndarray, se: np.ndarray, limit: float | np.ndarray) -> np.ndarray:
    """``status`` with ``UNCERTAIN`` where it is OK and the standard error ``se`` is not within ``limit``."""
    out = status.copy()
    with np.errstate(invalid="ignore"):
        out[(out == OK) & ~(se <= limit)] = UNCERTAIN
    return out


def report(chunk: TransferChunk, status: np.ndarray, what: str, **context: object) -> None:
    """File one error record per non-zero status code (the rows' values must be NaN); a sweep
    without a single finite point says so rather than that it has too few."""
    for code in np.unique(status[status != OK]):
        rows = status == code
        if code == TOO_FEW:
            empty = rows & (sweeps(chunk).n_valid == 0)
            if empty.any():
                chunk.report(empty, f"{what}: the sweep has no finite (Vg, Id) point")
                rows &= ~empty
        if rows.any():
            chunk.report(rows, _MESSAGES[int(code)].format(what=what, **context))


def flagged(
    chunk: TransferChunk, values: np.ndarray, status: np.ndarray, what: str, **context: object
) -> np.ndarray:
    """``values`` with NaN wherever ``status`` is not OK, each such row reported (:func:`report`)."""
    report(chunk, status, what, **context)
    return np.where(status == OK, values, np.nan)


@dataclass(frozen=True)
class Fit:
    """Local polynomial fit of Id of every row of a chunk.

    Attributes
    ----------
    sweeps : Sweeps
        Compacted sweeps.
    weights : Smoothed
        Fit weights.
    id0, id1 : ndarray of float64, shape (n, w)
        Fitted Id [A] and dId/dVg [S].
    sign : ndarray of float64, shape (n,)
        Sign of the current where |Id| is largest (P-type currents are usually negative).
    halves : dict of str to (ndarray, ndarray, ndarray, ndarray)
        Per ``forward`` / ``reverse`` / ``raw``: ``start``, ``stop`` (n,), ``(min, max)`` of the
        fitted |Id| (n, 2) and their columns (n, 2).
    sigma : ndarray of float64, shape (n, 2)
        Noise floor [A] (RMS residual at the off end) of the forward and reverse half.
    """

    sweeps: tm.Sweeps
    weights: rm.Smoothed
    id0: np.ndarray
    id1: np.ndarray
    sign: np.ndarray
    halves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    sigma: np.ndarray


def fit(chunk: TransferChunk, window: int, order: int) -> Fit:
    """The chunk's :class:`Fit` for these parameters (cached)."""

    def compute() -> Fit:
        sw = sweeps(chunk)
        weights = rm.smooth(sw, window, order)
        id0, id1 = rm.apply_weights(weights, sw.id)
        n = sw.shape[0]
        halves = {}
        for d in ("forward", "reverse", "raw"):
            start, stop = tm.segment(sw, d)
            ext, cols = np.empty((n, 2)), np.empty((n, 2), np.int64)
            rk.extremes(id0, start, stop, ext, cols)
            halves[d] = (start, stop, ext, cols)
        at_max = id0[np.arange(n), halves["raw"][3][:, 1]] if sw.shape[1] else np.ones(n)
        sign = np.where(at_max < 0, -1.0, 1.0)
        count = np.maximum(window, sw.n_valid // 10)
        sigma = np.column_stack(
            [rm.noise_sigma(sw.id, id0, *halves[d][:2], count) for d in ("forward", "reverse")]
        )
        return Fit(sw, weights, id0, id1, sign, halves, sigma)

    return chunk.cached((_KEY, "fit", window, order), compute)


def turn_on(chunk: TransferChunk, f: Fit, device_type: DeviceType) -> np.ndarray:
    """+1 per row where the device turns on with increasing Vg (N-type), -1 with decreasing (P-type).

    From the parameter, else the file's metadata, else the row's data (the Vg end with the larger
    fitted |Id| is the on side).
    """
    declared = device_type if device_type != "auto" else (chunk.meta.device_type or "").strip().upper()[:1]
    n = f.sweeps.shape[0]
    if declared in ("N", "P"):
        return np.full(n, 1.0 if declared == "N" else -1.0)

    def infer() -> np.ndarray:
        sw = f.sweeps
        if not sw.shape[1]:
            return np.ones(n)
        rows = np.arange(n)
        lo = np.where(np.isfinite(sw.vg), sw.vg, np.inf).argmin(axis=1)
        hi = np.where(np.isfinite(sw.vg), sw.vg, -np.inf).argmax(axis=1)
        return np.where(np.abs(f.id0[rows, lo]) > np.abs(f.id0[rows, hi]), -1.0, 1.0)

    return chunk.cached((_KEY, "turn_on", f.weights.w0.shape[2], f.weights.w0.shape), infer)


def half_mask(sw: tm.Sweeps, direction: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(start, stop, mask)`` of a half or, for ``raw``, of the whole sweep."""
    start, stop = tm.segment(sw, direction)  # type: ignore[arg-type]
    cols = np.arange(sw.shape[1])
    return start, stop, (cols >= start[:, None]) & (cols < stop[:, None])


@dataclass(frozen=True)
class Curve:
    """Narrow-fit (gm curve) peak of one half and its status.

    Attributes
    ----------
    index : ndarray of int64, shape (n,)
        Column of the largest turn-on slope, the half's ``window // 2`` end points excluded (their
        off-centre fits are the noisiest; the wide fit decides whether the peak is at an end).
    status : ndarray of int8, shape (n,)
    on : ndarray of float64, shape (n,)
        Turn-on direction (:func:`turn_on`).
    start, stop : ndarray of int64, shape (n,)
        The half.
    width : ndarray of int64, shape (n,)
        Points of the half with at least half the peak slope (full width at half maximum).
    """

    index: np.ndarray
    status: np.ndarray
    on: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    width: np.ndarray


def _ordinate(sw: tm.Sweeps, form: Form) -> np.ndarray:
    return sw.id if form == "linear" else np.sign(sw.id) * np.sqrt(np.abs(sw.id))


def _slope(chunk: TransferChunk, f: Fit, form: Form, window: int, order: int) -> np.ndarray:
    if form == "linear":
        return f.id1
    key = (_KEY, "sqrt", window, order)
    return chunk.cached(key, lambda: rm.apply_weights(f.weights, _ordinate(f.sweeps, form), value=False)[1])


def curve(
    chunk: TransferChunk, direction: Half, form: Form, window: int, order: int, device_type: DeviceType
) -> Curve:
    """The :class:`Curve` of a half (cached)."""

    def compute() -> Curve:
        f = fit(chunk, window, order)
        on = turn_on(chunk, f, device_type)
        start, stop, ext, _ = f.halves[direction]
        top, wide = np.empty(len(start)), np.empty(len(start), np.int64)
        slope = _slope(chunk, f, form, window, order)
        index = rk.slope_peak(slope, on * f.sign, start, stop, window // 2, top, wide)
        half = 0 if direction == "forward" else 1
        with np.errstate(invalid="ignore"):
            noise = ~(ext[:, 1] - ext[:, 0] >= _NOISE_RISE * f.sigma[:, half])
        status = np.full(len(start), OK, np.int8)
        status[~(top > 0)] = NO_TURN_ON
        status[noise] = NOISE
        status[~f.weights.enough[:, half] | (stop - start < order + 2)] = TOO_FEW
        return Curve(index, status, on, start, stop, wide)

    return chunk.cached((_KEY, "curve", direction, form, window, order, device_type), compute)


@dataclass(frozen=True)
class Elr:
    """Transconductance peak and ELR threshold of one half.

    Attributes
    ----------
    slope_max : ndarray, shape (n,)
        Peak turn-on slope: gm_max [S] (linear form) or peak d sqrt|Id| / dVg [sqrt(A)/V]
        (saturation form), from the wide polynomial fit around the peak.
    vg_at : ndarray, shape (n,)
        Vg [V] of the peak.
    vth : ndarray, shape (n,)
        Threshold voltage [V]: zero of the tangent at the peak.
    se_slope, se_vg, se_vth : ndarray, shape (n,)
        Standard errors of ``slope_max``, ``vg_at`` [V] and ``vth`` [V], from the scatter of the
        points about the wide fit (the extractors flag values whose error is above their limit,
        :func:`uncertain`).
    status, vth_status : ndarray of int8, shape (n,)
        Status of the peak values and of ``vth`` (which may also be ``OUT_OF_RANGE``).
    """

    slope_max: np.ndarray
    vg_at: np.ndarray
    vth: np.ndarray
    se_slope: np.ndarray
    se_vg: np.ndarray
    se_vth: np.ndarray
    status: np.ndarray
    vth_status: np.ndarray


def elr(
    chunk: TransferChunk,
    direction: Half,
    form: Form,
    window: int,
    order: int,
    device_type: DeviceType,
    peak_window: int,
    peak_order: int,
) -> Elr:
    """Peak turn-on slope and ELR threshold of one half (cached; see :class:`Elr`)."""

    def compute() -> Elr:
        c = curve(chunk, direction, form, window, order, device_type)
        f = fit(chunk, window, order)
        sw = f.sweeps
        # The wide fit spans a fixed share of the peak's width (a polynomial cannot follow a peak
        # much narrower than its window), at most peak_window points, and leaves PEAK_DOF residuals
        # to judge the noise by (unless peak_window is smaller).
        low = min(peak_order + 1 + PEAK_DOF, peak_window)
        size = np.clip(np.round(PEAK_SHARE * c.width), low, peak_window).astype(np.int64)
        pf = rm.peak_fit(
            sw.vg, _ordinate(sw, form), c.on * f.sign, c.index, c.start, c.stop, size, peak_order, errors=True
        )
        # A fit of a few points estimates the noise from a few residuals: measured as a z-score, the
        # end test below then passed 7 % of peaks beyond the end on 101-point sweeps (nominal
        # 2.3 %), most of them 5-25 % low. Its limit is the Student-t quantile of those residuals.
        dof = np.minimum(size, c.stop - c.start) - (peak_order + 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            end_excess = pf.end_excess / rm.student_factor(dof, END_SIGMAS)
            vth = pf.x - c.on * (f.sign * pf.y) / pf.slope
            # First order: x* moves Vth only through the curvature of the slope, zero at its maximum.
            se_vth = np.hypot(pf.se_y, pf.y * pf.se_slope / pf.slope) / np.abs(pf.slope)
        status = c.status.copy()
        refit = status == OK
        status[refit & pf.at_edge & ~pf.pinned] = NO_PEAK
        status[refit & pf.at_edge & pf.pinned] = AT_END
        # A maximum just inside a window pinned to a sweep end, no higher than the slope at that end
        # within the noise: the slope may go on rising beyond the swept range.
        status[refit & pf.pinned & ~(end_excess >= END_SIGMAS)] = AT_END
        status[refit & ~(pf.slope > 0)] = NO_TURN_ON
        vg_range = np.empty((len(vth), 2))
        rk.signed_range(sw.vg, c.start, c.stop, vg_range)
        vg_lo, vg_hi = vg_range[:, 0], vg_range[:, 1]
        with np.errstate(invalid="ignore"):
            outside = ~((vth >= vg_lo) & (vth <= vg_hi))
        vth_status = np.where((status == OK) & outside, OUT_OF_RANGE, status).astype(np.int8)
        bad, vth_bad = status != OK, vth_status != OK
        return Elr(
            slope_max=np.where(bad, np.nan, pf.slope),
            vg_at=np.where(bad, np.nan, pf.x),
            vth=np.where(vth_bad, np.nan, vth),
            se_slope=pf.se_slope,
            se_vg=pf.se_x,
            se_vth=se_vth,
            status=status,
            vth_status=vth_status,
        )

    key = (_KEY, "elr", direction, form, window, order, device_type, peak_window, peak_order)
    return chunk.cached(key, compute)


@dataclass(frozen=True)
class Swing:
    """Subthreshold swing of one half.

    Attributes
    ----------
    ss : ndarray, shape (n,)
        Minimum of ``dVg / d log10|Id|`` over the subthreshold region [mV/decade].
    vg_at : ndarray, shape (n,)
        Vg [V] where it occurs.
    bounds : ndarray of int64, shape (n, 3)
        First column, last column + 1 and number of points of the subthreshold region: points of
        the half on the off side of the gm peak whose fitted |Id| is at least ``floor_factor``
        times the noise floor.
    status : ndarray of int8, shape (n,)
    """

    ss: np.ndarray
    vg_at: np.ndarray
    bounds: np.ndarray
    status: np.ndarray


def swing(
    chunk: TransferChunk,
    direction: Half,
    window: int,
    order: int,
    device_type: DeviceType,
    floor_factor: float,
    peak_window: int,
    peak_order: int,
) -> Swing:
    """Subthreshold swing of one half (cached; see :class:`Swing`)."""

    def compute() -> Swing:
        f = fit(chunk, window, order)
        sw = f.sweeps
        gm = curve(chunk, direction, "linear", window, order, device_type)
        start, stop, ext, _ = f.halves[direction]
        half = 0 if direction == "forward" else 1
        rows = np.arange(sw.shape[0])
        floor = np.maximum(ext[:, 0], 3.0 * f.sigma[:, half])
        # Also where the gm peak is flagged: it bounds the region. An empty half (a one-way sweep, a
        # row cut before its turning point) has its index one past the compacted sweeps' last column.
        x_peak = np.full(len(rows), np.nan)
        has = gm.index < sw.shape[1]
        x_peak[has] = sw.vg[rows[has], gm.index[has]]
        bounds = np.empty((len(rows), 3), np.int64)
        col = rk.steepest_region(
            sw.vg, f.id0, f.id1, gm.on, start, stop, x_peak, floor_factor * floor, bounds
        )
        # Natural log of the fitted points only (cheaper than log10); converted below:
        # dVg/dlog10 = ln(10) dVg/dln.
        pf = rm.peak_fit(
            sw.vg, sw.id, gm.on, col, bounds[:, 0], bounds[:, 1], peak_window, peak_order, log=True
        )
        status = np.full(len(rows), OK, np.int8)
        status[pf.at_edge & ((bounds[:, 0] == start) | (bounds[:, 1] == stop))] = AT_END
        status[~(pf.slope > 0)] = NOISE
        status[bounds[:, 2] < window] = TOO_FEW
        upstream = np.isin(gm.status, (TOO_FEW, NOISE, NO_TURN_ON))
        status[upstream] = gm.status[upstream]
        bad = status != OK
        with np.errstate(divide="ignore", invalid="ignore"):
            ss = 1e3 * np.log(10.0) / pf.slope
        return Swing(
            ss=np.where(bad, np.nan, ss), vg_at=np.where(bad, np.nan, pf.x), bounds=bounds, status=status
        )

    return chunk.cached(
        (_KEY, "swing", direction, window, order, device_type, floor_factor, peak_window, peak_order), compute
    )
