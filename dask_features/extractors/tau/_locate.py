"""Compiled edge location on cycle-averaged profiles (see :func:`._edges.detect_edges`).

Three stages per step, all on the folded profile ``q`` (one bin per sample of phase) and its local
per-sample noise variance ``v`` (folded squared second differences, so the noise may change with the
level, as it does for current-proportional noise):

1. *Coarse.* The profile is reduced to at most 256 block means. With the workflow's duty the edges are
   where a square wave of that duty correlates best with the profile (the gate switches there, up to a
   response delay); without it, where a box contrast of an eighth of the period peaks.
2. *Bracket.* Around each coarse edge the box contrast ``D_h[i] = mean(q[i:i+h]) - mean(q[i-h:i])`` is
   evaluated for halving ``h``. For a plateau followed by a concave rise the peak of ``D_h`` lies between
   the first sample after the edge and ``h`` samples later, so every scale narrows the bracket; every
   position within 2 local noise units of the peak counts, so noise cannot push the bracket past the
   edge. It stops when the peak is no longer 6 noise units above zero.
3. *Change point.* Within the bracket the first sample of the transition is the split of a fixed span
   that minimises the residual sum of squares of a line before it plus an exponential after it (the
   exact least-squares exponential, :func:`._kernels.fit_one`), searched coarse to fine.

Single-threaded: Dask parallelises over chunks.
"""

from __future__ import annotations

import numpy as np

from dask_features._compiled import kernel
from dask_features.extractors.tau._kernels import fit_one

__all__ = ["locate_edges"]

#: Coarse profile resolution [blocks per period].
_COARSE = 256
#: Significance of a box-contrast peak, in local noise standard deviations.
_Z_PEAK = 6.0
#: Positions within this many noise units of the peak are equally plausible peaks.
_Z_TIE = 2.0
#: Candidates per level of the coarse-to-fine change-point search.
_CANDIDATES = 16
#: Samples a transition departs from its pre-edge line by before it counts as started [noise sd].
_Z_DEPART = 4.0


@kernel()
def _tiled_cumsum(x: np.ndarray) -> np.ndarray:
    """Cumulative sum of ``x`` repeated three times, so circular box sums need no index wrapping."""
    n = x.size
    cs = np.zeros(3 * n + 1)
    for j in range(3 * n):
        cs[j + 1] = cs[j] + x[j % n]
    return cs


@kernel()
def _box(cs: np.ndarray, n: int, i: int, h: int) -> float:
    """Sum of ``x[i : i + h]`` (circular) from a :func:`_tiled_cumsum`; needs ``-n <= i`` and ``i + h <= 2n``."""
    return cs[n + i + h] - cs[n + i]


@kernel()
def _coarse(q: np.ndarray, nc: int) -> np.ndarray:
    nb = q.size
    out = np.zeros(nc)
    for j in range(nc):
        a = (j * nb) // nc
        b = ((j + 1) * nb) // nc
        s = 0.0
        for i in range(a, b):
            s += q[i]
        out[j] = s / max(b - a, 1)
    return out


