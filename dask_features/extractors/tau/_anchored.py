"""Fits anchored on the pre-edge plateau, for fast transitions (a few samples per tau).

A first-order transition starts from the level the previous half-cycle settled at: with the edge
``delta`` samples before the window's first sample, ``y(u) = c + (P - c) exp(-k (u + delta))`` and the
previous half-cycle's last samples equal ``P``. Fitting the plateau samples together with the window
ties the amplitude to the plateau, which the free-amplitude fit has to guess from the first one or
two samples when tau is short: at 1-2 samples per tau this cuts the per-cycle error by 1.2-4x.

Used only where it holds: a whole number of samples per period (the same ``delta`` in every cycle,
estimated once per step and direction from the mean row), an edge that is not delayed, a previous
half-cycle that has settled (``k m >= 10`` on the profile) and tau of at most 2.5 samples.

With ``baseline="drift"`` the baseline drifts linearly by ``d`` per sample through the plateau and the
window alike: ``P + d u`` on the plateau (``u < 0``), ``c + d u + (P - c) exp(-k (u + delta))`` in the
window (:func:`anchored_fit_drift`).
"""

from __future__ import annotations

import numpy as np

from dask_features._compiled import kernel
from dask_features.extractors.tau._edges import StepEdges
from dask_features.extractors.tau._kernels import fit_one, fit_one_drift, row_diagnostics, solve_sym3
from dask_features.extractors.tau._status import TauStatus

__all__ = ["anchored_fit", "anchored_fit_drift", "edge_delay", "edge_delay_drift", "refit_anchored"]

#: Golden-section steps in ln k (from a bracket of width 2: 2 x 0.618^32 < 1e-6).
_GOLDEN = 32
#: Half-width of the bracket in ln k around the free-amplitude fit's rate (both estimate the same tau).
_BRACKET = 1.0


@kernel()
def _cost(
    row: np.ndarray, n_pre: float, s_pre: float, ss_pre: float, sy: float, syy: float, k: float, delta: float
) -> tuple[float, float, float]:
    """Residual sum of squares of the anchored model at rate k, with P and c solved in closed form."""
    m = row.size
    # exp(-30) = 1e-13: samples beyond 30 / k add nothing but the plateau sums already in sy.
    n_eff = m if 30.0 / k >= m else int(30.0 / k) + 1
    q = np.exp(-k)
    g = np.exp(-k * delta)
    sg = sgg = syg = 0.0
    for u in range(n_eff):
        sg += g
        sgg += g * g
        syg += row[u] * g
        g *= q
    # Columns: P (1 on the plateau, g after the edge), c (0 on the plateau, 1 - g after it).
    a11 = n_pre + sgg
    a12 = sg - sgg
    a22 = m - 2.0 * sg + sgg
    b1 = s_pre + syg
    b2 = sy - syg
    det = a11 * a22 - a12 * a12
    p = (a22 * b1 - a12 * b2) / det
    c = (a11 * b2 - a12 * b1) / det
    cost = ss_pre + syy - p * b1 - c * b2
    return max(cost, 0.0), p, c


@kernel()
def _model_cost(
    row: np.ndarray, sums: np.ndarray, k: float, delta: float, drift: bool
) -> tuple[float, float, float, float]:
    """``(cost, P, c, d m)`` of the anchored model at rate k: :func:`_cost_drift`, or :func:`_cost`
    (``sums`` = plateau ``n, sum y, sum y^2``, window ``sum y, sum y^2``; d = 0)."""
    if drift:
        return _cost_drift(row, sums, k, delta)
    cost, p, c = _cost(row, sums[0], sums[1], sums[2], sums[3], sums[4], k, delta)
    return cost, p, c, 0.0


