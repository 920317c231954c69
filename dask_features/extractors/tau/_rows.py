"""The batched exponential fit of ``transient.tau_on_off``: every row of a matrix, its errors and checks.

:func:`fit_exp_rows` fits ``y = c + a exp(-k u)`` (``u`` in samples) to every row of a (K, m)
matrix: a start (the 1/e crossing of the step's mean row, or a linear integral-equation estimate
that needs no guess), then variable-projection Levenberg-Marquardt on ``ln k`` with ``(c, a)``
solved in closed form at every step, per row. It converges to the exact least-squares fit of each
row (|d ln k| < 1e-5). With ``baseline="drift"`` the model is ``c + d u + a exp(-k u)``, (c, d, a)
solved in closed form. The standard errors (plain and heteroscedasticity-robust), the drift gain
and :func:`row_diagnostics` (R^2, clipping) come with it. The arithmetic per row is compiled in
:mod:`~dask_features.extractors.tau._kernels`; how rows are formed and binned is
:mod:`~dask_features.extractors.tau._fit`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dask_features.extractors.tau import _kernels
from dask_features.extractors.tau._status import Baseline

__all__ = ["ExpFit", "fit_exp_rows", "row_diagnostics"]


@dataclass(frozen=True)
class ExpFit:
    """Per-row least-squares fit of ``y = c + a exp(-k u)`` (``+ d u`` with ``baseline="drift"``).

    ``u = 0, 1, ..., m-1`` [samples].

    Attributes
    ----------
    k : ndarray, shape (K,)
        Rate per sample (tau = dt / k).
    c, a : ndarray, shape (K,)
        Asymptote (with a drift: the baseline at ``u = 0``) and amplitude at ``u = 0``.
    r2 : ndarray, shape (K,)
        Coefficient of determination over the first ``max(8, 5 / k)`` samples of the row (at most m),
        so a long settled plateau does not inflate it.
    sigma : ndarray, shape (K,)
        Residual standard deviation over the whole row (m - 3 degrees of freedom, m - 4 with a drift).
    clipped : ndarray of bool, shape (K,)
        At least ``clip_samples`` samples equal the row's maximum (or minimum) and the first of them
        lies within 6 / k samples of the start.
    se : ndarray, shape (K,)
        Standard error of ln tau (= relative standard error of tau) from the curvature of the cost
        and the residual standard deviation.
    n_iter : int
        Levenberg-Marquardt iterations used by the slowest row.
    se_level : ndarray, shape (K,)
        Standard error of the *level*: the baseline parameter the model holds constant within a window
        but which a drifting baseline moves from cycle to cycle (see ``_gate.drifting``): the
        asymptote ``c`` without a drift term, the drift ``d`` with one (the larger of the plain and
        the sandwich error).
    level_gain : ndarray, shape (K,)
        How much ln k moves, to first order, per unit slope of the level along the row (per sample):
        without a drift term the gain of a linear drift ``b u``, ``d ln k / d b``; with one that of a
        curved baseline ``q u^2`` (whose d changes by ``2 q`` per sample), ``(d ln k / d q) / 2``.
        ln tau moves by minus that times the slope.
    d : ndarray, shape (K,)
        Drift of the baseline per sample (in the units of ``y``); 0 without a drift term.
    """

    k: np.ndarray
    c: np.ndarray
    a: np.ndarray
    r2: np.ndarray
    sigma: np.ndarray
    clipped: np.ndarray
    se: np.ndarray
    n_iter: int
    se_level: np.ndarray
    level_gain: np.ndarray
    d: np.ndarray


def fit_exp_rows(
    y: np.ndarray,
    *,
    k0: np.ndarray | None = None,
    max_iter: int = 30,
    tol: float = 1e-5,
    clip_samples: int = 3,
    diagnostics: bool = True,
    baseline: Baseline = "flat",
) -> ExpFit:
    """Least-squares fit of ``c + a exp(-k u)`` (``baseline="drift"``: ``c + d u + a exp(-k u)``) to every row.

    Parameters
    ----------
    y : ndarray of float64, shape (K, m)
        One half-cycle per row, finite, ``m >= 5``; best normalised to O(1).
    k0 : ndarray of float64, shape (K,), optional
        Starting rate per sample for each row (NaN = none); rows without one use the linear
        integral-equation estimate, and a coarse grid of the cost if that fails.
    max_iter : int, default 30
        Cap on Levenberg-Marquardt iterations; each row stops once ``|d ln k| < tol``.
    tol : float, default 1e-5
        Convergence tolerance on ``ln k`` (relative change of tau).
    clip_samples : int, default 3
        Minimum run of identical extreme values reported as clipped; 0 disables the check.
    diagnostics : bool, default True
        Compute ``r2`` and ``clipped`` (NaN / False otherwise).
    baseline : {"flat", "drift"}, default "flat"
        Without or with the linear drift term ``d u``; see :func:`_fit_drift_rows`.

    Returns
    -------
    ExpFit
    """
    y = np.ascontiguousarray(y, dtype=np.float64)
    K, m = y.shape
    if K == 0:
        empty = np.zeros(0)
        return ExpFit(empty, empty, empty, empty, empty, np.zeros(0, bool), empty, 0, empty, empty, empty)
    start = np.full(K, np.nan) if k0 is None else np.ascontiguousarray(k0, dtype=np.float64)
    if baseline == "drift":
        return _fit_drift_rows(y, start, max_iter, tol, clip_samples, diagnostics)
    k, c, a, cost, info, n_iter = _kernels.fit_rows(y, start, int(max_iter), float(tol))
    sigma = np.sqrt(cost / max(m - 3, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.where(info > 0, sigma / np.sqrt(info), np.inf)
    # Noise that grows with the current makes one residual sigma too small where the information on
    # tau comes from (the noisy start of a falling transition): the larger of the two errors.
    se_robust, se_c, drift_gain = _row_errors(y, k, c, a, sigma)
    se = np.fmax(se, se_robust)
    if diagnostics:
        r2, clipped = row_diagnostics(y, k, c, a, clip_samples=clip_samples)
    else:
        r2, clipped = np.full(K, np.nan), np.zeros(K, bool)
    return ExpFit(k, c, a, r2, sigma, clipped, se, int(n_iter), se_c, drift_gain, np.zeros(K))


def _fit_drift_rows(
    y: np.ndarray, start: np.ndarray, max_iter: int, tol: float, clip_samples: int, diagnostics: bool
) -> ExpFit:
    """:func:`fit_exp_rows` with a drifting baseline: ``y = c + d u + a exp(-k u)``.

    The same variable projection with three linear parameters (``c``, ``d``, ``a``) solved in closed
    form at every k (:func:`~dask_features.extractors.tau._kernels.fit_rows_drift`). The standard error
    of ln k accounts for the extra parameter: the residual variance has m - 4 degrees of freedom, the
    curvature is that of the cost with d free, and the sandwich error has four parameters. R^2 is
    that of the transition itself (the drift ``d u`` subtracted from the row and from the fit); the
    clipping check reads the raw samples.
    """
    K, m = y.shape
    k, c, d, a, cost, info, n_iter = _kernels.fit_rows_drift(y, start, int(max_iter), float(tol))
    sigma = np.sqrt(cost / max(m - 4, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.where(info > 0, sigma / np.sqrt(info), np.inf)
    se_robust, se_d, curve_gain = _row_errors_drift(y, k, c, d, a, sigma)
    se = np.fmax(se, se_robust)
    if diagnostics:
        r2 = row_diagnostics(y - d[:, None] * np.arange(m), k, c, a, clip_samples=0)[0]
        clipped = row_diagnostics(y, k, c, a, clip_samples=clip_samples)[1]
    else:
        r2, clipped = np.full(K, np.nan), np.zeros(K, bool)
    return ExpFit(k, c, a, r2, sigma, clipped, se, int(n_iter), se_d, curve_gain / 2.0, d)


def _row_errors_drift(
    y: np.ndarray, k: np.ndarray, c: np.ndarray, d: np.ndarray, a: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_row_errors` for ``c + d u + a exp(-k u)``: robust se of ln k, se of d and curvature gain.

    * ``se`` of ln k: the sandwich (HC1) error for the four parameters ``(c, d m, a, ln k)``, Jacobian
      columns ``1, u / m, e, g`` (``e = exp(-k u)``, ``g = -a k u e`` = d/d ln k).
    * ``se`` of d: the larger of the sandwich and the plain (``sigma``) error.
    * curvature gain ``d ln k / d q``: the last component of ``(J'J)^-1 J'u^2``, the first-order change
      of ln k when the row gains a curved baseline ``q u^2``, which the linear term does not take up.

    The normal matrix ``S = J'J`` and the meat ``W = J' diag(r^2) J`` come from row sums, rows 2 and 4
    of ``S^-1`` from a batched solve. NaN where the fit or its normal matrix is degenerate.
    """
    K, m = y.shape
    out = np.full((3, K), np.nan)
    ok = np.isfinite(k) & (k > 0) & np.isfinite(c) & np.isfinite(d) & np.isfinite(a)
    if not ok.any() or m <= 4:
        return out[0], out[1], out[2]
    u = np.arange(m, dtype=np.float64)
    kk, aa = k[ok, None], a[ok, None]
    with np.errstate(all="ignore"):
        e = np.exp(-kk * u)
        cols = [np.broadcast_to(1.0, e.shape), np.broadcast_to(u / m, e.shape), e, -aa * kk * u * e]
        r2 = np.square(y[ok] - c[ok, None] - d[ok, None] * u - aa * e)
        n = int(ok.sum())
        s, w, ju2 = np.empty((n, 4, 4)), np.empty((n, 4, 4)), np.empty((n, 4))
        for i in range(4):
            ju2[:, i] = (cols[i] * (u * u)).sum(axis=1)
            for j in range(i, 4):
                prod = cols[i] * cols[j]
                s[:, i, j] = s[:, j, i] = prod.sum(axis=1)
                w[:, i, j] = w[:, j, i] = (prod * r2).sum(axis=1)
        finite = np.asarray(np.isfinite(s).all(axis=(1, 2)) & np.isfinite(w).all(axis=(1, 2)))
        good = np.asarray(finite & (np.linalg.det(np.where(finite[:, None, None], s, np.eye(4))) > 0))
        s[~good] = np.eye(4)
        # Rows 1 (d m) and 3 (ln k) of the symmetric S^-1.
        rows = np.linalg.solve(s, np.broadcast_to(np.eye(4)[:, [1, 3]], (n, 4, 2))).transpose(0, 2, 1)
        var = np.einsum("kri,kij,krj->kr", rows, w, rows) * (m / (m - 4))
        se = np.where(good[:, None] & np.isfinite(var) & (var >= 0), np.sqrt(var), np.nan)
        out[0, ok] = se[:, 1]
        out[1, ok] = np.where(good, np.fmax(se[:, 0], sigma[ok] * np.sqrt(rows[:, 0, 1])) / m, np.nan)
        out[2, ok] = np.where(good, np.einsum("ki,ki->k", rows[:, 1], ju2), np.nan)
    return out[0], out[1], out[2]