@kernel()
def _coarse_edges(pc: np.ndarray, duty: float) -> tuple[int, int, int, int]:
    """Rising and falling edge [coarse bins], the half-width of the bracket behind each, and the source.

    Source 1: a square wave of the workflow's duty (or of 1 - duty, whichever correlates better: which
    gate level gives the high current depends on the device type); 2: free box contrasts.
    """
    nc = pc.size
    cs = _tiled_cumsum(pc)
    h = max(1, nc // 8)
    if np.isfinite(duty) and 0.0 < duty < 1.0:
        best, rise, fall = -np.inf, 0, 0
        for d in (duty, 1.0 - duty):
            half = min(max(1, round(d * nc)), nc - 1)
            for e in range(nc):
                s = _box(cs, nc, e, half) / half - _box(cs, nc, e + half - nc, nc - half) / (nc - half)
                if s > best:
                    best, rise, fall = s, e, (e + half) % nc
        return rise, fall, h, 1
    best_r, best_f, rise, fall = -np.inf, -np.inf, 0, 0
    for i in range(nc):
        d = (_box(cs, nc, i, h) - _box(cs, nc, i - h, h)) / h
        if d > best_r:
            best_r, rise = d, i
        if -d > best_f:
            best_f, fall = -d, i
    return rise, fall, h, 2


@kernel()
def _bracket(cs: np.ndarray, cw: np.ndarray, nb: int, sgn: float, lo: int, hi: int) -> tuple[int, int, int]:
    """Narrow ``[lo, hi]`` (first sample after the edge, circular positions) by halving box contrasts.

    ``cs`` and ``cw`` are tiled cumulative sums of the profile and of its per-bin noise variance.
    """
    h = max(1, (hi - lo) // 2)
    last_h = 0
    while True:
        h = min(h, nb // 4)
        peak, ipk = -np.inf, lo
        for i in range(lo, hi + 1):
            d = sgn * (_box(cs, nb, i, h) - _box(cs, nb, i - h, h)) / h
            if d > peak:
                peak, ipk = d, i
        noise = np.sqrt(max(_box(cw, nb, ipk - h, 2 * h), 0.0)) / h
        if not peak > _Z_PEAK * noise:
            break
        first, last = hi, lo
        for i in range(lo, hi + 1):
            d = sgn * (_box(cs, nb, i, h) - _box(cs, nb, i - h, h)) / h
            n_i = np.sqrt(max(_box(cw, nb, i - h, 2 * h), 0.0)) / h
            if d >= peak - _Z_TIE * (noise + n_i):
                first = min(first, i)
                last = max(last, i)
        lo, hi = max(lo, first - h), min(hi, last + 1)
        last_h = h
        if h == 1:
            break
        h //= 2
    return lo, hi, last_h


@kernel()
def _change_point(seg: np.ndarray, lo: int, hi: int, sgn: float) -> tuple[int, float, float, float]:
    """Split of ``seg`` in ``[lo, hi]`` minimising the residuals of an exponential on either side.

    Before the split the profile is the tail of the previous transition, after it the new one; both
    are fitted exactly (:func:`._kernels.fit_one`), so a tail that has not settled is no misfit.
    Returns the split and the exponential fitted from it: ``(split, k, c, a)``.
    """
    m = seg.size
    stop = m
    step = max(1, (hi - lo + _CANDIDATES - 1) // _CANDIDATES)
    a_lo, a_hi = lo, hi
    best_c, best_k, best_cc, best_a = lo, np.nan, np.nan, np.nan
    k_guess = kl_guess = np.nan
    while True:
        best = np.inf
        for c in range(a_lo, a_hi + 1, step):
            if stop - c < 5:
                continue
            k, cc, a, cost, _, _ = fit_one(seg[c:stop], k_guess, 30, 1e-4)
            if not np.isfinite(cost) or sgn * a > 0.0:
                # An exponential moving the wrong way is no transition of this direction.
                continue
            if c >= 5:
                kl, _, _, left, _, _ = fit_one(seg[:c], kl_guess, 30, 1e-4)
                if np.isfinite(kl):
                    kl_guess = kl
            else:
                left = 0.0
                for u in range(c):
                    left += (seg[u] - seg[0]) ** 2
            total = cost + left
            if total < best:
                best, best_c, best_k, best_cc, best_a = total, c, k, cc, a
        if np.isfinite(best_k) and best_k > 0.0:
            k_guess = best_k
            # Beyond ~25 tau the span is plateau: it adds nothing to the split but cost.
            stop = min(m, best_c + max(64, int(25.0 / best_k)))
        if step == 1:
            break
        a_lo, a_hi = max(lo, best_c - step), min(hi, best_c + step)
        step = max(1, step // 4)
    return best_c, best_k, best_cc, best_a


@kernel("Tuple((i8[:, :, ::1], f8[:, :, ::1], i8[::1]))(f8[:, ::1], f8[:, ::1], f8[:, ::1], f8[::1])")
def locate_edges(
    q: np.ndarray, v: np.ndarray, cnt: np.ndarray, duty: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges of every profile row; see the module docstring.

    Parameters
    ----------
    q : ndarray, shape (S, nb)
        Normalised cycle-averaged profiles (one bin per sample of phase).
    v : ndarray, shape (S, nb)
        Local per-sample noise variance of each bin (normalised units squared).
    cnt : ndarray, shape (S, nb)
        Samples averaged in each bin.
    duty : ndarray, shape (S,)
        Workflow duty (fraction of the period at the top gate level), NaN if unknown.

    Returns
    -------
    pos : ndarray of int64, shape (2, S, 4)
        Per direction (0 rise, 1 fall): departure (first sample off the previous transition's
        exponential), change point (first sample of the least-squares exponential), the final box width
        and the steepest point (right sample of the largest one-sample step; the departure unless that
        step is clearly larger than the first one, i.e. unless the edge is delayed), in bins; the
        positions may lie outside ``[0, nb)`` (circular).
    fit : ndarray of float64, shape (2, S, 5)
        The profile's exponential from the change point: k [1/bin], c, a; the mean local per-sample
        noise variance over the window (change point to the next edge's bracket) and the mean squared
        misfit of the exponential to the profile there beyond the profile's noise.
    source : ndarray of int64, shape (S,)
        1 = coarse edges from the workflow's duty, 2 = from the profile alone.
    """
    S, nb = q.shape
    pos = np.zeros((2, S, 4), np.int64)
    fit = np.full((2, S, 5), np.nan)
    source = np.zeros(S, np.int64)
    nc = min(nb, _COARSE)
    for s in range(S):
        row = q[s]
        w = v[s] / np.maximum(cnt[s], 1.0)
        cs = _tiled_cumsum(row)
        cw = _tiled_cumsum(w)
        pc = _coarse(row, nc)
        rc, fc, hc, source[s] = _coarse_edges(pc, duty[s])
        scale = nb / nc
        brackets = np.zeros((2, 2), np.int64)
        for d, ec in enumerate((rc, fc)):
            # A square wave of the duty aligns a little after slow edges (up to ~tau ln 2): reach back a
            # quarter period.
            lo = int(np.floor((ec - 2 * hc - 1) * scale))
            hi = int(np.ceil((ec + 1) * scale))
            sgn = 1.0 if d == 0 else -1.0
            lo, hi, h = _bracket(cs, cw, nb, sgn, lo, hi)
            brackets[d, 0], brackets[d, 1] = lo, hi
            pos[d, s, 2] = h
        for d in range(2):
            lo, hi = brackets[d, 0], brackets[d, 1]
            olo, ohi = brackets[1 - d, 0], brackets[1 - d, 1]
            # The span reaches back to just after the other edge's bracket and on to just before its next
            # one; the part before is capped (a long settled tail adds nothing to the split).
            back = (lo - ohi) % nb
            ahead = (olo - hi) % nb
            v_len = max(2, min(back - 1, max(64, 4 * (hi - lo + 1))))
            start = lo - v_len
            stop = hi + max(ahead - 1, 5)
            seg = np.empty(stop - start)
            for j in range(stop - start):
                seg[j] = row[(start + j) % nb]
            sgn = 1.0 if d == 0 else -1.0
            c, k, cc, a = _change_point(seg, lo - start, hi - start, sgn)
            cp = start + c
            pos[d, s, 1] = cp
            # Noise expected in a cycle's window: the mean local variance over the window, plus the part
            # of the profile's own residual that noise does not explain (the shape is not exactly
            # exponential on real devices).
            n_win = max(stop - cp, 1)
            noise_var = prof_var = ssr = 0.0
            for j in range(n_win):
                x = (cp + j) % nb
                noise_var += v[s, x]
                prof_var += w[x]
                if np.isfinite(k):
                    ssr += (row[x] - cc - a * np.exp(-k * j)) ** 2
            fit[d, s, 0], fit[d, s, 1], fit[d, s, 2] = k, cc, a
            fit[d, s, 3] = noise_var / n_win
            fit[d, s, 4] = max(ssr - prof_var, 0.0) / n_win
        for d in range(2):
            # Departure: walk back from the change point while the profile lies off the previous
            # transition's exponential (extrapolated) towards this transition: the delay of an S-shaped edge.
            cp, ocp = pos[d, s, 1], pos[1 - d, s, 1]
            ko, co, ao = fit[1 - d, s, 0], fit[1 - d, s, 1], fit[1 - d, s, 2]
            sgn = 1.0 if d == 0 else -1.0
            dep = cp
            if np.isfinite(ko) and ko > 0:
                gap = (cp - ocp) % nb
                for j in range(1, min(gap - 5, nb // 4)):
                    u = gap - j
                    x = (cp - j) % nb
                    resid = sgn * (row[x] - co - ao * np.exp(-ko * u))
                    if resid > _Z_DEPART * np.sqrt(w[x]):
                        dep = cp - j
                    else:
                        break
            pos[d, s, 0] = dep
            # Steepest point: the largest one-sample step between the departure and a few tau after the
            # change point (for a delayed, S-shaped edge it lies well after the departure).
            k = fit[d, s, 0]
            reach = cp + (int(3.0 / k) + 1 if np.isfinite(k) and k > 0 else 1)
            reach = min(reach, dep + nb // 4)
            steep, best = cp, -np.inf
            for x in range(dep + 1, reach + 1):
                dx = sgn * (row[x % nb] - row[(x - 1) % nb])
                if dx > best:
                    best, steep = dx, x
            # Delayed only if that step is clearly larger than the first one after the departure (for a
            # first-order edge the steps shrink from the start, so any difference is noise).
            x0 = dep + 1
            first_step = sgn * (row[x0 % nb] - row[(x0 - 1) % nb])
            noise = np.sqrt(w[steep % nb] + w[(steep - 1) % nb] + w[x0 % nb] + w[(x0 - 1) % nb])
            if steep - dep >= 2 and best - first_step > _Z_DEPART * noise:
                pos[d, s, 3] = steep
            else:
                pos[d, s, 3] = dep
    return pos, fit, source
