"""Compiled kernels of ``transient.tau_on_off``: the per-row fit, start rates, diagnostics and rhythm check.

The row fit solves ``y = c + a exp(-k u)`` on every row of a matrix (one half-cycle per row,
``u = 0 .. m-1`` samples). Each row is fitted on its own, so a row's result never depends on the
other rows of the batch, and each row iterates only as long as it needs to. Rows, box widths and
profiles are processed in compiled loops: no Python per row and no NumPy call per iteration, which
is where a batched NumPy solver spends its time (a few microseconds per call, tens of calls per
iteration). Single-threaded on purpose: Dask parallelises over chunks, extractors never do.

Compiled ahead of time by ``python -m dask_features.warmup``, else by numba on first use (see
:mod:`dask_features._compiled`); importing this module does not import numba.
"""

from __future__ import annotations

import numpy as np

from dask_features._compiled import kernel

__all__ = [
    "fit_one",
    "fit_one_drift",
    "fit_rows",
    "fit_rows_drift",
    "group_start",
    "rhythm_excess",
    "row_diagnostics",
]

CLIP_REACH = 6.0
"""A run of identical extreme values starting within this many fitted tau of the window start is clipping.

Fitted to a clipped curve, tau comes out short (25 % at a limit at 90 % of the swing, which the
curve reaches at 2.3 true tau), so the reach must cover several tau: 6 catches limits up to ~99.7 %
of the swing; a settled noise-free plateau repeats its value only after ~35 tau (float64).
"""

#: exp(-40) = 4e-18: samples further than 40 / k from the start add nothing to any sum.
_SPAN = 40.0
#: Starting grid of k for rows whose integral-equation estimate fails [1/sample].
_GRID_POINTS = 9


@kernel()
def _basis_sums(k: float, m: int) -> tuple[float, float, float, float, float]:
    """``sum(u^p e^{-j k u})`` for (p, j) = (0,1), (1,1), (0,2), (1,2), (2,2) over ``u < m``."""
    if k * m >= 1.0:
        # Closed forms of the geometric series (exact here; they lose digits only when k m << 1).
        q, d, qn = np.exp(-k), -np.expm1(-k), np.exp(-k * m)
        se = (1.0 - qn) / d
        sue = (q - m * qn + (m - 1) * q * qn) / (d * d)
        q, d, qn = np.exp(-2.0 * k), -np.expm1(-2.0 * k), np.exp(-2.0 * k * m)
        see = (1.0 - qn) / d
        suee = (q - m * qn + (m - 1) * q * qn) / (d * d)
        suuee = (
            q * (1.0 + q) - qn * ((m - 1) ** 2 * q * q - (2.0 * m * m - 2.0 * m - 1.0) * q + m * m)
        ) / d**3
        return se, sue, see, suee, suuee
    q = np.exp(-k)
    e = 1.0
    se = sue = see = suee = suuee = 0.0
    for u in range(m):
        e2 = e * e
        se += e
        sue += u * e
        see += e2
        suee += u * e2
        suuee += u * u * e2
        e *= q
    return se, sue, see, suee, suuee


@kernel()
def _state(y: np.ndarray, sy: float, syy: float, k: float) -> tuple[float, ...]:
    """(c, a) in closed form at rate k, the residual sum of squares and the sums a Gauss-Newton step needs."""
    m = y.size
    n = m if _SPAN / k >= m else int(_SPAN / k) + 1
    q = np.exp(-k)
    e = 1.0
    sye = suye = 0.0
    for u in range(n):
        ye = y[u] * e
        sye += ye
        suye += u * ye
        e *= q
    se, sue, see, suee, suuee = _basis_sums(k, m)
    det = m * see - se * se
    c = (see * sy - se * sye) / det
    a = (m * sye - se * sy) / det
    # At the linear least-squares solution the residual is orthogonal to the basis: |r|^2 = r.y.
    cost = syy - c * sy - a * sye
    if not np.isfinite(cost):
        cost = np.inf
    elif cost < 0.0:
        cost = 0.0
    return c, a, cost, se, sue, see, suee, suuee, det, suye


