"""Edge detection and segmentation for ``transient.tau_on_off`` (no Dask, no I/O).

:func:`detect_edges`
    Folds each step on its known period (sample-index phase, so no edge search over the raw trace),
    averages its last whole periods, estimates the local noise of every phase and locates the rising
    and falling edge of the cycle-averaged profile with the workflow's duty, halving box contrasts and a
    least-squares change point (compiled in :mod:`._locate`). One O(n) pass plus O(samples per period)
    work per step.
:func:`segment_step`
    Turns the two edge phases into the start index and common length of every on and off
    half-cycle of a step (no loop over cycles), marking half-cycles cut by the record as partial.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dask_features.extractors.tau._locate import locate_edges
from dask_features.extractors.tau._status import MIN_SEGMENT, StartRule, TauStatus

__all__ = ["StepEdges", "StepSegments", "detect_edges", "detect_step_edges", "segment_step"]


@dataclass(frozen=True)
class StepEdges:
    """Edge phases of one step, in samples from the step's first sample (modulo the period).

    ``*_lo`` is where the transition departs from the previous one's exponential (its first sample),
    ``*_first`` the same sample (the anchor of ``start="edge"``), ``*_delayed`` is True when the
    steepest one-sample step lies at least 2 samples after the departure (an S-shaped, delayed
    transition) and ``*_steep`` the anchor of ``start="steepest"``: that steepest point for a delayed
    edge, else the first sample of the least-squares exponential (the change point). ``h_*`` is the
    last box width (samples) at which the edge was bracketed.

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
        Median local per-sample noise standard deviation of the step [A as stored].
    source : int
        Where the edges came from: 1 = the workflow's period and duty (a square wave of that duty
        aligned with the profile, then refined), 2 = the period and the profile alone (duty unknown).
    k_rise, k_fall : float
        Rate [1/sample] of the exponential fitted to the cycle-averaged profile from each change point.
    amp_rise, amp_fall : float
        Its amplitude at the change point, |a|, in units of ``scale``.
    var_rise, var_fall : float
        Mean local per-sample noise variance over each window (change point to the next edge), in units
        of ``scale**2``.
    misfit_rise, misfit_fall : float
        Mean squared misfit of the profile's exponential over the window beyond the profile's noise, in
        units of ``scale**2`` (0 for an exact first-order response).
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
    source: int = 0
    k_rise: float = np.nan
    k_fall: float = np.nan
    amp_rise: float = np.nan
    amp_fall: float = np.nan
    var_rise: float = np.nan
    var_fall: float = np.nan
    misfit_rise: float = np.nan
    misfit_fall: float = np.nan

    def anchors(self, start: StartRule, skip_samples: int) -> tuple[float, float]:
        """Phase of the first fitted sample of the on and the off half-cycle [samples]."""
        if start == "steepest":
            return self.rise_steep + skip_samples, self.fall_steep + skip_samples
        return self.rise_first + skip_samples, self.fall_first + skip_samples


