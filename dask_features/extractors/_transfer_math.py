"""Vectorised transfer-curve kernels: one call handles every sweep of a chunk.

All functions work on an ``(n, m)`` matrix of sweeps (one row per step) with per-row lengths; there
is no Python loop over steps or points. The definitions are those of oect-infra's ``BatchTransfer``
(see ``/work/shared/oect_reference.md`` §2.2) except where noted:

* NaN points are dropped per row and the rows left-justified (:func:`prepare`), so ragged sweeps and
  gaps only affect their own step.
* The turning point is the sweep's Vg extremum (:func:`turning_points`) rather than the positional
  ``(m - 1) // 2``; both agree on symmetric sweeps.
* A segment (half or whole sweep) too short for the quantity gives NaN, not 0.

Segments are half-open column ranges ``[start, stop)`` per row of the compacted matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from dask_features._buffers import pooled

__all__ = [
    "DX_FLOOR",
    "LOG_FLOOR",
    "Derivative",
    "Direction",
    "Reduction",
    "Sweeps",
    "derivative",
    "derivative_buffer",
    "gate_steps",
    "log_abs",
    "prepare",
    "segment",
    "segment_mask",
    "turning_points",
]

DX_FLOOR = 1e-12
"""|ΔVg| below this [V] is replaced by +1e-12 V, as oect-infra's ``safe_diff`` does."""

LOG_FLOOR = 1e-12
"""|Id| is clipped to at least this [A] before taking its log, as oect-infra does."""

Direction = Literal["forward", "reverse", "raw"]
Reduction = Literal["max", "min", "absmax", "absmin"]


@dataclass(frozen=True)
class Sweeps:
    """Compacted sweeps of a chunk.

    Attributes
    ----------
    vg : ndarray of float64, shape (n, w)
        Gate voltage [V]; row ``i`` holds its ``n_valid[i]`` finite points first, then NaN. May be
        the chunk's own array (never written to).
    id : ndarray of float64, shape (n, w)
        Drain current [A], aligned with ``vg``.
    n_valid : ndarray of int64, shape (n,)
        Finite (Vg, Id) pairs per row.
    turn : ndarray of int64, shape (n,)
        Column of the turning point (last point of the forward half); 0 for empty rows.
    full : bool
        Every row has ``w`` valid points (no padding), which lets kernels skip masking.
    common_turn : int or None
        The turning column when the chunk is ``full`` and every row turns there (symmetric sweeps
        on one grid, the usual case): each half is then the same column slice in every row, so
        kernels can reduce over slices instead of masked copies. None otherwise.
    """

    vg: np.ndarray
    id: np.ndarray
    n_valid: np.ndarray
    turn: np.ndarray
    full: bool
    common_turn: int | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.vg.shape


def prepare(vg: np.ndarray, id_: np.ndarray, lengths: np.ndarray) -> Sweeps:
    """Drop non-finite points per row, left-justify the rest and locate each turning point.

    Parameters
    ----------
    vg, id_ : ndarray of float64, shape (n, m)
        Gate voltage [V] and drain current [A], right-padded with NaN.
    lengths : ndarray of int, shape (n,)
        Points per row before padding; columns at or beyond it are ignored.

    Returns
    -------
    Sweeps
        Width ``w = max(2, max(n_valid))`` so that derivative kernels never see fewer than 2 columns.
    """
    vg = np.asarray(vg, dtype=np.float64)
    id_ = np.asarray(id_, dtype=np.float64)
    lengths = np.asarray(lengths)
    n, m = vg.shape
    with np.errstate(over="ignore", invalid="ignore"):
        # A finite sum means every value is finite (NaN and inf propagate), without an (n, m) mask;
        # a sum that overflows only sends the chunk down the exact path below.
        clean = m >= 2 and not (lengths < m).any() and np.isfinite(vg.sum()) and np.isfinite(id_.sum())
    if clean:
        # Clean rectangular chunk (the common case): use the arrays as they are.
        return _full_sweeps(vg, id_, np.full(n, m, dtype=np.int64))
    cols = np.arange(m)
    valid = np.isfinite(vg) & np.isfinite(id_)
    if (lengths < m).any():
        valid &= cols < lengths[:, None]
    n_valid = valid.sum(axis=1).astype(np.int64)
    if m >= 2 and (n_valid == m).all():
        return _full_sweeps(vg, id_, n_valid)
    w = max(2, int(n_valid.max(initial=0)))
    if np.array_equal(valid, cols < n_valid[:, None]):
        vg_c, id_c = vg[:, :w].copy(), id_[:, :w].copy()
    else:
        # A stable sort of the "invalid" flag moves valid points to the front and keeps their order.
        order = np.argsort(~valid, axis=1, kind="stable")[:, :w]
        vg_c = np.take_along_axis(vg, order, axis=1)
        id_c = np.take_along_axis(id_, order, axis=1)
    if vg_c.shape[1] < w:
        extra = np.full((n, w - vg_c.shape[1]), np.nan)
        vg_c, id_c = np.hstack([vg_c, extra]), np.hstack([id_c, extra])
    pad = np.arange(w) >= n_valid[:, None]
    vg_c[pad] = np.nan
    id_c[pad] = np.nan
    if (n_valid == w).all():
        return _full_sweeps(vg_c, id_c, n_valid)
    return Sweeps(vg_c, id_c, n_valid, turning_points(vg_c, n_valid), full=False)


