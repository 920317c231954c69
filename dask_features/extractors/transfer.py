"""Transfer-curve extractors (``transfer.*``), vectorised over the steps of a chunk.

Names, parameters and output shapes follow oect-infra's features_v2 extractors so existing configs
keep working; the values follow its ``BatchTransfer`` definitions (derivative rule, absolute maximum,
log-slope onset, 1e-12 clip, first-occurrence argmax). Where oect-infra is wrong we differ, on
purpose:

* NaN points are dropped per step and ragged steps are handled per step; a bad step gives NaN for
  that step only (oect-infra fails the whole experiment).
* The sweep is split at its Vg extremum, not at the middle of the padded array (identical on
  symmetric sweeps, correct on asymmetric ones). A single-direction sweep is all "forward".
* An empty half, or a step with fewer than 2 valid points, gives NaN and a per-step report
  (oect-infra gives 0 or silently swallows the error).
* Inputs are used in float64 (oect-infra rounds them to float32 first).
* ``device_type="auto"`` takes the experiment's polarity from its file metadata.

The compacted sweeps, the gate steps, the derivatives of Id and of ln|Id|, the half masks, a
work buffer and each extremum are computed at most once per chunk (:meth:`~dask_features.io.chunks.TransferChunk.cached`), so
``gm_max`` and ``gm_max_coords`` of the same half, or ``Von`` forward and reverse, share the work.
On the usual chunk (full sweeps turning at one column) the derivative features need none of these
matrices: one compiled pass per derivative and reduction gives both halves' extremes, bit for bit
the same (:func:`~._transfer_extremes.half_slope_extremes`).

Units: Vg in V, Id in A (as stored in the file), gm in S (A/V).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from dask_features.extractors import _transfer_math as tm
from dask_features.extractors._transfer_extremes import HALF_REDUCTIONS, extreme, half_slope_extremes
from dask_features.extractors.registry import Output, register
from dask_features.io.chunks import TransferChunk

__all__ = [
    "I_max",
    "I_min",
    "Von",
    "absI_max",
    "absI_min",
    "gm_max",
    "gm_min",
]

DeviceType = Literal["N", "P", "auto"]
HalfOrBoth = Literal["forward", "reverse", "both"]
AnyDirection = Literal["raw", "forward", "reverse", "both"]
Quantity = Literal["gm", "dlog", "I"]

_KEY = "transfer"  # namespace of this module's entries in the chunk memo


# --- shared per-chunk work -----------------------------------------------------------------------


def sweeps(chunk: TransferChunk) -> tm.Sweeps:
    """The chunk's compacted sweeps and turning points, computed once per chunk."""
    return chunk.cached((_KEY, "sweeps"), lambda: tm.prepare(chunk.vg, chunk.id, chunk.lengths))


def _mask(chunk: TransferChunk, direction: tm.Direction) -> np.ndarray | None:
    return chunk.cached((_KEY, "mask", direction), lambda: tm.segment_mask(sweeps(chunk), direction))


def _scratch(chunk: TransferChunk) -> np.ndarray:
    """A reusable (n, w) work buffer: each large temporary costs page faults, not just arithmetic.

    Only the masked extremes (sweeps without a common turning point) need it.
    """
    return chunk.cached((_KEY, "scratch"), lambda: np.empty(sweeps(chunk).shape))


def derivative(chunk: TransferChunk, quantity: Literal["gm", "dlog"]) -> tm.Derivative:
    """Whole-sweep derivative (and half-end slopes), computed once per chunk.

    Parameters
    ----------
    chunk : TransferChunk
        The steps.
    quantity : {"gm", "dlog"}
        ``gm`` = dId/dVg [S]; ``dlog`` = d ln(max(|Id|, 1e-12 A)) / dVg [1/V] (oect-infra uses log10;
        the positions of its extremes, all that is reported, are the same).

    Returns
    -------
    Derivative
        Aligned with the compacted :func:`sweeps`.
    """

    def compute() -> tm.Derivative:
        sw = sweeps(chunk)
        dx = chunk.cached((_KEY, "dx"), lambda: tm.gate_steps(sw))
        if quantity == "gm":
            return tm.derivative(sw.id, dx, sw)
        buffer = tm.derivative_buffer(sw.shape)  # the log is differentiated in place
        log_id = tm.log_abs(sw.id, out=buffer[1:].reshape(sw.shape))
        return tm.derivative(log_id, dx, sw, buffer=buffer)

    return chunk.cached((_KEY, "derivative", quantity), compute)


