"""Exact kNN backends with one deterministic selection rule.

Every backend only produces blocks of squared distances (or, for faiss, candidate lists); the selection of
the k nearest is shared: self is removed by index, rows are ordered by (stored distance, index), and
boundary ties are resolved exactly by a full-row fallback. That total order is what makes the k_max
result a prefix-exact answer for every smaller k.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
from threadpoolctl import threadpool_limits

from knn_store.errors import BackendUnavailableError, InvalidFeaturesError, InvalidParameterError

__all__ = ["BACKENDS", "METRICS", "backend_id", "exact_knn", "prepare_features", "resolve_backend"]

logger = logging.getLogger(__name__)

METRICS = ("euclidean", "cosine")
BACKENDS = ("auto", "numpy", "sklearn", "faiss")

_BLOCK_BYTES = 64 << 20  # size of one float32 distance block; bounds peak memory at ~4x this


def resolve_backend(backend: str) -> str:
    """Map ``"auto"`` to a concrete backend and check availability.

    Parameters
    ----------
    backend : {"auto", "numpy", "sklearn", "faiss"}
        ``"auto"`` means faiss when installed, otherwise the NumPy GEMM.

    Returns
    -------
    str
        A concrete backend name.
    """
    if backend not in BACKENDS:
        raise InvalidParameterError(f"unknown kNN backend {backend!r}; expected one of {BACKENDS}")
    has_faiss = importlib.util.find_spec("faiss") is not None
    if backend == "auto":
        return "faiss" if has_faiss else "numpy"
    if backend == "faiss" and not has_faiss:
        raise BackendUnavailableError(
            "kNN backend 'faiss' requested but the 'faiss' package is not installed"
        )
    return backend


def backend_id(backend: str) -> str:
    """Identifier of a concrete backend including version and precision, as stored in entry keys."""
    if backend == "numpy":
        return f"numpy-{np.__version__}/gemm/f32"
    if backend == "sklearn":
        import sklearn

        return f"sklearn-{sklearn.__version__}/euclidean_distances/f32"
    if backend == "faiss":
        import faiss

        return f"faiss-{faiss.__version__}/IndexFlatL2/f32"
    raise InvalidParameterError(f"backend {backend!r} is not concrete; call resolve_backend first")


def prepare_features(features: object, metric: str) -> np.ndarray:
    """Validate and convert features to the float32 C-contiguous matrix the kNN runs on.

    Parameters
    ----------
    features : array_like, shape (n, d)
        Finite values.
    metric : {"euclidean", "cosine"}
        For ``"cosine"`` the rows are L2-normalised here (zero rows are rejected).

    Returns
    -------
    numpy.ndarray
        float32, C-contiguous, shape (n, d). This is the matrix whose bytes are hashed.
    """
    if metric not in METRICS:
        raise InvalidParameterError(f"unknown metric {metric!r}; expected one of {METRICS}")
    arr = np.asarray(features)
    if arr.ndim != 2:
        raise InvalidFeaturesError(f"features must be a 2-D (n, d) matrix, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise InvalidFeaturesError(f"features must be real numbers, got dtype {arr.dtype}")
    if arr.shape[0] < 2 or arr.shape[1] < 1:
        raise InvalidFeaturesError(f"features need at least 2 rows and 1 column, got shape {arr.shape}")
    x = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(x).all():
        raise InvalidFeaturesError("features contain NaN or infinite values (after conversion to float32)")
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        if (norms == 0).any():
            raise InvalidFeaturesError("cosine metric needs non-zero rows; found an all-zero row")
        x = np.ascontiguousarray(x / norms, dtype=np.float32)
    return x


def _to_distance(d2: np.ndarray, metric: str) -> np.ndarray:
    # GEMM cancellation can give tiny negative squared distances; they are zero.
    d2 = np.maximum(d2, 0, dtype=np.float32)
    if metric == "cosine":
        return d2 * np.float32(0.5)  # on unit vectors 1 - cos = |x - y|^2 / 2
    return np.sqrt(d2, dtype=np.float32)


def _select_block(d2: np.ndarray, first_row: int, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Pick the k nearest per row of a squared-distance block, self removed by index, exact ties."""
    b, n = d2.shape
    rows = np.arange(b)
    d2[rows, first_row + rows] = np.inf
    m = min(k + 1, n - 1)  # one spare candidate tells whether the k-th place is tied
    cand = np.argpartition(d2, m - 1, axis=1)[:, :m]
    cand_d = _to_distance(np.take_along_axis(d2, cand, axis=1), metric)
    order = np.lexsort((cand, cand_d), axis=1)
    idx = np.take_along_axis(cand, order, axis=1)
    dist = np.take_along_axis(cand_d, order, axis=1)
    if m > k:
        for r in np.flatnonzero(dist[:, k - 1] == dist[:, k]):
            # A tie at the boundary: a point outside the candidate set may win on index. Rare (8 rows
            # in 50,000 measured), so a full-row sort is affordable.
            full_d = _to_distance(d2[r], metric)
            full_d[first_row + r] = np.inf
            o = np.lexsort((np.arange(n), full_d))[:m]
            idx[r], dist[r] = o, full_d[o]
    return idx[:, :k].astype(np.int32), dist[:, :k]


