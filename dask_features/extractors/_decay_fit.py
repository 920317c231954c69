"""Batched least-squares fits of one exponential per step (``transient.decay_time``).

oect-infra fits ``I0 exp(-t / tau)`` to ``|I|`` of each step with one ``scipy.optimize.curve_fit``
call (30-50 ms of Python per step). The same least-squares problem is solved here for all steps of a
chunk at once, with NumPy over the flat samples:

* For a fixed rate ``k = 1 / tau`` the best amplitude is linear, ``I0(k) = sum(y e) / sum(e^2)`` with
  ``e = exp(-k t)``, so the sum of squared residuals becomes a function of ``k`` alone,
  ``S(k) = sum(y^2) - sum(y e)^2 / sum(e^2)``. Minimising ``S`` means maximising
  ``h(k) = 2 ln sum(y e) - ln sum(e^2)``.
* ``h'(k) = 2 (m_Q - m_P)``, where ``m_P`` and ``m_Q`` are the means of ``t`` weighted by ``y e`` and
  by ``e^2``; ``h''(k) = 2 var_P(t) - 4 var_Q(t)``. Both come from six segment sums per iteration.
* Per step, a root of ``h'`` is bracketed starting from oect-infra's initial guess (``tau`` = half
  the window, so the same local optimum is found when there are several) and then refined by Newton
  steps that fall back to bisection whenever they leave the bracket.

Time is scaled by the window's duration and current by its first sample, so every problem is
``O(1)`` whatever the units (oect-infra's fit on raw amperes can stop at its initial guess for
~1e-6 A currents). Steps whose root cannot be bracketed inside ``[0, KAPPA_MAX]`` are returned as
unresolved (the caller reports them) rather than as wherever an optimiser happened to stop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BatchWindows", "fit_exponential_rates", "fit_log_linear_slopes", "select_windows"]

KAPPA0 = 2.0
"""Initial scaled rate: oect-infra's initial guess ``tau = duration / 2``."""
KAPPA_MAX = 1e7
"""Largest scaled rate searched (tau = duration / 1e7, far below any sampling interval)."""
MIN_TAU_GAPS = 0.5
"""Smallest tau resolved, in intervals between the window's first two samples (as ``tau_on_off``'s
``MIN_TAU_SAMPLES``): a faster fit has fallen by more than e^-2 at the second sample, so it is set by the
level the current drops to (a drop to 1e-6 within one sample fits tau = 0.072 intervals, to 1e-3 0.145,
the same as an exact exponential falling 1e-3 per sample), not by a decay the samples show."""
_EXPAND = 16.0
_RTOL = 1e-11
_MAX_ITER = 100


@dataclass
class BatchWindows:
    """Fit windows of the steps of a chunk that have at least 3 usable samples, stored flat.

    Attributes
    ----------
    rows : ndarray of int, shape (s,)
        Row of each fitted step in the chunk.
    starts : ndarray of int, shape (s + 1,)
        Sample range ``[starts[j], starts[j + 1])`` of step ``j`` in ``u`` and ``y``.
    u : ndarray of float64
        ``(t - t_first) / duration`` of every usable window sample (dimensionless).
    y : ndarray of float64
        ``|I| / |I|_first`` of every usable window sample (dimensionless, > 0).
    duration : ndarray of float64, shape (s,)
        Largest ``|t - t_first|`` of the window [s]; scaled rates are multiplied by this.
    """

    rows: np.ndarray
    starts: np.ndarray
    u: np.ndarray
    y: np.ndarray
    duration: np.ndarray

    def subset(self, keep: np.ndarray) -> BatchWindows:
        """Only the steps where ``keep`` (shape (s,)) is True."""
        counts = np.diff(self.starts)
        samples = np.repeat(keep, counts)
        return BatchWindows(
            self.rows[keep],
            np.concatenate([[0], np.cumsum(counts[keep])]),
            self.u[samples],
            self.y[samples],
            self.duration[keep],
        )


