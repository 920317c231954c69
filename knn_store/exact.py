"""Exact kNN by construction: conditioned float32 candidates, a proven error window, float64 re-rank.

The published answer is defined as the float64 brute force: for rows ``v_i`` (the input converted exactly
to float64; for cosine, each row divided by its norm after an exact power-of-two pre-scaling), the
squared distance is ``sum((v_j - v_i) ** 2)`` summed in NumPy's pairwise order, rows are ordered by
(that value, index), self is excluded by index. How it is reached cheaply:

1. **Condition.** Rows are centred on the float64 column mean and scaled by a power of two so the largest
   entry is below 1, then rounded to float32. Centring removes the common offset that makes
   ``|x|^2 - 2 x.y + |y|^2`` cancel (an offset of 1000 lost every row before).
2. **Candidates.** The float32 GEMM gives approximate squared distances ``a_ij``. Whatever the BLAS
   summation order, ``|a_ij - t_ij| <= e_ij = c (nu_i + nu_j)^2 + c_abs`` with ``c = 2 (d + 8) 2^-24``
   (rounding of the inputs, the dot product, the norms and the final sums, with a factor 2 of slack) where
   ``nu`` are the conditioned row norms. Hence every point whose exact distance is at most the exact
   k-th distance satisfies ``a_ij - e_ij <= U_i``, ``U_i`` the k-th smallest ``a_ij + e_ij``: the candidate
   window holds all true neighbours *and everything tied with the k-th*. A row first tries the
   ``k + 8`` smallest ``a``; if the next one is still inside the (row-wide, looser) window the row is
   widened to the exact per-pair window.
3. **Re-rank.** Candidates are scored in float64 by a compiled kernel (:mod:`knn_store._pairwise`) that
   reproduces NumPy's pairwise summation bit for bit, then sorted by (distance, index). The score of a pair does not depend on the
   other candidates, so any blocking (local row blocks, Dask tiles) gives the same bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from knn_store.errors import InvalidFeaturesError

__all__ = ["Conditioned", "condition", "finish", "knn_tile", "merge_topk", "score"]

_SPARE = 8  # candidates beyond k tried first; a row needing more is widened exactly
_BLOCK_BYTES = 64 << 20  # one float32 block of approximate distances
_U32 = 2.0**-24
_F32_MAX = float(np.finfo(np.float32).max)
_F32_TINY = float(np.finfo(np.float32).tiny)


@dataclass
class Conditioned:
    """Rows of a feature matrix with everything both stages need; slicing keeps global row ids.

    Attributes
    ----------
    x : numpy.ndarray, shape (m, d)
        Canonical (exactly converted) rows.
    mult, norm : numpy.ndarray, shape (m,)
        Exact rows are ``x * mult / norm`` in float64 (powers of two and, for cosine, row norms).
    mean : numpy.ndarray, shape (d,)
        Column mean of the exact rows of the *whole* matrix (float64).
    scale : float
        Power of two applied after centring so conditioned entries are below 1.
    offset : int
        Global index of the first row.
    metric : str
    """

    x: np.ndarray
    mult: np.ndarray
    norm: np.ndarray
    mean: np.ndarray
    scale: float
    offset: int
    metric: str
    _x32: np.ndarray | None = None

    def rows(self, lo: int, hi: int) -> Conditioned:
        """Rows ``lo:hi`` (local indices) as a new view with global ids kept."""
        sub = None if self._x32 is None else self._x32[lo:hi]
        return Conditioned(
            self.x[lo:hi], self.mult[lo:hi], self.norm[lo:hi], self.mean, self.scale,
            self.offset + lo, self.metric, sub,
        )  # fmt: skip

    def exact(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Float64 exact rows ``lo:hi``."""
        sl = slice(lo, hi)
        return self.x[sl].astype(np.float64) * self.mult[sl, None] / self.norm[sl, None]

    def conditioned32(self) -> np.ndarray:
        """Centred, power-of-two scaled float32 rows (computed once, in blocks of rows)."""
        if self._x32 is None:
            out = np.empty(self.x.shape, dtype=np.float32)
            step = max(1, (16 << 20) // (8 * max(1, self.x.shape[1])))
            for s in range(0, self.x.shape[0], step):
                out[s : s + step] = (self.exact(s, s + step) - self.mean) * self.scale
            self._x32 = out
        return self._x32


def _pow2_below(value: float) -> float:
    """The power of two ``2^-e`` that brings ``value`` into [0.5, 1) (1.0 for zero)."""
    if value == 0 or not np.isfinite(value):
        return 1.0
    return float(np.ldexp(1.0, -int(np.frexp(value)[1])))


def condition(x: np.ndarray, metric: str) -> Conditioned:
    """Prepare a canonical matrix (see :func:`knn_store.neighbors.prepare_features`) for both stages."""
    n, d = x.shape
    step = max(1, (16 << 20) // (8 * max(1, d)))
    if metric == "cosine":
        # Exact power-of-two pre-scaling per row: the norm of a row of 1e19s or 1e-19s neither overflows
        # nor underflows, and for ordinary rows the result is bit-identical to x / |x|.
        peak = np.abs(x).max(axis=1).astype(np.float64)
        mult = np.ldexp(1.0, -np.frexp(peak)[1]).astype(np.float64)
        norm = np.empty(n)
        for s in range(0, n, step):
            v = x[s : s + step].astype(np.float64) * mult[s : s + step, None]
            norm[s : s + step] = np.sqrt(np.square(v).sum(axis=1))
    else:
        # One global power of two only where float64 squares would over- or underflow; otherwise 1, so
        # the answer is bit-identical to the plain float64 brute force.
        peak = float(np.abs(x).max()) if x.size else 0.0
        sx = _pow2_below(peak) if peak > 2.0**400 or 0 < peak < 2.0**-400 else 1.0
        mult = np.full(n, sx)
        norm = np.ones(n)
    cond = Conditioned(x, mult, norm, np.zeros(d), 1.0, 0, metric)
    total = np.zeros(d)
    for s in range(0, n, step):
        total += cond.exact(s, s + step).sum(axis=0)
    cond.mean = total / n
    spread = 0.0
    for s in range(0, n, step):
        spread = max(spread, float(np.abs(cond.exact(s, s + step) - cond.mean).max()))
    cond.scale = _pow2_below(spread)
    return cond


def score(q: Conditioned, r: Conditioned, qrows: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Exact float64 squared distances of query rows ``qrows`` (local) to reference rows ``cand`` (local)."""
    from knn_store._pairwise import pair_d2  # numba loads only when a kNN is computed, not on cache hits

    out = np.empty(cand.shape, dtype=np.float64)
    pair_d2(
        np.ascontiguousarray(q.x[qrows]), q.mult[qrows], q.norm[qrows], r.x, r.mult, r.norm,
        np.ascontiguousarray(cand, dtype=np.int64), out,
    )  # fmt: skip
    return out


def _top(gidx: np.ndarray, d2: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """First k of each row by (d2, index); padded with (-1, inf) when a row has fewer."""
    order = np.lexsort((gidx, d2), axis=1)[:, :k]
    idx, dist = np.take_along_axis(gidx, order, axis=1), np.take_along_axis(d2, order, axis=1)
    if idx.shape[1] < k:
        pad = k - idx.shape[1]
        idx = np.pad(idx, ((0, 0), (0, pad)), constant_values=-1)
        dist = np.pad(dist, ((0, 0), (0, pad)), constant_values=np.inf)
    return idx, dist


def _approx_block(q32: np.ndarray, r32: np.ndarray, sq_q: np.ndarray, sq_r: np.ndarray, backend: str):
    if backend == "sklearn":
        from sklearn.metrics.pairwise import euclidean_distances

        return np.asarray(euclidean_distances(q32, r32, X_norm_squared=sq_q[:, None],
                                              Y_norm_squared=sq_r[None, :], squared=True), dtype=np.float32)  # fmt: skip
    if backend == "faiss":
        import faiss

        return np.ascontiguousarray(faiss.pairwise_distances(q32, r32), dtype=np.float32)
    a = q32 @ r32.T
    a *= np.float32(-2)
    a += sq_q[:, None]
    a += sq_r[None, :]
    return a


def knn_tile(
    q: Conditioned, r: Conditioned, k: int, *, backend: str = "numpy", block_rows: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest reference rows of every query row (self excluded by global index).

    Returns
    -------
    idx : numpy.ndarray, int64, shape (len(q), k)
        Global indices ordered by (distance, index); -1 where the tile has fewer than k other rows.
    d2 : numpy.ndarray, float64, shape (len(q), k)
        Exact squared distances (in the exact rows' units); inf with -1.
    """
    nq, nr, d = q.x.shape[0], r.x.shape[0], q.x.shape[1]
    c = 2.0 * (d + 8) * _U32
    c_abs = 2.0 * (d + 8) * 2.0**-140
    r32 = r.conditioned32()
    sq_r = np.einsum("ij,ij->i", r32, r32)
    nu_r = np.sqrt(sq_r.astype(np.float64)) * (1 + 1e-3)
    nu_rmax = float(nu_r.max()) if nr else 0.0
    out_i = np.empty((nq, k), dtype=np.int64)
    out_d = np.empty((nq, k), dtype=np.float64)
    rows = block_rows or max(1, min(4096, _BLOCK_BYTES // (4 * max(1, nr))))
    m0 = k + _SPARE
    for s in range(0, nq, rows):
        qb = q.rows(s, min(nq, s + rows))
        q32 = qb.conditioned32()
        sq_q = np.einsum("ij,ij->i", q32, q32)
        a = _approx_block(q32, r32, sq_q, sq_r, backend)
        b = a.shape[0]
        local = np.arange(b)
        own = qb.offset + local - r.offset  # column of self in this tile, if any
        has_self = (own >= 0) & (own < nr)
        a[local[has_self], own[has_self]] = np.inf
        if m0 + 2 > nr:  # small tile: score everything
            cand = np.broadcast_to(np.arange(nr), (b, nr)).copy()
            cand[local[has_self], own[has_self]] = -1
            d2 = score(qb, r, local, cand)
            idx, dist = _top(np.where(cand >= 0, cand + r.offset, -1), d2, k)
            out_i[s : s + b], out_d[s : s + b] = idx, dist
            continue
        part = np.argpartition(a, m0, axis=1)
        cand = part[:, :m0]
        cand_a = np.take_along_axis(a, cand, axis=1)
        next_a = a[local, part[:, m0]].astype(np.float64)
        a_k = np.partition(cand_a, k - 1, axis=1)[:, k - 1].astype(np.float64)
        nu_q = np.sqrt(sq_q.astype(np.float64)) * (1 + 1e-3)
        wide = next_a <= a_k + 2 * (c * (nu_q + nu_rmax) ** 2 + c_abs)
        narrow = np.flatnonzero(~wide)
        if narrow.size:
            d2 = score(qb, r, narrow, cand[narrow])
            out_i[s + narrow], out_d[s + narrow] = _top(cand[narrow] + r.offset, d2, k)
        for i in np.flatnonzero(wide):
            # Exact per-pair window over the whole row (rare: near ties, duplicates, far outliers).
            e = c * (nu_q[i] + nu_r) ** 2 + c_abs
            row = a[i].astype(np.float64)
            upper = np.partition(row + e, k - 1)[k - 1]
            ci = np.flatnonzero(row - e <= upper)[None, :]
            d2 = score(qb, r, np.array([i]), ci)
            out_i[s + i], out_d[s + i] = _top(ci + r.offset, d2, k)
    return out_i, out_d


def merge_topk(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-tile results of the same query rows into the global top k by (distance, index)."""
    idx = np.concatenate([p[0] for p in parts], axis=1)
    d2 = np.concatenate([p[1] for p in parts], axis=1)
    d2 = np.where(idx < 0, np.inf, d2)
    return _top(idx, d2, k)


def finish(cond: Conditioned, idx: np.ndarray, d2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Published arrays: int32 neighbours and float32 distances rounded once from the float64 values.

    Raises
    ------
    InvalidFeaturesError
        A distance does not fit float32 (above 3.4e38, or non-zero below 1.2e-38): storing it would
        silently round it to inf or to a few significant bits.
    """
    if (idx < 0).any():
        raise InvalidFeaturesError("internal error: fewer candidates than k (please report)")
    # Cosine: |u - v|^2 / 2 = 1 - cos(u, v) on unit rows, without the cancellation of 1 - u.v.
    # Euclidean: undo the global power-of-two scaling (exact).
    dist = d2 * 0.5 if cond.metric == "cosine" else np.sqrt(d2) / cond.mult[0]
    finite_nonzero = dist[dist > 0]
    if finite_nonzero.size and (finite_nonzero.max() > _F32_MAX or finite_nonzero.min() < _F32_TINY):
        raise InvalidFeaturesError(
            f"kNN distances range over [{finite_nonzero.min():.3g}, {finite_nonzero.max():.3g}], outside "
            f"what float32 stores faithfully [{_F32_TINY:.3g}, {_F32_MAX:.3g}]; rescale the features"
        )
    return idx.astype(np.int32), dist.astype(np.float32)