def _gemm_blocks(x: np.ndarray, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    sq = np.einsum("ij,ij->i", x, x)
    for s in range(0, x.shape[0], rows):
        xb = x[s : s + rows]
        d2 = xb @ x.T
        d2 *= np.float32(-2)
        d2 += sq[s : s + rows, None]
        d2 += sq[None, :]
        yield s, d2


def _sklearn_blocks(x: np.ndarray, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    from sklearn.metrics.pairwise import euclidean_distances

    sq = np.einsum("ij,ij->i", x, x)[None, :]
    for s in range(0, x.shape[0], rows):
        d2 = euclidean_distances(x[s : s + rows], x, Y_norm_squared=sq, squared=True)
        yield s, np.asarray(d2, dtype=np.float32)


def _faiss_knn(x: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    n = x.shape[0]
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    m = min(k + 2, n)  # self plus one spare for the tie check
    d2, idx = index.search(x, m)
    nb = np.empty((n, k), dtype=np.int32)
    ds = np.empty((n, k), dtype=np.float32)
    sq = np.einsum("ij,ij->i", x, x)
    for s in range(0, n, 4096):
        # Faiss may not return self and breaks ties its own way: rebuild exact candidate blocks.
        cand_idx, cand_d2 = idx[s : s + 4096], d2[s : s + 4096].astype(np.float32)
        rows = np.arange(cand_idx.shape[0]) + s
        is_self = cand_idx == rows[:, None]
        cand_d2 = np.where(is_self | (cand_idx < 0), np.inf, cand_d2)
        dist = _to_distance(cand_d2, metric)
        order = np.lexsort((cand_idx, dist), axis=1)
        ci = np.take_along_axis(cand_idx, order, axis=1)
        cd = np.take_along_axis(dist, order, axis=1)
        valid = np.isfinite(cd)
        for r in range(ci.shape[0]):
            good = ci[r][valid[r]]
            if good.size > k and cd[r, k - 1] < cd[r, good.size - 1]:
                nb[s + r], ds[s + r] = good[:k], cd[r][valid[r]][:k]
                continue
            row_d2 = sq[s + r] + sq - 2 * (x @ x[s + r])
            i_, d_ = _select_block(row_d2[None, :].astype(np.float32), s + r, k, metric)
            nb[s + r], ds[s + r] = i_[0], d_[0]
    return nb, ds


@contextmanager
def _threads(n_threads: int | None) -> Iterator[None]:
    if n_threads is None:
        yield
    else:
        with threadpool_limits(limits=n_threads):
            yield


def exact_knn(
    x: np.ndarray,
    k: int,
    *,
    metric: str = "euclidean",
    backend: str = "numpy",
    n_threads: int | None = None,
    block_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of every row among all other rows.

    Parameters
    ----------
    x : numpy.ndarray, shape (n, d)
        Output of :func:`prepare_features` (float32, C-contiguous).
    k : int
        Neighbours per row, ``1 <= k <= n - 1``.
    metric : {"euclidean", "cosine"}
        Distances are Euclidean (not squared) or cosine distance ``1 - cos``.
    backend : {"numpy", "sklearn", "faiss"}
        A concrete backend (see :func:`resolve_backend`).
    n_threads : int, optional
        BLAS/OpenMP thread limit during the computation; ``None`` leaves the current limit.
    block_rows : int, optional
        Rows per distance block; default keeps a block near 64 MB. Must not vary between calls whose
        results are compared bit for bit, because the GEMM blocking affects the last float bit.

    Returns
    -------
    neighbors : numpy.ndarray, int32, shape (n, k)
        Row indices, self excluded by index, ordered by (distance, index).
    distances : numpy.ndarray, float32, shape (n, k)
        Matching distances, non-decreasing along each row.
    """
    n = x.shape[0]
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= n - 1:
        raise InvalidParameterError(f"k must be an integer in [1, n - 1] = [1, {n - 1}], got {k!r}")
    k = int(k)
    rows = block_rows or max(1, min(4096, _BLOCK_BYTES // (4 * n)))
    blocks: Callable[[np.ndarray, int], Iterator[tuple[int, np.ndarray]]]
    with _threads(n_threads):
        if backend == "faiss":
            return _faiss_knn(x, k, metric)
        if backend == "numpy":
            blocks = _gemm_blocks
        elif backend == "sklearn":
            blocks = _sklearn_blocks
        else:
            raise InvalidParameterError(f"unknown concrete kNN backend {backend!r}")
        nb = np.empty((n, k), dtype=np.int32)
        ds = np.empty((n, k), dtype=np.float32)
        for s, d2 in blocks(x, rows):
            nb[s : s + d2.shape[0]], ds[s : s + d2.shape[0]] = _select_block(d2, s, k, metric)
    logger.debug("computed exact kNN n=%d k=%d metric=%s backend=%s", n, k, metric, backend)
    return nb, ds
