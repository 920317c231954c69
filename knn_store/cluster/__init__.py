"""SS-DDBC clustering on a cached kNN, and the GCD metrics that score it.

Modules
-------
ours
    The well-defined SS-DDBC variant (O(n k) after the kNN): :func:`ssddbc`, :func:`ssddbc_sweep`,
    :func:`median_density`, :func:`relative_density`, :class:`SSDDBCResult`.
metrics
    Hungarian clustering accuracy (All/Old/New, v2), ARI and NMI.

Everything loads on first use (the metrics need SciPy).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from knn_store.cluster.metrics import (
        adjusted_rand_index,
        cluster_acc,
        gcd_scores,
        normalized_mutual_info,
        split_cluster_acc,
    )
    from knn_store.cluster.ours import SSDDBCResult, median_density, relative_density, ssddbc, ssddbc_sweep

_LAZY = {
    "SSDDBCResult": "knn_store.cluster.ours",
    "median_density": "knn_store.cluster.ours",
    "relative_density": "knn_store.cluster.ours",
    "ssddbc": "knn_store.cluster.ours",
    "ssddbc_sweep": "knn_store.cluster.ours",
    "adjusted_rand_index": "knn_store.cluster.metrics",
    "cluster_acc": "knn_store.cluster.metrics",
    "gcd_scores": "knn_store.cluster.metrics",
    "normalized_mutual_info": "knn_store.cluster.metrics",
    "split_cluster_acc": "knn_store.cluster.metrics",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'knn_store.cluster' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "SSDDBCResult",
    "adjusted_rand_index",
    "cluster_acc",
    "gcd_scores",
    "median_density",
    "normalized_mutual_info",
    "relative_density",
    "split_cluster_acc",
    "ssddbc",
    "ssddbc_sweep",
]
