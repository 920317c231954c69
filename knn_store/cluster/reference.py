"""The users' own SS-DDBC (public repository hollegjx/final), label for label, fed from the kNN cache.

``algorithm="reference"`` of :func:`knn_store.ssddbc`. One job, as specified in ``ssddbc_reference.md``:

1. kNN of every point (first ``k`` columns of the cache: self excluded by index, rows in (distance, index)
   order) and the absolute density ``rho`` by ``dense_method``: 0 ``1/(mean + 1e-8)`` (their variant A),
   1 ``1/(median + 1e-8)`` (variant B, the default), 2 min-max normalised method 0, 3 ``exp(-mean)``;
2. relative density ``rho'_i = (k + mean rho) / (k + mean rho of i's neighbours) * rho_i``; core points are
   ``rho' >= percentile(rho', p)`` (numpy linear interpolation);
3. cut-off by ``co_mode``: 1 the given ``co_manual``, 2 the mean of all kNN distances (default), 3 per point
   ``(k + mean rho) / (k + mean rho of its neighbours) * mode-2 value``;
4. the kNN among core points, growth, and the merge of clusters of <= 3 core points
   (:mod:`knn_store.cluster._reference_grow`);
5. every non-core point joins a core cluster by ``assign_model`` 1/2/3 with ``voting_k``
   (:mod:`knn_store.cluster._reference_assign`).

Cluster ids are those of the users' code (creation order, renumbered after the merge), so not only the
partition but the ids match. Where their result depends on scikit-learn's internal order (exact distance ties
at the k-th neighbour, duplicated points, whose copy of lower index they keep in a row instead of self), this
implementation uses the cache's rule: self removed by index, ties broken by the smaller index; distances are
float32 GEMM values (theirs: float64 first kNN, float32 direct differences later), which only matters for
exact or ~1e-7 ties.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from knn_store._numbers import real_number
from knn_store.cluster._reference_assign import ASSIGN_MODELS, assign_non_core
from knn_store.cluster._reference_distances import Points
from knn_store.cluster._reference_grow import (
    cluster_class_of,
    core_neighbours,
    grow_clusters,
    merge_small_clusters,
)
from knn_store.cluster.ours import SSDDBCResult
from knn_store.errors import InvalidFeaturesError, InvalidLabelsError, InvalidParameterError

__all__ = ["CO_MODES", "DENSITIES", "check_reference_params", "reference_ssddbc", "reference_sweep"]

_EPS = 1e-8


def _inverse_mean(d: np.ndarray) -> np.ndarray:
    return 1.0 / (d.mean(axis=1) + _EPS)


def _inverse_median(d: np.ndarray) -> np.ndarray:
    return 1.0 / (np.median(d, axis=1) + _EPS)


def _normalised(d: np.ndarray) -> np.ndarray:
    raw = _inverse_mean(d)
    return (raw - raw.min()) / (raw.max() - raw.min() + _EPS)


def _exponential(d: np.ndarray) -> np.ndarray:
    return np.exp(-d.mean(axis=1))


#: ``dense_method`` -> absolute density from the (n, k) float64 kNN distances.
DENSITIES: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    0: _inverse_mean,
    1: _inverse_median,
    2: _normalised,
    3: _exponential,
}


def _ratio(rho: np.ndarray, nb: np.ndarray) -> np.ndarray:
    k = nb.shape[1]
    return (k + np.mean(rho)) / (k + rho[nb].sum(axis=1) / k)


#: ``co_mode`` -> cut-off from (distances, rho, neighbours, co_manual): a float or one value per point.
CO_MODES: dict[int, Callable[[np.ndarray, np.ndarray, np.ndarray, float | None], float | np.ndarray]] = {
    1: lambda d, rho, nb, manual: float(manual),  # type: ignore[arg-type]
    2: lambda d, rho, nb, manual: float(np.mean(d)),
    3: lambda d, rho, nb, manual: _ratio(rho, nb) * np.mean(d),
}


def _is_percentile(p: object) -> bool:
    """Whether ``p`` (the user's, whatever its annotation says) is a number in [0, 100], not a bool."""
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        return False
    return bool(0 <= p <= 100)


def check_reference_params(
    dense_method: object, assign_model: object, co_mode: object, co_manual: object, voting_k: object
) -> None:
    """Raise :class:`~knn_store.InvalidParameterError` naming the first bad reference parameter.

    The parameters are the user's, unchecked: any object may arrive here.
    """
    for name, value, allowed in (
        ("dense_method", dense_method, DENSITIES),
        ("assign_model", assign_model, ASSIGN_MODELS),
        ("co_mode", co_mode, CO_MODES),
    ):
        # Numbers only reach the lookup: `in` hashes the value, and an unhashable one (a list) would
        # raise a TypeError naming no parameter.
        number = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
        if not number or value not in allowed:
            raise InvalidParameterError(f"{name} must be one of {sorted(allowed)}, got {value!r}")
    manual = real_number(co_manual)
    if co_mode == 1 and (manual is None or not math.isfinite(manual) or manual < 0):
        raise InvalidParameterError(f"co_mode=1 needs co_manual, a finite distance >= 0; got {co_manual!r}")
    if isinstance(voting_k, bool) or not isinstance(voting_k, (int, np.integer)) or voting_k < 1:
        raise InvalidParameterError(f"voting_k must be an integer >= 1, got {voting_k!r}")


def _check_inputs(
    features: Any, labels: Any, labeled_mask: Any, k: Any, knn: tuple[Any, Any] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    from knn_store.neighbors import exact_knn, prepare_features

    if features is None:
        raise InvalidFeaturesError("features are required by algorithm='reference' (core kNN and assignment)")
    # Validated exactly (the kNN runs on these values), then float32 like the users' X from here on.
    exact = prepare_features(features, "euclidean")
    x = np.ascontiguousarray(exact, dtype=np.float32)
    n = x.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n - 1:
        raise InvalidParameterError(f"k must be an integer in [1, n - 1] = [1, {n - 1}], got {k!r}")
    y, mask = np.asarray(labels), np.asarray(labeled_mask)
    if y.shape != (n,):
        raise InvalidLabelsError(f"labels must have shape ({n},) like the features, got {y.shape}")
    if mask.shape != (n,) or mask.dtype != bool:
        raise InvalidLabelsError(
            f"labeled_mask must be a boolean array of shape ({n},), got {mask.dtype} {mask.shape}"
        )
    classes = np.unique(y[mask])
    if classes.size < 2:
        raise InvalidLabelsError(
            f"labeled_mask selects labelled points of {classes.size} class(es); the semi-supervised "
            "reference algorithm needs labelled points of at least 2 classes"
        )
    if knn is None:
        knn = exact_knn(exact, int(k))
    nb, ds = (np.asarray(a) for a in knn)
    if nb.ndim != 2 or nb.shape != ds.shape or nb.shape[0] != n or nb.shape[1] < k:
        raise InvalidParameterError(
            f"precomputed_knn must be (neighbors, distances) of shape ({n}, >= k={k}), got {nb.shape}, {ds.shape}"
        )
    if not np.issubdtype(nb.dtype, np.integer) or nb.min(initial=0) < 0 or nb.max(initial=0) >= n:
        raise InvalidParameterError(f"precomputed_knn neighbors must be integer row ids in [0, {n})")
    return x, y, mask, (nb, np.asarray(ds, dtype=np.float64))


def _result(
    labels: np.ndarray, core: np.ndarray, rel: np.ndarray, y: np.ndarray, mask: np.ndarray
) -> SSDDBCResult:
    m = int(labels.max(initial=-1)) + 1
    cls = np.full(m, -1, dtype=np.int64)
    # Their reported cluster-class map over the core clusters (same 5 / 25 % / 80 % rule); -1 for none.
    classes, codes = np.unique(y[mask], return_inverse=True)
    size = np.bincount(labels[core], minlength=m)
    counts = np.zeros((m, classes.size), dtype=np.int64)
    sel = core[mask]
    np.add.at(counts, (labels[mask][sel], codes[sel]), 1)
    for c in range(m):
        row = {j: int(v) for j, v in enumerate(counts[c].tolist()) if v}
        got = cluster_class_of(int(size[c]), int(counts[c].sum()), row)
        cls[c] = classes[got] if got is not None else -1
    has = np.zeros(m, dtype=bool)
    has[labels[mask & (labels >= 0)]] = True
    return SSDDBCResult(
        labels=labels, core=core, density=rel, cluster_class=cls, new_class_clusters=np.flatnonzero(~has)
    )


def reference_sweep(
    features: Any,
    labels: Any,
    labeled_mask: Any,
    *,
    k: int,
    density_percentiles: Sequence[float],
    dense_method: int = 1,
    assign_model: int = 3,
    co_mode: int = 2,
    co_manual: float | None = None,
    voting_k: int = 5,
    precomputed_knn: tuple[np.ndarray, np.ndarray] | None = None,
    points: Points | None = None,
) -> list[SSDDBCResult]:
    """:func:`reference_ssddbc` for several percentiles at one k; density and cut-off are computed once.

    With several percentiles the (n x n) distances are computed once when they fit in memory (see
    :class:`~knn_store.cluster._reference_distances.Points`); ``points`` passes such an object between calls.
    """
    check_reference_params(dense_method, assign_model, co_mode, co_manual, voting_k)
    for p in density_percentiles:
        if not _is_percentile(p):
            raise InvalidParameterError(f"density_percentile must be a number in [0, 100], got {p!r}")
    x, y, mask, knn = _check_inputs(features, labels, labeled_mask, k, precomputed_knn)
    points = Points(x) if points is None else points
    if len(density_percentiles) > 1:
        points.share()  # one GEMM for all percentiles instead of one per job
    _, known = np.unique(y[mask], return_inverse=True)
    code = np.full(x.shape[0], -1, dtype=np.int64)
    code[mask] = known
    nb, ds = knn[0][:, :k].astype(np.int64), knn[1][:, :k]
    rho = DENSITIES[dense_method](ds)
    rel = _ratio(rho, nb) * rho
    co = CO_MODES[co_mode](ds, rho, nb, co_manual)
    out = []
    for p in density_percentiles:
        core = rel >= np.percentile(rel, p)
        core_idx = np.flatnonzero(core)
        near = core_neighbours(points, core_idx, knn, int(k), co)
        grown = grow_clusters(core_idx, near, code, rho)
        merged = merge_small_clusters(points, grown, code)
        final = assign_non_core(points, merged, assign_model, int(voting_k))
        out.append(_result(final, core, rel, y, mask))
    return out


def reference_ssddbc(
    features: Any,
    labels: Any,
    labeled_mask: Any,
    *,
    k: int,
    density_percentile: float,
    dense_method: int = 1,
    assign_model: int = 3,
    co_mode: int = 2,
    co_manual: float | None = None,
    voting_k: int = 5,
    precomputed_knn: tuple[np.ndarray, np.ndarray] | None = None,
) -> SSDDBCResult:
    """One job of the users' SS-DDBC (see the module docstring); parameters as :func:`knn_store.ssddbc`."""
    [res] = reference_sweep(
        features, labels, labeled_mask, k=k, density_percentiles=[density_percentile],
        dense_method=dense_method, assign_model=assign_model, co_mode=co_mode, co_manual=co_manual,
        voting_k=voting_k, precomputed_knn=precomputed_knn,
    )  # fmt: skip
    return res
