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
5. Non-core points, by decreasing density (ties by index), join the component most frequent among their
   already assigned neighbours (ties: smaller summed distance, then smaller id); passes repeat until no
   point changes. Points whose whole neighbourhood never reaches a core point keep the label -1.
6. Clusters without any labelled member are reported as new-class candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from knn_store.errors import InvalidParameterError

__all__ = ["SSDDBCResult", "median_density", "relative_density", "ssddbc"]

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


def _find(parent: list[int], i: int) -> int:
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:  # path compression keeps later finds O(1)
        parent[i], i = root, parent[i]
    return root


def _core_components(
    nb: np.ndarray, ds: np.ndarray, core: np.ndarray, known: np.ndarray, cutoff: float
) -> np.ndarray:
    """Constrained union-find over the core graph; returns a root id per point (-1 for non-core)."""
    n, k = nb.shape
    rows = np.repeat(np.arange(n), k)
    cols = nb.ravel().astype(np.int64)
    dist = ds.ravel()
    keep = core[rows] & core[cols] & (dist <= cutoff)
    a, b, dist = np.minimum(rows, cols)[keep], np.maximum(rows, cols)[keep], dist[keep]
    must = (known[a] >= 0) & (known[a] == known[b])
    order = np.lexsort((b, a, dist, ~must))
    parent = list(range(n))
    comp_class = known.tolist()  # class held by a component (at its root); -1 = none yet
    for i, j in zip(a[order].tolist(), b[order].tolist(), strict=True):
        ri, rj = _find(parent, i), _find(parent, j)
        if ri == rj:
            continue
        ci, cj = comp_class[ri], comp_class[rj]
        if ci >= 0 and cj >= 0 and ci != cj:
            continue  # cannot-link: the components hold different labels
        if rj < ri:
            ri, rj = rj, ri
        parent[rj] = ri
        comp_class[ri] = ci if ci >= 0 else cj
    roots = np.array([_find(parent, i) for i in range(n)], dtype=np.int64)
    roots[~core] = -1
    return roots


def _assign_non_core(nb: np.ndarray, ds: np.ndarray, roots: np.ndarray, order: np.ndarray) -> np.ndarray:
    assigned = roots.copy()
    pending = [int(i) for i in order]
    nb_l, ds_l = nb.tolist(), ds.tolist()
    while pending:
        left = []
        for i in pending:
            votes: dict[int, list[float]] = {}
            for j, d in zip(nb_l[i], ds_l[i], strict=True):
                c = assigned[j]
                if c >= 0:
                    v = votes.setdefault(int(c), [0.0, 0.0])
                    v[0] -= 1.0  # negative count so that min() prefers the majority
                    v[1] += d
            if votes:
                assigned[i] = min(votes, key=lambda c: (votes[c][0], votes[c][1], c))
            else:
                left.append(i)
        if len(left) == len(pending):
            break  # nothing reachable any more
        pending = left
    return assigned


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
    if not 0 <= density_percentile <= 100:
        raise InvalidParameterError(f"density_percentile must be in [0, 100], got {density_percentile!r}")
    if precomputed_knn is None:
        if features is None:
            raise InvalidParameterError("ssddbc needs either features or precomputed_knn")
        from knn_store._knn import exact_knn, prepare_features

        precomputed_knn = exact_knn(prepare_features(features, metric), k, metric=metric)
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

    rho = median_density(nb, ds)
    if relative:
        rho = relative_density(nb, rho)
    core = rho >= np.percentile(rho, density_percentile)
    cut = float(ds.mean()) if cutoff == "mean" else float(cutoff)
    roots = _core_components(nb, ds, core, known, cut)
    order = np.lexsort((np.arange(n), -rho))
    order = order[~core[order]]
    assigned = _assign_non_core(nb, ds, roots, order)

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