def detect_edges(
    current: np.ndarray, offsets: np.ndarray, samples_per_period: np.ndarray, duty: np.ndarray | None = None
) -> list[StepEdges]:
    """Find the rising and falling edge of every step from its cycle-averaged profile.

    Steps that share the same number of samples per period are processed together, as rows of one
    matrix (no loop over steps or cycles in Python).

    Parameters
    ----------
    current : ndarray of float64, shape (total,)
        Drain current of all steps, concatenated [A as stored], NaN allowed.
    offsets : ndarray of int64, shape (n_steps + 1,)
        Step ``i`` is ``current[offsets[i]:offsets[i + 1]]``.
    samples_per_period : ndarray of float64, shape (n_steps,)
        Period / sample interval of each step [samples]; need not be an integer; NaN = unknown.
    duty : ndarray of float64, shape (n_steps,), optional
        Workflow duty (fraction of the period at the top gate level); NaN or None = unknown.

    Returns
    -------
    list of StepEdges
        One per step; ``status`` is not OK when the step cannot be segmented.

    Notes
    -----
    Samples are folded by index, ``phase = i mod L``, over the last whole number of periods (so every
    phase bin averages the same cycles and a deviating partial cycle at the start cannot make a step in
    the profile), and averaged per whole-sample phase bin, which divides the noise by sqrt(n_cycles).
    The local noise of every bin is the fold of squared second differences (robust to the transition by
    a running median), so a noise that grows with the current is seen where it is. Edges are then
    located by :func:`._locate.locate_edges`.
    """
    z = np.asarray(current, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    spp = np.asarray(samples_per_period, dtype=np.float64)
    duty_arr = np.full(spp.size, np.nan) if duty is None else np.asarray(duty, dtype=np.float64)
    lengths = np.diff(offsets)
    out: list[StepEdges] = [StepEdges(int(TauStatus.NO_PERIOD), float(L)) for L in spp]
    valid = np.isfinite(spp) & (spp >= 4)
    for i in np.flatnonzero(valid & (lengths < spp)):
        out[i] = StepEdges(int(TauStatus.TOO_SHORT), float(spp[i]))
    todo = np.flatnonzero(valid & (lengths >= spp))
    keys = np.round(spp[todo], 9)
    if todo.size:
        w = _second_difference_power(z, offsets)
    for key in np.unique(keys):
        rows = todo[keys == key]
        found = _detect_group(z, w, offsets, rows, float(spp[rows[0]]), duty_arr[rows])
        for i, edges in zip(rows, found, strict=True):
            out[i] = edges
    return out


def _second_difference_power(z: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``(z[i+1] - 2 z[i] + z[i-1])^2 / 6`` per sample: the noise variance for white noise on a smooth signal.

    Step ends copy their neighbour (a second difference across two steps means nothing).
    """
    w = np.empty_like(z)
    if z.size < 3:
        w[:] = np.nan
        return w
    inner = w[1:-1]
    np.subtract(z[2:], z[1:-1], out=inner)
    inner -= z[1:-1]
    inner += z[:-2]
    np.multiply(inner, inner, out=inner)
    inner *= 1.0 / 6.0
    w[0], w[-1] = w[1], w[-2]
    first, last = offsets[:-1], offsets[1:] - 1
    ok = (offsets[1:] - offsets[:-1]) >= 3
    w[first[ok]] = w[first[ok] + 1]
    w[last[ok]] = w[last[ok] - 1]
    return w


def _row_of(lengths: np.ndarray) -> np.ndarray:
    """Row number of every sample of rows with the given lengths (np.repeat is slow for long rows)."""
    marks = np.zeros(int(lengths.sum()) + 1, np.intp)
    np.add.at(marks, np.cumsum(lengths)[:-1], 1)
    return np.cumsum(marks[:-1])


def _fold(
    z: np.ndarray, starts: np.ndarray, lengths: np.ndarray, skip: np.ndarray, L: float, nb: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-step sums and counts of the finite samples in each of ``nb`` phase bins, shape (S, nb).

    Step ``r`` contributes ``z[starts[r] + skip[r] : starts[r] + lengths[r]]``; the phase of sample ``i`` of
    a step is ``i mod L`` whatever ``skip`` is.
    """
    S = starts.size
    if abs(L - round(L)) < 1e-9:
        # Whole samples per period: a reshape and one sum per step; NaN-aware only when needed.
        # Plain ndarray: the other branch's np.bincount with weights is float64 too, which its stub does not say.
        tot: np.ndarray = np.empty((S, nb))
        cnt: np.ndarray = np.empty((S, nb))
        for r, (a, n, k) in enumerate(zip(starts.tolist(), lengths.tolist(), skip.tolist(), strict=True)):
            seg = z[a + k : a + n]
            full = seg.size // nb
            block = seg[: full * nb].reshape(full, nb)
            t = block.sum(axis=0)
            if np.isfinite(t).all():
                c = np.full(nb, float(full))
            else:
                ok = np.isfinite(block)
                t = np.where(ok, block, 0.0).sum(axis=0)
                c = ok.sum(axis=0).astype(np.float64)
            # Column j holds phase (k + j) mod nb: rotate it into place (np.roll is slow for small rows).
            shift = k % nb
            tot[r, shift:], tot[r, :shift] = t[: nb - shift], t[nb - shift :]
            cnt[r, shift:], cnt[r, :shift] = c[: nb - shift], c[nb - shift :]
        return tot, cnt
    used = lengths - skip
    row_of = _row_of(used)
    local = np.arange(row_of.size) - (np.cumsum(used) - used)[row_of] + skip[row_of]
    zz = z[local + starts[row_of]]
    b = np.minimum(np.mod(local, L).astype(np.intp), nb - 1)
    finite = np.isfinite(zz)
    if not finite.all():
        row_of, b, zz = row_of[finite], b[finite], zz[finite]
    key = row_of * nb + b
    cnt = np.bincount(key, minlength=S * nb).reshape(S, nb).astype(np.float64)
    tot = np.bincount(key, weights=zz, minlength=S * nb).reshape(S, nb)
    return tot, cnt


def _detect_group(
    z: np.ndarray, w: np.ndarray, offsets: np.ndarray, rows: np.ndarray, L: float, duty: np.ndarray
) -> list[StepEdges]:
    """:func:`detect_edges` for steps ``rows`` that share ``L`` samples per period."""
    S = rows.size
    nb = int(np.ceil(L - 1e-9))
    starts, lengths = offsets[rows], offsets[rows + 1] - offsets[rows]
    # Fold the last whole number of periods only.
    skip = (lengths - np.floor(np.floor(lengths / L) * L + 1e-9)).astype(np.int64)
    tot, cnt = _fold(z, starts, lengths, skip, L, nb)
    wtot, wcnt = _fold(w, starts, lengths, skip, L, nb)
    # Polarity from the mean current: for a square-wave response it is dominated by the plateaus.
    sign = np.where(tot.sum(axis=1) < 0, -1.0, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = sign[:, None] * tot / cnt
        var = wtot / wcnt
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
    var = np.where(np.isfinite(var), var, np.nan) / np.where(usable, scale, 1.0)[:, None] ** 2
    # A running median over 5 bins removes the second difference of the transition itself.
    if nb >= 20:
        wrapped = np.concatenate([var[:, -2:], var, var[:, :2]], axis=1)
        var = np.sort(np.lib.stride_tricks.sliding_window_view(wrapped, 5, axis=1), axis=2)[:, :, 2]
    # An all-NaN step has no noise (handled below); left out of nanmedian, which would warn, rather
    # than silenced with catch_warnings, which is not thread-safe (the threads of a local run).
    finite = np.isfinite(var)
    some = finite.any(axis=1)
    med = np.full(len(var), np.nan)
    if some.any():
        med[some] = np.nanmedian(np.where(finite, var, np.nan)[some], axis=1)
    # Floor for noise-free input, where any contrast would pass.
    floor = np.maximum(np.where(np.isfinite(med), med, 0.0) * 1e-4, 1e-18)
    var = np.maximum(np.where(np.isfinite(var), var, floor[:, None]), floor[:, None])
    duty_ok = np.where(np.isfinite(duty) & (duty > 0) & (duty < 1), duty, np.nan)
    pos, fit, source = locate_edges(
        np.ascontiguousarray(q),
        np.ascontiguousarray(var),
        np.ascontiguousarray(np.maximum(cnt, 1.0)),
        duty_ok,
    )
    # A transition must stand out of the profile's noise: amplitude of each fitted exponential against the
    # noise of the profile over its first 5 tau.
    n_cyc = np.maximum(cnt.mean(axis=1), 1.0)
    strong = np.all(np.abs(fit[:, :, 2]) > 8.0 * np.sqrt(fit[:, :, 3] / n_cyc) + 1e-12, axis=0)
    strong &= np.all(np.isfinite(fit[:, :, 0]) & (fit[:, :, 0] > 0), axis=0)
    noise = np.sqrt(med) * scale
    out = []
    for s in range(S):
        if not usable[s]:
            out.append(StepEdges(int(TauStatus.NO_EDGES), L, float(sign[s])))
            continue
        profile = (L, float(sign[s]), float(level[s]), float(scale[s]), float(noise[s]))
        if not strong[s]:
            out.append(StepEdges(int(TauStatus.NO_EDGES), *profile))
            continue
        out.append(
            StepEdges(
                int(TauStatus.OK),
                *profile,
                *_edge(pos[0, s]),
                *_edge(pos[1, s]),
                source=int(source[s]),
                k_rise=float(fit[0, s, 0]),
                k_fall=float(fit[1, s, 0]),
                amp_rise=float(abs(fit[0, s, 2])),
                amp_fall=float(abs(fit[1, s, 2])),
                var_rise=float(fit[0, s, 3]),
                var_fall=float(fit[1, s, 3]),
                misfit_rise=float(fit[0, s, 4]),
                misfit_fall=float(fit[1, s, 4]),
            )
        )
    return out


def _edge(located: np.ndarray) -> tuple[int, float, float, float, bool]:
    """``(h, lo, first, steep, delayed)`` of one edge from its ``(departure, change point, h, steepest)``."""
    dep, cp, h, steep = (int(x) for x in located)
    delayed = steep - dep >= 2
    # A delayed (S-shaped) edge is anchored at its steepest point, where a single exponential
    # starts to hold; any other at the least-squares change point.
    return h, float(dep), float(dep), float(steep if delayed else cp), delayed


def detect_step_edges(current: np.ndarray, samples_per_period: float, duty: float = np.nan) -> StepEdges:
    """:func:`detect_edges` for a single step."""
    z = np.asarray(current, dtype=np.float64)
    return detect_edges(
        z, np.array([0, z.size]), np.array([samples_per_period], dtype=np.float64), np.array([duty])
    )[0]


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
