"""``knn_store.SSDDBC``: a scikit-learn style estimator around :func:`knn_store.ssddbc`.

It pairs with the function as scikit-learn's ``DBSCAN`` pairs with ``dbscan``: ``__init__`` only stores
the hyper-parameters (validation happens in ``fit``), ``fit(X, y, labeled_mask)`` runs one job, and what is
learned ends with an underscore.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from knn_store.cluster.api import check_algorithm, ssddbc

__all__ = ["SSDDBC"]


class SSDDBC:
    """Semi-supervised density clustering; ``algorithm="reference"`` is the users' own SS-DDBC.

    Parameters
    ----------
    k : int, default 10
        Neighbours.
    density_percentile : float, default 75
        Core-point percentile in [0, 100].
    algorithm : {"reference", "ours"}, default "reference"
        See :mod:`knn_store.cluster.api`.
    dense_method, assign_model, co_mode, co_manual, voting_k
        Reference parameters (defaults 1, 3, 2, None, 5: the users' variant B); ignored by ``"ours"``.
    precomputed_knn : (neighbors, distances), optional
        Cached kNN of the X passed to ``fit`` (see :func:`knn_store.ssddbc`).

    Attributes
    ----------
    labels_ : numpy.ndarray, int64, shape (n,)
        Cluster id per point.
    core_sample_mask_ : numpy.ndarray, bool, shape (n,)
        Core points.
    result_ : SSDDBCResult
        The whole result of the job.

    Examples
    --------
    >>> SSDDBC(k=10, density_percentile=60).fit(X, y, labeled_mask).labels_  # doctest: +SKIP
    """

    def __init__(
        self,
        k: int = 10,
        density_percentile: float = 75,
        *,
        algorithm: str = "reference",
        dense_method: int = 1,
        assign_model: int = 3,
        co_mode: int = 2,
        co_manual: float | None = None,
        voting_k: int = 5,
        precomputed_knn: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        self.k = k
        self.density_percentile = density_percentile
        self.algorithm = algorithm
        self.dense_method = dense_method
        self.assign_model = assign_model
        self.co_mode = co_mode
        self.co_manual = co_manual
        self.voting_k = voting_k
        self.precomputed_knn = precomputed_knn

    _REFERENCE = ("dense_method", "assign_model", "co_mode", "co_manual", "voting_k")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyper-parameters by name (scikit-learn protocol)."""
        names = ("k", "density_percentile", "algorithm", *self._REFERENCE, "precomputed_knn")
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params: Any) -> SSDDBC:
        """Set hyper-parameters by name (scikit-learn protocol); returns self."""
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for SSDDBC; valid: {sorted(valid)}")
            setattr(self, name, value)
        return self

    def fit(self, X: Any, y: Any, labeled_mask: Any) -> SSDDBC:
        """Cluster ``X`` with the labels ``y`` known where ``labeled_mask`` is true; returns self."""
        params = {n: getattr(self, n) for n in self._REFERENCE} if self.algorithm == "reference" else {}
        check_algorithm(self.algorithm, params)
        res = ssddbc(
            X, y, labeled_mask, k=self.k, density_percentile=self.density_percentile,
            algorithm=self.algorithm, precomputed_knn=self.precomputed_knn, **params,
        )  # fmt: skip
        self.result_ = res
        self.labels_ = res.labels
        self.core_sample_mask_ = res.core
        return self

    def fit_predict(self, X: Any, y: Any, labeled_mask: Any) -> np.ndarray:
        """``fit(X, y, labeled_mask).labels_``."""
        return self.fit(X, y, labeled_mask).labels_

    def __repr__(self) -> str:
        return (
            f"SSDDBC(k={self.k}, density_percentile={self.density_percentile}, algorithm={self.algorithm!r})"
        )
