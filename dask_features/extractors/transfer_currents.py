"""On and off currents of a transfer sweep from the local polynomial fit: ``transfer.Ion``, ``Ioff``,
``on_off_ratio``.

The currents are read off the same fit as the robust gm (:mod:`dask_features.extractors.transfer_robust`),
so single noisy samples never define them. An off current that the noise does not resolve from zero
is NaN with an error record, because the ratio would then be the noise's, not the device's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from dask_features.errors import InvalidParameterError
from dask_features.extractors import _robust_core as core
from dask_features.extractors.registry import register
from dask_features.extractors.transfer_robust import COST, Window, check_fit, context
from dask_features.io.chunks import TransferChunk

__all__ = ["Ioff", "Ion", "on_off_ratio"]

Span = Literal["raw", "forward", "reverse"]


def _value_sigma(f: core.Fit, col: np.ndarray) -> np.ndarray:
    """Standard error [A] of the fitted Id at column ``col`` of each row, from the half's noise floor."""
    rows = np.arange(len(col))
    w0 = f.weights.w0
    weights = w0[0, col] if w0.shape[0] == 1 else w0[f.weights.groups, col]
    half = np.where(col <= f.sweeps.turn, 0, 1)
    return f.sigma[rows, half] * np.sqrt(np.square(weights).sum(axis=-1))


def _fitted_current(
    chunk: TransferChunk, span: str, window: int, order: int, vg: float | None, pick: Literal["max", "min"]
) -> tuple[np.ndarray, np.ndarray]:
    """Fitted |Id| [A] at ``vg`` (linear interpolation) or its max / min over the span, and the status
    (the caller masks the flagged rows, :func:`core.flagged`).

    A minimum (off current) less than :data:`core.OFF_SIGMAS` standard errors of the fitted value above
    zero has status ``core.UNRESOLVED``; a ``vg`` outside the span's range ``core.OUT_OF_RANGE``.
    """
    f = core.fit(chunk, window, order)
    sw = f.sweeps
    start, stop, ext, cols = f.halves[span]
    rows = np.arange(sw.shape[0])
    status = np.where(np.isfinite(ext[:, 0]), core.OK, core.TOO_FEW).astype(np.int8)
    if vg is None:
        which = 0 if pick == "min" else 1
        value, col = ext[:, which], cols[:, which]
    else:
        x = np.where(core.half_mask(sw, span)[2], sw.vg, np.nan)
        last = np.clip(stop - 1, 0, None)
        up = np.where(x[rows, last] >= x[rows, start], 1.0, -1.0)
        with np.errstate(invalid="ignore"):
            before = (up[:, None] * x <= up[:, None] * vg).sum(axis=1)
        j = np.clip(start + before, start + 1, np.maximum(last, start + 1)).clip(1, sw.shape[1] - 1)
        x0, x1 = x[rows, j - 1], x[rows, j]
        mag = np.abs(f.id0)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(x1 != x0, (vg - x0) / (x1 - x0), 0.0)
            value = mag[rows, j - 1] * (1 - t) + mag[rows, j] * t
            inside = (vg >= np.fmin.reduce(x, axis=1)) & (vg <= np.fmax.reduce(x, axis=1))
        status[(status == core.OK) & ~inside] = core.OUT_OF_RANGE
        col = np.where(t > 0.5, j, j - 1)
    if pick == "min":
        with np.errstate(invalid="ignore"):
            # Strictly above: an off current of exactly zero (a dead or floored channel, no noise
            # either) is not resolved from zero, and would make the on/off ratio infinite or NaN.
            resolved = value > core.OFF_SIGMAS * _value_sigma(f, col)
        status[(status == core.OK) & ~resolved] = core.UNRESOLVED
    return value, status


