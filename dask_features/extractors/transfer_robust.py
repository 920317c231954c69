"""Robust transfer features: smoothed gm, ELR threshold, subthreshold swing, hysteresis, on/off.

The oect-infra-compatible extractors (:mod:`dask_features.extractors.transfer`) use a point
derivative and the steepest log slope; with measurement noise those read high (gm_max) or sit on the
off-current floor (Von). These extractors fit a local polynomial in Vg instead (Savitzky-Golay:
``window`` points, order ``order``, correct on non-uniform Vg spacing and at the ends of each sweep
half, see :mod:`dask_features.extractors._robust_math`) and **flag** every value whose defining point
cannot be trusted: the value is NaN and the errors table gets one record saying why:

* *too few points*: the half has fewer than ``order + 2`` points, or the subthreshold region fewer
  than ``window``;
* *noise floor*: the fitted |Id| of the half rises less than 20 noise sigmas (sigma = RMS residual
  of the fit over the off end of the half);
* *not resolved*: an off current less than 2 standard errors of its fitted value above zero;
* *no turn-on*: |Id| never increases in the device's turn-on direction (wrong ``device_type``);
* *sweep end*: the maximum of the wide fit around the gm peak (or of the log slope) lies at the end
  of the half, or next to it but less than 2.5 standard errors (Student-t: the fit's few residuals
  make the errors uncertain) above the slope at the end, so the true one may lie outside the swept
  range;
* *no clear peak*: the wide fit has its maximum at the edge of its window away from any sweep end;
* *out of range*: an extrapolated voltage (Vth) or a requested Vg lies outside the swept range;
* *uncertain*: the standard error of the value (from the scatter of the points about the wide fit
  around the peak) is above its limit: ``max_rel_se`` of gm_max (2 %), ``max_se_vg`` (25 mV) of its
  Vg, ``max_se_vth`` (10 mV) of Vth. Strong noise makes the peak a noise spike: its value is then
  flagged, not reported.

Common parameters: ``window`` (odd, default ``"auto"``: 11 points on a sweep of 301 points or
fewer, proportionally more on a finer sweep, so the fit spans the same share of the sweep) and
``order`` (default 3) of the fit;
``device_type`` N (turns on with increasing Vg), P (decreasing) or ``auto`` (the file's metadata,
else per step from the data: the Vg end with the larger |Id| is the on side). Current may be stored
signed or as magnitudes; both give the same values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from dask_features._numbers import positive_number, real_number
from dask_features.errors import InvalidParameterError
from dask_features.extractors import _robust_core as core
from dask_features.extractors.registry import Output, register
from dask_features.io.chunks import TransferChunk

__all__ = ["COST", "Vth", "gm", "gm_norm", "hysteresis", "subthreshold_swing"]

DeviceType = core.DeviceType
HalfOrBoth = Literal["forward", "reverse", "both"]
#: A fit window [points], or "auto" (sized for the sweep's sampling, :func:`._robust_core.windows`).
Window = int | Literal["auto"]

MAX_REL_SE = 0.02
"""Default largest standard error of gm_max relative to it (``max_rel_se``)."""
MAX_SE_VG = 0.025
"""Default largest standard error of the gate voltage of the gm peak [V] (``max_se_vg``)."""
MAX_SE_VTH = 0.01
"""Default largest standard error of Vth [V] (``max_se_vth``)."""

COST = 3.0
"""Declared cost [ns per point] of each robust feature, for chunk sizing. The features of a chunk
share one fit: the whole ``transfer_robust`` preset (12 features) measures 1.2-1.4x the compute of
``v2_transfer_basic`` (5 features declared at 5 ns), interleaved in one process."""

GEOMETRY_ATTRS = ("channel_width", "channel_length", "channel_thickness")
"""File (root) attributes read by :func:`gm_norm` when its parameters are not given [m]."""


def _window_problem(
    w_name: str, window: object, o_name: str, order: object, lowest: int, most: int, *, odd: bool
) -> str | None:
    """What is wrong with a (window, order) pair of a fit, or None: the window ``"auto"`` or an
    integer (``odd`` if asked) in ``[order + 2, most]``, the order an integer ``>= lowest``; the
    values are judged once the types are right."""
    if not isinstance(order, int) or not (window == "auto" or isinstance(window, int)):
        return f"{w_name} must be an integer or 'auto' and {o_name} an integer, got {window!r}, {order!r}"
    parity = "odd " if odd else ""
    if order < lowest or (
        isinstance(window, int) and ((odd and window % 2 == 0) or not order + 2 <= window <= most)
    ):
        return (
            f"need {o_name} >= {lowest} and {w_name} 'auto' or {parity}in [{o_name} + 2, {most}]; "
            f"got {w_name}={window!r}, {o_name}={order!r}"
        )
    return None


def check_fit(params: Mapping[str, Any]) -> None:
    """Raise InvalidParameterError listing every problem of the fit parameters (each pair's values
    are checked once its types are right)."""
    problems = [
        p
        for p in (
            _window_problem(
                "window", params["window"], "order", params["order"], 1, core.MAX_WINDOW, odd=True
            ),
            _window_problem(
                "peak_window",
                params.get("peak_window", "auto"),
                "peak_order",
                params.get("peak_order", 4),
                2,
                core.MAX_PEAK_WINDOW,
                odd=False,
            ),
        )
        if p is not None
    ]
    floor = params.get("floor_factor", 1.0)
    if (real_number(floor) or 0.0) < 1.0:
        problems.append(f"floor_factor must be >= 1, got {floor!r}")
    problems.extend(
        f"{name} must be a positive number, got {params[name]!r}"
        for name in ("max_rel_se", "max_se_vg", "max_se_vth")
        if name in params and not positive_number(params[name])
    )
    if problems:
        raise InvalidParameterError(problems)


def _per_half(params: Mapping[str, Any]) -> Output:
    return Output.vector(2) if params.get("direction") == "both" else Output.scalar()


def _halves(direction: str) -> tuple[core.Half, ...]:
    return ("forward", "reverse") if direction == "both" else (direction,)  # type: ignore[return-value]


def _stack(cols: list[np.ndarray]) -> np.ndarray:
    return cols[0].copy() if len(cols) == 1 else np.column_stack(cols)


def context(
    direction: str, window: int, order: int, chunk: TransferChunk, device_type: str, limit: str = ""
) -> dict[str, Any]:
    declared = device_type if device_type != "auto" else (chunk.meta.device_type or "auto-detected")
    return {
        "direction": direction,
        "window": window,
        "order": order,
        "min_points": order + 2,
        "device": declared,
        "sigmas": core.OFF_SIGMAS,
        "limit": limit,
    }


def _gm_status(res: core.Elr, value: str, max_rel_se: float, max_se_vg: float) -> tuple[np.ndarray, str]:
    """Status of gm_max or of its Vg, with ``UNCERTAIN`` above its limit, and the limit as text."""
    peak = core.uncertain(res.status, res.se_slope, max_rel_se * np.abs(res.slope_max))
    if value == "gm_max":
        return peak, f"{max_rel_se:.3g} of the value"
    # Where gm_max itself is uncertain, the peak may be a noise spike: its Vg is no better.
    return core.uncertain(
        peak, res.se_vg, max_se_vg
    ), f"{max_se_vg:.3g} V (or that of gm_max above {max_rel_se:.3g} of it)"


def _vth_status(res: core.Elr, max_se_vth: float, max_rel_se: float) -> tuple[np.ndarray, str]:
    """Status of Vth: flagged above its own limit, and where the gm peak defining it is uncertain
    (the error of Vth is then no longer that of a tangent at a true maximum)."""
    status = core.uncertain(res.vth_status, res.se_vth, max_se_vth)
    status = core.uncertain(status, res.se_slope, max_rel_se * np.abs(res.slope_max))
    return status, f"{max_se_vth:.3g} V (or that of gm_max above {max_rel_se:.3g} of it)"


@register("transfer.gm", source="transfer", output=_per_half, check=check_fit, unit="S", cost=COST)
def gm(
    chunk: TransferChunk,
    *,
    direction: HalfOrBoth = "forward",
    value: Literal["gm_max", "vg_at_gm_max"] = "gm_max",
    window: Window = "auto",
    order: int = 3,
    peak_window: Window = "auto",
    peak_order: int = 4,
    device_type: DeviceType = "auto",
    max_rel_se: float = MAX_REL_SE,
    max_se_vg: float = MAX_SE_VG,
) -> np.ndarray:
    """Peak transconductance of the smoothed sweep: ``gm_max`` [S] or its gate voltage [V].

    ``gm = dId/dVg`` (sign turned so that turn-on is positive for N and P devices) is the slope of a
    least-squares polynomial of order ``order`` through the ``window`` points around each point,
    fitted in Vg. ``gm_max`` is the vertex of the parabola through the largest gm point and its two
    neighbours (removes the grid quantisation); ``vg_at_gm_max`` is its Vg.

    Parameters
    ----------
    chunk : TransferChunk
        Steps to process.
    direction : {"forward", "reverse", "both"}, default "forward"
        Sweep half; ``both`` gives ``[forward, reverse]`` columns.
    value : {"gm_max", "vg_at_gm_max"}, default "gm_max"
        Which quantity to return: gm_max [S] or Vg at it [V].
    window : int or "auto", default "auto"
        Fit window of the gm curve (odd, points); ``"auto"``: 11 points on a sweep of 301 points
        (both halves) or fewer, proportionally more on a finer one (see
        :func:`~dask_features.extractors._robust_core.windows`).
    order : int, default 3
        Polynomial order of the gm curve.
    device_type : {"N", "P", "auto"}, default "auto"
        Turn-on direction (see the module docstring).
    peak_window : int or "auto", default "auto"
        Most points of the wide fit around the peak (it takes 0.8 x the number of points above half
        the peak gm, so a sharp peak is not flattened); ``"auto"``: 41 on a 301-point sweep, scaled
        like ``window``.
    peak_order : int, default 4
        Polynomial order of the wide fit.
    max_rel_se : float, default 0.02
        Largest standard error of ``gm_max`` relative to it (from the scatter of the points about
        the wide fit); a noisier value is flagged.
    max_se_vg : float, default 0.025
        Largest standard error of ``vg_at_gm_max`` [V].

    Returns
    -------
    ndarray of float64, shape (n,) or (n, 2)
        NaN where flagged: too few points, noise floor, no turn-on, maximum at a sweep end, standard
        error above its limit.
    """
    window, peak_window = core.windows(chunk, window, peak_window)
    cols = []
    for half in _halves(direction):
        res = core.elr(chunk, half, "linear", window, order, device_type, peak_window, peak_order)
        status, limit = _gm_status(res, value, max_rel_se, max_se_vg)
        values, what = (res.slope_max, "gm_max") if value == "gm_max" else (res.vg_at, "Vg at gm_max")
        ctx = context(half, window, order, chunk, device_type, limit)
        cols.append(core.flagged(chunk, values, status, f"{what} ({half})", **ctx))
    return _stack(cols)


@register("transfer.Vth", source="transfer", output=_per_half, check=check_fit, unit="V", cost=COST)
def Vth(
    chunk: TransferChunk,
    *,
    direction: HalfOrBoth = "forward",
    form: core.Form = "linear",
    window: Window = "auto",
    order: int = 3,
    peak_window: Window = "auto",
    peak_order: int = 4,
    device_type: DeviceType = "auto",
    max_se_vth: float = MAX_SE_VTH,
    max_rel_se: float = MAX_REL_SE,
) -> np.ndarray:
    """Threshold voltage [V] by linear extrapolation at the transconductance maximum (ELR).

    ``Vth = Vg* - Id(Vg*) / gm(Vg*)`` with ``Vg*`` the gm peak of :func:`gm` and ``Id(Vg*)`` the fitted
    current there: the zero of the tangent to the transfer curve at its steepest point. With
    ``form="saturation"`` the same construction is applied to ``sqrt|Id|`` (saturation regime,
    ``Id ∝ (Vg - Vth)²``): ``Vth = Vg* - sqrt|Id|(Vg*) / (d sqrt|Id| / dVg)(Vg*)``.

    Parameters
    ----------
    chunk : TransferChunk
        Steps to process.
    direction : {"forward", "reverse", "both"}, default "forward"
        Sweep half; ``both`` gives ``[forward, reverse]`` columns.
    form : {"linear", "saturation"}, default "linear"
        Extrapolate Id (linear regime) or sqrt|Id| (saturation regime).
    window, order, device_type, peak_window, peak_order
        As for :func:`gm`.
    max_se_vth : float, default 0.01
        Largest standard error of Vth [V] (from those of the fitted current and slope at the peak).
    max_rel_se : float, default 0.02
        Largest relative standard error of the gm peak that defines Vth (see :func:`gm`).

    Returns
    -------
    ndarray of float64, shape (n,) or (n, 2)
        NaN where flagged: as :func:`gm` (the error of gm_max above ``max_rel_se`` included, not
        the limit on its Vg), where Vth falls outside the swept Vg range, and where its own standard
        error is above ``max_se_vth``.
    """
    window, peak_window = core.windows(chunk, window, peak_window)
    cols = []
    for half in _halves(direction):
        res = core.elr(chunk, half, form, window, order, device_type, peak_window, peak_order)
        status, limit = _vth_status(res, max_se_vth, max_rel_se)
        ctx = context(half, window, order, chunk, device_type, limit)
        cols.append(core.flagged(chunk, res.vth, status, f"Vth ({half})", **ctx))
    return _stack(cols)


@register("transfer.hysteresis", source="transfer", check=check_fit, unit="V", cost=COST)
def hysteresis(
    chunk: TransferChunk,
    *,
    form: core.Form = "linear",
    window: Window = "auto",
    order: int = 3,
    peak_window: Window = "auto",
    peak_order: int = 4,
    device_type: DeviceType = "auto",
    max_se_vth: float = MAX_SE_VTH,
    max_rel_se: float = MAX_REL_SE,
) -> np.ndarray:
    """Threshold hysteresis ``Vth_reverse - Vth_forward`` [V] (ELR thresholds of :func:`Vth`).

    Parameters are those of :func:`Vth`. NaN (with the reason of each flagged half) where either
    threshold is flagged.
    """
    window, peak_window = core.windows(chunk, window, peak_window)
    values = []
    for half in ("forward", "reverse"):
        res = core.elr(chunk, half, form, window, order, device_type, peak_window, peak_order)
        status, limit = _vth_status(res, max_se_vth, max_rel_se)
        ctx = context(half, window, order, chunk, device_type, limit)
        values.append(core.flagged(chunk, res.vth, status, f"hysteresis (Vth {half})", **ctx))
    return values[1] - values[0]


@register(
    "transfer.subthreshold_swing",
    source="transfer",
    output=_per_half,
    check=check_fit,
    unit="mV/dec",
    cost=COST,
)
def subthreshold_swing(
    chunk: TransferChunk,
    *,
    direction: HalfOrBoth = "forward",
    window: Window = "auto",
    order: int = 3,
    floor_factor: float = 10.0,
    peak_window: Window = "auto",
    peak_order: int = 4,
    device_type: DeviceType = "auto",
) -> np.ndarray:
    """Subthreshold swing ``SS = min dVg / d log10|Id|`` [mV/decade].

    The slope of ``log10|Id|`` comes from the same local polynomial fit as :func:`gm`. The minimum is
    taken over the subthreshold region of the half: points on the off side of the gm peak whose fitted
    |Id| is at least ``floor_factor`` times the noise floor (the larger of the smallest fitted |Id| of
    the half and 3 noise sigmas), so that the off-current floor and its noise never define it.

    Parameters
    ----------
    chunk : TransferChunk
        Steps to process.
    direction : {"forward", "reverse", "both"}, default "forward"
        Sweep half; ``both`` gives ``[forward, reverse]`` columns.
    floor_factor : float, default 10
        Lower bound of the region in multiples of the noise floor (>= 1).
    window, order, device_type, peak_window, peak_order
        As for :func:`gm`; the wide fit refines the steepest point of ``ln|Id|`` within the region.

    Returns
    -------
    ndarray of float64, shape (n,) or (n, 2)
        NaN where flagged: fewer than ``window`` region points, steepest point at a sweep end, or
        the gm analysis of the half flagged as too short, noise or no turn-on.
    """
    window, peak_window = core.windows(chunk, window, peak_window)
    cols = []
    for half in _halves(direction):
        res = core.swing(
            chunk, half, window, order, device_type, float(floor_factor), peak_window, peak_order
        )
        ctx = context(half, window, order, chunk, device_type)
        core.report(chunk, res.status, f"subthreshold swing ({half})", **{**ctx, "min_points": window})
        cols.append(res.ss)
    return _stack(cols)


def _geometry(chunk: TransferChunk, given: tuple[float | None, ...]) -> tuple[float, ...] | None:
    attrs = chunk.meta.attrs
    values = []
    for value, key in zip(given, GEOMETRY_ATTRS, strict=True):
        if value is None:
            value = attrs.get(key)
        try:
            value = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        if not (np.isfinite(value) and value > 0):
            return None
        values.append(value)
    return tuple(values)


@register("transfer.gm_norm", source="transfer", output=_per_half, check=check_fit, unit="S/m", cost=COST)
def gm_norm(
    chunk: TransferChunk,
    *,
    direction: HalfOrBoth = "forward",
    width: float | None = None,
    length: float | None = None,
    thickness: float | None = None,
    window: Window = "auto",
    order: int = 3,
    peak_window: Window = "auto",
    peak_order: int = 4,
    device_type: DeviceType = "auto",
    max_rel_se: float = MAX_REL_SE,
) -> np.ndarray:
    """Geometry-normalised transconductance ``gm_max / (W d / L)`` [S/m] (gm_max of :func:`gm`).

    For an OECT ``gm = (W d / L) µC* |Vth - Vg|``, so this is the material figure of merit
    ``µC* |Vth - Vg|`` at the gm peak.

    Parameters
    ----------
    chunk : TransferChunk
        Steps to process.
    direction : {"forward", "reverse", "both"}, default "forward"
        Sweep half; ``both`` gives ``[forward, reverse]`` columns.
    width, length, thickness : float, optional
        Channel width W, length L and thickness d [m]; each one not given is read from the file's
        root attribute ``channel_width``, ``channel_length`` or ``channel_thickness`` [m].
    window, order, device_type, peak_window, peak_order, max_rel_se
        As for :func:`gm`.

    Returns
    -------
    ndarray of float64, shape (n,) or (n, 2)
        NaN where gm_max is flagged, and for every step when the geometry is unknown.
    """
    peak = gm(
        chunk,
        direction=direction,
        window=window,
        order=order,
        device_type=device_type,
        peak_window=peak_window,
        peak_order=peak_order,
        max_rel_se=max_rel_se,
    )
    geometry = _geometry(chunk, (width, length, thickness))
    if geometry is None:
        if chunk.n_steps:
            chunk.report(
                np.ones(chunk.n_steps, bool),
                "gm_norm: channel geometry unknown; give width, length, thickness [m] as params or as "
                f"file attributes {', '.join(GEOMETRY_ATTRS)} (positive numbers)",
            )
        return np.full(peak.shape, np.nan)
    w, length_, d = geometry
    return peak * length_ / (w * d)