def select_windows(
    time: np.ndarray, current: np.ndarray, offsets: np.ndarray, fit_range: tuple[float, float]
) -> tuple[BatchWindows, np.ndarray, np.ndarray]:
    """oect-infra's fit window of every step: samples ``[int(a m), int(b m))`` with ``|I| > 0`` finite.

    Parameters
    ----------
    time, current : ndarray of float64
        Flat samples of the chunk [s], [A].
    offsets : ndarray of int, shape (n + 1,)
        Step ``i`` is ``[offsets[i], offsets[i + 1])``.
    fit_range : (float, float)
        Window start and stop as fractions of the step's sample count.

    Returns
    -------
    windows : BatchWindows
        The steps with at least 3 usable samples and a non-zero time span.
    too_few : ndarray of int
        Rows with fewer than 3 usable samples.
    no_span : ndarray of int
        Rows whose usable samples all have the same time.
    """
    n = len(offsets) - 1
    lengths = np.diff(offsets)
    # int(m * a) of a non-negative float truncates, exactly as floor does.
    lo = np.floor(lengths * float(fit_range[0])).astype(np.int64)
    hi = np.floor(lengths * float(fit_range[1])).astype(np.int64)
    step = np.repeat(np.arange(n), lengths)
    pos = np.arange(offsets[-1]) - offsets[:-1][step]
    t = time[: offsets[-1]]
    y = np.abs(current[: offsets[-1]])
    with np.errstate(invalid="ignore"):
        keep = (pos >= lo[step]) & (pos < hi[step]) & (y > 0) & np.isfinite(y) & np.isfinite(t)
    idx = np.flatnonzero(keep)
    counts = np.bincount(step[idx], minlength=n)
    enough = counts >= 3
    idx = idx[enough[step[idx]]]
    starts = np.concatenate([[0], np.cumsum(counts[enough])])
    first = idx[starts[:-1]]
    per_sample = np.repeat(np.arange(len(first)), counts[enough])
    dt = t[idx] - t[first][per_sample]
    span = np.maximum.reduceat(np.abs(dt), starts[:-1]) if len(first) else np.zeros(0)
    spans = span > 0
    rows = np.flatnonzero(enough)
    windows = BatchWindows(
        rows, starts, dt / np.where(spans, span, 1.0)[per_sample], y[idx] / y[first][per_sample], span
    )
    return windows.subset(spans), np.flatnonzero(~enough), rows[~spans]


