"""The jobs of one grid task: every density percentile of one (feature set, k), scored.

A task clusters with one of :data:`~knn_store.cluster.api.ALGORITHMS` (per-k work shared by the
percentiles) or with a user's ``cluster_fn``, then scores each job: GCD accuracy (v2: one Hungarian
assignment over the unlabelled points, then All / Old / New; -1 counts as one more cluster, so its points
are right only if -1 is matched to their class), ARI, NMI, and optionally the users' loss columns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from knn_store.cluster._reference_distances import Points
from knn_store.cluster.api import check_algorithm, sweep
from knn_store.cluster.loss import DEFAULT_WEIGHTS, LOSS_COLUMNS, UsersLoss, check_weights
from knn_store.cluster.metrics import gcd_scores
from knn_store.errors import InvalidParameterError

__all__ = ["VARIANTS", "ClusterFn", "JobSpec", "clear_shared_points", "run_jobs", "shared_points"]

# One feature set's distance matrix per process: the tasks of a grid are grouped by feature set, so a
# worker computes it once for all its tasks instead of once per k.
_POINTS: dict[str, Points] = {}


def shared_points(key: str, features: np.ndarray) -> Points:
    """The features with their distance matrix (when it fits), memoised per process under ``key``.

    ``key`` must identify the feature bytes (the kNN entry key does: it is a hash of them).
    """
    hit = _POINTS.get(key)
    if hit is None:
        _POINTS.clear()  # one slot: bounded memory
        hit = _POINTS[key] = Points(np.ascontiguousarray(features, dtype=np.float32)).share()
    return hit


def clear_shared_points() -> None:
    """Drop the memo of :func:`shared_points` (the client does after a serial grid search)."""
    _POINTS.clear()


#: ``cluster_fn(features, labels, labeled_mask, k, params, precomputed_knn) -> labels`` where ``params``
#: holds ``density_percentile`` and the grid's ``cluster_params``, and ``precomputed_knn`` the cached
#: ``(neighbors[:, :k], distances[:, :k])``.
ClusterFn = Callable[
    [np.ndarray, np.ndarray, np.ndarray, int, dict[str, Any], tuple[np.ndarray, np.ndarray]], Any
]


#: The two copies of the users' package as their batch runners run them (hollegjx/final: A is
#: ``clustering/``, B is ``ssddbc/``, the one their pseudo-label pipeline imports): name ->
#: (parameters of the reference algorithm, L2 weights of the loss). B is what the defaults give.
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, float]]] = {
    "A": ({"dense_method": 0, "assign_model": 2}, {}),
    "B": ({"dense_method": 1, "assign_model": 3}, dict(DEFAULT_WEIGHTS)),
}


@dataclass(frozen=True)
class JobSpec:
    """What every job of a grid runs: an algorithm (or ``cluster_fn``), its parameters, and the loss."""

    algorithm: str = "reference"
    params: Mapping[str, Any] = field(default_factory=dict)
    cluster_fn: ClusterFn | None = None
    loss: bool = True
    l2_weights: Mapping[str, float] | None = None

    def check(self) -> None:
        """Raise :class:`~knn_store.InvalidParameterError` before any work when the spec cannot run."""
        if self.cluster_fn is None:
            check_algorithm(self.algorithm, self.params)
        elif not callable(self.cluster_fn):
            raise InvalidParameterError(f"cluster_fn must be callable, got {type(self.cluster_fn).__name__}")
        if self.loss:
            check_weights(self.l2_weights)

    @property
    def shares_distances(self) -> bool:
        """Whether the jobs use the pairwise distance matrix (reference algorithm or loss columns)."""
        return self.loss or (self.cluster_fn is None and self.algorithm == "reference")

    @property
    def needs_features(self) -> bool:
        """Whether the workers need the feature matrix (the 'ours' variant without loss does not)."""
        return self.cluster_fn is not None or self.loss or self.algorithm != "ours"


def _user_labels(
    spec: JobSpec, x: Any, y: np.ndarray, mask: np.ndarray, k: int, p: float, knn: Any
) -> np.ndarray:
    params = {"density_percentile": p, **spec.params}
    out = np.asarray(spec.cluster_fn(x, y, mask, k, params, knn))  # type: ignore[misc]
    if out.shape != y.shape or not np.issubdtype(out.dtype, np.integer):
        raise InvalidParameterError(
            f"cluster_fn must return one integer cluster id per point, shape {y.shape}; got {out.dtype} {out.shape}"
        )
    return out


def run_jobs(
    features: np.ndarray | None,
    labels: np.ndarray,
    labeled_mask: np.ndarray,
    k: int,
    percentiles: tuple[float, ...],
    knn: tuple[np.ndarray, np.ndarray],
    spec: JobSpec,
    points: Points | None = None,
) -> list[dict[str, Any]]:
    """One row per percentile: ``k``, ``density_percentile``, scores, ``n_clusters``, loss, ``seconds``.

    ``seconds`` is the clustering and scoring time of the job; work shared by the percentiles of the task
    (density, cut-off, the loss's distance matrix) is split evenly between them. ``points`` (from
    :func:`shared_points`) shares a distance matrix computed earlier.
    """
    t0 = time.perf_counter()
    x = None if features is None else np.ascontiguousarray(features, dtype=np.float32)
    sliced = (knn[0][:, :k], knn[1][:, :k])
    reference = spec.cluster_fn is None and spec.algorithm == "reference"
    # One distance matrix serves the reference's assignment and the loss's silhouette in every job.
    if points is None and x is not None and spec.shares_distances:
        points = Points(x).share()
    results: list[tuple[np.ndarray, np.ndarray | None]]  # (labels, core points; None: a cluster_fn's)
    if spec.cluster_fn is not None:
        results = [(_user_labels(spec, x, labels, labeled_mask, k, p, sliced), None) for p in percentiles]
    else:
        extra = {"points": points} if reference else {}
        res = sweep(
            spec.algorithm, x, labels, labeled_mask, k=k, density_percentiles=percentiles,
            precomputed_knn=knn if reference else sliced, **spec.params, **extra,
        )  # fmt: skip
        results = [(r.labels, r.core) for r in res]
    loss = (
        UsersLoss(points, labels, labeled_mask, spec.l2_weights) if spec.loss and points is not None else None
    )
    shared = (time.perf_counter() - t0) / len(percentiles)
    rows = []
    for p, (pred, core) in zip(percentiles, results, strict=True):
        t1 = time.perf_counter()
        row: dict[str, Any] = {
            "k": int(k),
            "density_percentile": float(p),
            **gcd_scores(labels, pred, labeled_mask),
        }
        row["n_clusters"] = int(np.unique(pred[pred >= 0]).size)
        if loss is not None:
            row.update(loss(pred, np.ones(pred.shape, dtype=bool) if core is None else core))
        else:
            row.update(dict.fromkeys(LOSS_COLUMNS, float("nan")))
        row["seconds"] = shared + time.perf_counter() - t1
        rows.append(row)
    return rows