def _half_slope_extremes(
    chunk: TransferChunk, quantity: Literal["gm", "dlog"], reduction: tm.Reduction
) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`~._transfer_extremes.half_slope_extremes` of the chunk, computed once per chunk."""
    key = (_KEY, "half extremes", quantity, reduction)
    return chunk.cached(key, lambda: half_slope_extremes(sweeps(chunk), quantity == "dlog", reduction))


def _extreme(
    chunk: TransferChunk, quantity: Quantity, direction: tm.Direction, reduction: tm.Reduction
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(value, Vg at it, Id at it, ok)`` per row; NaN where the segment has no value."""

    def compute() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        sw = sweeps(chunk)
        rows = np.arange(sw.shape[0])
        if quantity != "I" and direction != "raw" and reduction in HALF_REDUCTIONS:
            found = _half_slope_extremes(chunk, quantity, reduction)
            if found is not None:
                half = int(direction == "reverse")
                value, index = found[0][:, half].copy(), found[1][:, half].copy()
                return value, sw.vg[rows, index], sw.id[rows, index], np.ones(len(rows), dtype=bool)
        edge: tuple[np.ndarray, np.ndarray] | None = None
        if quantity == "I":
            values = sw.id
        else:
            deriv = derivative(chunk, quantity)
            values, edge = deriv.d, deriv.edges.get(direction)
        value, index, ok = extreme(
            values,
            sw,
            direction,
            reduction=reduction,
            # With a common turning point the halves are column slices: no mask is needed.
            mask="auto" if sw.common_turn is not None else _mask(chunk, direction),
            edge=edge,
            scratch=None if sw.common_turn is not None else _scratch(chunk),
        )
        vg_at = np.where(ok, sw.vg[rows, index], np.nan)
        id_at = np.where(ok, sw.id[rows, index], np.nan)
        return value, vg_at, id_at, ok

    return chunk.cached((_KEY, "extreme", quantity, direction, reduction), compute)


def _report_missing(chunk: TransferChunk, ok: np.ndarray, direction: str, quantity: Quantity) -> None:
    """File one message per reason for the rows without a value."""
    if ok.all():
        return
    n_valid = sweeps(chunk).n_valid
    bad = ~ok
    reasons = (
        (bad & (n_valid == 0), "no finite (Vg, Id) point"),
        (bad & (n_valid == 1), "only 1 finite (Vg, Id) point"),
        (
            bad & (n_valid >= 2),
            f"{direction} part of the sweep has too few points for {quantity} "
            "(single-direction sweep or turning point at the end?)",
        ),
    )
    for rows, message in reasons:
        if rows.any():
            chunk.report(rows, message)


def _device_type(chunk: TransferChunk, device_type: DeviceType) -> Literal["N", "P"]:
    raw = (chunk.meta.device_type or "").strip().upper()[:1]
    if device_type in ("N", "P"):
        if raw in ("N", "P") and raw != device_type:
            # The old tool silently applied a per-config constant; a mismatch gives a meaningless Von.
            chunk.report(
                np.ones(chunk.n_steps, bool),
                f"config device_type {device_type!r} but the file says {chunk.meta.device_type!r}: "
                f"Von follows the {device_type} rule (use device_type: auto)",
            )
        return device_type
    if raw in ("N", "P"):
        return raw  # type: ignore[return-value]
    if chunk.n_steps:  # one record per chunk: it holds for every step of the file alike
        chunk.report(
            0,
            f"device_type 'auto': file metadata gives {chunk.meta.device_type!r}; assumed 'N' for every step",
        )
    return "N"