def _full_sweeps(vg: np.ndarray, id_: np.ndarray, n_valid: np.ndarray) -> Sweeps:
    """Sweeps without padding, with their :attr:`Sweeps.common_turn` when the rows share one."""
    turn = turning_points(vg, n_valid, full=True)
    common = int(turn[0]) if turn.size and (turn == turn[0]).all() else None
    return Sweeps(vg, id_, n_valid, turn, full=True, common_turn=common)


def turning_points(vg: np.ndarray, n_valid: np.ndarray, *, full: bool = False) -> np.ndarray:
    """Column of each sweep's turning point: its Vg extremum farthest from the first point.

    An up-first sweep turns at its first maximum, a down-first sweep at its first minimum; on a
    symmetric double sweep of ``m`` points this is oect-infra's ``(m - 1) // 2``. A single-direction
    sweep turns at its last point, so its reverse half is empty. Ties (as far up as down) count as
    up-first.

    Parameters
    ----------
    vg : ndarray of float64, shape (n, w)
        Compacted gate voltage [V] (valid points first, NaN after).
    n_valid : ndarray of int64, shape (n,)
        Valid points per row.
    full : bool, default False
        No row has padding (skips masking).

    Returns
    -------
    ndarray of int64, shape (n,)
        0 for rows without points.
    """
    if full:
        hi = lo = vg
    else:
        valid = np.arange(vg.shape[1]) < n_valid[:, None]
        hi = np.where(valid, vg, -np.inf)
        lo = np.where(valid, vg, np.inf)
    i_max, i_min = hi.argmax(axis=1), lo.argmin(axis=1)
    rows = np.arange(vg.shape[0])
    v0 = vg[:, 0]
    with np.errstate(invalid="ignore"):
        up = (hi[rows, i_max] - v0) >= (v0 - lo[rows, i_min])
    turn = np.where(up, i_max, i_min)
    return np.where(n_valid > 0, turn, 0).astype(np.int64)


def segment(sweeps: Sweeps, direction: Direction) -> tuple[np.ndarray, np.ndarray]:
    """Column range ``[start, stop)`` of a half or of the whole sweep, per row.

    ``forward`` runs up to and including the turning point, ``reverse`` from the point after it to
    the end, ``raw`` is the whole sweep (oect-infra's F/R/raw). Rows with fewer than 2 valid points
    get an empty range: no feature is defined for them.
    """
    n_valid, turn = sweeps.n_valid, sweeps.turn
    start = np.zeros_like(n_valid)
    if direction == "forward":
        stop = np.minimum(turn + 1, n_valid)
    elif direction == "reverse":
        start, stop = np.minimum(turn + 1, n_valid), n_valid
    elif direction == "raw":
        stop = n_valid
    else:
        raise ValueError(f"direction must be 'forward', 'reverse' or 'raw', got {direction!r}")
    stop = np.where(n_valid < 2, start, stop)
    return start, stop


