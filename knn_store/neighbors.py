"""Exact kNN of every row among the others, whatever backend proposes the candidates.

Exact backends (``numpy`` GEMM, ``sklearn``, ``faiss`` flat) only supply approximate float32 distances;
:mod:`knn_store.exact` turns them into the float64 brute-force answer with the documented tie rule
(distance, then index), so all exact backends publish identical bits and share one cache key.
Approximate backends (:mod:`knn_store.approximate`) run only when asked for by name; their key and
attributes say so.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from threadpoolctl import threadpool_limits

from knn_store import approximate
from knn_store.errors import BackendUnavailableError, InvalidFeaturesError, InvalidParameterError
from knn_store.exact import condition, finish, knn_tile

__all__ = [
    "BACKENDS",
    "EXACT_BACKENDS",
    "METRICS",
    "backend_id",
    "exact_knn",
    "is_exact",
    "key_backend",
    "knn",
    "prepare_features",
    "resolve_backend",
]

logger = logging.getLogger(__name__)

METRICS = ("euclidean", "cosine")
#: Candidate generators for the exact answer; all publish the same bits.
EXACT_BACKENDS = ("numpy", "sklearn", "faiss")
BACKENDS = ("auto", *EXACT_BACKENDS, *approximate.APPROXIMATE)
#: Python package each backend needs beyond the core dependencies.
_PACKAGES = {"faiss": "faiss", **{name: spec.package for name, spec in approximate.APPROXIMATE.items()}}
#: Largest integer magnitude float64 holds exactly.
_EXACT_INT = 2**53


def resolve_backend(backend: str) -> str:
    """Map ``"auto"`` to a concrete backend and check that its package is installed.

    Parameters
    ----------
    backend : str
        ``"auto"`` (the NumPy GEMM: exact, no optional package), an exact backend
        (``"numpy"``, ``"sklearn"``, ``"faiss"``) or an approximate one (``"hnswlib"``, ``"pynndescent"``,
        ``"faiss-hnsw"``), which is never chosen implicitly.

    Returns
    -------
    str
        A concrete backend name.
    """
    if backend not in BACKENDS:
        raise InvalidParameterError(f"unknown kNN backend {backend!r}; expected one of {BACKENDS}")
    if backend == "auto":
        return "numpy"
    package = _PACKAGES.get(backend)
    if package is not None and importlib.util.find_spec(package) is None:
        raise BackendUnavailableError(
            f"kNN backend {backend!r} requested but the {package!r} package is not installed"
        )
    return backend


def is_exact(backend: str) -> bool:
    """True for backends whose published result is the exact float64 brute force."""
    return backend in EXACT_BACKENDS


def key_backend(backend: str) -> str:
    """The backend part of an entry key: ``"exact"`` for every exact backend, else the approximate id."""
    return "exact" if is_exact(backend) else backend_id(backend)


def backend_id(backend: str) -> str:
    """Identifier of a concrete backend with version and method, as recorded in the group attributes."""
    if backend == "numpy":
        return f"numpy-{np.__version__}/gemm-f32-centred+f64-rerank"
    if backend == "sklearn":
        import sklearn

        return f"sklearn-{sklearn.__version__}/euclidean_distances+f64-rerank"
    if backend == "faiss":
        import faiss

        return f"faiss-{faiss.__version__}/pairwise_L2sqr+f64-rerank"
    if backend in approximate.APPROXIMATE:
        return approximate.APPROXIMATE[backend].identifier()
    raise InvalidParameterError(f"backend {backend!r} is not concrete; call resolve_backend first")


def _canonical(arr: np.ndarray) -> np.ndarray:
    """The input converted without rounding to float32 or float64, or a clear refusal."""
    dt = arr.dtype
    if dt.kind == "f":
        if dt.itemsize <= 4:
            return np.ascontiguousarray(arr, dtype=np.float32)  # float16 -> float32 is exact
        if dt.itemsize == 8:
            return np.ascontiguousarray(arr)
        out = np.ascontiguousarray(arr, dtype=np.float64)
        if not np.array_equal(out.astype(dt), arr):
            raise InvalidFeaturesError(
                f"features of dtype {dt} hold values float64 cannot represent exactly; convert them yourself"
            )
        return out
    if dt.kind in "iu":
        if dt.itemsize <= 2:
            return np.ascontiguousarray(arr, dtype=np.float32)  # |v| < 2^24: exact in float32
        if dt.itemsize == 8 and arr.size:
            peak = max(abs(int(arr.min())), abs(int(arr.max())))
            if peak > _EXACT_INT:
                raise InvalidFeaturesError(
                    f"integer features of dtype {dt} reach {peak}, above 2**53 = {_EXACT_INT}: float64 "
                    "cannot hold them exactly, so their distances would be silently rounded; rescale "
                    "or convert them yourself"
                )
        return np.ascontiguousarray(arr, dtype=np.float64)
    raise InvalidFeaturesError(f"features must be real numbers (integer or float), got dtype {dt}")


def prepare_features(features: object, metric: str = "euclidean") -> np.ndarray:
    """Validate features and convert them exactly to the matrix that is hashed and searched.

    Parameters
    ----------
    features : array_like, shape (n, d)
        Finite real values. float16 and integers up to 16 bits become float32, wider integers float64;
        each conversion is exact. int64/uint64 beyond 2**53 and long doubles that float64 cannot hold are
        refused rather than rounded.
    metric : {"euclidean", "cosine"}
        For ``"cosine"`` all-zero rows are refused (their direction is undefined); rows of any other
        magnitude, 1e-300 or 1e300, are fine.

    Returns
    -------
    numpy.ndarray
        float32 or float64, C-contiguous, shape (n, d), holding exactly the input values.
    """
    if metric not in METRICS:
        raise InvalidParameterError(f"unknown metric {metric!r}; expected one of {METRICS}")
    arr = np.asarray(features)
    if arr.ndim != 2:
        raise InvalidFeaturesError(f"features must be a 2-D (n, d) matrix, got shape {arr.shape}")
    if arr.shape[0] < 2 or arr.shape[1] < 1:
        raise InvalidFeaturesError(f"features need at least 2 rows and 1 column, got shape {arr.shape}")
    if arr.shape[0] >= 2**31:
        raise InvalidFeaturesError(f"at most 2**31 - 1 rows are supported (int32 ids), got {arr.shape[0]}")
    x = _canonical(arr)
    if not np.isfinite(x).all():
        raise InvalidFeaturesError("features contain NaN or infinite values")
    if metric == "cosine":
        zero = np.flatnonzero(~x.any(axis=1))
        if zero.size:
            raise InvalidFeaturesError(
                f"cosine metric needs non-zero rows; row(s) {zero[:5].tolist()} are all zero"
            )
    return x


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
        Output of :func:`prepare_features`.
    k : int
        Neighbours per row, ``1 <= k <= n - 1``.
    metric : {"euclidean", "cosine"}
        Euclidean distance (not squared), or cosine distance ``1 - cos`` computed as ``|u - v|^2 / 2`` on
        the float64 unit rows.
    backend : {"numpy", "sklearn", "faiss"}
        Candidate generator; the result does not depend on it.
    n_threads : int, optional
        BLAS/OpenMP thread limit during the computation; ``None`` leaves the current limit.
    block_rows : int, optional
        Query rows per distance block (default keeps a block near 64 MB); does not change the result.

    Returns
    -------
    neighbors : numpy.ndarray, int32, shape (n, k)
        Row indices, self excluded by index, ordered by (distance, index) of the float64 distances.
    distances : numpy.ndarray, float32, shape (n, k)
        The float64 distances rounded once to float32, non-decreasing along each row.
    """
    n = x.shape[0]
    _check_k(k, n)
    if backend not in EXACT_BACKENDS:
        raise InvalidParameterError(
            f"{backend!r} is not an exact kNN backend; expected one of {EXACT_BACKENDS}"
        )
    with _threads(n_threads):
        cond = condition(x, metric)
        idx, d2 = knn_tile(cond, cond, int(k), backend=backend, block_rows=block_rows)
    logger.debug("computed exact kNN n=%d k=%d metric=%s backend=%s", n, k, metric, backend)
    return finish(cond, idx, d2)


def _check_k(k: object, n: int) -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= n - 1:
        raise InvalidParameterError(f"k must be an integer in [1, n - 1] = [1, {n - 1}], got {k!r}")


def knn(
    x: np.ndarray, k: int, *, metric: str = "euclidean", backend: str = "numpy", n_threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """kNN with a concrete backend: :func:`exact_knn` or an approximate backend run on request."""
    if is_exact(backend):
        return exact_knn(x, k, metric=metric, backend=backend, n_threads=n_threads)
    _check_k(k, x.shape[0])
    with _threads(n_threads):
        return approximate.approximate_knn(x, int(k), metric=metric, backend=backend)
