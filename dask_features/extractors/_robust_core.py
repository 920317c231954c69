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
    "Curve",
    "Elr",
    "Fit",
    "Swing",
    "current",
    "curve",
    "elr",
    "fit",
    "half_mask",
    "report",
    "swing",
    "turn_on",
    "value_sigma",
]

DeviceType = Literal["N", "P", "auto"]
Half = Literal["forward", "reverse"]
Form = Literal["linear", "saturation"]

# Status codes, most fundamental first (a row gets the first that applies).
OK, TOO_FEW, NOISE, NO_TURN_ON, AT_END, NO_PEAK, OUT_OF_RANGE = range(7)

_MESSAGES = {
    TOO_FEW: "{what}: the {direction} sweep has too few points for a {window}-point order-{order} fit "
    "(needs at least {min_points})",
    NOISE: "{what}: the {direction} sweep does not rise above its noise floor",
    NO_TURN_ON: "{what}: |Id| never increases in the turn-on direction of a {device} device on the "
    "{direction} sweep (wrong device_type?)",
    AT_END: "{what}: its defining point is the end of the {direction} sweep, so the true extreme "
    "may lie outside the swept range",
    NO_PEAK: "{what}: the wide fit around the gm peak of the {direction} sweep has no maximum inside "
    "its window (no clear peak)",
    OUT_OF_RANGE: "{what}: the value lies outside the swept Vg range of the {direction} sweep "
    "(an extrapolation, not a measurement)",
}
_KEY = "transfer_robust"
_NOISE_RISE = 20.0  # a half whose smoothed |Id| rises less than this many noise sigmas is noise


def report(chunk: TransferChunk, status: np.ndarray, what: str, **context: object) -> None:
    """File one error record per non-zero status code (the rows' values must be NaN)."""
    for code in np.unique(status[status != OK]):
        chunk.report(status == code, _MESSAGES[int(code)].format(what=what, **context))


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
    sigma : ndarray of float64, shape (n, 2)
        Noise floor [A] (RMS residual of the off region) of the forward and reverse half.
    """

    sweeps: tm.Sweeps
    weights: rm.Smoothed
    id0: np.ndarray
    id1: np.ndarray
    sign: np.ndarray
    sigma: np.ndarray


def half_mask(sw: tm.Sweeps, direction: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(start, stop, mask)`` of a half or, for ``raw``, of the whole sweep."""
    start, stop = tm.segment(sw, direction)  # type: ignore[arg-type]
    cols = np.arange(sw.shape[1])
    return start, stop, (cols >= start[:, None]) & (cols < stop[:, None])


