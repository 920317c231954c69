"""Edge detection and segmentation for ``transient.tau_on_off`` (pure NumPy, no Dask, no I/O).

:func:`detect_edges`
    Folds each step on its known period (sample-index phase, so no edge search over the raw trace),
    averages all cycles and finds the rising and falling edge of the cycle-averaged profile with a
    multi-scale box contrast. One O(n) pass plus O(samples per period x log) work.
:func:`segment_step`
    Turns the two edge phases into the start index and common length of every on and off
    half-cycle of a step (no loop over cycles), marking half-cycles cut by the record as partial.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dask_features.extractors.tau._status import EDGE_CONTRAST, MIN_SEGMENT, StartRule, TauStatus

__all__ = ["StepEdges", "StepSegments", "detect_edges", "detect_step_edges", "segment_step"]


@dataclass(frozen=True)
class StepEdges:
    """Edge phases of one step, in samples from the step's first sample (modulo the period).

    ``*_lo`` is a lower bound of the edge (the first sample after the edge is ``>= lo``), ``*_first``
    an upper bound (that sample is ``<= first``), ``*_steep`` the steepest point of the transition and
    ``*_delayed`` is True when the steepest point lies clearly after the edge (an S-shaped, delayed
    transition). ``h_*`` is the box width (samples) at which the edge was resolved.

    Attributes
    ----------
    status : int
        :class:`TauStatus` code; OK, NO_PERIOD, TOO_SHORT or NO_EDGES.
    samples_per_period : float
        Period / sample interval (need not be an integer).
    sign : float
        +1 or -1: polarity of the step; ``sign * I`` rises in the on half-cycle.
    level, scale : float
        Minimum and range of the cycle-averaged ``sign * I`` [A as stored].
    noise : float
        Per-sample noise standard deviation estimated from the profile [A as stored].
    """

    status: int
    samples_per_period: float
    sign: float = 1.0
    level: float = 0.0
    scale: float = 1.0
    noise: float = np.nan
    h_rise: int = 0
    rise_lo: float = np.nan
    rise_first: float = np.nan
    rise_steep: float = np.nan
    rise_delayed: bool = False
    h_fall: int = 0
    fall_lo: float = np.nan
    fall_first: float = np.nan
    fall_steep: float = np.nan
    fall_delayed: bool = False

    def anchors(self, start: StartRule, skip_samples: int) -> tuple[float, float]:
        """Phase of the first fitted sample of the on and the off half-cycle [samples]."""

        def pick(first: float, steep: float, delayed: bool) -> float:
            return (steep if start == "steepest" and delayed else first) + skip_samples

        return (
            pick(self.rise_first, self.rise_steep, self.rise_delayed),
            pick(self.fall_first, self.fall_steep, self.fall_delayed),
        )


#: Consecutive bins of contrast below the noise floor that mark the plateau before an edge.
_QUIET_RUN = 8


def detect_edges(current: np.ndarray, offsets: np.ndarray, samples_per_period: np.ndarray) -> list[StepEdges]:
    """Find the rising and falling edge of every step from its cycle-averaged profile.

    Steps that share the same number of samples per period are processed together, as rows of one
    matrix (no loop over steps or cycles).

    Parameters
    ----------
    current : ndarray of float64, shape (total,)
        Drain current of all steps, concatenated [A as stored], NaN allowed.
    offsets : ndarray of int64, shape (n_steps + 1,)
        Step ``i`` is ``current[offsets[i]:offsets[i + 1]]``.
    samples_per_period : ndarray of float64, shape (n_steps,)
        Period / sample interval of each step [samples]; need not be an integer; NaN = unknown.

    Returns
    -------
    list of StepEdges
        One per step; ``status`` is not OK when the step cannot be segmented.

    Notes
    -----
    Samples are folded by index, ``phase = i mod L``, and averaged per whole-sample phase bin, which
    divides the noise by sqrt(n_cycles). On the profile ``q`` the contrast
    ``D_h[i] = mean(q[i:i+h]) - mean(q[i-h:i])`` (circular) is computed for h = 1, 2, 4, ... up to
    L/8; each edge takes the smallest h whose peak exceeds 8 noise units (noise from the MAD of
    second differences of ``q``). Rising and falling edges are located independently, so any duty
    cycle and phase work.
    """
    z = np.asarray(current, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    spp = np.asarray(samples_per_period, dtype=np.float64)
    lengths = np.diff(offsets)
    out: list[StepEdges] = [StepEdges(int(TauStatus.NO_PERIOD), float(L)) for L in spp]
    valid = np.isfinite(spp) & (spp >= 4)
    for i in np.flatnonzero(valid & (lengths < spp)):
        out[i] = StepEdges(int(TauStatus.TOO_SHORT), float(spp[i]))
    todo = np.flatnonzero(valid & (lengths >= spp))
    keys = np.round(spp[todo], 9)
    for key in np.unique(keys):
        rows = todo[keys == key]
        for i, edges in zip(rows, _detect_group(z, offsets, rows, float(spp[rows[0]])), strict=True):
            out[i] = edges
    return out


def _row_of(lengths: np.ndarray) -> np.ndarray:
    """Row number of every sample of rows with the given lengths (np.repeat is slow for long rows)."""
    marks = np.zeros(int(lengths.sum()) + 1, np.intp)
    np.add.at(marks, np.cumsum(lengths)[:-1], 1)
    return np.cumsum(marks[:-1])


def _fold(
    z: np.ndarray, starts: np.ndarray, lengths: np.ndarray, L: float, nb: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-step sums and counts of the finite samples in each of ``nb`` phase bins, shape (S, nb)."""
    S = starts.size
    if abs(L - round(L)) < 1e-9:
        # Whole samples per period: a reshape and one sum per step; NaN-aware only when needed.
        tot = np.empty((S, nb))
        cnt = np.empty((S, nb))
        cols = np.arange(nb)
        for r, (a, n) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):
            full, rem = divmod(n, nb)
            seg = z[a : a + n]
            t = seg[: full * nb].reshape(full, nb).sum(axis=0)
            t[:rem] += seg[full * nb :]
            if np.isfinite(t).all():
                tot[r], cnt[r] = t, full + (cols < rem)
            else:
                ok = np.isfinite(seg)
                clean = np.where(ok, seg, 0.0)
                padded = np.zeros((full + 1) * nb)
                padded[:n] = clean
                mask = np.zeros((full + 1) * nb)
                mask[:n] = ok
                tot[r] = padded.reshape(full + 1, nb).sum(axis=0)
                cnt[r] = mask.reshape(full + 1, nb).sum(axis=0)
        return tot, cnt
    row_of = _row_of(lengths)
    local = np.arange(row_of.size) - (np.cumsum(lengths) - lengths)[row_of]
    zz = z[local + starts[row_of]]
    b = np.minimum(np.mod(local, L).astype(np.intp), nb - 1)
    finite = np.isfinite(zz)
    if not finite.all():
        row_of, b, zz = row_of[finite], b[finite], zz[finite]
    key = row_of * nb + b
    cnt = np.bincount(key, minlength=S * nb).reshape(S, nb).astype(np.float64)
    tot = np.bincount(key, weights=zz, minlength=S * nb).reshape(S, nb)
    return tot, cnt