def _no_onset_below_clip(chunk: TransferChunk, values: np.ndarray) -> np.ndarray:
    """NaN (and a report) for steps whose |Id| never exceeds the log clip: their log-slope is flat."""

    def flat() -> np.ndarray:
        # fmax skips NaN without nanmax's copy; an all-NaN row gives NaN (not flat: reported elsewhere).
        # max |Id| = max(max Id, -min Id): no (n, m) temporary for |Id|.
        if not chunk.id.shape[1]:
            return np.zeros(chunk.n_steps, bool)  # no samples: NaN peaks, not flat
        peak = np.fmax(np.fmax.reduce(chunk.id, axis=1), -np.fmin.reduce(chunk.id, axis=1))
        return peak <= tm.LOG_FLOOR

    rows = chunk.cached(("transfer", "below_log_floor"), flat)
    if rows.any():
        chunk.report(rows, f"|Id| never exceeds the {tm.LOG_FLOOR:g} A log clip: no onset (Von is NaN)")
        values = values.copy()
        values[rows] = np.nan
    return values


def extreme_feature(
    chunk: TransferChunk,
    quantity: Quantity,
    direction: str,
    reduction: tm.Reduction,
    what: Literal["value", "vg", "id", "coords"] = "value",
) -> np.ndarray:
    """Stack the requested part of :func:`_extreme` for one direction or ``both`` halves (``coords``:
    Vg and Id columns, per half)."""
    halves: tuple[tm.Direction, ...] = ("forward", "reverse") if direction == "both" else (direction,)  # type: ignore[assignment]
    cols = []
    for half in halves:
        value, vg_at, id_at, ok = _extreme(chunk, quantity, half, reduction)
        _report_missing(chunk, ok, half, quantity)
        if what == "coords":
            cols.extend([vg_at, id_at])
        else:
            cols.append({"value": value, "vg": vg_at, "id": id_at}[what])
    return cols[0].copy() if len(cols) == 1 else np.column_stack(cols)


def onset(
    chunk: TransferChunk,
    direction: str,
    device_type: DeviceType,
    what: Literal["vg", "id", "coords"] = "vg",
) -> np.ndarray:
    """The requested part of :func:`extreme_feature` at the onset of a half (see :func:`Von`): the
    extreme of the log-slope that ``device_type`` gives, NaN where |Id| stays under the log clip."""
    reduction: tm.Reduction = "max" if _device_type(chunk, device_type) == "N" else "min"
    return _no_onset_below_clip(chunk, extreme_feature(chunk, "dlog", direction, reduction, what))


# --- output declarations -----------------------------------------------------------------------


def _scalar_or_pair(params: Mapping[str, Any]) -> Output:
    return Output.vector(2) if params.get("direction") == "both" else Output.scalar()


# --- extractors -------------------------------------------------------------------------------


@register("transfer.gm_max", source="transfer", output=_scalar_or_pair, unit="S")
def gm_max(
    chunk: TransferChunk, *, direction: HalfOrBoth = "forward", device_type: DeviceType = "N"
) -> np.ndarray:
    """Peak transconductance ``max |dId/dVg|`` of a sweep half [S].

    The derivative is oect-infra's: mean of the two adjacent one-sided slopes at interior points,
    the one-sided slope at the ends of the half, ``|ΔVg| < 1e-12 V`` replaced by ``+1e-12 V``.

    Parameters
    ----------
    chunk : TransferChunk
        Steps to process.
    direction : {"forward", "reverse", "both"}, default "forward"
        Half of the sweep; ``both`` gives ``[forward, reverse]`` columns.
    device_type : {"N", "P", "auto"}, default "N"
        Accepted for config compatibility; |gm| does not depend on it.

    Returns
    -------
    ndarray of float64, shape (n,) or (n, 2)
        NaN (and a report) for a half with fewer than 2 points.
    """
    return extreme_feature(chunk, "gm", direction, "absmax")


