"""Approximate kNN backends, run only when a user names one.

Each backend proposes ``k + 1`` neighbours per row from an index (HNSW graph or NN-descent); the
proposals are then scored with the same float64 arithmetic as the exact path, self is removed by index and
rows are ordered by (distance, index). So the *distances* are exact for the neighbours returned, but a true
neighbour the index missed is simply absent (recall below 1). The entry key and the group attributes
carry the backend and its parameters (``"exact": false``), so an approximate entry is never served to a
request for the exact answer. ``benchmarks/bench_knn_exact.py --recall`` measures recall against exact.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from knn_store.errors import InvalidParameterError
from knn_store.exact import Conditioned, condition, finish, score

__all__ = ["APPROXIMATE", "ApproximateBackend", "approximate_knn"]


@dataclass(frozen=True)
class ApproximateBackend:
    """An approximate index: how to build it, and the parameters recorded in keys.

    Attributes
    ----------
    package : str
        Importable module name (also the distribution looked up for the version).
    propose : callable
        ``propose(v, m, params) -> (n, m) int64`` candidate ids for every row of the float64 rows ``v``
        (unit rows for cosine), ``-1`` for missing.
    params : dict
        Index parameters; part of :meth:`identifier`.
    """

    package: str
    propose: Callable[[np.ndarray, int, dict], np.ndarray]
    distribution: str
    params: dict = field(default_factory=dict)

    def identifier(self) -> str:
        """Backend id with version and parameters, e.g. ``hnswlib-0.8.0/hnsw(M=16,ef=200)/approximate``."""
        try:
            version = importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        args = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.distribution}-{version}/{self.package}({args})/approximate"


def _hnswlib(v: np.ndarray, m: int, params: dict) -> np.ndarray:
    import hnswlib

    index = hnswlib.Index(space="l2", dim=v.shape[1])
    index.init_index(max_elements=v.shape[0], ef_construction=params["ef"], M=params["M"], random_seed=0)
    index.set_num_threads(1)  # deterministic graph; parallelism belongs to the caller
    index.add_items(v.astype(np.float32), np.arange(v.shape[0]))
    index.set_ef(max(params["ef"], m))
    labels, _ = index.knn_query(v.astype(np.float32), k=m)
    return labels.astype(np.int64)


def _pynndescent(v: np.ndarray, m: int, params: dict) -> np.ndarray:
    import pynndescent

    index = pynndescent.NNDescent(v, n_neighbors=max(m, params["n_neighbors"]), random_state=0, n_jobs=1)
    labels, _ = index.neighbor_graph
    return labels[:, :m].astype(np.int64)


def _faiss_hnsw(v: np.ndarray, m: int, params: dict) -> np.ndarray:
    import faiss

    index = faiss.IndexHNSWFlat(v.shape[1], params["M"])
    index.hnsw.efConstruction = params["ef"]
    index.hnsw.efSearch = max(params["ef"], m)
    index.add(v.astype(np.float32))
    _, labels = index.search(v.astype(np.float32), m)
    return labels.astype(np.int64)


#: Registry of approximate backends by name.
APPROXIMATE: dict[str, ApproximateBackend] = {
    "hnswlib": ApproximateBackend("hnswlib", _hnswlib, "hnswlib", {"M": 16, "ef": 200}),
    "pynndescent": ApproximateBackend("pynndescent", _pynndescent, "pynndescent", {"n_neighbors": 30}),
    "faiss-hnsw": ApproximateBackend("faiss", _faiss_hnsw, "faiss-cpu", {"M": 32, "ef": 200}),
}


def _unique_others(cand: np.ndarray, m: int) -> np.ndarray:
    """Per row: proposals without self, duplicates or -1, padded with -1 to width ``m - 1``."""
    n = cand.shape[0]
    out = np.full((n, m - 1), -1, dtype=np.int64)
    for i in range(n):
        row = cand[i][(cand[i] >= 0) & (cand[i] != i)]
        _, first = np.unique(row, return_index=True)
        keep = row[np.sort(first)][: m - 1]
        out[i, : keep.size] = keep
    return out


def approximate_knn(x: np.ndarray, k: int, *, metric: str, backend: str) -> tuple[np.ndarray, np.ndarray]:
    """Approximate kNN; distances of the returned neighbours are exact, ordered by (distance, index).

    Raises
    ------
    InvalidParameterError
        Unknown backend, or the index returned fewer than ``k`` distinct neighbours for some row.
    """
    spec = APPROXIMATE.get(backend)
    if spec is None:
        raise InvalidParameterError(
            f"unknown approximate backend {backend!r}; expected one of {sorted(APPROXIMATE)}"
        )
    cond: Conditioned = condition(x, metric)
    v = cond.exact()  # unit rows for cosine: L2 on them ranks exactly like cosine distance
    cand = _unique_others(spec.propose(v, k + 1, spec.params), k + 1)
    short = np.flatnonzero((cand < 0).sum(axis=1) > 0)
    if short.size:
        raise InvalidParameterError(
            f"approximate backend {backend!r} found fewer than k={k} distinct neighbours for {short.size} "
            f"row(s) (first: {short[0]}); use an exact backend or a smaller k"
        )
    d2 = score(cond, cond, np.arange(x.shape[0]), cand)
    order = np.lexsort((cand, d2), axis=1)
    return finish(cond, np.take_along_axis(cand, order, axis=1), np.take_along_axis(d2, order, axis=1))