@kernel()
def _fit_anchored_row(
    row: np.ndarray, sums: np.ndarray, k0: float, delta: float, drift: bool, n_params: int, out: np.ndarray
) -> None:
    """Golden-section search of ln k within :data:`_BRACKET` of ``ln k0`` for one row; writes
    ``(k, c, d, a, sigma, se)`` to ``out`` (left as is where the minimum is at the bracket's edge).

    ``sigma``: residual standard deviation over the plateau and the window (``n_params`` fitted);
    ``se``: standard error of ln k from the curvature of the cost.
    """
    m = row.size
    n_fit = sums[0] + m
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    lo, hi = np.log(k0) - _BRACKET, np.log(k0) + _BRACKET
    x1 = hi - ratio * (hi - lo)
    x2 = lo + ratio * (hi - lo)
    f1 = _model_cost(row, sums, np.exp(x1), delta, drift)[0]
    f2 = _model_cost(row, sums, np.exp(x2), delta, drift)[0]
    for _ in range(_GOLDEN):
        if f1 <= f2:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - ratio * (hi - lo)
            f1 = _model_cost(row, sums, np.exp(x1), delta, drift)[0]
        else:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + ratio * (hi - lo)
            f2 = _model_cost(row, sums, np.exp(x2), delta, drift)[0]
    theta = 0.5 * (lo + hi)
    # A minimum at the bracket's edge is no minimum.
    if theta - (np.log(k0) - _BRACKET) < 1e-3 or (np.log(k0) + _BRACKET) - theta < 1e-3:
        return
    k = np.exp(theta)
    cost, p, c, dw = _model_cost(row, sums, k, delta, drift)
    h = 1e-3
    up = _model_cost(row, sums, np.exp(theta + h), delta, drift)[0]
    down = _model_cost(row, sums, np.exp(theta - h), delta, drift)[0]
    curv = (up - 2.0 * cost + down) / (h * h)
    sigma2 = cost / max(n_fit - n_params, 1.0)
    out[0] = k
    out[1] = c
    out[2] = dw / m
    out[3] = (p - c) * np.exp(-k * delta)
    out[4] = np.sqrt(sigma2)
    out[5] = np.sqrt(2.0 * sigma2 / curv) if curv > 0 else np.inf