def _slope_terms(w: BatchWindows, kappa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``g = h'/2`` and ``dg/dkappa`` of every step at its scaled rate ``kappa``."""
    counts = np.diff(w.starts)
    # u >= 0 for increasing time; the clip only guards odd files with time running backwards.
    e = np.exp(np.minimum(-np.repeat(kappa, counts) * w.u, 700.0))
    ye = w.y * e
    e2 = e * e
    s = w.starts[:-1]
    uye, ue2 = w.u * ye, w.u * e2
    p0, p1, p2 = (np.add.reduceat(v, s) for v in (ye, uye, w.u * uye))
    q0, q1, q2 = (np.add.reduceat(v, s) for v in (e2, ue2, w.u * ue2))
    m_p, m_q = p1 / p0, q1 / q0
    return m_q - m_p, (p2 / p0 - m_p**2) - 2 * (q2 / q0 - m_q**2)


def fit_exponential_rates(w: BatchWindows) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares scaled rate ``kappa = duration / tau`` of every step of ``w``.

    Returns
    -------
    kappa : ndarray of float64, shape (s,)
        Scaled rates; NaN where unresolved.
    status : ndarray of int8, shape (s,)
        0 fitted; 1 no decay: ``h'(0) <= 0`` and ``h'`` < 0 at the initial guess, so the best fit
        with ``tau > 0`` is the limit ``kappa -> 0`` (a constant); 2 too fast: no optimum below
        ``KAPPA_MAX`` (the residual keeps falling as ``tau -> 0``), or one with tau below
        :data:`MIN_TAU_GAPS` intervals between the window's first two samples: either way the current
        drops within a sample and tau is not resolved; 3 not converged within the iteration limit.
    """
    s = len(w.rows)
    kappa = np.full(s, KAPPA0)
    lo = np.full(s, np.nan)  # largest rate known to have g > 0
    hi = np.full(s, np.nan)  # smallest rate known to have g < 0
    status = np.zeros(s, np.int8)
    if s == 0:
        return kappa, status
    g, _ = _slope_terms(w, kappa)
    lo[g > 0] = KAPPA0
    hi[g < 0] = KAPPA0
    kappa[g == 0] = KAPPA0
    done = g == 0
    # Below the guess, try kappa = 0 first: slow drifts (tau >> duration) bracket at once.
    down = g < 0
    if down.any():
        g0, _ = _slope_terms(w.subset(down), np.zeros(int(down.sum())))
        lo[np.flatnonzero(down)[g0 > 0]] = 0.0
        status[np.flatnonzero(down)[g0 <= 0]] = 1
    # Above the guess, expand geometrically until g turns negative.
    up = g > 0
    trial = np.full(s, KAPPA0)
    while up.any():
        trial[up] *= _EXPAND
        over = up & (trial > KAPPA_MAX)
        status[over] = 2
        up &= ~over
        if not up.any():
            break
        gu, _ = _slope_terms(w.subset(up), trial[up])
        ids = np.flatnonzero(up)
        lo[ids[gu > 0]] = trial[ids[gu > 0]]
        hi[ids[gu < 0]] = trial[ids[gu < 0]]
        # Exactly 0 this far out means every term underflowed, not an optimum.
        status[ids[gu == 0]] = 2
        up[ids[gu <= 0]] = False
    active = ~done & (status == 0)
    kappa = np.where(active, np.where(np.isfinite(hi), hi, kappa), kappa)
    last_step = np.full(s, np.inf)
    for _ in range(_MAX_ITER):
        if not active.any():
            break
        ids = np.flatnonzero(active)
        k = kappa[ids]
        g, dg = _slope_terms(w.subset(active), k)
        lo[ids[g > 0]] = k[g > 0]
        hi[ids[g < 0]] = k[g < 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = k - g / dg
        a, b = lo[ids], hi[ids]
        # Newton only while it stays in the bracket and at least halves its step each time (far
        # out on an exponential tail it crawls by a constant step); otherwise bisect the bracket.
        inside = (dg < 0) & (newton > a) & (newton < b) & (np.abs(newton - k) <= 0.5 * last_step[ids])
        bisect = np.where(a > 0, np.sqrt(a * b), b / _EXPAND)
        nxt = np.where(inside, newton, bisect)
        last_step[ids] = np.abs(nxt - k)
        converged = (g == 0) | (np.abs(nxt - k) <= _RTOL * k) | (b - a <= _RTOL * b)
        kappa[ids] = np.where(g == 0, k, nxt)
        active[ids[converged]] = False
    status[active] = 3
    first_gap = w.u[w.starts[:-1] + 1] - w.u[w.starts[:-1]]  # every window has >= 3 samples
    status[(status == 0) & (kappa * first_gap * MIN_TAU_GAPS > 1.0)] = 2
    kappa[status != 0] = np.nan
    return kappa, status


def fit_log_linear_slopes(w: BatchWindows) -> np.ndarray:
    """Least-squares slope of ``ln y`` against ``u`` for every step of ``w`` (scaled units)."""
    s = w.starts[:-1]
    counts = np.diff(w.starts)
    log_y = np.log(w.y)
    u_mean = np.add.reduceat(w.u, s) / counts
    y_mean = np.add.reduceat(log_y, s) / counts
    du = w.u - np.repeat(u_mean, counts)
    return np.add.reduceat(du * (log_y - np.repeat(y_mean, counts)), s) / np.add.reduceat(du * du, s)