def fit(chunk: TransferChunk, window: int, order: int) -> Fit:
    """The chunk's :class:`Fit` for these parameters (cached)."""

    def compute() -> Fit:
        sw = sweeps(chunk)
        weights = rm.smooth(sw, window, order)
        id0, id1 = rm.apply_weights(weights, sw.id)
        n = sw.shape[0]
        mag = np.where(np.isfinite(id0), np.abs(id0), -np.inf)
        sign = np.where(id0[np.arange(n), mag.argmax(axis=1)] < 0, -1.0, 1.0) if sw.shape[1] else np.ones(n)
        sigma = np.column_stack(
            [
                rm.noise_sigma(sw.id, id0, half_mask(sw, d)[2], np.maximum(window, sw.n_valid // 10))
                for d in ("forward", "reverse")
            ]
        )
        return Fit(sw, weights, id0, id1, sign, sigma)

    return chunk.cached((_KEY, "fit", window, order), compute)


def turn_on(chunk: TransferChunk, f: Fit, device_type: DeviceType) -> np.ndarray:
    """+1 per row where the device turns on with increasing Vg (N-type), -1 with decreasing (P-type).

    From the parameter, else the file's metadata, else the row's data (the Vg end with the larger
    fitted |Id| is the on side).
    """
    sw = f.sweeps
    n = sw.shape[0]
    declared = device_type if device_type != "auto" else (chunk.meta.device_type or "").strip().upper()[:1]
    if declared in ("N", "P"):
        return np.full(n, 1.0 if declared == "N" else -1.0)
    if not sw.shape[1]:
        return np.ones(n)
    rows = np.arange(n)
    mag = np.where(np.isfinite(f.id0), np.abs(f.id0), -np.inf)
    hi = np.where(np.isfinite(sw.vg), sw.vg, -np.inf).argmax(axis=1)
    lo = np.where(np.isfinite(sw.vg), sw.vg, np.inf).argmin(axis=1)
    return np.where(mag[rows, lo] > mag[rows, hi], -1.0, 1.0)


def value_sigma(f: Fit, col: np.ndarray) -> np.ndarray:
    """Standard error [A] of the fitted Id at column ``col`` of each row, from the half's noise floor."""
    rows = np.arange(len(col))
    w0 = f.weights.w0
    weights = w0[0, col] if w0.shape[0] == 1 else w0[f.weights.groups, col]
    half = np.where(col <= f.sweeps.turn, 0, 1)
    return f.sigma[rows, half] * np.sqrt(np.square(weights).sum(axis=-1))


def current(
    chunk: TransferChunk, span: str, window: int, order: int, vg: float | None, pick: Literal["max", "min"]
) -> tuple[np.ndarray, np.ndarray]:
    """Fitted |Id| [A] at ``vg`` (linear interpolation) or its max / min over the span, and the status.

    A minimum (off current) that is not 3 standard errors above zero has status ``NOISE``; a ``vg``
    outside the span's range ``OUT_OF_RANGE``.
    """
    f = fit(chunk, window, order)
    sw = f.sweeps
    start, stop, mask = half_mask(sw, span)
    rows = np.arange(sw.shape[0])
    mag = np.where(mask, np.abs(f.id0), np.nan)
    status = np.where(np.isfinite(mag).any(axis=1), OK, TOO_FEW).astype(np.int8)
    if vg is None:
        fill = np.inf if pick == "min" else -np.inf
        work = np.where(np.isfinite(mag), mag, fill)
        col = work.argmin(axis=1) if pick == "min" else work.argmax(axis=1)
        value = mag[rows, col]
    else:
        x = np.where(mask, sw.vg, np.nan)
        last = np.clip(stop - 1, 0, None)
        up = np.where(x[rows, last] >= x[rows, start], 1.0, -1.0)
        with np.errstate(invalid="ignore"):
            before = (up[:, None] * x <= up[:, None] * vg).sum(axis=1)
        j = np.clip(start + before, start + 1, np.maximum(last, start + 1)).clip(1, sw.shape[1] - 1)
        x0, x1 = x[rows, j - 1], x[rows, j]
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(x1 != x0, (vg - x0) / (x1 - x0), 0.0)
            value = mag[rows, j - 1] * (1 - t) + mag[rows, j] * t
            inside = (vg >= np.fmin.reduce(x, axis=1)) & (vg <= np.fmax.reduce(x, axis=1))
        status[(status == OK) & ~inside] = OUT_OF_RANGE
        col = np.where(t > 0.5, j, j - 1)
    if pick == "min":
        with np.errstate(invalid="ignore"):
            resolved = value >= 3.0 * value_sigma(f, col)
        status[(status == OK) & ~resolved] = NOISE
    return np.where(status == OK, value, np.nan), status


@dataclass(frozen=True)
class Curve:
    """Narrow-fit (gm curve) peak of one half and its status.

    Attributes
    ----------
    peak : Peak
        Maximum of the oriented slope of the fitted curve.
    status : ndarray of int8, shape (n,)
    on : ndarray of float64, shape (n,)
        Turn-on direction (:func:`turn_on`).
    y0, y1 : ndarray of float64, shape (n, w)
        Fitted ordinate and slope.
    start, stop : ndarray of int64, shape (n,)
        The half.
    """

    peak: rm.Peak
    status: np.ndarray
    on: np.ndarray
    y0: np.ndarray
    y1: np.ndarray
    start: np.ndarray
    stop: np.ndarray


def _ordinate(sw: tm.Sweeps, form: Form) -> np.ndarray:
    return sw.id if form == "linear" else np.sign(sw.id) * np.sqrt(np.abs(sw.id))


def curve(
    chunk: TransferChunk, direction: Half, form: Form, window: int, order: int, device_type: DeviceType
) -> Curve:
    """The :class:`Curve` of a half (cached)."""

    def compute() -> Curve:
        f = fit(chunk, window, order)
        on = turn_on(chunk, f, device_type)
        sw = f.sweeps
        if form == "linear":
            y0, y1 = f.id0, f.id1
        else:
            y0, y1 = chunk.cached(
                (_KEY, "sqrt", window, order), lambda: rm.apply_weights(f.weights, _ordinate(sw, form))
            )
        start, stop, mask = half_mask(sw, direction)
        # The end points' off-centre fits are the noisiest: a starting point, not a verdict (the wide
        # fit of :func:`elr` decides whether the peak is at the end).
        h = window // 2
        cols = np.arange(sw.shape[1])
        long = (stop - start > 2 * h + 2)[:, None]
        inner = mask & ~(long & ((cols < (start + h)[:, None]) | (cols >= (stop - h)[:, None])))
        pk = rm.peak((on * f.sign)[:, None] * y1, sw.vg, start, stop, inner)
        status = _peak_status(f, direction, window, order, start, stop, mask, pk)
        return Curve(pk, status, on, y0, y1, start, stop)

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
    status, vth_status : ndarray of int8, shape (n,)
        Status of the peak values and of ``vth`` (which may also be ``OUT_OF_RANGE``).
    """

    slope_max: np.ndarray
    vg_at: np.ndarray
    vth: np.ndarray
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
        orient = c.on * f.sign
        pf = rm.peak_fit(
            sw.vg, _ordinate(sw, form), orient, c.peak.index, c.start, c.stop, peak_window, peak_order
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            vth = pf.x - c.on * (f.sign * pf.y) / pf.slope
        status = c.status.copy()
        refit = status == OK
        status[refit & pf.at_edge & ~pf.pinned] = NO_PEAK
        status[refit & pf.at_edge & pf.pinned] = AT_END
        status[refit & ~(pf.slope > 0)] = NO_TURN_ON
        _, _, mask = half_mask(sw, direction)
        xs = np.where(mask, sw.vg, np.nan)
        with np.errstate(invalid="ignore"):
            outside = ~((vth >= np.fmin.reduce(xs, axis=1)) & (vth <= np.fmax.reduce(xs, axis=1)))
        vth_status = np.where((status == OK) & outside, OUT_OF_RANGE, status).astype(np.int8)
        bad, vth_bad = status != OK, vth_status != OK
        return Elr(
            slope_max=np.where(bad, np.nan, pf.slope),
            vg_at=np.where(bad, np.nan, pf.x),
            vth=np.where(vth_bad, np.nan, vth),
            status=status,
            vth_status=vth_status,
        )

    key = (_KEY, "elr", direction, form, window, order, device_type, peak_window, peak_order)
    return chunk.cached(key, compute)


def _peak_status(
    f: Fit,
    direction: Half,
    window: int,
    order: int,
    start: np.ndarray,
    stop: np.ndarray,
    mask: np.ndarray,
    pk: rm.Peak,
) -> np.ndarray:
    half = 0 if direction == "forward" else 1
    mag = np.where(mask, np.abs(f.id0), np.nan)
    with np.errstate(invalid="ignore"):
        rise = np.fmax.reduce(mag, axis=1) - np.fmin.reduce(mag, axis=1)
        noise = ~(rise >= _NOISE_RISE * f.sigma[:, half])
        no_turn_on = ~(pk.value > 0)
    status = np.full(len(start), OK, np.int8)
    for code, rows in (
        (NO_TURN_ON, no_turn_on),
        (NOISE, noise),
        (TOO_FEW, ~f.weights.enough[:, half] | (stop - start < order + 2)),
    ):
        status[rows] = code  # later assignments win: most fundamental reason last
    return status


@dataclass(frozen=True)
class Swing:
    """Subthreshold swing of one half.

    Attributes
    ----------
    ss : ndarray, shape (n,)
        Minimum of ``dVg / d log10|Id|`` over the subthreshold region [mV/decade].
    vg_at : ndarray, shape (n,)
        Vg [V] where it occurs.
    region : ndarray of bool, shape (n, w)
        The subthreshold region: points of the half between the noise floor times ``floor_factor``
        and the gm peak, on the off side of the peak.
    status : ndarray of int8, shape (n,)
    """

    ss: np.ndarray
    vg_at: np.ndarray
    region: np.ndarray
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
        on = turn_on(chunk, f, device_type)
        sw = f.sweeps
        gm = curve(chunk, direction, "linear", window, order, device_type)
        _, dlog = chunk.cached(
            (_KEY, "log", window, order),
            lambda: rm.apply_weights(
                f.weights,
                chunk.cached((_KEY, "log10"), lambda: np.log10(np.maximum(np.abs(sw.id), rm.LOG_CLIP))),
                value=False,
            ),
        )
        start, stop, mask = half_mask(sw, direction)
        half = 0 if direction == "forward" else 1
        rows = np.arange(sw.shape[0])
        mag = np.where(mask, np.abs(f.id0), np.nan)
        floor = np.maximum(np.fmin.reduce(mag, axis=1), 3.0 * f.sigma[:, half])
        x_peak = gm.peak.x  # also where the peak is flagged (e.g. at the sweep end): it bounds the region
        with np.errstate(invalid="ignore"):
            region = (
                mask
                & (on[:, None] * (sw.vg - x_peak[:, None]) < 0)
                & (np.abs(f.id0) >= floor_factor * floor[:, None])
            )
        value, col, count = rm.steepest(on[:, None] * dlog, region)
        cols = np.arange(sw.shape[1])
        r_start = np.where(region, cols, sw.shape[1]).min(axis=1)
        r_stop = np.where(region, cols + 1, 0).max(axis=1)
        logs = chunk.cached((_KEY, "log10"), lambda: np.log10(np.maximum(np.abs(sw.id), rm.LOG_CLIP)))
        pf = rm.peak_fit(sw.vg, logs, on, col, r_start, r_stop, peak_window, peak_order)
        value = pf.slope
        status = np.full(len(rows), OK, np.int8)
        status[pf.at_edge & ((r_start == start) | (r_stop == stop))] = AT_END
        status[~(value > 0)] = NOISE
        status[count < window] = TOO_FEW
        upstream = np.isin(gm.status, (TOO_FEW, NOISE, NO_TURN_ON))
        status[upstream] = gm.status[upstream]
        bad = status != OK
        with np.errstate(divide="ignore"):
            ss = 1e3 / value
        return Swing(
            ss=np.where(bad, np.nan, ss),
            vg_at=np.where(bad, np.nan, pf.x),
            region=region,
            status=status,
        )

    return chunk.cached(
        (_KEY, "swing", direction, window, order, device_type, floor_factor, peak_window, peak_order), compute
    )