def _row_errors(
    y: np.ndarray, k: np.ndarray, c: np.ndarray, a: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust standard error of ln k, standard error of c and drift gain of each row's fit.

    * ``se`` of ln k: heteroscedasticity-robust (sandwich, HC1), ``(J'J)^-1 J' diag(r^2) J (J'J)^-1``
      for the parameters ``(c, a, ln k)`` of ``c + a exp(-k u)``, ``r`` the residuals: right whatever
      the noise's dependence on the signal, where the plain error assumes one variance for the whole row.
    * ``se`` of c: the larger of that sandwich error and the plain one (``sigma`` the residual sd).
    * drift gain ``d ln k / d b``: the third component of ``(J'J)^-1 J'u``, the first-order change of
      the fitted parameters when the row gains a linear drift ``b u``. It depends on k, a and m only.

    NaN where the fit or its normal matrix is degenerate.
    """
    K, m = y.shape
    out = np.full((3, K), np.nan)
    ok = np.isfinite(k) & (k > 0) & np.isfinite(c) & np.isfinite(a)
    if not ok.any() or m <= 3:
        return out[0], out[1], out[2]
    u = np.arange(m, dtype=np.float64)
    kk, cc, aa, yy = k[ok, None], c[ok, None], a[ok, None], y[ok]
    with np.errstate(all="ignore"):
        # Jacobian columns 1, e, g (d/dc, d/da, d/d ln k) and squared residuals, summed by hand: the
        # normal matrix S = J'J and the "meat" W = J' diag(r^2) J need 12 row sums, not 3-D products.
        e = np.exp(-kk * u)
        g = -aa * kk * u * e
        r2 = np.square(yy - cc - aa * e)
        se_, sg, see, seg, sgg = e.sum(1), g.sum(1), (e * e).sum(1), (e * g).sum(1), (g * g).sum(1)
        r2e, r2g = r2 * e, r2 * g
        w11, w1e, w1g = r2.sum(1), r2e.sum(1), r2g.sum(1)
        wee, weg, wgg = (r2e * e).sum(1), (r2e * g).sum(1), (r2g * g).sum(1)
        # First and third rows of S^-1 (cofactors of the symmetric 3 x 3 matrix over its determinant).
        d0, d1 = see * sgg - seg * seg, sg * seg - se_ * sgg
        c0 = se_ * seg - sg * see
        c1 = sg * se_ - m * seg
        c2 = m * see - se_ * se_
        det = sg * c0 + seg * c1 + sgg * c2

        def sandwich(v0: np.ndarray, v1: np.ndarray, v2: np.ndarray) -> np.ndarray:
            var = (
                v0 * v0 * w11
                + v1 * v1 * wee
                + v2 * v2 * wgg
                + 2.0 * (v0 * v1 * w1e + v0 * v2 * w1g + v1 * v2 * weg)
            ) * (m / (m - 3))
            return np.where(np.isfinite(var) & (var >= 0), np.sqrt(var), np.nan)

        v0, v1, v2 = c0 / det, c1 / det, c2 / det
        out[0, ok] = sandwich(v0, v1, v2)
        out[1, ok] = np.fmax(sandwich(d0 / det, d1 / det, c0 / det), sigma[ok] * np.sqrt(d0 / det))
        # J'u = (sum u, sum u e, sum u g), with sum u e = -sum g / (a k).
        sue = -sg / (aa[:, 0] * kk[:, 0])
        out[2, ok] = v0 * (m * (m - 1) / 2.0) + v1 * sue + v2 * (g * u).sum(1)
    return out[0], out[1], out[2]


def row_diagnostics(
    y: np.ndarray, k: np.ndarray, c: np.ndarray, a: np.ndarray, *, clip_samples: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """R^2 over the first ``max(8, 5 / k)`` samples and the clipping flag of fitted rows.

    See :class:`ExpFit` for the definitions. Rows with NaN ``k`` get NaN R^2 and are not clipped.
    """
    as_f8 = [np.ascontiguousarray(v, dtype=np.float64) for v in (y, k, c, a)]
    if as_f8[0].shape[0] == 0:
        return np.zeros(0), np.zeros(0, bool)
    return _kernels.row_diagnostics(*as_f8, int(clip_samples))