@kernel()
def _integral_start(y: np.ndarray) -> float:
    """k from the linear model ``y(u) = y(0) + k c u - k S(u)``, S the running trapezoid integral of y.

    Needs no initial guess; columns are scaled by 1/m so the 3x3 normal equations stay well
    conditioned. Returns NaN when the system is singular.
    """
    m = y.size
    g = np.zeros((3, 3))
    rhs = np.zeros(3)
    s = 0.0
    for u in range(m):
        if u > 0:
            s += 0.5 * (y[u] + y[u - 1]) / m
        v = u / m
        x0, x1, x2 = 1.0, v, s
        g[0, 0] += x0 * x0
        g[0, 1] += x0 * x1
        g[0, 2] += x0 * x2
        g[1, 1] += x1 * x1
        g[1, 2] += x1 * x2
        g[2, 2] += x2 * x2
        rhs[0] += x0 * y[u]
        rhs[1] += x1 * y[u]
        rhs[2] += x2 * y[u]
    g[1, 0], g[2, 0], g[2, 1] = g[0, 1], g[0, 2], g[1, 2]
    ridge = 1e-12 * (g[0, 0] + g[1, 1] + g[2, 2])
    for i in range(3):
        g[i, i] += ridge
    # Cramer's rule for the third coefficient (the only one needed).
    det = (
        g[0, 0] * (g[1, 1] * g[2, 2] - g[1, 2] * g[2, 1])
        - g[0, 1] * (g[1, 0] * g[2, 2] - g[1, 2] * g[2, 0])
        + g[0, 2] * (g[1, 0] * g[2, 1] - g[1, 1] * g[2, 0])
    )
    num = (
        g[0, 0] * (g[1, 1] * rhs[2] - rhs[1] * g[2, 1])
        - g[0, 1] * (g[1, 0] * rhs[2] - rhs[1] * g[2, 0])
        + rhs[0] * (g[1, 0] * g[2, 1] - g[1, 1] * g[2, 0])
    )
    return -(num / det) / m


@kernel("Tuple((f8, f8, f8, f8, f8, i8))(f8[::1], f8, i8, f8)")
def fit_one(
    row: np.ndarray, k0: float, max_iter: int, tol: float
) -> tuple[float, float, float, float, float, int]:
    """Least-squares ``c + a exp(-k u)`` of one row; see :func:`fit_rows`.

    Returns ``(k, c, a, cost, info, n_iter)``: ``info`` is the reduced Gauss-Newton curvature of the cost
    in ``ln k`` per unit noise variance, so the standard error of ``ln tau`` is ``sigma / sqrt(info)``.
    k, c, a, cost and info are NaN when the fit failed numerically.
    """
    m = row.size
    lo, hi = np.log(1e-3 / m), np.log(20.0)
    sy = syy = 0.0
    for u in range(m):
        sy += row[u]
        syy += row[u] * row[u]
    k = k0
    if not (np.isfinite(k) and k > 0.0):
        k = _integral_start(row)
    if not (np.isfinite(k) and k > 0.0):
        # A coarse grid of the projected cost for rows the linear estimate cannot start.
        best, k = np.inf, np.exp(lo)
        for j in range(_GRID_POINTS):
            kg = np.exp(lo + (np.log(2.0) - lo) * j / (_GRID_POINTS - 1))
            cg = _state(row, sy, syy, kg)[2]
            if cg < best:
                best, k = cg, kg
    theta = min(max(np.log(k), lo), hi)
    k = np.exp(theta)
    c, a, cost, se, sue, see, suee, suuee, det, suye = _state(row, sy, syy, k)
    lam = 1e-3
    it = 0
    jj = np.nan
    while it < max_iter:
        it += 1
        ak = a * k
        jr = ak * (suye - c * sue - a * suee)
        g0, g1 = ak * sue, ak * suee
        jj = ak * ak * suuee - (see * g0 * g0 - 2.0 * se * g0 * g1 + m * g1 * g1) / det
        step = -jr / (jj * (1.0 + lam))
        if not np.isfinite(step):
            step = 0.0
        step = min(max(step, -1.0), 1.0)
        th_t = min(max(theta + step, lo), hi)
        k_t = np.exp(th_t)
        trial = _state(row, sy, syy, k_t)
        if trial[2] <= cost * (1.0 + 1e-12):
            theta, k = th_t, k_t
            c, a, cost, se, sue, see, suee, suuee, det, suye = trial
            lam *= 0.3
        else:
            lam *= 10.0
        # A step below tol changes tau by less than tol (relative): the row has converged.
        if abs(step) < tol or lam > 1e8:
            break
    # Curvature at the final k (the last one computed may belong to the previous iterate).
    ak = a * k
    g0, g1 = ak * sue, ak * suee
    jj = ak * ak * suuee - (see * g0 * g0 - 2.0 * se * g0 * g1 + m * g1 * g1) / det
    if not (np.isfinite(k) and np.isfinite(c) and np.isfinite(a)):
        return np.nan, np.nan, np.nan, np.nan, np.nan, it
    return k, c, a, cost, jj, it


