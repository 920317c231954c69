"""A content-addressed Zarr 3 cache of exact kNN results, and SS-DDBC grid searches on top of it.

Public API
----------
KNNStore
    ``KNNStore(root)`` persistent store, ``KNNStore.temporary()`` context manager; ``ensure``, ``knn``,
    ``lookup``, ``info``, ``prune``, ``clear``.
EntryRef, EntryInfo
    Picklable reference to a published entry; one row of ``KNNStore.info()``.
load
    ``load(ref, k) -> (neighbors, distances)`` in any process, memoised per process.
median_density, relative_density, ssddbc, SSDDBCResult
    The semi-supervised density clustering.
cluster_acc, split_cluster_acc, gcd_scores
    GCD metrics (Hungarian accuracy All/Old/New, standard v2 variant; ARI; NMI).
grid_search, run_clustering_search_on_features, best_configurations
    Grid search over (feature set, k, density percentile), offline or training-loop mode.
KnnStoreError and subclasses
    Every error raised on bad input or bad entries.

Importing the package prints nothing, writes nothing and does not import zarr or distributed.
"""

from __future__ import annotations

from knn_store._entry import EntryRef
from knn_store.clustering import SSDDBCResult, median_density, relative_density, ssddbc
from knn_store.errors import (
    BackendUnavailableError,
    CorruptEntryError,
    EntryNotFoundError,
    InvalidFeaturesError,
    InvalidNameError,
    InvalidParameterError,
    KnnStoreError,
)
from knn_store.loading import load
from knn_store.metrics import cluster_acc, gcd_scores, split_cluster_acc
from knn_store.search import best_configurations, grid_search, run_clustering_search_on_features
from knn_store.store import EntryInfo, KNNStore

__all__ = [
    "BackendUnavailableError",
    "CorruptEntryError",
    "EntryInfo",
    "EntryNotFoundError",
    "EntryRef",
    "InvalidFeaturesError",
    "InvalidNameError",
    "InvalidParameterError",
    "KNNStore",
    "KnnStoreError",
    "SSDDBCResult",
    "best_configurations",
    "cluster_acc",
    "gcd_scores",
    "grid_search",
    "load",
    "median_density",
    "relative_density",
    "run_clustering_search_on_features",
    "split_cluster_acc",
    "ssddbc",
]
