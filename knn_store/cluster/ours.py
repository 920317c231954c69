"""Semi-supervised density clustering (SS-DDBC) on a cached kNN.

The variant implemented is the well-defined one of the design reference (section 1.2): every step after
the kNN is O(n k), so a grid job costs tens of milliseconds once the kNN is cached.

1. Density ``rho_i = 1 / (median_j d_ij + eps)`` over the k nearest neighbours; optionally the relative
   density ``rho'_i = (k + mean(rho)) / (k + mean_{j in kNN(i)} rho_j) * rho_i``.
2. Core points: ``rho'_i >= percentile(rho', p)``.
3. Core graph: edge i-j when both are core, j is among the k nearest of i and ``d_ij <= cutoff``
   (default: the mean of all k-NN distances).
4. Constrained union-find over the edges: must-link edges (both endpoints labelled with the same label)
   first, then all edges by increasing (distance, i, j); two components holding different labels are never
   merged (cannot-link at component level).
5. Non-core points join, in rounds spreading out from the core, the component most frequent among their
   already assigned neighbours (ties: smaller summed distance, then smaller id). Within a round every
   point looks only at earlier rounds, so the order of processing does not matter (the reference's
   "in decreasing density" order would need a sequential loop 10x slower). Points whose whole
   neighbourhood never reaches a core point keep the label -1.
6. Clusters without any labelled member are reported as new-class candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from knn_store.errors import InvalidParameterError

__all__ = ["SSDDBCResult", "median_density", "relative_density", "ssddbc", "ssddbc_sweep"]

_EPS = 1e-8


@dataclass(frozen=True)
class SSDDBCResult:
    """Output of :func:`ssddbc`.

    Attributes
    ----------
    labels : numpy.ndarray, int64, shape (n,)
        Cluster id per point, ``0 .. n_clusters - 1`` numbered by smallest member index; -1 for points
        that could not be reached from any core point.
    core : numpy.ndarray, bool, shape (n,)
        Core-point mask.
    density : numpy.ndarray, float64, shape (n,)
        The (relative) density used to select core points.
    cluster_class : numpy.ndarray, int64, shape (n_clusters,)
        Known class carried by each cluster (from its core component), -1 if none.
    new_class_clusters : numpy.ndarray, int64
        Ids of clusters with no labelled member at all: candidates for new classes.
    """

    labels: np.ndarray
    core: np.ndarray
    density: np.ndarray
    cluster_class: np.ndarray
    new_class_clusters: np.ndarray

    @property
    def n_clusters(self) -> int:
        """Number of clusters (the -1 'unreached' label is not counted)."""
        return int(self.cluster_class.shape[0])


def _check_knn(neighbors: np.ndarray, distances: np.ndarray) -> None:
    if neighbors.ndim != 2 or neighbors.shape != distances.shape or neighbors.shape[1] < 1:
        raise InvalidParameterError(
            f"neighbors and distances must be matching (n, k) arrays with k >= 1, got "
            f"{neighbors.shape} and {distances.shape}"
        )


def median_density(neighbors: np.ndarray, distances: np.ndarray, *, eps: float = _EPS) -> np.ndarray:
    """Density ``1 / (median distance to the k nearest neighbours + eps)``.

    Parameters
    ----------
    neighbors : numpy.ndarray, int, shape (n, k)
        Self excluded, rows ordered by distance (as stored by :class:`KNNStore`).
    distances : numpy.ndarray, float, shape (n, k)
        Matching distances (not squared), non-decreasing along rows.
    eps : float, default 1e-8
        Guards against division by zero for duplicated points (distance units).

    Returns
    -------
    numpy.ndarray, float64, shape (n,)
        Density in inverse distance units.
    """
    _check_knn(neighbors, distances)
    k = distances.shape[1]
    d = np.asarray(distances, dtype=np.float64)
    # Rows are sorted, so the median is the middle column (mean of the two middle ones for even k).
    med = 0.5 * (d[:, (k - 1) // 2] + d[:, k // 2])
    return 1.0 / (med + eps)


def relative_density(neighbors: np.ndarray, density: np.ndarray) -> np.ndarray:
    """Relative density ``(k + mean rho) / (k + mean_{j in kNN(i)} rho_j) * rho_i`` (float64, shape (n,))."""
    k = neighbors.shape[1]
    return (k + density.mean()) / (k + density[neighbors].mean(axis=1)) * density


def _compress(parent: np.ndarray) -> np.ndarray:
    """Point every node at its root by pointer jumping (O(log depth) vectorised passes)."""
    while True:
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            return parent
        parent = nxt


def _graph_edges(nb: np.ndarray, ds: np.ndarray, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected kNN-graph edges (a < b) no longer than ``cutoff``, each pair once, sorted by (a, b)."""
    n, k = nb.shape
    rows = np.repeat(np.arange(n), k)
    cols = nb.ravel().astype(np.int64)
    dist = ds.ravel()
    keep = dist <= cutoff
    a, b, dist = np.minimum(rows, cols)[keep], np.maximum(rows, cols)[keep], dist[keep]
    # Mutual neighbours list the pair twice; float32 GEMM may differ in the last bit, keep the shorter.
    order = np.lexsort((dist, b, a))
    a, b, dist = a[order], b[order], dist[order]
    first = np.ones(a.size, dtype=bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return a[first], b[first], dist[first]


def _constrained_union(
    n: int, a: np.ndarray, b: np.ndarray, dist: np.ndarray, known: np.ndarray, parent: np.ndarray
) -> np.ndarray:
    """Sequential union-find in (must-link first, distance, a, b) order, refusing label conflicts."""
    must = (known[a] >= 0) & (known[a] == known[b])
    order = np.lexsort((b, a, dist, ~must))
    par = parent.tolist()
    comp_class = known.tolist()  # class held by a component (at its root); -1 = none yet
    for i, j in zip(a[order].tolist(), b[order].tolist(), strict=True):
        while par[i] != i:  # path halving, inlined: this loop is the hot spot of a grid job
            par[i] = par[par[i]]
            i = par[i]
        while par[j] != j:
            par[j] = par[par[j]]
            j = par[j]
        if i == j:
            continue
        ci, cj = comp_class[i], comp_class[j]
        if ci >= 0 and cj >= 0 and ci != cj:
            continue  # cannot-link: the components hold different labels
        if j < i:
            i, j = j, i
        par[j] = i
        if ci < 0:
            comp_class[i] = cj
    return _compress(np.asarray(par, dtype=np.int64))


def _core_components(
    n: int, edges: tuple[np.ndarray, np.ndarray, np.ndarray], core: np.ndarray, known: np.ndarray
) -> np.ndarray:
    """Constrained single-linkage components of the core graph; a root id per point (-1 for non-core).

    Inside an unconstrained connected component that holds at most one distinct label no merge can ever
    be refused, so only components with conflicting labels need the sequential union-find.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a, b, dist = edges
    both = core[a] & core[b]
    a, b, dist = a[both], b[both], dist[both]
    graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(n, n))
    n_comp, comp = connected_components(graph, directed=False)
    labelled = known >= 0
    base = max(int(known.max()) + 1, 1)
    pairs = np.unique(comp[labelled] * base + known[labelled])
    conflicted = np.bincount(pairs // base, minlength=n_comp) >= 2
    smallest = np.full(n_comp, n, dtype=np.int64)
    np.minimum.at(smallest, comp, np.arange(n))
    parent = np.where(conflicted[comp], np.arange(n), smallest[comp])
    inside = conflicted[comp[a]]
    if inside.any():
        parent = _constrained_union(n, a[inside], b[inside], dist[inside], known, parent)
    return np.where(core, parent, -1)


def _assign_non_core(nb: np.ndarray, ds: np.ndarray, roots: np.ndarray) -> np.ndarray:
    """Attach non-core points in rounds to the majority component among their assigned neighbours.

    All points decided in one round look only at assignments of earlier rounds, so the result does not
    depend on processing order. Ties: larger count, then smaller summed distance, then smaller id.
    """
    n = nb.shape[0]
    assigned = roots.copy()
    pending = np.flatnonzero(assigned < 0)
    while pending.size:
        comp = assigned[nb[pending]]
        r, c = np.nonzero(comp >= 0)
        if r.size == 0:
            break  # the rest never reaches a core point
        keys, inv = np.unique(r * n + comp[r, c], return_inverse=True)
        count = np.bincount(inv)
        dsum = np.bincount(inv, weights=ds[pending][r, c])
        row, cid = keys // n, keys % n
        order = np.lexsort((cid, dsum, -count, row))
        row, cid = row[order], cid[order]
        first = np.ones(row.size, dtype=bool)
        first[1:] = row[1:] != row[:-1]
        assigned[pending[row[first]]] = cid[first]
        still = np.ones(pending.size, dtype=bool)
        still[row[first]] = False
        pending = pending[still]
    return assigned


def _inputs(
    labels: np.ndarray, labeled_mask: np.ndarray, k: int, precomputed_knn: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    nb_all, ds_all = precomputed_knn
    if not 1 <= k <= nb_all.shape[1]:
        raise InvalidParameterError(f"k={k} exceeds the {nb_all.shape[1]} precomputed neighbours")
    nb, ds = np.asarray(nb_all[:, :k]), np.asarray(ds_all[:, :k], dtype=np.float64)
    _check_knn(nb, ds)
    n = nb.shape[0]
    labels = np.asarray(labels)
    mask = np.asarray(labeled_mask, dtype=bool)
    if labels.shape != (n,) or mask.shape != (n,):
        raise InvalidParameterError(
            f"labels and labeled_mask must have shape ({n},), got {labels.shape}, {mask.shape}"
        )
    # Class ids are remapped to 0..C-1 so that -1 can mean "no label" whatever the user's encoding.
    classes, codes = np.unique(labels[mask], return_inverse=True)
    known = np.full(n, -1, dtype=np.int64)
    known[mask] = codes
    return nb, ds, mask, classes, known


def _finish(
    assigned: np.ndarray,
    core: np.ndarray,
    rho: np.ndarray,
    mask: np.ndarray,
    classes: np.ndarray,
    known: np.ndarray,
) -> SSDDBCResult:
    n = assigned.shape[0]
    # Renumber roots by smallest member index: stable ids independent of union order.
    uniq, first = np.unique(assigned, return_index=True)
    valid = uniq >= 0
    uniq, first = uniq[valid], first[valid]
    uniq = uniq[np.argsort(first)]
    remap = np.full(n, -1, dtype=np.int64)
    remap[uniq] = np.arange(uniq.size)
    out = np.where(assigned >= 0, remap[np.maximum(assigned, 0)], -1)
    n_clusters = uniq.size
    cluster_class = np.full(n_clusters, -1, dtype=np.int64)
    core_known = core & (known >= 0) & (out >= 0)
    cluster_class[out[core_known]] = classes[known[core_known]] if classes.size else -1
    has_label = np.zeros(n_clusters, dtype=bool)
    has_label[out[mask & (out >= 0)]] = True
    return SSDDBCResult(
        labels=out,
        core=core,
        density=rho,
        cluster_class=cluster_class,
        new_class_clusters=np.flatnonzero(~has_label),
    )


def ssddbc_sweep(
    labels: np.ndarray,
    labeled_mask: np.ndarray,
    *,
    k: int,
    density_percentiles: Sequence[float],
    precomputed_knn: tuple[np.ndarray, np.ndarray],
    relative: bool = True,
    cutoff: float | str = "mean",
) -> list[SSDDBCResult]:
    """:func:`ssddbc` for several density percentiles at one k, sharing the per-k work.

    Density, cut-off and the kNN-graph edges do not depend on the percentile, so they are computed once.
    Each result is identical to the corresponding :func:`ssddbc` call.

    Returns
    -------
    list of SSDDBCResult
        In the order of ``density_percentiles``.
    """
    for p in density_percentiles:
        if not 0 <= p <= 100:
            raise InvalidParameterError(f"density_percentile must be in [0, 100], got {p!r}")
    nb, ds, mask, classes, known = _inputs(labels, labeled_mask, k, precomputed_knn)
    rho = median_density(nb, ds)
    if relative:
        rho = relative_density(nb, rho)
    cut = float(ds.mean()) if cutoff == "mean" else float(cutoff)
    edges = _graph_edges(nb, ds, cut)
    results = []
    for p in density_percentiles:
        core = rho >= np.percentile(rho, p)
        roots = _core_components(nb.shape[0], edges, core, known)
        results.append(_finish(_assign_non_core(nb, ds, roots), core, rho, mask, classes, known))
    return results


def ssddbc(
    features: np.ndarray | None,
    labels: np.ndarray,
    labeled_mask: np.ndarray,
    *,
    k: int,
    density_percentile: float,
    precomputed_knn: tuple[np.ndarray, np.ndarray] | None = None,
    relative: bool = True,
    cutoff: float | str = "mean",
    metric: str = "euclidean",
) -> SSDDBCResult:
    """Cluster with SS-DDBC (see the module docstring for the exact algorithm).

    Parameters
    ----------
    features : numpy.ndarray, shape (n, d), optional
        Only used to compute the kNN when ``precomputed_knn`` is not given.
    labels : numpy.ndarray, int, shape (n,)
        Class labels; only entries where ``labeled_mask`` is true are used.
    labeled_mask : numpy.ndarray, bool, shape (n,)
        Which points have a known label.
    k : int
        Neighbours used (``precomputed_knn`` may be wider: its first k columns are used).
    density_percentile : float
        Percentile in [0, 100] of the density above which points are core.
    precomputed_knn : (neighbors, distances), optional
        Cached kNN, self excluded, rows ordered by (distance, index); e.g. from :func:`knn_store.load`.
    relative : bool, default True
        Use the relative density rather than the plain median density.
    cutoff : float or "mean", default "mean"
        Longest core-graph edge (distance units); ``"mean"`` is the mean k-NN distance, ``inf`` disables.
    metric : {"euclidean", "cosine"}, default "euclidean"
        Only for computing the kNN from ``features``.

    Returns
    -------
    SSDDBCResult
        Deterministic for given inputs.
    """
    if precomputed_knn is None:
        if features is None:
            raise InvalidParameterError("ssddbc needs either features or precomputed_knn")
        from knn_store.neighbors import exact_knn, prepare_features

        precomputed_knn = exact_knn(prepare_features(features, metric), k, metric=metric)
    [result] = ssddbc_sweep(
        labels,
        labeled_mask,
        k=k,
        density_percentiles=[density_percentile],
        precomputed_knn=precomputed_knn,
        relative=relative,
        cutoff=cutoff,
    )
    return result
