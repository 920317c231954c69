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
ssddbc, SSDDBC, SSDDBCResult
    Semi-supervised density clustering; ``algorithm="reference"`` (default) is the users' own SS-DDBC,
    ``"ours"`` this project's variant. ``SSDDBC`` is the scikit-learn style estimator.
median_density, relative_density, ssddbc_sweep
    Building blocks and the per-k sweep of the ``"ours"`` variant.
cluster_acc, split_cluster_acc, gcd_scores
    GCD metrics (Hungarian accuracy All/Old/New, standard v2 variant; ARI; NMI).
grid_search, run_clustering_search_on_features, best_configurations
    Grid search over (feature set, k, density percentile), offline or training-loop mode.
cleanup_temporary
    Remove temporary stores left behind by killed processes (never one whose owner is alive).
KnnStoreError and subclasses
    Every error raised on bad input, bad entries, a full disk (``StoreFullError``) or a miss on a store
    this process cannot write (``ReadOnlyStoreError``).

Layout
------
``neighbors`` (exact kNN computation), ``store/`` (the store, keys, entry format, memo, temporary stores,
storage ``backends/``), ``cluster/`` (SS-DDBC and GCD metrics), ``search`` (grid search), ``cli``, ``plot``,
``input_files`` (reading the CLI's input files), ``errors``.

Importing the package prints nothing and writes nothing; zarr, distributed, pandas, scipy and scikit-learn
are imported only when first needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from knn_store._lazy import lazy_getattr
from knn_store.errors import (
    BackendUnavailableError,
    CorruptEntryError,
    EntryNotFoundError,
    InvalidFeaturesError,
    InvalidNameError,
    InvalidParameterError,
    KnnStoreError,
    ReadOnlyStoreError,
    StoreFullError,
)
from knn_store.store.entry import EntryRef

if TYPE_CHECKING:
    from knn_store.cluster.api import ssddbc
    from knn_store.cluster.estimator import SSDDBC
    from knn_store.cluster.metrics import cluster_acc, gcd_scores, split_cluster_acc
    from knn_store.cluster.ours import SSDDBCResult, median_density, relative_density, ssddbc_sweep
    from knn_store.search import best_configurations, grid_search, run_clustering_search_on_features
    from knn_store.store.cache import EntryInfo, KNNStore
    from knn_store.store.memo import load
    from knn_store.store.temporary import cleanup_temporary

# Heavy dependencies (pandas, scipy, scikit-learn) load on first use: a worker that only calls
# ``load`` starts in a fraction of the time (PEP 562 module __getattr__).
_LAZY = {
    "SSDDBCResult": "knn_store.cluster.ours",
    "median_density": "knn_store.cluster.ours",
    "relative_density": "knn_store.cluster.ours",
    "ssddbc": "knn_store.cluster.api",
    "SSDDBC": "knn_store.cluster.estimator",
    "ssddbc_sweep": "knn_store.cluster.ours",
    "load": "knn_store.store.memo",
    "cleanup_temporary": "knn_store.store.temporary",
    "cluster_acc": "knn_store.cluster.metrics",
    "gcd_scores": "knn_store.cluster.metrics",
    "split_cluster_acc": "knn_store.cluster.metrics",
    "best_configurations": "knn_store.search",
    "grid_search": "knn_store.search",
    "run_clustering_search_on_features": "knn_store.search",
    "EntryInfo": "knn_store.store.cache",
    "KNNStore": "knn_store.store.cache",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "SSDDBC",
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
    "ReadOnlyStoreError",
    "SSDDBCResult",
    "StoreFullError",
    "best_configurations",
    "cleanup_temporary",
    "cluster_acc",
    "gcd_scores",
    "grid_search",
    "load",
    "median_density",
    "relative_density",
    "run_clustering_search_on_features",
    "split_cluster_acc",
    "ssddbc",
    "ssddbc_sweep",
]