@register("transfer.gm_min", source="transfer", output=_scalar_or_pair, unit="S")
def gm_min(
    chunk: TransferChunk, *, direction: HalfOrBoth = "forward", device_type: DeviceType = "N"
) -> np.ndarray:
    """Signed minimum of ``dId/dVg`` over a sweep half [S] (oect-infra's ``gm_min``).

    Parameters
    ----------
    chunk : TransferChunk
        Steps to process.
    direction : {"forward", "reverse", "both"}, default "forward"
        Half of the sweep; ``both`` gives ``[forward, reverse]`` columns.
    device_type : {"N", "P", "auto"}, default "N"
        Accepted for config compatibility; unused.

    Returns
    -------
    ndarray of float64, shape (n,) or (n, 2)
    """
    return extreme_feature(chunk, "gm", direction, "min")


@register("transfer.Von", source="transfer", output=_scalar_or_pair, unit="V")
def Von(
    chunk: TransferChunk, *, direction: HalfOrBoth = "forward", device_type: DeviceType = "N"
) -> np.ndarray:
    """Onset voltage: Vg [V] of the steepest change of ``log10(max(|Id|, 1e-12 A))`` with Vg.

    The point of maximum (N-type) or minimum (P-type) ``d log10|Id| / dVg`` (same derivative rule as
    :func:`gm_max`), first occurrence on ties. It is the steepest-subthreshold point, not a fitted
    threshold voltage, and it is quantised to the Vg grid.

    Parameters
    ----------
    chunk : TransferChunk
        Steps to process.
    direction : {"forward", "reverse", "both"}, default "forward"
        Half of the sweep; ``both`` gives ``[forward, reverse]`` columns.
    device_type : {"N", "P", "auto"}, default "N"
        ``N`` takes the argmax, ``P`` the argmin; ``auto`` reads the experiment's metadata and falls
        back to ``N`` (with a report) when the file does not say.

    Returns
    -------
    ndarray of float64, shape (n,) or (n, 2)
    """
    return onset(chunk, direction, device_type)


def _current(chunk: TransferChunk, direction: AnyDirection, reduction: tm.Reduction) -> np.ndarray:
    return extreme_feature(chunk, "I", direction, reduction)


@register("transfer.absI_max", source="transfer", output=_scalar_or_pair, unit="A")
def absI_max(
    chunk: TransferChunk, *, direction: AnyDirection = "raw", device_type: DeviceType = "N"
) -> np.ndarray:
    """Largest ``|Id|`` [A] over the whole sweep (``raw``, oect-infra's only choice) or a half.

    Parameters
    ----------
    chunk : TransferChunk
        Steps to process.
    direction : {"raw", "forward", "reverse", "both"}, default "raw"
        Whole sweep or a half; ``both`` gives ``[forward, reverse]`` columns.
    device_type : {"N", "P", "auto"}, default "N"
        Accepted for config compatibility; unused.

    Returns
    -------
    ndarray of float64, shape (n,) or (n, 2)
        NaN for steps with fewer than 2 valid points or an empty half.
    """
    return _current(chunk, direction, "absmax")


@register("transfer.absI_min", source="transfer", output=_scalar_or_pair, unit="A")
def absI_min(
    chunk: TransferChunk, *, direction: AnyDirection = "raw", device_type: DeviceType = "N"
) -> np.ndarray:
    """Smallest ``|Id|`` [A] (off-current magnitude) over the sweep or a half.

    Parameters are those of :func:`absI_max`.
    """
    return _current(chunk, direction, "absmin")


@register("transfer.I_max", source="transfer", output=_scalar_or_pair, unit="A")
def I_max(
    chunk: TransferChunk, *, direction: AnyDirection = "raw", device_type: DeviceType = "N"
) -> np.ndarray:
    """Signed maximum of Id [A] over the sweep or a half.

    Parameters are those of :func:`absI_max`.
    """
    return _current(chunk, direction, "max")


@register("transfer.I_min", source="transfer", output=_scalar_or_pair, unit="A")
def I_min(
    chunk: TransferChunk, *, direction: AnyDirection = "raw", device_type: DeviceType = "N"
) -> np.ndarray:
    """Signed minimum of Id [A] over the sweep or a half.

    Parameters are those of :func:`absI_max`.
    """
    return _current(chunk, direction, "min")
