"""Step 6 of the reference SS-DDBC: every non-core point joins a core cluster (``assign_model`` 1, 2, 3).

The core clusters do not change during the assignment, so the users' one-point-at-a-time loop (in
decreasing density) is order-free and becomes blocks of (non-core x core) distances from one GEMM each:

* ``1``: nearest cluster mean vector (float32 mean of the members);
* ``2``: the ``voting_k`` nearest core points vote for their cluster with weight ``exp(-distance)``; the
  highest sum wins, ties to the cluster seen first (that of the nearer voter). Voters are taken in
  (distance, index) order, where the users' unstable argsort leaves exactly equal distances in its own order;
* ``3``: the cluster whose ``min(3, size)`` nearest members are closest on average; ties to the lowest id.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from knn_store.cluster._reference_distances import Points, distance_blocks
from knn_store.cluster._reference_grow import nearest3_mean

__all__ = ["ASSIGN_MODELS", "assign_non_core"]


def _by_cluster(core_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Core points sorted by (cluster, index) and each cluster's [start, end) in that order."""
    core = np.flatnonzero(core_labels >= 0)
    cols = core[np.argsort(core_labels[core], kind="stable")]
    size = np.bincount(core_labels[cols])
    ends = np.cumsum(size)
    return cols, ends - size, ends


def _nearest_mean(points: Points, labels: np.ndarray, pending: np.ndarray, voting_k: int) -> np.ndarray:
    cols, starts, ends = _by_cluster(labels)
    means = np.stack([points.x[cols[a:b]].mean(axis=0) for a, b in zip(starts, ends, strict=True)])
    out = np.empty(pending.size, dtype=np.int64)
    step = max(1, (32 << 20) // (4 * means.shape[0]))
    for s in range(0, pending.size, step):
        vec = points.x[pending[s : s + step]]
        d2 = (vec * vec).sum(1)[:, None] + (means * means).sum(1)[None, :] - 2 * vec @ means.T
        out[s : s + step] = np.argmin(d2, axis=1)
    return out


def _vote(points: Points, labels: np.ndarray, pending: np.ndarray, voting_k: int) -> np.ndarray:
    core = np.flatnonzero(labels >= 0)
    v = min(voting_k, core.size)
    out = np.empty(pending.size, dtype=np.int64)
    for sl, d in distance_blocks(points, pending, core):
        cand = np.argpartition(d, v - 1, axis=1)[:, :v] if v < core.size else np.argsort(d, axis=1)[:, :v]
        cd = np.take_along_axis(d, cand, axis=1)
        order = np.lexsort((cand, cd), axis=1)
        cand, cd = np.take_along_axis(cand, order, axis=1), np.take_along_axis(cd, order, axis=1)
        clus = labels[core[cand]]
        w = np.exp(-cd.astype(np.float64))
        same = clus[:, :, None] == clus[:, None, :]
        # Score of voter j's cluster, summed over voters in order; equal for all voters of one cluster,
        # so the first maximum is the cluster seen first.
        score = (same * w[:, None, :]).sum(axis=2)
        out[sl] = clus[np.arange(clus.shape[0]), np.argmax(score, axis=1)]
    return out


def _mean3_rows(d: np.ndarray, rows: np.ndarray, a: int, b: int) -> np.ndarray:
    """:func:`nearest3_mean` of one cluster (columns ``a:b``) for some rows of ``d``."""
    return nearest3_mean(d[rows, a:b], np.array([0]), np.array([b - a]))[:, 0]


def _nearest3(points: Points, labels: np.ndarray, pending: np.ndarray, voting_k: int) -> np.ndarray:
    cols, starts, ends = _by_cluster(labels)
    out = np.empty(pending.size, dtype=np.int64)
    for sl, d in distance_blocks(points, pending, cols):
        # A cluster's 3-nearest mean is at least its nearest distance, so clusters whose nearest member is
        # farther than the 3-nearest mean of the row's nearest cluster cannot win (a 1e-5 relative margin
        # covers float32 rounding of the mean). Only the remaining (row, cluster) pairs are computed exactly.
        near = np.minimum.reduceat(d, starts, axis=1)
        rows = np.arange(d.shape[0])
        bound = np.empty(d.shape[0], dtype=np.float32)
        first = np.argmin(near, axis=1)
        for c in np.unique(first).tolist():
            r = rows[first == c]
            bound[r] = _mean3_rows(d, r, starts[c], ends[c])
        cand = near <= (bound * np.float32(1 + 1e-5))[:, None]
        mean3 = np.full(near.shape, np.inf, dtype=np.float32)
        for c in np.flatnonzero(cand.any(axis=0)).tolist():
            r = rows[cand[:, c]]
            mean3[r, c] = _mean3_rows(d, r, starts[c], ends[c])
        out[sl] = np.argmin(mean3, axis=1)  # first minimum: lowest id, as theirs
    return out


#: ``assign_model`` -> function(points, core labels, pending point ids, voting_k) -> cluster per pending point.
ASSIGN_MODELS: dict[int, Callable[[Points, np.ndarray, np.ndarray, int], np.ndarray]] = {
    1: _nearest_mean,
    2: _vote,
    3: _nearest3,
}


def assign_non_core(points: Points, core_labels: np.ndarray, assign_model: int, voting_k: int) -> np.ndarray:
    """Final labels: core labels kept, every other point assigned by ``assign_model`` (see module doc).

    With no core cluster at all (impossible after a percentile split, which keeps at least one core
    point) the points stay -1.
    """
    out = core_labels.copy()
    pending = np.flatnonzero(core_labels < 0)
    if pending.size and (core_labels >= 0).any():
        out[pending] = ASSIGN_MODELS[assign_model](points, core_labels, pending, voting_k)
    return out