def _check_vg(params: Mapping[str, Any]) -> None:
    problems: list[str] = []
    try:
        check_fit(params)
    except InvalidParameterError as exc:
        problems.extend(exc.problems)
    given = [k for k in ("vg", "vg_on", "vg_off") if params.get(k) is not None]
    if given and params["direction"] == "raw":
        problems.append(
            f"{' / '.join(given)} needs direction 'forward' or 'reverse' (a double sweep passes each Vg twice)"
        )
    if problems:
        raise InvalidParameterError(problems)


def _current(
    chunk: TransferChunk, name: str, direction: Span, window: Window, order: int, vg: float | None, pick: str
) -> np.ndarray:
    window, _ = core.windows(chunk, window, "auto")
    value, status = _fitted_current(chunk, direction, window, order, vg, pick)  # type: ignore[arg-type]
    return core.flagged(chunk, value, status, name, **context(direction, window, order, chunk, "auto"))


@register("transfer.Ion", source="transfer", check=_check_vg, unit="A", cost=COST)
def Ion(
    chunk: TransferChunk,
    *,
    direction: Span = "raw",
    vg: float | None = None,
    window: Window = "auto",
    order: int = 3,
) -> np.ndarray:
    """On current [A]: fitted |Id| at gate voltage ``vg``, or its maximum over the span when ``vg`` is None.

    Parameters
    ----------
    chunk : TransferChunk
        Steps to process.
    direction : {"raw", "forward", "reverse"}, default "raw"
        Whole sweep or one half (a given ``vg`` needs a half).
    vg : float, optional
        Gate voltage [V]; the fitted |Id| is interpolated linearly between the two nearest points.
    window : int or "auto", default "auto"
        Fit window (odd, points; ``"auto"``: sized for the sweep's sampling, as for
        :func:`~dask_features.extractors.transfer_robust.gm`).
    order : int, default 3
        Polynomial order of the fit.

    Returns
    -------
    ndarray of float64, shape (n,)
        NaN where flagged: ``vg`` outside the swept range, or a half too short to fit.
    """
    return _current(chunk, "Ion", direction, window, order, vg, "max")


@register("transfer.Ioff", source="transfer", check=_check_vg, unit="A", cost=COST)
def Ioff(
    chunk: TransferChunk,
    *,
    direction: Span = "raw",
    vg: float | None = None,
    window: Window = "auto",
    order: int = 3,
) -> np.ndarray:
    """Off current [A]: fitted |Id| at gate voltage ``vg``, or its minimum over the span when ``vg`` is None.

    Parameters are those of :func:`Ion`. Also flagged (not resolved) when the value is less than 2
    standard errors of the fitted current (from the noise sigma of the half's off end) above zero.
    """
    return _current(chunk, "Ioff", direction, window, order, vg, "min")


@register("transfer.on_off_ratio", source="transfer", check=_check_vg, unit="1", cost=COST)
def on_off_ratio(
    chunk: TransferChunk,
    *,
    direction: Span = "raw",
    vg_on: float | None = None,
    vg_off: float | None = None,
    window: Window = "auto",
    order: int = 3,
) -> np.ndarray:
    """On/off current ratio ``Ion / Ioff`` [-] of :func:`Ion` and :func:`Ioff`.

    Parameters
    ----------
    chunk : TransferChunk
        Steps to process.
    direction : {"raw", "forward", "reverse"}, default "raw"
        Whole sweep or one half (given voltages need a half).
    vg_on, vg_off : float, optional
        Gate voltages [V] of the on and off current; None = maximum and minimum of the fitted |Id|.
    window : int or "auto", default "auto"
        Fit window (odd, points; ``"auto"``: sized for the sweep's sampling, as for
        :func:`~dask_features.extractors.transfer_robust.gm`).
    order : int, default 3
        Polynomial order of the fit.

    Returns
    -------
    ndarray of float64, shape (n,)
        NaN where either current is flagged (an off current in the noise floor gives no ratio).
    """
    on = _current(chunk, "on_off_ratio (Ion)", direction, window, order, vg_on, "max")
    off = _current(chunk, "on_off_ratio (Ioff)", direction, window, order, vg_off, "min")
    return on / off