def _detect_group(z: np.ndarray, offsets: np.ndarray, rows: np.ndarray, L: float) -> list[StepEdges]:
    """:func:`detect_edges` for steps ``rows`` that share ``L`` samples per period."""
    S = rows.size
    nb = int(np.ceil(L - 1e-9))
    starts, lengths = offsets[rows], offsets[rows + 1] - offsets[rows]
    tot, cnt = _fold(z, starts, lengths, L, nb)
    # Polarity from the mean current: for a square-wave response it is dominated by the plateaus.
    sign = np.where(tot.sum(axis=1) < 0, -1.0, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = sign[:, None] * tot / cnt
    have = cnt > 0
    usable = have.sum(axis=1) >= 4
    for r in np.flatnonzero(usable & ~have.all(axis=1)):
        p[r, ~have[r]] = np.interp(
            np.flatnonzero(~have[r]), np.flatnonzero(have[r]), p[r, have[r]], period=nb
        )
    p[~usable] = 0.0
    level = p.min(axis=1)
    scale = p.max(axis=1) - level
    usable &= scale > 0
    q = (p - level[:, None]) / np.where(usable, scale, 1.0)[:, None]
    d2 = np.roll(q, -1, axis=1) - 2 * q + np.roll(q, 1, axis=1)
    mad = np.median(np.abs(d2 - np.median(d2, axis=1, keepdims=True)), axis=1)
    # Floor for noise-free input, where the MAD is 0 and any contrast would pass.
    sigma = np.maximum(1.4826 * mad / np.sqrt(6.0), 1e-9)
    from dask_features.extractors.tau._kernels import edge_scan  # numba: imported on first use

    h, pos, delayed = edge_scan(np.ascontiguousarray(q), sigma, EDGE_CONTRAST, _QUIET_RUN)
    noise = sigma * scale * np.sqrt(cnt.mean(axis=1))
    out = []
    for s in range(S):
        if not usable[s]:
            out.append(StepEdges(int(TauStatus.NO_EDGES), L, float(sign[s])))
            continue
        profile = (L, float(sign[s]), float(level[s]), float(scale[s]), float(noise[s]))
        if not (h[0, s] and h[1, s]):
            out.append(StepEdges(int(TauStatus.NO_EDGES), *profile))
            continue
        # Per direction (rise, fall): box width, lo, first, steepest point, delayed.
        edges = [v for j in range(2) for v in (int(h[j, s]), *pos[j, s].tolist(), bool(delayed[j, s]))]
        out.append(StepEdges(int(TauStatus.OK), *profile, *edges))
    return out


def detect_step_edges(current: np.ndarray, samples_per_period: float) -> StepEdges:
    """:func:`detect_edges` for a single step."""
    z = np.asarray(current, dtype=np.float64)
    return detect_edges(z, np.array([0, z.size]), np.array([samples_per_period], dtype=np.float64))[0]


# ---------------------------------------------------------------------------------------------------------
# Segmentation


@dataclass(frozen=True)
class StepSegments:
    """Half-cycle windows of one step; row ``j`` is cycle ``cycle[j]``.

    Attributes
    ----------
    cycle : ndarray of int64, shape (c,)
        Cycle number; cycle 0 is the first whose rising edge lies in the record, -1 a partial cycle
        before it.
    on_start, off_start : ndarray of int64, shape (c,)
        Index of the first fitted sample of each half-cycle, relative to the step (may be < 0 or >= n
        for half-cycles outside the record).
    m_on, m_off : int
        Common number of fitted samples of every on / off half-cycle.
    on_status, off_status : ndarray of int64, shape (c,)
        OK, PARTIAL or TOO_SHORT.
    """

    cycle: np.ndarray
    on_start: np.ndarray
    off_start: np.ndarray
    m_on: int
    m_off: int
    on_status: np.ndarray
    off_status: np.ndarray


def segment_step(
    n: int, edges: StepEdges, *, start: StartRule = "steepest", skip_samples: int = 0
) -> StepSegments:
    """Start index and length of every on and off half-cycle of a step of ``n`` samples.

    Each window runs from the anchor (first sample after the edge, or the steepest point of a delayed
    edge, plus ``skip_samples``) to the last sample certainly before the next edge. When the period is
    not a whole number of samples one more sample is trimmed at each end, because folding smears the
    edge phase by up to one sample. All windows of one direction get the same length (the shortest).
    """
    L = edges.samples_per_period
    ra, fa = edges.anchors(start, skip_samples)
    shift = np.floor(edges.rise_lo / L) * L
    rlo, ra = edges.rise_lo - shift, ra - shift
    fshift = np.floor((edges.fall_lo - rlo) / L) * L
    flo, fa = edges.fall_lo - fshift, fa - fshift
    guard = 0 if abs(L - round(L)) < 1e-9 else 1
    kmin = -1 if rlo > 0 else 0
    kmax = int(np.ceil((n - rlo) / L)) - 1
    k = np.arange(kmin, max(kmax, kmin) + 1)
    kl = k * L

    def ceil(x: np.ndarray) -> np.ndarray:
        return np.ceil(x - 1e-9).astype(np.int64)

    on_start = ceil(ra + kl) + guard
    on_end = ceil(flo + kl) - guard
    off_start = ceil(fa + kl) + guard
    off_end = ceil(rlo + L + kl) - guard
    m_on, m_off = int((on_end - on_start).min()), int((off_end - off_start).min())

    def status(s: np.ndarray, m: int) -> np.ndarray:
        out = np.where((s < 0) | (s + m > n), int(TauStatus.PARTIAL), int(TauStatus.OK))
        return out if m >= MIN_SEGMENT else np.full_like(out, int(TauStatus.TOO_SHORT))

    return StepSegments(k, on_start, off_start, m_on, m_off, status(on_start, m_on), status(off_start, m_off))
