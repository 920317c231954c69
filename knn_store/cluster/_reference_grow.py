"""Core of the reference SS-DDBC: the kNN among core points, cluster growth, and the small-cluster merge.

Steps 3 to 5 of the users' job (``ssddbc_reference.md`` sections 4-6), with their orders and tie-breaks:

* the core neighbour list of a core point is its ``min(k, |C| - 1)`` nearest *core* points, in (distance,
  index) order, kept when the distance is at most the cut-off. It is read from the cached kNN row whenever
  that row already decides it (it holds enough core points, or its last distance is beyond the cut-off);
  only the other rows are computed, by a blocked GEMM against the core points;
* growth is their breadth-first search from seeds in decreasing absolute density (ties: index), with the
  sample-level cannot-link, cluster merges, and the "denser point takes one point" move on class conflicts.
  A cluster's class (>= 5 members, > 25 % labelled, >= 80 % purity) is kept from running counts instead of
  being recounted after every change; clusters are real Python sets driven through the same additions and
  removals as theirs, so a merge enqueues the absorbed members in the same (CPython set) order;
* clusters of at most 3 core points join the lowest-id larger cluster sharing their unique label, else the
  larger cluster whose 3 nearest members are closest on average to the point (size 1) or the mean vector.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from knn_store.cluster._reference_distances import Points, distance_blocks

__all__ = [
    "ISOLATED_SIZE",
    "cluster_class_of",
    "core_neighbours",
    "grow_clusters",
    "merge_small_clusters",
    "nearest3_mean",
]

#: Clusters of at most this many core points are merged into larger ones (hard-coded in the users' code).
ISOLATED_SIZE = 3
_MIN_SIZE, _MIN_LABELLED, _MIN_PURITY = 5, 0.25, 0.8


def core_neighbours(
    points: Points,
    core_idx: np.ndarray,
    knn: tuple[np.ndarray, np.ndarray],
    k: int,
    co: float | np.ndarray,
) -> list[list[int]]:
    """Core neighbour list of every core point, indexed by position in ``core_idx``.

    Parameters
    ----------
    points : Points
        All features.
    core_idx : numpy.ndarray, int, ascending
        Global indices of the core points.
    knn : (neighbors, distances)
        Cached kNN of all points (width >= k; a wider cache decides more rows without any GEMM).
    k : int
        Neighbours per core point before the cut-off.
    co : float or numpy.ndarray of shape (n,)
        Cut-off distance (per point for ``co_mode=3``: the value of the point whose list is built).

    Returns
    -------
    list of list of int
        Global ids, nearest first; distances ``<= co``.
    """
    nb, ds = knn
    n, m = nb.shape[0], core_idx.size
    kk = min(k, m - 1)
    if kk <= 0:
        return [[] for _ in range(m)]
    is_core = np.zeros(n, dtype=bool)
    is_core[core_idx] = True
    cut = np.broadcast_to(np.asarray(co, dtype=np.float64), (n,))[core_idx]
    rnb, rds = nb[core_idx], ds[core_idx]
    in_core = is_core[rnb]
    rank = np.cumsum(in_core, axis=1)
    # The row decides N(i) when it already holds kk core points, or when everything past it is beyond co.
    decided = (rank[:, -1] >= kk) | (rds[:, -1] > cut)
    keep = in_core & (rank <= kk) & (rds <= cut[:, None])
    out: list[list[int]] = [[] for _ in range(m)]
    rows, cols = np.nonzero(keep & decided[:, None])
    vals = rnb[rows, cols].tolist()
    bounds = np.searchsorted(rows, np.arange(m + 1)).tolist()
    for r in np.flatnonzero(decided).tolist():
        out[r] = vals[bounds[r] : bounds[r + 1]]
    todo = np.flatnonzero(~decided)
    for sl, d in distance_blocks(points, core_idx[todo], core_idx):
        local = todo[sl]
        d[np.arange(local.size), local] = np.inf  # self, by index
        cand = np.argpartition(d, kk - 1, axis=1)[:, :kk] if kk < m else np.argsort(d, axis=1)[:, :kk]
        cd = np.take_along_axis(d, cand, axis=1)
        order = np.lexsort((cand, cd), axis=1)
        cand, cd = np.take_along_axis(cand, order, axis=1), np.take_along_axis(cd, order, axis=1)
        for j, r in enumerate(local.tolist()):
            out[r] = core_idx[cand[j][cd[j] <= cut[r]]].tolist()
    return out


def cluster_class_of(size: int, n_lab: int, counts: dict[int, int]) -> int | None:
    """The users' cluster class: the majority class when >= 5 members, > 25 % labelled, >= 80 % pure."""
    if size < _MIN_SIZE or n_lab == 0 or n_lab / size <= _MIN_LABELLED:
        return None
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] / n_lab >= _MIN_PURITY else None