def segment_mask(sweeps: Sweeps, direction: Direction) -> np.ndarray | None:
    """Boolean ``(n, w)`` mask of the columns in :func:`segment`; None when every column is in it."""
    cols = np.arange(sweeps.shape[1])
    if direction == "raw":
        return None if sweeps.full else cols < sweeps.n_valid[:, None]
    if direction == "forward":
        return cols <= sweeps.turn[:, None]
    if sweeps.full:
        return cols > sweeps.turn[:, None]
    return (cols > sweeps.turn[:, None]) & (cols < sweeps.n_valid[:, None])


def _flat(a: np.ndarray) -> np.ndarray:
    """``a`` as a 1-D C-ordered view (a copy only if ``a`` is not C-contiguous).

    Neighbour differences and sums run on the flattened matrix: one contiguous pass is several
    times faster than the same ufunc on offset 2-D views. Row ``i``'s last column then meets row
    ``i + 1``'s first; callers overwrite or ignore those cross-row entries.
    """
    return np.ascontiguousarray(a).reshape(-1)


def gate_steps(sweeps: Sweeps) -> np.ndarray:
    """``ΔVg`` [V] between neighbours, ``|ΔVg| < 1e-12`` replaced by ``+1e-12`` (oect-infra's rule).

    Parameters
    ----------
    sweeps : Sweeps
        The chunk's sweeps.

    Returns
    -------
    ndarray of float64, shape (n, w)
        Column ``j < w - 1`` holds ``vg[:, j + 1] - vg[:, j]``, NaN where either neighbour is
        padding; the last column is NaN (there is no next point), so the layout matches the sweeps'
        for flat arithmetic in :func:`derivative`.
    """
    n, w = sweeps.shape
    vg = _flat(sweeps.vg)
    flat = derivative_buffer((n, w))[: n * w]
    np.subtract(vg[1:], vg[:-1], out=flat[:-1])
    dx = flat.reshape(n, w)
    dx[:, -1] = np.nan
    with np.errstate(invalid="ignore"):
        # |dx| < floor, without an (n, w) float temporary (NaN compares False either way).
        tiny = dx < DX_FLOOR
        tiny &= dx > -DX_FLOOR
    if tiny.any():
        dx[tiny] = DX_FLOOR
    return dx


