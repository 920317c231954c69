"""SS-DDBC clustering on a cached kNN, and the GCD metrics that score it.

Modules
-------
api
    :func:`ssddbc` with ``algorithm="reference"`` (default, the users' own SS-DDBC) or ``"ours"``.
reference
    The users' algorithm, label for label (:func:`reference_ssddbc`, :func:`reference_sweep`).
estimator
    :class:`SSDDBC`, the scikit-learn style estimator.
loss
    The users' selection loss (``l1`` cross-entropy, ``l2`` silhouette / separation).
ours
    The well-defined SS-DDBC variant (O(n k) after the kNN): :func:`ssddbc`, :func:`ssddbc_sweep`,
    :func:`median_density`, :func:`relative_density`, :class:`SSDDBCResult`.
metrics
    Hungarian clustering accuracy (All/Old/New, v2), ARI and NMI.

Everything loads on first use (the metrics need SciPy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from knn_store._lazy import lazy_getattr

if TYPE_CHECKING:
    from knn_store.cluster.api import ssddbc
    from knn_store.cluster.estimator import SSDDBC
    from knn_store.cluster.metrics import (
        adjusted_rand_index,
        cluster_acc,
        gcd_scores,
        normalized_mutual_info,
        split_cluster_acc,
    )
    from knn_store.cluster.ours import SSDDBCResult, median_density, relative_density, ssddbc_sweep
    from knn_store.cluster.reference import reference_ssddbc, reference_sweep

_LAZY = {
    "SSDDBCResult": "knn_store.cluster.ours",
    "median_density": "knn_store.cluster.ours",
    "relative_density": "knn_store.cluster.ours",
    "ssddbc": "knn_store.cluster.api",
    "SSDDBC": "knn_store.cluster.estimator",
    "reference_ssddbc": "knn_store.cluster.reference",
    "reference_sweep": "knn_store.cluster.reference",
    "ssddbc_sweep": "knn_store.cluster.ours",
    "adjusted_rand_index": "knn_store.cluster.metrics",
    "cluster_acc": "knn_store.cluster.metrics",
    "gcd_scores": "knn_store.cluster.metrics",
    "normalized_mutual_info": "knn_store.cluster.metrics",
    "split_cluster_acc": "knn_store.cluster.metrics",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = [
    "SSDDBC",
    "SSDDBCResult",
    "adjusted_rand_index",
    "cluster_acc",
    "gcd_scores",
    "median_density",
    "normalized_mutual_info",
    "reference_ssddbc",
    "reference_sweep",
    "relative_density",
    "split_cluster_acc",
    "ssddbc",
    "ssddbc_sweep",
]