@kernel("UniTuple(f8[::1], 5)(f8[:, ::1], f8[:, ::1], f8[::1], f8[::1])")
def anchored_fit(
    y: np.ndarray, pre: np.ndarray, delta: np.ndarray, k0: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Anchored least squares for every row of ``y`` (K, m) with plateau samples ``pre`` (K, N).

    Returns ``k, c, a, sigma, se``: rate [1/sample], asymptote, amplitude at u = 0
    (``(P - c) exp(-k delta)``), residual standard deviation (m + N - 3 degrees of freedom) and the
    standard error of ln k (from the curvature of the cost). NaN where the fit failed.
    """
    K, m = y.shape
    n_pre = pre.shape[1]
    out = np.full((K, 6), np.nan)
    sums = np.zeros(5)
    for i in range(K):
        row = y[i]
        if not (np.isfinite(k0[i]) and k0[i] > 0 and np.isfinite(delta[i])):
            continue
        s_pre = ss_pre = sy = syy = 0.0
        for j in range(n_pre):
            s_pre += pre[i, j]
            ss_pre += pre[i, j] ** 2
        for u in range(m):
            sy += row[u]
            syy += row[u] ** 2
        sums[0], sums[1], sums[2], sums[3], sums[4] = n_pre, s_pre, ss_pre, sy, syy
        _fit_anchored_row(row, sums, k0[i], delta[i], False, 3, out[i])
    return (
        out[:, 0].copy(), out[:, 1].copy(), out[:, 3].copy(), out[:, 4].copy(), out[:, 5].copy()
    )  # fmt: skip


@kernel()
def _cost_drift(
    row: np.ndarray, pre_sums: np.ndarray, k: float, delta: float
) -> tuple[float, float, float, float]:
    """Residual sum of squares of the anchored drift model at rate k, with P, c and d solved in closed form.

    ``pre_sums`` holds the sums of the plateau and of the window that do not depend on k: plateau
    ``n, sum w, sum w^2, sum y, sum w y``, window ``sum w, sum w^2, sum y, sum w y`` and ``sum y^2`` over
    both, ``w = u / m`` (u < 0 on the plateau). Returns ``(cost, P, c, d m)``.
    """
    m = row.size
    n_eff = m if 30.0 / k >= m else int(30.0 / k) + 1
    q = np.exp(-k)
    g = np.exp(-k * delta)
    sg = sgg = syg = swg = 0.0
    for u in range(n_eff):
        sg += g
        sgg += g * g
        syg += row[u] * g
        swg += (u / m) * g
        g *= q
    n_pre, sw_pre, sww_pre, sy_pre, swy_pre = pre_sums[0], pre_sums[1], pre_sums[2], pre_sums[3], pre_sums[4]
    sw_win, sww_win, sy_win, swy_win, syy = pre_sums[5], pre_sums[6], pre_sums[7], pre_sums[8], pre_sums[9]
    # Columns: P (1 on the plateau, g after the edge), c (0, then 1 - g), d m (w throughout).
    g00 = n_pre + sgg
    g01 = sg - sgg
    g02 = sw_pre + swg
    g11 = m - 2.0 * sg + sgg
    g12 = sw_win - swg
    g22 = sww_pre + sww_win
    b0 = sy_pre + syg
    b1 = sy_win - syg
    b2 = swy_pre + swy_win
    p, c, dw = solve_sym3(g00, g01, g02, g11, g12, g22, b0, b1, b2)
    cost = syy - p * b0 - c * b1 - dw * b2
    return max(cost, 0.0), p, c, dw


@kernel("UniTuple(f8[::1], 6)(f8[:, ::1], f8[:, ::1], f8[::1], f8[::1])")
def anchored_fit_drift(
    y: np.ndarray, pre: np.ndarray, delta: np.ndarray, k0: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`anchored_fit` with a linear drift of the baseline through the plateau and the window.

    Returns ``k, c, d, a, sigma, se``: as :func:`anchored_fit`, plus the drift ``d`` per sample (m + N - 4
    degrees of freedom). NaN where the fit failed.
    """
    K, m = y.shape
    n_pre = pre.shape[1]
    out = np.full((K, 6), np.nan)
    sums = np.zeros(10)
    for i in range(K):
        row = y[i]
        if not (np.isfinite(k0[i]) and k0[i] > 0 and np.isfinite(delta[i])):
            continue
        sums[:] = 0.0
        sums[0] = n_pre
        for j in range(n_pre):
            w = (j - n_pre) / m
            sums[1] += w
            sums[2] += w * w
            sums[3] += pre[i, j]
            sums[4] += w * pre[i, j]
            sums[9] += pre[i, j] ** 2
        for u in range(m):
            w = u / m
            sums[5] += w
            sums[6] += w * w
            sums[7] += row[u]
            sums[8] += w * row[u]
            sums[9] += row[u] ** 2
        _fit_anchored_row(row, sums, k0[i], delta[i], True, 4, out[i])
    return (
        out[:, 0].copy(), out[:, 1].copy(), out[:, 2].copy(), out[:, 3].copy(), out[:, 4].copy(),
        out[:, 5].copy(),
    )  # fmt: skip


def edge_delay(mean_row: np.ndarray, plateau: float) -> tuple[float, float]:
    """``(delta, k)`` of a mean row: the edge's distance before its first sample and the rate per sample.

    The exact least-squares exponential of the mean row, ``c + a exp(-k u)``, meets the plateau ``P``
    at ``u = -delta``: ``delta = ln((P - c) / a) / k``. NaN unless ``0 <= delta <= 1`` (within rounding).
    """
    k, c, a = (
        np.float64(v) for v in fit_one(np.ascontiguousarray(mean_row, dtype=np.float64), np.nan, 50, 1e-9)[:3]
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = float(np.log((plateau - c) / a) / k)
    if not (np.isfinite(k) and k > 0 and np.isfinite(delta) and -0.05 <= delta <= 1.05):
        return np.nan, np.nan
    return min(max(delta, 0.0), 1.0), float(k)


def edge_delay_drift(mean_row: np.ndarray, pre_mean: float, n_pre: int) -> tuple[float, float]:
    """:func:`edge_delay` with a drifting baseline: the drift fit of the mean row meets the plateau line.

    The plateau of ``n_pre`` samples before the window lies on ``P + d u`` (u = -n_pre .. -1, ``d`` the
    mean row's drift), so ``P = pre_mean + d (n_pre + 1) / 2``; the row ``c + d u + a exp(-k u)`` meets
    it at ``u = -delta`` where ``a exp(k delta) = P - c``.
    """
    k, c, d, a = (
        np.float64(v)
        for v in fit_one_drift(np.ascontiguousarray(mean_row, dtype=np.float64), np.nan, 50, 1e-9)[:4]
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = float(np.log((pre_mean + d * (n_pre + 1) / 2.0 - c) / a) / k)
    if not (np.isfinite(k) and k > 0 and np.isfinite(delta) and -0.05 <= delta <= 1.05):
        return np.nan, np.nan
    return min(max(delta, 0.0), 1.0), float(k)


#: Anchoring on the plateau is used up to this many samples per tau (where it helps most, see ``_anchored``).
ANCHOR_MAX_TAU = 2.5
#: ... when the previous half-cycle has settled: k m of its profile fit at least this (exp(-10) = 5e-5).
ANCHOR_SETTLED = 10.0


def refit_anchored(
    current: np.ndarray,
    offsets: np.ndarray,
    gstart: np.ndarray,
    m_row: np.ndarray,
    status: np.ndarray,
    step_of_row: np.ndarray,
    edges: list[StepEdges],
    norm: tuple[np.ndarray, np.ndarray, np.ndarray],
    fits: tuple[np.ndarray, ...],
    clip_samples: int,
    drift: np.ndarray | None = None,
) -> None:
    """Refit fast transitions anchored on the previous half-cycle's plateau, in place (see ``_anchored``).

    ``offsets`` are the chunk's step boundaries: a plateau must lie inside its own step, not at the end
    of the previous step of the chunk (a row's result must not depend on which steps share its chunk).
    With ``drift`` (the fitted drift per sample of every half-cycle, shape (rows, 2)) the fits are
    those of the drift model (:func:`anchored_fit_drift`), and ``drift`` is updated too.
    """
    sign, level, scale = norm
    k, c, a, sig, se, r2, clipped = fits
    total = step_of_row.size
    first_row = np.searchsorted(step_of_row, np.arange(len(edges)))
    for i, ed in enumerate(edges):
        if ed.status != TauStatus.OK or abs(ed.samples_per_period - round(ed.samples_per_period)) > 1e-9:
            continue
        if first_row[i] >= total or step_of_row[first_row[i]] != i:
            continue
        for d, (k_this, k_prev, delayed) in enumerate(
            ((ed.k_rise, ed.k_fall, ed.rise_delayed), (ed.k_fall, ed.k_rise, ed.fall_delayed))
        ):
            m, m_prev = int(m_row[first_row[i], d]), int(m_row[first_row[i], 1 - d])
            if delayed or not (
                k_this * ANCHOR_MAX_TAU >= 1.0 and k_prev * m_prev >= ANCHOR_SETTLED and m >= 5
            ):
                continue
            rows_i = np.flatnonzero(step_of_row == i)
            # Plateau samples: the previous window's last ones, all at least 8 of its tau after its start.
            n_pre = min(64, m_prev - int(np.ceil(8.0 / k_prev)))
            rr = rows_i[(status[rows_i, d] == TauStatus.OK) & (gstart[rows_i, d] - n_pre >= offsets[i])]
            if rr.size == 0 or n_pre < 3:
                continue
            idx = gstart[rr, d][:, None] + np.arange(-n_pre, m)
            block = (current[idx] * sign[i] - level[i]) / scale[i]
            good = np.isfinite(block).all(axis=1)
            rr, block = rr[good], block[good]
            if rr.size == 0:
                continue
            pre, y = np.ascontiguousarray(block[:, :n_pre]), np.ascontiguousarray(block[:, n_pre:])
            if drift is None:
                delta, k_mean = edge_delay(y.mean(axis=0), float(pre.mean()))
            else:
                delta, k_mean = edge_delay_drift(y.mean(axis=0), float(pre.mean()), n_pre)
            if not np.isfinite(delta):
                continue
            start = np.where(np.isfinite(k[rr, d]) & (k[rr, d] > 0), k[rr, d], k_mean)
            if drift is None:
                ka, ca, aa, sa, sea = anchored_fit(y, pre, np.full(rr.size, delta), start)
            else:
                ka, ca, da, aa, sa, sea = anchored_fit_drift(y, pre, np.full(rr.size, delta), start)
            ok = np.isfinite(ka)
            # Only where it helps, decided for the step and direction as a whole (never row by row): the
            # plateau pins the amplitude, but under noise that grows with the current a noisy plateau
            # can cost more than it brings.
            if not np.median(np.where(ok, sea, np.inf)) < np.median(
                np.where(np.isfinite(se[rr, d]), se[rr, d], np.inf)
            ):
                continue
            rr = rr[ok]
            k[rr, d], c[rr, d], a[rr, d], sig[rr, d], se[rr, d] = ka[ok], ca[ok], aa[ok], sa[ok], sea[ok]
            if drift is None:
                r2[rr, d], clipped[rr, d] = row_diagnostics(y[ok], ka[ok], ca[ok], aa[ok], int(clip_samples))
            else:
                drift[rr, d] = da[ok]
                flat = np.ascontiguousarray(y[ok] - da[ok, None] * np.arange(y.shape[1]))
                r2[rr, d] = row_diagnostics(flat, ka[ok], ca[ok], aa[ok], 0)[0]
                clipped[rr, d] = row_diagnostics(y[ok], ka[ok], ca[ok], aa[ok], int(clip_samples))[1]
