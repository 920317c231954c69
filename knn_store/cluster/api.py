"""``knn_store.ssddbc``: one entry point for both SS-DDBC algorithms, chosen by name.

* ``"reference"`` (default): the users' own algorithm (public repository hollegjx/final), label for label,
  see :mod:`knn_store.cluster.reference`. Parameters: ``dense_method`` (1), ``assign_model`` (3),
  ``co_mode`` (2), ``co_manual`` (None), ``voting_k`` (5). Their variant A is ``dense_method=0,
  assign_model=2``; variant B, the newest, is the default.
* ``"ours"``: this project's well-defined variant (union-find over the cached kNN graph, O(n k) after the
  kNN), see :mod:`knn_store.cluster.ours`. Parameters: ``relative`` (True), ``cutoff`` ("mean"),
  ``metric`` ("euclidean"). It is *not* the users' algorithm and gives different clusterings.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from knn_store.cluster import ours, reference
from knn_store.cluster.ours import SSDDBCResult
from knn_store.errors import InvalidParameterError

__all__ = ["ALGORITHMS", "ssddbc", "sweep"]


def _ours_sweep(
    features: Any, labels: Any, labeled_mask: Any, *, k: int, density_percentiles: Sequence[float],
    precomputed_knn: tuple[np.ndarray, np.ndarray] | None = None, relative: bool = True,
    cutoff: float | str = "mean", metric: str = "euclidean",
) -> list[SSDDBCResult]:  # fmt: skip
    if precomputed_knn is None:
        return [
            ours.ssddbc(features, labels, labeled_mask, k=k, density_percentile=p, relative=relative,
                        cutoff=cutoff, metric=metric)
            for p in density_percentiles
        ]  # fmt: skip
    return ours.ssddbc_sweep(
        labels, labeled_mask, k=k, density_percentiles=density_percentiles, precomputed_knn=precomputed_knn,
        relative=relative, cutoff=cutoff,
    )  # fmt: skip


#: Algorithm name -> sweep function ``(features, labels, labeled_mask, *, k, density_percentiles,
#: precomputed_knn, **params) -> list[SSDDBCResult]``.
ALGORITHMS: dict[str, Callable[..., list[SSDDBCResult]]] = {
    "reference": reference.reference_sweep,
    "ours": _ours_sweep,
}


def _params_of(algorithm: str) -> set[str]:
    sig = inspect.signature(ALGORITHMS[algorithm])
    fixed = {"features", "labels", "labeled_mask", "k", "density_percentiles", "precomputed_knn", "points"}
    return {name for name in sig.parameters if name not in fixed}


def check_algorithm(algorithm: str, params: Mapping[str, Any]) -> None:
    """Raise :class:`~knn_store.InvalidParameterError` for an unknown algorithm or a parameter it lacks."""
    if algorithm not in ALGORITHMS:
        raise InvalidParameterError(f"algorithm must be one of {sorted(ALGORITHMS)}, got {algorithm!r}")
    unknown = sorted(set(params) - _params_of(algorithm))
    if unknown:
        raise InvalidParameterError(
            f"algorithm={algorithm!r} has no parameter {unknown[0]!r}; it accepts {sorted(_params_of(algorithm))}"
        )
    if algorithm == "reference":
        sig = inspect.signature(reference.reference_sweep).parameters
        defaults = {name: sig[name].default for name in _params_of(algorithm)}
        reference.check_reference_params(**(defaults | dict(params)))


def sweep(
    algorithm: str,
    features: Any,
    labels: Any,
    labeled_mask: Any,
    *,
    k: int,
    density_percentiles: Sequence[float],
    precomputed_knn: tuple[np.ndarray, np.ndarray] | None = None,
    **params: Any,
) -> list[SSDDBCResult]:
    """Results for several percentiles at one k (per-k work shared), in the order of the percentiles."""
    check_algorithm(algorithm, {name: v for name, v in params.items() if name != "points"})
    return ALGORITHMS[algorithm](
        features, labels, labeled_mask, k=k, density_percentiles=density_percentiles,
        precomputed_knn=precomputed_knn, **params,
    )  # fmt: skip


def ssddbc(
    features: Any,
    labels: Any,
    labeled_mask: Any,
    *,
    k: int,
    density_percentile: float,
    algorithm: str = "reference",
    dense_method: int | None = None,
    assign_model: int | None = None,
    co_mode: int | None = None,
    co_manual: float | None = None,
    voting_k: int | None = None,
    precomputed_knn: tuple[np.ndarray, np.ndarray] | None = None,
    **params: Any,
) -> SSDDBCResult:
    """Semi-supervised density clustering (SS-DDBC) of one (k, percentile) job.

    Parameters
    ----------
    features : array_like, shape (n, d)
        Finite features (converted to float32, as the users' pipeline does). Required by ``"reference"``;
        ``"ours"`` only needs them when ``precomputed_knn`` is absent.
    labels : array_like, shape (n,)
        Classes; only entries where ``labeled_mask`` is true reach the algorithm.
    labeled_mask : array_like of bool, shape (n,)
        Points whose label is known. ``"reference"`` needs labelled points of at least two classes.
    k : int
        Neighbours, ``1 <= k <= n - 1``.
    density_percentile : float
        In [0, 100]; points whose relative density reaches this percentile are core.
    algorithm : {"reference", "ours"}, default "reference"
        See the module docstring.
    dense_method, assign_model, co_mode, co_manual, voting_k : optional
        Reference parameters; when not given: 1, 3, 2, None, 5 (the users' variant B; variant A is
        ``dense_method=0, assign_model=2``). Passing one with ``algorithm="ours"`` raises.
    precomputed_knn : (neighbors, distances), optional
        Cached kNN of the features, self excluded, rows in (distance, index) order, width >= k (e.g.
        :func:`knn_store.load`); computed exactly when absent. A wider cache also serves the reference's
        kNN among core points for most rows.
    **params
        Parameters of ``"ours"`` (``relative``, ``cutoff``, ``metric``); an unknown name raises
        :class:`~knn_store.InvalidParameterError`.

    Returns
    -------
    SSDDBCResult
        ``labels`` (cluster id per point), ``core``, ``density`` (the relative density that selects core
        points), ``cluster_class``, ``new_class_clusters``.
    """
    given = {"dense_method": dense_method, "assign_model": assign_model, "co_mode": co_mode,
             "co_manual": co_manual, "voting_k": voting_k}  # fmt: skip
    params = {name: v for name, v in given.items() if v is not None} | params
    [res] = sweep(
        algorithm, features, labels, labeled_mask, k=k, density_percentiles=[density_percentile],
        precomputed_knn=precomputed_knn, **params,
    )  # fmt: skip
    return res
