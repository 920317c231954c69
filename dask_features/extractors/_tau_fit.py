"""Numerical core of ``transient.tau_on_off``: edge detection, segmentation and a batched exponential fit.

Pure NumPy, no Dask and no I/O. The public extractor lives in :mod:`dask_features.extractors.tau`; its
module docstring holds the definition of tau. The pieces here are:

:func:`detect_edges`
    Folds each step on its known period (sample-index phase, so no edge search over the raw trace),
    averages all cycles and finds the rising and falling edge of the cycle-averaged profile with a
    multi-scale box contrast. One O(n) pass plus O(samples per period x log) work.
:func:`segment_step`
    Turns the two edge phases into the start index and common length of every on and off
    half-cycle of a step (no loop over cycles), marking half-cycles cut by the record as partial.
:func:`fit_exp_rows`
    Fits ``y = c + a exp(-k u)`` (``u`` in samples) to every row of a (K, m) matrix at once: a
    start (the 1/e crossing of the step's mean row, or a linear integral-equation estimate that needs no
    guess), then variable-projection Levenberg-Marquardt on ``ln k`` with ``(c, a)`` solved in closed
    form at every step and a per-row accept/reject. Near a shared start the data sums come from a
    series expansion in ``k`` whose coefficients are one matrix product (:class:`_Moments`), so an
    iteration costs O(1) per row instead of passes over its samples. It converges to the exact
    least-squares fit of each row (|d ln k| < 1e-5).
:func:`fit_chunk`
    Runs the three on all steps of a chunk and assembles one row per cycle with reason codes. Rows of
    equal length from all steps form one batch; slow transients sampled finely are fitted on bin means
    (exact for this model, see :func:`_fit_bucket`).

All statistics work on the normalised, polarity-folded signal ``z = (s*I - level) / scale`` of each
step (``s`` = sign of the step's mean current, ``level``/``scale`` = minimum/range of its
cycle-averaged profile), so results do not depend on the current's unit, scale or polarity.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

import numpy as np

__all__ = [
    "ExpFit",
    "StepEdges",
    "StepSegments",
    "TauStatus",
    "detect_edges",
    "detect_step_edges",
    "fit_chunk",
    "fit_exp_rows",
    "segment_step",
]

StartRule = Literal["steepest", "edge"]

#: Smallest half-cycle window that is fitted (3 free parameters plus at least 2 degrees of freedom).
MIN_SEGMENT = 5
#: Detection threshold of an edge in the cycle-averaged profile, in noise standard deviations.
EDGE_CONTRAST = 8.0
#: tau longer than this many windows: half a tau of exponential is hard to tell from a straight line.
MAX_TAU_WINDOWS = 2.0
#: A transition smaller than this many residual standard deviations is noise (FLAT). Kept low because at
#: 20 dB and tau = 1 sample a genuine transition is only ~4 sd high once the window starts.
MIN_AMPLITUDE_SD = 2.0
#: tau shorter than this many sample intervals cannot be resolved: the transition is over within a sample.
MIN_TAU_SAMPLES = 0.1


class TauStatus(IntEnum):
    """Reason codes of a fitted half-cycle (and of a cycle row, see ``tau.py``).

    Step-level codes (1-3) apply to every row of a step; the others to one half-cycle.
    """

    OK = 0
    #: period or sample interval unknown (NaN workflow values and no explicit parameter) or invalid.
    NO_PERIOD = 1
    #: the step is shorter than one period, or a half-cycle window holds fewer than 5 samples.
    TOO_SHORT = 2
    #: no rising or no falling transition stands out of the noise of the cycle-averaged profile.
    NO_EDGES = 3
    #: the half-cycle window is cut by the start or end of the record (e.g. a transition in progress at t=0).
    PARTIAL = 4
    #: a NaN (or inf) sample inside the half-cycle window.
    NAN_GAP = 5
    #: no transition in the expected direction: amplitude below ``min_amplitude`` x the step's median or
    #: below 2 residual standard deviations, or the wrong sign.
    FLAT = 6
    #: a run of identical extreme values starts within 3 tau of the window start (saturation / compliance).
    CLIPPED = 7
    #: tau above twice the window length or below 0.1 sample interval: not identifiable from this window.
    TAU_OUT_OF_RANGE = 8
    #: R^2 (first 5 tau of the window) below ``min_r2``.
    LOW_R2 = 9
    #: the least-squares solve failed numerically.
    FIT_FAILED = 10


# ---------------------------------------------------------------------------------------------------------
# Edge detection on the folded profile


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


def _locate(d: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bracket and steepest point of the edge whose box contrast ``d`` (rows x bins) peaks."""
    nb = d.shape[1]
    istar = np.argmax(d, axis=1)
    peak = d[np.arange(d.shape[0]), istar]
    # Walk back from the peak while the contrast stays above half of it: with a box of h samples this
    # leaves the edge within [c_left - h, c_left + h - 1], whatever the noise did to the peak's position.
    order = (istar[:, None] - np.arange(nb)) % nb
    back = np.argmax(np.take_along_axis(d, order, axis=1) < 0.5 * peak[:, None], axis=1)
    c_left = istar - back + 1
    first = c_left + h - 1
    delayed = istar - first >= max(2, h)
    return (c_left - h).astype(float), first.astype(float), istar.astype(float), delayed


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
    cs = np.concatenate([np.zeros((S, 1)), np.cumsum(np.tile(q, 3), axis=1)], axis=1)
    i = np.arange(nb) + nb
    found = {"rise": np.zeros(S, bool), "fall": np.zeros(S, bool)}
    res = {
        name: [np.zeros(S, int), *(np.full(S, np.nan) for _ in range(3)), np.zeros(S, bool)] for name in found
    }
    h = 1
    while h <= max(1, nb // 8) and not (found["rise"].all() and found["fall"].all()):
        d = (cs[:, i + h] - 2 * cs[:, i] + cs[:, i - h]) / h
        thr = EDGE_CONTRAST * sigma * np.sqrt(2.0 / h)
        for name, dd in (("rise", d), ("fall", -d)):
            new = ~found[name] & (dd.max(axis=1) > thr)
            if new.any():
                lo, first, steep, delayed = _locate(dd[new], h)
                r = res[name]
                r[0][new], r[1][new], r[2][new], r[3][new], r[4][new] = h, lo, first, steep, delayed
                found[name] |= new
        h *= 2
    noise = sigma * scale * np.sqrt(cnt.mean(axis=1))
    out = []
    for s in range(S):
        if not usable[s]:
            out.append(StepEdges(int(TauStatus.NO_EDGES), L, float(sign[s])))
        elif not (found["rise"][s] and found["fall"][s]):
            out.append(
                StepEdges(
                    int(TauStatus.NO_EDGES),
                    L,
                    float(sign[s]),
                    float(level[s]),
                    float(scale[s]),
                    float(noise[s]),
                )
            )
        else:
            ri, fa = res["rise"], res["fall"]
            out.append(
                StepEdges(
                    int(TauStatus.OK),
                    L,
                    float(sign[s]),
                    float(level[s]),
                    float(scale[s]),
                    float(noise[s]),
                    int(ri[0][s]),
                    float(ri[1][s]),
                    float(ri[2][s]),
                    float(ri[3][s]),
                    bool(ri[4][s]),
                    int(fa[0][s]),
                    float(fa[1][s]),
                    float(fa[2][s]),
                    float(fa[3][s]),
                    bool(fa[4][s]),
                )
            )
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


# ---------------------------------------------------------------------------------------------------------
# Batched fit


@dataclass(frozen=True)
class ExpFit:
    """Per-row least-squares fit of ``y = c + a exp(-k u)``, ``u = 0, 1, ..., m-1`` [samples].

    Attributes
    ----------
    k : ndarray, shape (K,)
        Rate per sample (tau = dt / k).
    c, a : ndarray, shape (K,)
        Asymptote and amplitude at ``u = 0``.
    r2 : ndarray, shape (K,)
        Coefficient of determination over the first ``max(8, 5 / k)`` samples of the row (at most m),
        so a long settled plateau does not inflate it.
    sigma : ndarray, shape (K,)
        Residual standard deviation over the whole row (m - 3 degrees of freedom).
    clipped : ndarray of bool, shape (K,)
        At least ``clip_samples`` samples equal the row's maximum (or minimum) and the first of them
        lies within 3 / k samples of the start.
    n_iter : int
        Levenberg-Marquardt iterations used by the slowest row.
    """

    k: np.ndarray
    c: np.ndarray
    a: np.ndarray
    r2: np.ndarray
    sigma: np.ndarray
    clipped: np.ndarray
    n_iter: int


def _integral_start(y: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Linear estimate of k from ``y(u) = y(0) + k c u - k S(u)``, S the running trapezoid integral of y."""
    K, m = y.shape
    s = np.zeros_like(y)
    np.cumsum(0.5 * (y[:, 1:] + y[:, :-1]), axis=1, out=s[:, 1:])
    s /= m  # columns scaled to O(1) for a well-conditioned 3x3 solve
    v = u / m
    g = np.empty((K, 3, 3))
    g[:, 0, 0] = m
    g[:, 0, 1] = g[:, 1, 0] = v.sum()
    g[:, 1, 1] = v @ v
    g[:, 0, 2] = g[:, 2, 0] = s.sum(axis=1)
    g[:, 1, 2] = g[:, 2, 1] = s @ v
    g[:, 2, 2] = np.einsum("ij,ij->i", s, s)
    rhs = np.stack([y.sum(axis=1), y @ v, np.einsum("ij,ij->i", s, y)], axis=1)
    # A tiny ridge keeps exactly singular rows (constant or noise-free plateau) from raising.
    g += np.eye(3) * (1e-12 * np.trace(g, axis1=1, axis2=2))[:, None, None]
    coef = np.linalg.solve(g, rhs[:, :, None])[:, :, 0]
    return -coef[:, 2] / m


def _exp_table(k: np.ndarray, ncol: int) -> np.ndarray:
    """``exp(-k u)`` for u = 0 .. ncol-1, by doubling: ``q^(n+j) = q^n q^j`` with ``q^n`` from exp.

    One multiplication per element instead of one exp (several times faster), and the error stays
    at about log2(ncol) roundings because every multiplier is computed directly.
    """
    e = np.empty((k.size, ncol))
    if ncol == 0:
        return e
    e[:, 0] = 1.0
    n = 1
    while n < ncol:
        w = min(n, ncol - n)
        np.multiply(e[:, :w], np.exp(-k * n)[:, None], out=e[:, n : n + w])
        n += w
    return e


class _Sums:
    """Row sums of the VP model at given k: everything one Levenberg-Marquardt step needs."""

    __slots__ = ("a", "c", "cost", "det", "se", "see", "sue", "suee", "suuee", "suye", "sye")

    @classmethod
    def build(cls, m: int, sy: np.ndarray, syy: np.ndarray, *sums: np.ndarray) -> _Sums:
        """From ``se, sue, see, suee, suuee, sye, suye``: solve (c, a) and the cost in closed form."""
        out = object.__new__(cls)
        out.se, out.sue, out.see, out.suee, out.suuee, out.sye, out.suye = sums
        out.det = m * out.see - out.se**2
        out.c = (out.see * sy - out.se * out.sye) / out.det
        out.a = (m * out.sye - out.se * sy) / out.det
        # At the linear LS solution r is orthogonal to the basis, so |r|^2 = r.y (no residual pass).
        cost = syy - out.c * sy - out.a * out.sye
        out.cost = np.where(np.isfinite(cost), np.maximum(cost, 0.0), np.inf)
        return out

    @classmethod
    def direct(cls, y: np.ndarray, yu: np.ndarray, sy: np.ndarray, syy: np.ndarray, k: np.ndarray) -> _Sums:
        """Sums by explicit exponentials: a few passes over the rows."""
        m = y.shape[1]
        # Beyond k u = 40 the exponential is below 4e-18 of its start: skipping those columns makes the
        # cost scale with the transient's length, not with the (often much longer) settled plateau.
        kmin = float(k.min()) if k.size else 1.0
        ncol = m if not kmin > 40.0 / m else int(np.ceil(40.0 / kmin)) + 1
        u = np.arange(ncol, dtype=np.float64)
        ub = np.stack([np.ones(ncol), u, u * u], axis=1)
        e = _exp_table(k, ncol)
        e2 = e * e
        se, sue = (e @ ub[:, :2]).T
        see, suee, suuee = (e2 @ ub).T
        sye = np.einsum("ij,ij->i", y[:, :ncol], e)
        suye = np.einsum("ij,ij->i", yu[:, :ncol], e)
        return cls.build(m, sy, syy, se, sue, see, suee, suuee, sye, suye)

    def take(self, rows: np.ndarray, other: _Sums) -> None:
        """Overwrite ``rows`` of self with the (compact) values of ``other``."""
        for name in self.__slots__:
            getattr(self, name)[rows] = getattr(other, name)

    def subset(self, rows: np.ndarray) -> _Sums:
        out = object.__new__(_Sums)
        for name in self.__slots__:
            setattr(out, name, getattr(self, name)[rows])
        return out


def _geometric_sums(k: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``sum(u^p exp(-k u))`` for p = 0, 1, 2 and u = 0 .. n-1, in closed form (exact for k n >= 1)."""
    q, d, qn = np.exp(-k), -np.expm1(-k), np.exp(-k * n)
    s0 = (1 - qn) / d
    s1 = (q - n * qn + (n - 1) * q * qn) / d**2
    s2 = (q * (1 + q) - qn * ((n - 1) ** 2 * q * q - (2 * n * n - 2 * n - 1) * q + n * n)) / d**3
    return s0, s1, s2


class _Moments:
    """Data sums for any k near a reference, from one matrix product per reference rate.

    With ``x = k_ref u`` and ``eps = k / k_ref - 1``,
    ``exp(-k u) = sum_j (-eps)^j x^j exp(-x) / j!``, so ``sum(y exp(-k u)) = sum_j (-eps)^j M_j`` with
    ``M = Y @ W``, ``W[:, j] = x^j exp(-x) / j!``. One BLAS pass over the rows then serves every
    iteration; each iteration costs O(order) per row instead of several passes over its samples.
    Rows whose rate leaves the convergence radius (|eps| > 0.3, truncation error < 1e-9) are
    evaluated directly.
    """

    ORDER = 16
    RADIUS = 0.3
    #: Reference rates are rounded to this ratio so that few matrix products serve all groups.
    GRID = 1.2

    def __init__(self, y: np.ndarray, k_ref: np.ndarray) -> None:
        K, m = y.shape
        step = np.log(self.GRID)
        self.k_ref = np.exp(np.round(np.log(k_ref) / step) * step)
        self.moments = np.zeros((K, self.ORDER + 2))
        j = np.arange(1, self.ORDER + 2)
        for ref in np.unique(self.k_ref):
            rows = np.flatnonzero(self.k_ref == ref)
            # Slower rows (eps down to -RADIUS) reach further: keep columns up to 40 of their tau.
            ncol = int(min(m, np.ceil(40.0 / (ref * (1 - self.RADIUS))) + 1))
            x = ref * np.arange(ncol)
            w = np.empty((ncol, self.ORDER + 2))
            w[:, 0] = np.exp(-x)
            w[:, 1:] = np.cumprod(x[:, None] / j[None, :], axis=1) * w[:, :1]
            self.moments[rows] = y[rows, :ncol] @ w

    def sums(self, rows: np.ndarray, k: np.ndarray, m: int, sy: np.ndarray, syy: np.ndarray) -> _Sums:
        ref = self.k_ref[rows]
        powers = np.cumprod(np.broadcast_to(-(k / ref - 1.0)[:, None], (rows.size, self.ORDER + 1)), axis=1)
        mom = self.moments[rows]
        sye = mom[:, 0] + (powers[:, :-1] * mom[:, 1:-1]).sum(axis=1)
        jp1 = np.arange(1, self.ORDER + 2)
        suye = (jp1[0] * mom[:, 1] + (powers[:, :-1] * jp1[1:] * mom[:, 2:]).sum(axis=1)) / ref
        se, sue, _ = _geometric_sums(k, m)
        see, suee, suuee = _geometric_sums(2 * k, m)
        return _Sums.build(m, sy, syy, se, sue, see, suee, suuee, sye, suye)

    def usable(self, rows: np.ndarray, k: np.ndarray, m: int) -> np.ndarray:
        return (np.abs(k / self.k_ref[rows] - 1.0) <= self.RADIUS) & (k * m >= 1.0)


def _lm_step(s: _Sums, k: np.ndarray, m: int, lam: np.ndarray) -> np.ndarray:
    """Damped Gauss-Newton step in ln k (Kaufman's variable-projection Jacobian)."""
    ak = s.a * k
    jr = ak * (s.suye - s.c * s.sue - s.a * s.suee)
    g0, g1 = ak * s.sue, ak * s.suee
    jj = ak * ak * s.suuee - (s.see * g0 * g0 - 2 * s.se * g0 * g1 + m * g1 * g1) / s.det
    step = -jr / (jj * (1.0 + lam))
    return np.clip(np.where(np.isfinite(step), step, 0.0), -1.0, 1.0)


def fit_exp_rows(
    y: np.ndarray,
    *,
    k0: np.ndarray | None = None,
    max_iter: int = 30,
    tol: float = 1e-5,
    clip_samples: int = 3,
    diagnostics: bool = True,
) -> ExpFit:
    """Least-squares fit of ``c + a exp(-k u)`` to every row of ``y`` at once.

    Parameters
    ----------
    y : ndarray of float64, shape (K, m)
        One half-cycle per row, finite, ``m >= 5``; best normalised to O(1).
    k0 : ndarray of float64, shape (K,), optional
        Starting rate per sample for each row (NaN = none); rows without one use the linear
        integral-equation estimate.
    max_iter : int, default 30
        Cap on Levenberg-Marquardt iterations; rows stop individually once ``|d ln k| < tol``.
    tol : float, default 1e-5
        Convergence tolerance on ``ln k`` (relative change of tau).
    clip_samples : int, default 3
        Minimum run of identical extreme values reported as clipped; 0 disables the check.
    diagnostics : bool, default True
        Compute ``r2`` and ``clipped`` (NaN / False otherwise).

    Returns
    -------
    ExpFit
    """
    y = np.ascontiguousarray(y, dtype=np.float64)
    K, m = y.shape
    u = np.arange(m, dtype=np.float64)
    empty = np.zeros(0)
    if K == 0:
        return ExpFit(empty, empty, empty, empty, empty, np.zeros(0, bool), 0)
    lo, hi = np.log(1e-3 / m), np.log(20.0)
    with np.errstate(all="ignore"):
        yu = y * u
        sy, syy = y.sum(axis=1), np.einsum("ij,ij->i", y, y)
        given = np.full(K, np.nan) if k0 is None else np.asarray(k0, np.float64)
        need = ~(np.isfinite(given) & (given > 0))
        k0 = given.copy()
        if need.any():
            k0[need] = _integral_start(y[need], u)
        bad = ~(np.isfinite(k0) & (k0 > 0))
        if bad.any():
            # Coarse grid of the projected cost for rows the linear estimate cannot start.
            grid = np.exp(np.linspace(lo, np.log(2.0), 9))
            rows = np.flatnonzero(bad)
            costs = np.stack(
                [
                    _Sums.direct(y[rows], yu[rows], sy[rows], syy[rows], np.full(rows.size, g)).cost
                    for g in grid
                ],
                axis=1,
            )
            k0[rows] = grid[np.argmin(costs, axis=1)]
        theta = np.clip(np.log(k0), lo, hi)
        k = np.exp(theta)
        # Near a good start the moment expansion replaces the passes over the samples in every
        # iteration; whether a row uses it is decided per row (usable()), so batches do not interact.
        moments = _Moments(y, k)

        def evaluate(rows: np.ndarray, kk: np.ndarray) -> _Sums:
            near = moments.usable(rows, kk, m)
            if near.all():
                return moments.sums(rows, kk, m, sy[rows], syy[rows])
            out = _Sums.build(m, sy[rows], syy[rows], *(np.empty(rows.size) for _ in range(7)))
            if near.any():
                out.take(
                    np.flatnonzero(near),
                    moments.sums(rows[near], kk[near], m, sy[rows[near]], syy[rows[near]]),
                )
            far = ~near
            out.take(
                np.flatnonzero(far),
                _Sums.direct(y[rows[far]], yu[rows[far]], sy[rows[far]], syy[rows[far]], kk[far]),
            )
            return out

        all_rows = np.arange(K)
        state = evaluate(all_rows, k)
        lam = np.full(K, 1e-3)
        active = np.arange(K)
        it = 0
        while active.size and it < max_iter:
            it += 1
            sub = state.subset(active) if active.size < K else state
            step = _lm_step(sub, k[active], m, lam[active])
            th_t = np.clip(theta[active] + step, lo, hi)
            k_t = np.exp(th_t)
            trial = evaluate(active, k_t)
            accept = trial.cost <= sub.cost * (1 + 1e-12)
            acc = active[accept]
            theta[acc], k[acc] = th_t[accept], k_t[accept]
            state.take(acc, trial.subset(np.flatnonzero(accept)))
            lam[active] = np.where(accept, lam[active] * 0.3, lam[active] * 10.0)
            # A step below tol changes tau by less than tol (relative): the row has converged.
            done = (np.abs(step) < tol) | (lam[active] > 1e8)
            active = active[~done]
        c, a = state.c, state.a
        sigma = np.sqrt(state.cost / max(m - 3, 1))
    ok = np.isfinite(k) & np.isfinite(c) & np.isfinite(a)
    k, c, a = np.where(ok, k, np.nan), np.where(ok, c, np.nan), np.where(ok, a, np.nan)
    if diagnostics:
        r2, clipped = row_diagnostics(y, k, c, a, clip_samples=clip_samples)
    else:
        r2, clipped = np.full(K, np.nan), np.zeros(K, bool)
    return ExpFit(k, c, a, r2, sigma, clipped, it)


def row_diagnostics(
    y: np.ndarray, k: np.ndarray, c: np.ndarray, a: np.ndarray, *, clip_samples: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """R^2 over the first ``max(8, 5 / k)`` samples and the clipping flag of fitted rows.

    See :class:`ExpFit` for the definitions. Rows with NaN ``k`` get NaN R^2 and are not clipped.
    """
    K, m = y.shape
    ok = np.isfinite(k)
    kk = np.where(ok, k, 1.0)
    with np.errstate(all="ignore"):
        n_r2 = np.clip(np.ceil(5.0 / kk), 8, m)
        ncol = int(n_r2.max()) if K else 0
        yw, uw = y[:, :ncol], np.arange(ncol, dtype=np.float64)
        win = uw[None, :] < n_r2[:, None]
        resid = yw - c[:, None] - a[:, None] * _exp_table(kk, ncol)
        ybar = np.where(win, yw, 0.0).sum(axis=1) / n_r2
        ss_res = np.where(win, resid * resid, 0.0).sum(axis=1)
        ss_tot = np.where(win, (yw - ybar[:, None]) ** 2, 0.0).sum(axis=1)
        r2 = np.where(ok, 1.0 - ss_res / ss_tot, np.nan)
    clipped = np.zeros(K, bool)
    if clip_samples > 0 and K:
        # A limiter outputs the same value again and again; a clipped transient reaches it within a
        # few tau. A settled noise-free plateau repeats its value only after ~35 tau (float64).
        # Each row is checked over its own first 3 tau (+ clip_samples), whatever the other rows are.
        limit = np.minimum(m, np.ceil(3.0 / kk) + clip_samples)
        ncol = int(limit.max())
        head = y[:, :ncol]
        inside = np.arange(ncol)[None, :] < limit[:, None]
        for ext in (y.max(axis=1), y.min(axis=1)):
            at = (head == ext[:, None]) & inside
            first = np.argmax(at, axis=1)
            clipped |= (at.sum(axis=1) >= clip_samples) & (first < 3.0 / kk)
    return r2, clipped & ok


# ---------------------------------------------------------------------------------------------------------
# Whole chunk


def _group_median(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Median of ``values`` per integer group (NaN for empty groups), without a loop over groups."""
    out = np.full(n_groups, np.nan)
    if values.size == 0:
        return out
    order = np.lexsort((values, groups))
    g, v = groups[order], values[order]
    ids, first, counts = np.unique(g, return_index=True, return_counts=True)
    lo = first + (counts - 1) // 2
    hi = first + counts // 2
    out[ids] = 0.5 * (v[lo] + v[hi])
    return out


def _group_start(y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Start rate for every row: the 1/e crossing of its group's mean row (same step and direction).

    The cycles of a step share their time constant and the mean row has sqrt(n) less noise, so this
    start lies within the per-cycle scatter (and mostly within the radius of :class:`_Moments`); it
    needs no model and no scale.
    """
    _, inverse = np.unique(groups, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(inverse[order]) != 0])
    means = np.add.reduceat(y[order], bounds, axis=0) / np.diff(np.r_[bounds, y.shape[0]])[:, None]
    m = y.shape[1]
    tail = means[:, -max(1, m // 10) :].mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = (means - tail[:, None]) / (means[:, :1] - tail[:, None])
    crossed = frac < np.exp(-1.0)
    j = np.argmax(crossed, axis=1)
    rows = np.arange(means.shape[0])
    # Sub-sample 1/e crossing (linear between the samples around it): within a few % of tau for an
    # exponential, which is all the per-row iterations need.
    before, after = frac[rows, np.maximum(j - 1, 0)], frac[rows, j]
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.where(j > 0, j - 1 + (before - np.exp(-1.0)) / (before - after), 0.5)
    tau0 = np.where(crossed.any(axis=1) & np.isfinite(x), x, m / 3).clip(0.5, None)
    return (1.0 / tau0)[inverse]


#: Rows are averaged in bins of b samples when tau spans more than 16 b samples (see :func:`_fit_bucket`).
SAMPLES_PER_BIN_TAU = 16


def _fit_bucket(y: np.ndarray, groups: np.ndarray, clip_samples: int) -> ExpFit:
    """Fit rows of one length; slow transients sampled finely are fitted on means of b samples.

    The mean of ``c + a exp(-k u)`` over a bin of b samples is ``c + a' exp(-k b j)`` (j = bin index,
    ``a' = a (1 - e^{-kb}) / (b (1 - e^{-k}))``), so the binned rows obey the same model exactly and
    give k, a and c back; with at least 16 bins per tau the Fisher information lost on tau is below
    1 %, while the cost drops b-fold. R^2 and the clipping check always use the raw samples.
    """
    k0 = _group_start(y, groups)
    K, m = y.shape
    # The bin size is decided per row (from its own start), never from the other rows of the batch:
    # a row's result must not depend on which steps share its chunk.
    with np.errstate(invalid="ignore", divide="ignore"):
        tau0 = np.where(np.isfinite(k0) & (k0 > 0), 1.0 / k0, 1.0)
    bins = np.maximum(1, np.minimum(tau0 // SAMPLES_PER_BIN_TAU, m // 16)).astype(np.int64)
    k, c, a = np.full(K, np.nan), np.full(K, np.nan), np.full(K, np.nan)
    sigma, n_iter = np.full(K, np.nan), 0
    for b in np.unique(bins).tolist():
        rows = np.flatnonzero(bins == b)
        if b == 1:
            f = fit_exp_rows(y[rows], k0=k0[rows], diagnostics=False)
            k[rows], c[rows], a[rows], sigma[rows] = f.k, f.c, f.a, f.sigma
        else:
            nbin = m // b
            yb = y[rows, : nbin * b].reshape(rows.size, nbin, b).mean(axis=2)
            f = fit_exp_rows(yb, k0=k0[rows] * b, diagnostics=False)
            k[rows] = f.k / b
            with np.errstate(all="ignore"):
                a[rows] = f.a * b * np.expm1(-k[rows]) / np.expm1(-k[rows] * b)
            c[rows], sigma[rows] = f.c, f.sigma * np.sqrt(b)
        n_iter = max(n_iter, f.n_iter)
    r2, clipped = row_diagnostics(y, k, c, a, clip_samples=clip_samples)
    return ExpFit(k, c, a, r2, sigma, clipped, n_iter)


FIELDS: dict[str, str] = {
    "cycle": "int64",
    "tau_on": "float64",
    "tau_off": "float64",
    "r2_on": "float64",
    "r2_off": "float64",
    "amp_on": "float64",
    "amp_off": "float64",
    "offset_on": "float64",
    "offset_off": "float64",
    "t_on": "float64",
    "t_off": "float64",
    "status": "int64",
    "status_on": "int64",
    "status_off": "int64",
}


def fit_chunk(
    time: np.ndarray,
    current: np.ndarray,
    offsets: np.ndarray,
    dt: np.ndarray,
    edges: list[StepEdges],
    *,
    start: StartRule = "steepest",
    skip_samples: int = 0,
    min_r2: float = 0.5,
    min_amplitude: float = 0.2,
    clip_samples: int = 3,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Fit every half-cycle of every step of a chunk; one row per cycle.

    Parameters
    ----------
    time, current : ndarray of float64, shape (total,)
        Concatenated time [s] and current [A as stored] of the chunk's steps.
    offsets : ndarray of int64, shape (n_steps + 1,)
        Step ``i`` is ``[offsets[i], offsets[i + 1])``.
    dt : ndarray of float64, shape (n_steps,)
        Sample interval of each step [s].
    edges : list of StepEdges
        From :func:`detect_edges`, one per step.
    start, skip_samples, min_r2, min_amplitude, clip_samples
        See :func:`dask_features.extractors.tau.tau_on_off`.

    Returns
    -------
    counts : ndarray of int64, shape (n_steps,)
        Rows per step: one per cycle, one flagged row for a step that cannot be segmented, none for
        an empty step.
    fields : dict of str to ndarray
        The columns of :data:`FIELDS`, rows of one step contiguous and in cycle order.
    """
    n_steps = len(edges)
    lengths = np.diff(offsets).astype(np.int64)
    counts = np.zeros(n_steps, np.int64)
    parts: list[tuple[int, int, int, StepSegments | None]] = []  # (step, status, n_rows, segments)
    for i, ed in enumerate(edges):
        n = int(lengths[i])
        if n == 0:
            continue
        if ed.status != TauStatus.OK:
            parts.append((i, ed.status, 1, None))
            counts[i] = 1
            continue
        seg = segment_step(n, ed, start=start, skip_samples=skip_samples)
        parts.append((i, int(TauStatus.OK), seg.cycle.size, seg))
        counts[i] = seg.cycle.size
    total = int(counts.sum())
    out: dict[str, np.ndarray] = {
        k: np.full(total, np.nan if v == "float64" else 0, dtype=v) for k, v in FIELDS.items()
    }
    if total == 0:
        return counts, out

    # Flat row table: one entry per (cycle row, direction), steps in order.
    step_of_row = np.repeat(np.arange(n_steps), counts)
    status = np.zeros((total, 2), np.int64)
    start_idx = np.zeros((total, 2), np.int64)
    m_row = np.zeros((total, 2), np.int64)
    pos = 0
    for _, st, nr, seg in parts:
        sl = slice(pos, pos + nr)
        if seg is None:
            status[sl] = st
        else:
            out["cycle"][sl] = seg.cycle
            status[sl, 0], status[sl, 1] = seg.on_status, seg.off_status
            start_idx[sl, 0], start_idx[sl, 1] = seg.on_start, seg.off_start
            m_row[sl] = seg.m_on, seg.m_off
        pos += nr

    sign = np.array([e.sign for e in edges])
    level = np.array([e.level for e in edges])
    scale = np.array([e.scale for e in edges])
    current = np.ascontiguousarray(current, dtype=np.float64)

    k = np.full((total, 2), np.nan)
    c, a, r2, sig = k.copy(), k.copy(), k.copy(), k.copy()
    clipped = np.zeros((total, 2), bool)
    gstart = start_idx + offsets[:-1][step_of_row][:, None]
    fit_mask = status == TauStatus.OK
    for mm in np.unique(m_row[fit_mask]):
        rr, dd = np.nonzero(fit_mask & (m_row == mm))
        srow = step_of_row[rr]
        # Rows are gathered through a strided view (no index matrix), then normalised per step.
        y = np.lib.stride_tricks.sliding_window_view(current, int(mm))[gstart[rr, dd]]
        with np.errstate(invalid="ignore"):
            y = (y * sign[srow][:, None] - level[srow][:, None]) / scale[srow][:, None]
        finite = np.isfinite(y).all(axis=1)
        status[rr[~finite], dd[~finite]] = TauStatus.NAN_GAP
        rr, dd, y = rr[finite], dd[finite], y[finite]
        f = _fit_bucket(y, step_of_row[rr] * 2 + dd, clip_samples)
        k[rr, dd], c[rr, dd], a[rr, dd], r2[rr, dd], sig[rr, dd] = f.k, f.c, f.a, f.r2, f.sigma
        clipped[rr, dd] = f.clipped

    fitted = fit_mask & (status == TauStatus.OK)
    with np.errstate(invalid="ignore", divide="ignore"):
        # On rows rise (a < 0), off rows fall (a > 0): signed amplitude in the expected direction.
        amp = a * np.array([-1.0, 1.0])
        good_dir = fitted & np.isfinite(k) & (amp > 0)
        gid = step_of_row[:, None] * 2 + np.arange(2)
        med = _group_median(amp[good_dir], gid[good_dir], 2 * n_steps)[gid]
        tau_samples = 1.0 / k
        failed = fitted & ~np.isfinite(k)
        flat = fitted & ~failed & (~(amp > 0) | (amp < min_amplitude * med) | (amp < MIN_AMPLITUDE_SD * sig))
        out_of_range = (tau_samples > MAX_TAU_WINDOWS * m_row) | (tau_samples < MIN_TAU_SAMPLES)
        checks = [
            (failed, TauStatus.FIT_FAILED),
            (flat, TauStatus.FLAT),
            (clipped, TauStatus.CLIPPED),
            (out_of_range, TauStatus.TAU_OUT_OF_RANGE),
            (r2 < min_r2, TauStatus.LOW_R2),
        ]
    for mask, code in checks:
        status[fitted & (status == TauStatus.OK) & mask] = code

    dt_row = dt[step_of_row][:, None]
    sc = scale[step_of_row][:, None]
    ok = status == TauStatus.OK
    tau = np.where(ok, dt_row * tau_samples, np.nan)
    # Model in |I| units: on  A(1 - e^-(t-t0)/tau) + C = (c + a) - a e^..., off  A e^... + C.
    amp_i = amp * sc
    off_i = np.where(np.arange(2) == 0, c + a, c) * sc + level[step_of_row][:, None]
    n_step = lengths[step_of_row][:, None]
    first = offsets[:-1][step_of_row][:, None]
    inside = np.clip(start_idx, 0, np.maximum(n_step - 1, 0))
    t0 = time[first + inside] + (start_idx - inside) * dt_row
    t0 = np.where(m_row > 0, t0, np.nan)
    for j, name in enumerate(("on", "off")):
        out[f"tau_{name}"] = tau[:, j]
        out[f"r2_{name}"] = r2[:, j]
        out[f"amp_{name}"] = amp_i[:, j]
        out[f"offset_{name}"] = off_i[:, j]
        out[f"t_{name}"] = t0[:, j]
        out[f"status_{name}"] = status[:, j]
    out["status"] = np.where(status[:, 0] != 0, status[:, 0], status[:, 1])
    return counts, out