def grow_clusters(
    core_idx: np.ndarray, near: list[list[int]], known: np.ndarray, rho: np.ndarray
) -> np.ndarray:
    """Breadth-first cluster growth over the core neighbour lists (reference section 5).

    Parameters
    ----------
    core_idx : numpy.ndarray, int, ascending
        Core points; ``near[j]`` belongs to ``core_idx[j]``.
    near : list of list of int
        Output of :func:`core_neighbours`.
    known : numpy.ndarray, int64, shape (n,)
        Class code of labelled points, -1 elsewhere.
    rho : numpy.ndarray, float64, shape (n,)
        Absolute density: seed order (descending, ties by index) and conflict arbitration.

    Returns
    -------
    numpy.ndarray, int64, shape (n,)
        Cluster id per core point, 0.. in order of creation after dropping emptied clusters; -1 elsewhere.
    """
    n = known.shape[0]
    nbrs: dict[int, list[int]] = dict(zip(core_idx.tolist(), near, strict=True))
    code = known.tolist()
    dens = rho.tolist()
    label = [-1] * n
    sets: list[set[int]] = []
    n_lab: list[int] = []
    counts: list[dict[int, int]] = []
    klass: list[int | None] = []
    seeds = core_idx[np.lexsort((core_idx, -rho[core_idx]))].tolist()

    def add(c: int, j: int) -> None:
        sets[c].add(j)
        label[j] = c
        if code[j] >= 0:
            n_lab[c] += 1
            counts[c][code[j]] = counts[c].get(code[j], 0) + 1

    for s in seeds:
        if label[s] != -1:
            continue
        cid = len(sets)
        sets.append(set())
        n_lab.append(0)
        counts.append({})
        klass.append(None)
        add(cid, s)
        pc = sets[cid]
        queue = deque([s])
        while queue:
            xi = queue.popleft()
            ci = code[xi]
            for xj in nbrs[xi]:
                if ci >= 0 and code[xj] >= 0 and ci != code[xj]:
                    continue  # sample-level cannot-link
                q = label[xj]
                if q == -1:
                    add(cid, xj)
                    queue.append(xj)
                elif q != cid:
                    sp, sq = klass[cid], klass[q]
                    if sp is None or sq is None or sp == sq:
                        for m in sets[q]:  # CPython set order, like theirs
                            pc.add(m)
                            label[m] = cid
                            queue.append(m)
                        n_lab[cid] += n_lab[q]
                        for c, v in counts[q].items():
                            counts[cid][c] = counts[cid].get(c, 0) + v
                        sets[q], n_lab[q], counts[q], klass[q] = set(), 0, {}, None
                    elif dens[xi] > dens[xj]:
                        sets[q].remove(xj)
                        if code[xj] >= 0:
                            n_lab[q] -= 1
                            counts[q][code[xj]] -= 1
                        klass[q] = cluster_class_of(len(sets[q]), n_lab[q], counts[q])
                        add(cid, xj)
                        queue.append(xj)
                    else:
                        continue
                else:
                    continue
                klass[cid] = cluster_class_of(len(pc), n_lab[cid], counts[cid])
    out = np.full(n, -1, dtype=np.int64)
    new_id = 0
    for members in sets:
        if members:
            out[np.fromiter(members, dtype=np.int64, count=len(members))] = new_id
            new_id += 1
    return out


def nearest3_mean(d: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Mean of the ``min(3, size)`` smallest distances per column group, float32, nearest first.

    ``d`` has its columns grouped by cluster: cluster ``c`` owns columns ``starts[c]:ends[c]``.
    Returns shape (rows, n_groups).
    """
    out = np.empty((d.shape[0], starts.size), dtype=np.float32)
    for c, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        block = d[:, a:b]
        t = min(3, b - a)
        part = np.partition(block, t - 1, axis=1)[:, :t] if b - a > t else block
        part = np.sort(part, axis=1)
        acc = part[:, 0].copy()
        for j in range(1, t):
            acc += part[:, j]  # their np.mean of the sorted float32 values: left to right, then divide
        out[:, c] = acc / np.float32(t)
    return out


def merge_small_clusters(points: Points, labels: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Merge clusters of <= 3 core points into larger ones, then renumber (reference section 6)."""
    valid = labels >= 0
    m = int(labels.max(initial=-1)) + 1
    if m == 0:
        return labels
    size = np.bincount(labels[valid], minlength=m)
    small, big = np.flatnonzero(size <= ISOLATED_SIZE), np.flatnonzero(size > ISOLATED_SIZE)
    if small.size == 0 or big.size == 0:
        return labels
    # The one label shared by all labelled members, if any (-1: none or several).
    lab = valid & (known >= 0)
    lo = np.full(m, np.iinfo(np.int64).max)
    hi = np.full(m, -1)
    np.minimum.at(lo, labels[lab], known[lab])
    np.maximum.at(hi, labels[lab], known[lab])
    unique = np.where(lo == hi, hi, -1)
    order = np.argsort(labels, kind="stable")
    order = order[valid[order]]
    starts = np.concatenate(([0], np.cumsum(size)[:-1]))
    members = [order[starts[c] : starts[c] + size[c]] for c in range(m)]
    target = np.arange(m)
    by_label: dict[int, int] = {}
    for c in big.tolist()[::-1]:  # lowest id wins
        if unique[c] >= 0:
            by_label[int(unique[c])] = c
    far = []
    for c in small.tolist():
        hit = by_label.get(int(unique[c]), -1) if unique[c] >= 0 else -1
        if hit >= 0:
            target[c] = hit
        else:
            far.append(c)
    if far:
        reps = np.stack(
            [points.x[members[c][0]] if size[c] == 1 else points.x[members[c]].mean(axis=0) for c in far]
        )
        cols = np.concatenate([members[c] for c in big.tolist()])
        ends = np.cumsum(size[big])
        avg = nearest3_mean(points.to_vectors(reps.astype(np.float32), cols), ends - size[big], ends)
        target[np.asarray(far)] = big[np.argmin(avg, axis=1)]  # first minimum: earliest id
    merged = np.where(valid, target[np.maximum(labels, 0)], -1)
    kept = np.unique(merged[valid])
    remap = np.full(m, -1, dtype=np.int64)
    remap[kept] = np.arange(kept.size)
    return np.where(valid, remap[np.maximum(merged, 0)], -1)
