"""Compiled kernels of the exact kNN: candidate selection, and float64 pair scoring bit-equal to NumPy.

``smallest`` keeps the ``m`` smallest approximate distances of every row with one comparison per entry
(an argpartition over the full row costs about as much as the GEMM that produced it).

``sum((v_j - v_i) ** 2)`` computed here equals the same expression evaluated by NumPy on float64 rows,
because the sum follows NumPy's pairwise algorithm exactly (leaves of at most 128 terms with 8
accumulators, halves rounded down to multiples of 8). That is what lets the exact kNN promise equality
with a plain float64 brute force, not just closeness. Compiled on first use and cached on disk.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["pair_d2", "smallest"]


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
def _tree_sum(
    a: np.ndarray, los: np.ndarray, ns: np.ndarray, states: np.ndarray, vals: np.ndarray
) -> float:  # pragma: no cover
    # NumPy's pairwise summation tree (leaves of <= 128 terms, halves rounded down to multiples of 8),
    # evaluated in post-order with explicit stacks: numba caches recursive functions unreliably.
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
def _pairwise_sum(a: np.ndarray) -> float:  # pragma: no cover - compiled
    """``a.sum()`` of a 1-D float64 array, bit for bit."""
    return _tree_sum(a, np.empty(64, np.int64), np.empty(64, np.int64), np.empty(64, np.int64), np.empty(64))


@njit(cache=True, nogil=True)
def pair_d2(
    vq: np.ndarray, vr: np.ndarray, cand: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """``out[r, c] = sum((vr[j] - vq[r]) ** 2)`` in float64, ``j = cand[r, c]`` (``-1``: inf).

    ``vq`` is float64; ``vr`` float32 or float64 (converted exactly per element).
    """
    b, m = cand.shape
    d = vq.shape[1]
    buf = np.empty(d)
    los, ns, states, vals = (
        np.empty(64, np.int64),
        np.empty(64, np.int64),
        np.empty(64, np.int64),
        np.empty(64),
    )
    for r in range(b):
        for c in range(m):
            j = cand[r, c]
            if j < 0:
                out[r, c] = np.inf
                continue
            for t in range(d):
                diff = np.float64(vr[j, t]) - vq[r, t]
                buf[t] = diff * diff
            out[r, c] = _tree_sum(buf, los, ns, states, vals)


@njit(cache=True, nogil=True)
def smallest(a: np.ndarray, m: int, idx: np.ndarray, val: np.ndarray) -> None:  # pragma: no cover - compiled
    """Per row of ``a`` (float32, shape (b, n), n >= m), the ``m`` smallest values ascending.

    ``idx[r]`` and ``val[r]`` (shape (b, m)) receive columns and values; among equal values the order is
    arbitrary (callers treat ties at the boundary as "widen").
    """
    b, n = a.shape
    for r in range(b):
        vi = idx[r]
        vv = val[r]
        vv[:] = np.inf
        vi[:] = -1
        for c in range(n):
            x = a[r, c]
            if x < vv[m - 1]:  # insertion into the sorted buffer; most entries stop at this test
                p = m - 1
                while p > 0 and vv[p - 1] > x:
                    vv[p] = vv[p - 1]
                    vi[p] = vi[p - 1]
                    p -= 1
                vv[p] = x
                vi[p] = c