def log_abs(id_: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``ln(clip(|Id|, 1e-12 A, inf))``; NaN stays NaN.

    oect-infra uses log10. Only the *position* of the extreme log-slope is ever reported (Von), and
    ``ln = log10 * ln(10)`` is a positive multiple, so the position is the same; ``ln`` is about twice
    as fast as ``log10``, and the log is the most expensive operation of the transfer features.

    Parameters
    ----------
    id_ : ndarray of float64
        Drain current [A].
    out : ndarray of float64, optional
        Buffer of the same shape for the result.
    """
    out = np.abs(id_, out=out)
    np.maximum(out, LOG_FLOOR, out=out)
    with np.errstate(invalid="ignore"):
        return np.log(out, out=out)


@dataclass(frozen=True)
class Derivative:
    """Whole-sweep derivative of a chunk plus what the halves need to be differentiated alone.

    Attributes
    ----------
    d : ndarray of float64, shape (n, w)
        oect-infra's ``safe_diff`` of each whole sweep [units of y per V]; NaN past ``n_valid``.
    edges : dict of {"forward", "reverse"} to (ndarray of int64, ndarray of float64), each shape (n,)
        Per half, the column where it ends inside the sweep (forward: the turning point; reverse:
        the point after it) and the one-sided slope that replaces ``d`` there.
    """

    d: np.ndarray
    edges: dict[str, tuple[np.ndarray, np.ndarray]]


def derivative_buffer(shape: tuple[int, int]) -> np.ndarray:
    """A 1-D float64 buffer of ``n * w + 1`` values for :func:`derivative` (contents undefined).

    Its ``[1:]`` part, reshaped to ``(n, w)``, may hold the ordinate: the derivative then replaces it
    without any other ``(n, w)`` array.

    The memory comes from the process's pool (:func:`dask_features._buffers.pooled`): a fresh
    large array costs page faults when the heap was trimmed after the previous chunk, as glibc does
    by default (measured: about 470 page faults per 400 x 301 chunk otherwise).
    """
    n, w = shape
    return pooled((n * w + 1,))


def derivative(
    y: np.ndarray, dx: np.ndarray, sweeps: Sweeps, *, buffer: np.ndarray | None = None
) -> Derivative:
    """oect-infra's ``safe_diff`` of every whole sweep at once.

    At an interior point the derivative is the mean of the two adjacent one-sided slopes
    ``q_i = (y[i+1] - y[i]) / dx_i``; at the first and last valid point it is the one adjacent slope.
    Rows with fewer than 2 points are NaN.

    Parameters
    ----------
    y : ndarray of float64, shape (n, w)
        Ordinate (Id [A] or ln|Id|), NaN past ``n_valid``; may be ``buffer[1:]`` (overwritten).
    dx : ndarray of float64, shape (n, w)
        From :func:`gate_steps`.
    sweeps : Sweeps
        The chunk's sweeps.
    buffer : ndarray of float64, optional
        From :func:`derivative_buffer`; holds the result (a new one is made otherwise).

    Returns
    -------
    Derivative
        ``d`` is a view of the buffer.
    """
    n, w = y.shape
    size = n * w
    if buffer is None or buffer.shape != (size + 1,) or not buffer.flags.c_contiguous:
        buffer = derivative_buffer((n, w))
    # Everything runs as flat passes (see _flat) in the one buffer, whose element 1 + k receives
    # the slope q_k between flat points k and k + 1 (the cross-row ones, over dx's NaN, are NaN).
    # numpy updates an operand in place without a copy when the other one reads ahead of it, which
    # is the case for each pass here (also when y is buffer[1:]: y[k] is read before q_k replaces it).
    yf = _flat(y)
    q = buffer[1:size]
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        np.subtract(yf[1:], yf[:-1], out=q)
        np.divide(q, _flat(dx)[:-1], out=q)
    slopes = buffer[1:].reshape(n, w)  # slopes[:, j] = q from column j to j + 1, for j < w - 1
    edges = _half_edges(slopes, sweeps)
    first, last = slopes[:, 0].copy(), slopes[:, w - 2].copy()
    n_valid = sweeps.n_valid
    ragged = np.flatnonzero((n_valid >= 2) & (n_valid < w))
    ragged_end = n_valid[ragged] - 1
    ragged_slope = slopes[ragged, ragged_end - 1]
    with np.errstate(over="ignore", invalid="ignore"):
        # buffer[1 + k] = q_k + q_{k+1} = 2 d_{k+1}: the derivative is buffer[:size]. The first and
        # last column of each row get cross-row sums, replaced below. x * 0.5 is x / 2 exactly
        # (scaling by a power of two), and cheaper.
        inner = buffer[1 : size - 1]
        np.add(inner, buffer[2:size], out=inner)
        np.multiply(inner, 0.5, out=inner)
    d = buffer[:size].reshape(n, w)
    d[:, 0] = first
    d[:, -1] = last
    d[ragged, ragged_end] = ragged_slope
    return Derivative(d, edges)


def _half_edges(q: np.ndarray, sweeps: Sweeps) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """:attr:`Derivative.edges` from the one-sided slopes ``q`` (column ``j``: from ``j`` to ``j + 1``)."""
    n, w = sweeps.shape
    edges = {}
    turn = sweeps.common_turn
    if turn is not None:
        # Same columns in every row (full sweeps, n_valid = w): segment() reduces to constants.
        stop, start = turn + 1, min(turn + 1, w)
        for direction, col, slope in (("forward", stop - 1, stop - 2), ("reverse", start, start)):
            edges[direction] = (np.full(n, col, dtype=np.int64), q[:, min(max(slope, 0), w - 2)].copy())
        return edges
    rows = np.arange(n)
    for direction in ("forward", "reverse"):
        start_, stop_ = segment(sweeps, direction)  # type: ignore[arg-type]
        cols, slopes = (stop_ - 1, stop_ - 2) if direction == "forward" else (start_, start_)
        edges[direction] = (cols, q[rows, np.clip(slopes, 0, w - 2)])
    return edges
