"""Compiled float64 scoring of (row, candidate) pairs with NumPy's pairwise summation, bit for bit.

``sum((v_j - v_i) ** 2)`` computed here equals the same expression evaluated by NumPy on float64 rows,
because the sum follows NumPy's pairwise algorithm exactly (leaves of at most 128 terms with 8
accumulators, halves rounded down to multiples of 8). That is what lets the exact kNN promise equality
with a plain float64 brute force, not just closeness. Compiled on first use and cached on disk.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["pair_d2"]


@njit(cache=True, nogil=True)
def _leaf_sum(a: np.ndarray, lo: int, n: int) -> float:  # pragma: no cover - compiled
    # A leaf of NumPy's pairwise summation: sequential below 8 terms, else 8 accumulators.
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - (n % 8):
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True, nogil=True)
def _pairwise_sum(a: np.ndarray) -> float:  # pragma: no cover - compiled
    # NumPy's pairwise summation (leaves of <= 128 terms, halves rounded to multiples of 8), so the result
    # equals ``a.sum()`` bit for bit. Iterative (post-order with explicit stacks): numba caches recursive
    # functions unreliably.
    los = np.empty(64, dtype=np.int64)
    ns = np.empty(64, dtype=np.int64)
    states = np.empty(64, dtype=np.int64)
    vals = np.empty(64)
    top, nv = 0, 0
    los[0], ns[0], states[0] = 0, a.shape[0], 0
    while top >= 0:
        lo, n = los[top], ns[top]
        if n <= 128:
            vals[nv] = _leaf_sum(a, lo, n)
            nv += 1
            top -= 1
            continue
        n2 = n // 2
        n2 -= n2 % 8
        if states[top] == 0:
            states[top] = 1
            top += 1
            los[top], ns[top], states[top] = lo, n2, 0
        elif states[top] == 1:
            states[top] = 2
            top += 1
            los[top], ns[top], states[top] = lo + n2, n - n2, 0
        else:
            vals[nv - 2] = vals[nv - 2] + vals[nv - 1]
            nv -= 1
            top -= 1
    return vals[0]


@njit(cache=True, nogil=True)
def pair_d2(xq, mq, nq, xr, mr, nr, cand, out):  # type: ignore[no-untyped-def]  # pragma: no cover
    # out[r, c] = sum((v_j - v_i)^2) with v = x * mult / norm in float64; j = cand[r, c] (-1: none).
    b, m = cand.shape
    d = xq.shape[1]
    buf = np.empty(d)
    vi = np.empty(d)
    for r in range(b):
        for t in range(d):
            vi[t] = (np.float64(xq[r, t]) * mq[r]) / nq[r]
        for c in range(m):
            j = cand[r, c]
            if j < 0:
                out[r, c] = np.inf
                continue
            for t in range(d):
                diff = (np.float64(xr[j, t]) * mr[j]) / nr[j] - vi[t]
                buf[t] = diff * diff
            out[r, c] = _pairwise_sum(buf)