@kernel("Tuple((f8[::1], f8[::1], f8[::1], f8[::1], f8[::1], i8))(f8[:, ::1], f8[::1], i8, f8)")
def fit_rows(
    y: np.ndarray, k0: np.ndarray, max_iter: int, tol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Least-squares ``c + a exp(-k u)`` for every row of ``y`` (K, m); see ``_rows.fit_exp_rows``.

    Variable projection: (c, a) are solved in closed form at every k, and Levenberg-Marquardt runs on
    ``ln k`` with Kaufman's Jacobian, a per-row damping factor and a step of at most 1 in ``ln k``.

    Returns
    -------
    k, c, a, cost, info : ndarray, shape (K,)
        Rate per sample, asymptote, amplitude at u = 0, residual sum of squares and the curvature in
        ``ln k`` (see :func:`fit_one`); NaN when the fit failed numerically.
    n_iter : int
        Iterations of the slowest row.
    """
    K, _m = y.shape
    k_out = np.full(K, np.nan)
    c_out = np.full(K, np.nan)
    a_out = np.full(K, np.nan)
    cost_out = np.full(K, np.nan)
    info_out = np.full(K, np.nan)
    n_iter = 0
    for i in range(K):
        k, c, a, cost, info, it = fit_one(y[i], k0[i], max_iter, tol)
        n_iter = max(n_iter, it)
        k_out[i], c_out[i], a_out[i], cost_out[i], info_out[i] = k, c, a, cost, info
    return k_out, c_out, a_out, cost_out, info_out, n_iter


# ---------------------------------------------------------------------------------------------------------
# The same fit with a linear baseline: y = c + d u + a exp(-k u) (``baseline="drift"``)


@kernel()
def solve_sym3(
    g00: float, g01: float, g02: float, g11: float, g12: float, g22: float, b0: float, b1: float, b2: float
) -> tuple[float, float, float]:
    """Solution ``x`` of ``G x = b`` for the symmetric 3 x 3 matrix ``G`` (upper triangle given), by
    cofactors: the closed-form linear parameters of the drift models (inf or NaN where ``G`` is singular)."""
    a00 = g11 * g22 - g12 * g12
    a01 = g02 * g12 - g01 * g22
    a02 = g01 * g12 - g11 * g02
    a11 = g00 * g22 - g02 * g02
    a12 = g01 * g02 - g00 * g12
    a22 = g00 * g11 - g01 * g01
    det = g00 * a00 + g01 * a01 + g02 * a02
    return (
        (a00 * b0 + a01 * b1 + a02 * b2) / det,
        (a01 * b0 + a11 * b1 + a12 * b2) / det,
        (a02 * b0 + a12 * b1 + a22 * b2) / det,
    )


@kernel()
def _drift_state(y: np.ndarray, sy: float, syw: float, syy: float, k: float) -> tuple[float, ...]:
    """(c, d m, a) in closed form at rate k, the residual sum of squares and the two Gauss-Newton sums.

    The linear parameters multiply the columns ``1``, ``w = u / m`` (scaled so that the 3 x 3 normal
    matrix stays well conditioned) and ``e = exp(-k u)``. Returns ``(c, dw, a, cost, suer, red)``:
    ``dw`` the drift over m samples, ``suer = sum(u e r)`` (r the residual; the gradient of the cost in
    ln k is ``2 a k suer``) and ``red`` the squared norm of ``u e`` after projection onto the columns'
    orthogonal complement (the reduced Gauss-Newton curvature in ln k is ``(a k)^2 red``).
    """
    m = y.size
    n = m if _SPAN / k >= m else int(_SPAN / k) + 1
    q = np.exp(-k)
    e = 1.0
    sye = suye = se = sue = suue = see = suee = suuee = 0.0
    for u in range(n):
        ye = y[u] * e
        sye += ye
        suye += u * ye
        se += e
        sue += u * e
        suue += u * u * e
        e2 = e * e
        see += e2
        suee += u * e2
        suuee += u * u * e2
        e *= q
    # Normal matrix G of the columns (1, w, e) (symmetric).
    g00, g01, g02 = float(m), (m - 1) / 2.0, se
    g11, g12, g22 = (m - 1) * (2.0 * m - 1.0) / (6.0 * m), sue / m, see
    c, dw, a = solve_sym3(g00, g01, g02, g11, g12, g22, sy, syw, sye)
    # At the linear least-squares solution the residual is orthogonal to the columns: |r|^2 = r.y.
    cost = syy - c * sy - dw * syw - a * sye
    if not np.isfinite(cost):
        cost = np.inf
    elif cost < 0.0:
        cost = 0.0
    suer = suye - c * sue - dw * suue / m - a * suee
    v0, v1, v2 = sue, suue / m, suee
    x0, x1, x2 = solve_sym3(g00, g01, g02, g11, g12, g22, v0, v1, v2)
    quad = v0 * x0 + v1 * x1 + v2 * x2  # v' G^-1 v
    return c, dw, a, cost, suer, suuee - quad


@kernel()
def _integral_start_drift(y: np.ndarray) -> float:
    """k from the linear model ``y(u) = y(0) + (k c + d) u + (k d / 2) u^2 - k S(u)``, S the running integral.

    :func:`_integral_start` with the drift term: integrating ``y' = d - k (y - c - d u)``. Columns
    scaled by 1/m; Gaussian elimination with partial pivoting. NaN when the system is singular.
    """
    m = y.size
    g = np.zeros((4, 4))
    rhs = np.zeros(4)
    x = np.zeros(4)
    s = 0.0
    for u in range(m):
        if u > 0:
            s += 0.5 * (y[u] + y[u - 1]) / m
        v = u / m
        x[0], x[1], x[2], x[3] = 1.0, v, v * v, s
        for i in range(4):
            rhs[i] += x[i] * y[u]
            for j in range(4):
                g[i, j] += x[i] * x[j]
    ridge = 1e-12 * (g[0, 0] + g[1, 1] + g[2, 2] + g[3, 3])
    for i in range(4):
        g[i, i] += ridge
    for col in range(4):
        piv = col
        for r in range(col + 1, 4):
            if abs(g[r, col]) > abs(g[piv, col]):
                piv = r
        if g[piv, col] == 0.0:
            return np.nan
        if piv != col:
            for j in range(4):
                g[col, j], g[piv, j] = g[piv, j], g[col, j]
            rhs[col], rhs[piv] = rhs[piv], rhs[col]
        for r in range(col + 1, 4):
            f = g[r, col] / g[col, col]
            for j in range(col, 4):
                g[r, j] -= f * g[col, j]
            rhs[r] -= f * rhs[col]
    # Only the last coefficient (that of S) is needed: the last row of the triangular system.
    return -(rhs[3] / g[3, 3]) / m


@kernel("Tuple((f8, f8, f8, f8, f8, f8, i8))(f8[::1], f8, i8, f8)")
def fit_one_drift(
    row: np.ndarray, k0: float, max_iter: int, tol: float
) -> tuple[float, float, float, float, float, float, int]:
    """Least-squares ``c + d u + a exp(-k u)`` of one row; see :func:`fit_rows_drift`.

    Returns ``(k, c, d, a, cost, info, n_iter)``, ``d`` per sample and ``info`` as in :func:`fit_one`
    (the reduced curvature in ``ln k`` per unit noise variance, now with three linear parameters).
    """
    m = row.size
    lo, hi = np.log(1e-3 / m), np.log(20.0)
    sy = syw = syy = 0.0
    for u in range(m):
        sy += row[u]
        syw += row[u] * (u / m)
        syy += row[u] * row[u]
    k = k0
    if not (np.isfinite(k) and k > 0.0):
        k = _integral_start_drift(row)
    if not (np.isfinite(k) and k > 0.0):
        best, k = np.inf, np.exp(lo)
        for j in range(_GRID_POINTS):
            kg = np.exp(lo + (np.log(2.0) - lo) * j / (_GRID_POINTS - 1))
            cg = _drift_state(row, sy, syw, syy, kg)[3]
            if cg < best:
                best, k = cg, kg
    theta = min(max(np.log(k), lo), hi)
    k = np.exp(theta)
    c, dw, a, cost, suer, red = _drift_state(row, sy, syw, syy, k)
    lam = 1e-3
    it = 0
    while it < max_iter:
        it += 1
        ak = a * k
        step = -(ak * suer) / (ak * ak * red * (1.0 + lam))
        if not np.isfinite(step):
            step = 0.0
        step = min(max(step, -1.0), 1.0)
        th_t = min(max(theta + step, lo), hi)
        k_t = np.exp(th_t)
        trial = _drift_state(row, sy, syw, syy, k_t)
        if trial[3] <= cost * (1.0 + 1e-12):
            theta, k = th_t, k_t
            c, dw, a, cost, suer, red = trial
            lam *= 0.3
        else:
            lam *= 10.0
        if abs(step) < tol or lam > 1e8:
            break
    ak = a * k
    if not (np.isfinite(k) and np.isfinite(c) and np.isfinite(dw) and np.isfinite(a)):
        return np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, it
    return k, c, dw / m, a, cost, ak * ak * red, it


@kernel("Tuple((f8[::1], f8[::1], f8[::1], f8[::1], f8[::1], f8[::1], i8))(f8[:, ::1], f8[::1], i8, f8)")
def fit_rows_drift(
    y: np.ndarray, k0: np.ndarray, max_iter: int, tol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Least-squares ``c + d u + a exp(-k u)`` for every row of ``y`` (K, m): :func:`fit_rows` with a drift.

    Variable projection as in :func:`fit_rows`, with (c, d, a) solved in closed form at every k.

    Returns
    -------
    k, c, d, a, cost, info : ndarray, shape (K,)
        Rate per sample, baseline at u = 0, its drift per sample, amplitude at u = 0, residual sum of
        squares and the curvature in ``ln k``; NaN when the fit failed numerically.
    n_iter : int
        Iterations of the slowest row.
    """
    K, _m = y.shape
    out = np.full((6, K), np.nan)
    n_iter = 0
    for i in range(K):
        k, c, d, a, cost, info, it = fit_one_drift(y[i], k0[i], max_iter, tol)
        n_iter = max(n_iter, it)
        out[0, i], out[1, i], out[2, i], out[3, i], out[4, i], out[5, i] = k, c, d, a, cost, info
    return out[0].copy(), out[1].copy(), out[2].copy(), out[3].copy(), out[4].copy(), out[5].copy(), n_iter


@kernel("Tuple((f8[::1], b1[::1]))(f8[:, ::1], f8[::1], f8[::1], f8[::1], i8)")
def row_diagnostics(
    y: np.ndarray, k: np.ndarray, c: np.ndarray, a: np.ndarray, clip_samples: int
) -> tuple[np.ndarray, np.ndarray]:
    """R^2 over the first ``max(8, 5 / k)`` samples and the clipping flag of every row.

    See ``_rows.ExpFit`` for the definitions; rows with NaN ``k`` get NaN R^2 and are not clipped.
    """
    K, m = y.shape
    r2 = np.full(K, np.nan)
    clipped = np.zeros(K, np.bool_)
    for i in range(K):
        ki = k[i]
        if not np.isfinite(ki):
            continue
        row = y[i]
        n = int(min(max(np.ceil(5.0 / ki), 8.0), m))
        ybar = 0.0
        for u in range(n):
            ybar += row[u]
        ybar /= n
        q = np.exp(-ki)
        e = 1.0
        ss_res = ss_tot = 0.0
        for u in range(n):
            r = row[u] - c[i] - a[i] * e
            ss_res += r * r
            ss_tot += (row[u] - ybar) ** 2
            e *= q
        r2[i] = 1.0 - ss_res / ss_tot
        if clip_samples <= 0:
            continue
        # A limiter outputs the same value again and again; a clipped transient reaches it within a
        # few tau (see CLIP_REACH).
        hi_v, lo_v = row[0], row[0]
        for u in range(m):
            hi_v = max(hi_v, row[u])
            lo_v = min(lo_v, row[u])
        reach = CLIP_REACH / ki
        limit = int(min(m, np.ceil(reach) + clip_samples))
        for ext in (hi_v, lo_v):
            count, first = 0, -1
            for u in range(limit):
                if row[u] == ext:
                    count += 1
                    if first < 0:
                        first = u
            if count >= clip_samples and first < reach:
                clipped[i] = True
    return r2, clipped


@kernel("f8[::1](f8[:, ::1], i8[::1])")
def group_start(y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Start rate per row: the 1/e crossing of the mean row of its group, see ``_fit._group_start``.

    ``groups`` are non-negative integers (step * 2 + direction); the crossing is interpolated
    linearly between samples; rows whose mean never crosses start at tau = m / 3 samples.
    """
    K, m = y.shape
    n_groups = groups.max() + 1 if K else 0
    means = np.zeros((n_groups, m))
    counts = np.zeros(n_groups)
    for i in range(K):
        g = groups[i]
        counts[g] += 1.0
        for u in range(m):
            means[g, u] += y[i, u]
    n_tail = max(1, m // 10)
    level = np.exp(-1.0)
    k_group = np.full(n_groups, np.nan)
    for g in range(n_groups):
        if counts[g] == 0:
            continue
        row = means[g] / counts[g]
        tail = 0.0
        for u in range(m - n_tail, m):
            tail += row[u]
        tail /= n_tail
        span = row[0] - tail
        tau0 = m / 3.0
        for u in range(m):
            frac = (row[u] - tail) / span
            if frac < level:
                if u == 0:
                    tau0 = 0.5
                else:
                    before = (row[u - 1] - tail) / span
                    x = u - 1 + (before - level) / (before - frac)
                    if np.isfinite(x):
                        tau0 = x
                break
        k_group[g] = 1.0 / max(tau0, 0.5)
    k0 = np.empty(K)
    for i in range(K):
        k0[i] = k_group[groups[i]]
    return k0


@kernel("f8[::1](f8[::1], i8[::1], i8[::1], i8[::1], i8[::1], f8[::1])")
def rhythm_excess(
    current: np.ndarray, first: np.ndarray, lo: np.ndarray, hi: np.ndarray, h: np.ndarray, sgn: np.ndarray
) -> np.ndarray:
    """How much stronger an edge is away from where the period puts it, per half-cycle.

    For the box contrast ``D(x) = mean(I[x:x+h]) - mean(I[x-h:x])`` (times ``sgn``), a transition that
    starts at ``first`` peaks within ``[first, first + h]`` (an S-shaped one, anchored at its steepest
    point, a little before). Returns ``max D`` over ``[first - 2h, first + 2h]`` minus ``max D`` over
    ``[first - h, first + h]`` [A as stored]: noise-sized when the edge is
    where predicted, about the swing when it is elsewhere. NaN where the boxes leave ``[lo, hi)`` or
    meet a NaN.
    """
    K = first.size
    out = np.full(K, np.nan)
    # One buffer for the running sums of every row (no allocation per row).
    cs = np.zeros(6 * (h.max() if K else 0) + 1)
    for r in range(K):
        hh = h[r]
        a, b = first[r] - 3 * hh, first[r] + 3 * hh
        if a < lo[r] or b > hi[r]:
            continue
        bad = False
        for j in range(b - a):
            x = current[a + j]
            if not np.isfinite(x):
                bad = True
                break
            cs[j + 1] = cs[j] + x
        if bad:
            continue
        best_all = best_in = -np.inf
        for o in range(-2 * hh, 2 * hh + 1):
            i = first[r] + o - a
            d = sgn[r] * ((cs[i + hh] - cs[i]) - (cs[i] - cs[i - hh])) / hh
            best_all = max(best_all, d)
            if -hh <= o <= hh:
                best_in = max(best_in, d)
        out[r] = best_all - best_in
    return out
