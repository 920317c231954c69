"""The published kNN equals a float64 brute force with the (distance, index) tie rule, on any finite input."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from knn_store import BackendUnavailableError, InvalidFeaturesError, InvalidParameterError
from knn_store.neighbors import exact_knn, key_backend, knn, prepare_features, resolve_backend

EXACT = ["numpy", "sklearn", "faiss"]


def _brute_force(x: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Independent float64 brute force: per-row squared differences, lexsort by (distance, index)."""
    v = np.asarray(x, dtype=np.float64)
    if metric == "cosine":
        # Exact power-of-two pre-scaling keeps 1e19 / 1e-19 rows in range; the same bits as v / |v| otherwise.
        v = np.ldexp(v, -np.frexp(np.abs(v).max(axis=1))[1][:, None])
        v = v / np.sqrt((v**2).sum(axis=1, keepdims=True))
    n = len(v)
    nb, d2 = np.empty((n, k), dtype=np.int64), np.empty((n, k))
    for i in range(n):
        row = ((v - v[i]) ** 2).sum(axis=1)
        row[i] = np.inf
        order = np.lexsort((np.arange(n), row))[:k]
        nb[i], d2[i] = order, row[order]
    return nb, (d2 / 2 if metric == "cosine" else np.sqrt(d2)).astype(np.float32)


def _plain_gemm(x: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Yesterday's path: float32 |x|^2 - 2 x.y + |y|^2 without conditioning (to show the data are hard)."""
    x32 = np.asarray(x, dtype=np.float32)
    if metric == "cosine":
        x32 = x32 / np.linalg.norm(x32, axis=1, keepdims=True)
    sq = np.einsum("ij,ij->i", x32, x32)
    d2 = sq[:, None] + sq[None, :] - 2 * x32 @ x32.T
    np.fill_diagonal(d2, np.inf)
    return np.lexsort((np.broadcast_to(np.arange(len(x)), d2.shape), d2), axis=1)[:, :k]


def _blobs(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(5, d))
    return centres[rng.integers(0, 5, n)] + rng.normal(size=(n, d))


def _case(name: str) -> np.ndarray:
    rng = np.random.default_rng(3)
    if name == "centred":
        return _blobs(300, 32).astype(np.float32)
    if name in ("offset100", "offset1000"):
        return (rng.random((400, 64)) + float(name[6:])).astype(np.float32)
    if name == "int64-above-2^24":
        return rng.integers(0, 1000, (200, 8)) + 2**40
    if name == "uint8-pixels":
        return rng.integers(0, 256, (200, 48)).astype(np.uint8)
    if name == "float16":
        return rng.normal(size=(200, 12)).astype(np.float16)
    if name == "ties-and-duplicates":
        return rng.integers(1, 4, (250, 4)).astype(np.float32)  # no zero row (cosine)
    if name == "norms-1e19":
        return (_blobs(200, 16) * 1e19).astype(np.float32)
    if name == "norms-1e-19":
        return (_blobs(200, 16) * 1e-19).astype(np.float32)
    if name == "mixed-magnitudes":
        x = _blobs(200, 16)
        return x * 10.0 ** rng.integers(-150, 150, (200, 1))
    raise AssertionError(name)


CASES = [
    "centred",
    "offset100",
    "offset1000",
    "int64-above-2^24",
    "uint8-pixels",
    "float16",
    "ties-and-duplicates",
    "norms-1e19",
    "norms-1e-19",
    "mixed-magnitudes",
]
#: Euclidean distances of these overflow/underflow float32 storage; they are refused (tested below).
_EUCLID_UNSTORABLE = {"mixed-magnitudes"}


@pytest.mark.parametrize("backend", EXACT)
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("case", CASES)
def test_equals_float64_brute_force(case: str, metric: str, backend: str) -> None:
    if backend == "faiss" and importlib.util.find_spec("faiss") is None:
        pytest.skip("faiss not installed")
    raw = _case(case)
    x = prepare_features(raw, metric)
    if metric == "euclidean" and case in _EUCLID_UNSTORABLE:
        with pytest.raises(InvalidFeaturesError, match="float32"):
            exact_knn(x, 10, metric=metric, backend=backend)
        return
    nb, ds = exact_knn(x, 10, metric=metric, backend=backend)
    ref_nb, ref_ds = _brute_force(raw, 10, metric)
    assert nb.dtype == np.int32
    assert ds.dtype == np.float32
    np.testing.assert_array_equal(nb, ref_nb)
    np.testing.assert_array_equal(ds, ref_ds)  # float32 rounded once from the same float64 values


@pytest.mark.parametrize(("case", "metric"), [("offset100", "euclidean"), ("offset1000", "euclidean"),
                                              ("int64-above-2^24", "euclidean"), ("norms-1e19", "cosine")])  # fmt: skip
def test_the_hard_cases_defeat_a_plain_float32_gemm(case: str, metric: str) -> None:
    """The cases above would catch yesterday's path: it gets rows wrong on each of them."""
    raw = _case(case)
    with np.errstate(all="ignore"):
        wrong = (_plain_gemm(raw, 10, metric) != _brute_force(raw, 10, metric)[0]).any(axis=1).sum()
    assert wrong > 0


def test_result_does_not_depend_on_blocking_or_backend() -> None:
    x = prepare_features(_case("ties-and-duplicates"), "euclidean")
    base = exact_knn(x, 9)
    for other in (exact_knn(x, 9, block_rows=7), exact_knn(x, 9, backend="sklearn"), exact_knn(x, 3)):
        k = other[0].shape[1]
        np.testing.assert_array_equal(other[0], base[0][:, :k])
        np.testing.assert_array_equal(other[1], base[1][:, :k])
    assert key_backend("numpy") == key_backend("sklearn") == "exact"


def test_ties_broken_by_index_self_excluded_duplicates_kept() -> None:
    x = prepare_features(_case("ties-and-duplicates"), "euclidean")
    nb, ds = exact_knn(x, 15)
    assert not (nb == np.arange(len(x))[:, None]).any()
    assert (ds[:, 0] == 0).any()  # duplicated rows are neighbours at distance 0
    tied = ds[:, 1:] == ds[:, :-1]
    assert tied.any()
    assert (nb[:, 1:][tied] > nb[:, :-1][tied]).all()


@pytest.mark.parametrize(
    ("raw", "dtype"),
    [
        (np.arange(12, dtype=np.float16).reshape(6, 2), np.float32),
        (np.arange(12, dtype=np.int16).reshape(6, 2), np.float32),
        (np.arange(12, dtype=np.int32).reshape(6, 2) * 2**28, np.float64),
        (np.arange(12, dtype=np.int64).reshape(6, 2) + 2**53 - 12, np.float64),
        (np.arange(12, dtype=np.float64).reshape(6, 2), np.float64),
    ],
    ids=["float16", "int16", "int32", "int64-at-2^53", "float64"],
)
def test_conversion_is_exact(raw: np.ndarray, dtype: type) -> None:
    x = prepare_features(raw, "euclidean")
    assert x.dtype == dtype
    assert np.array_equal(x.astype(raw.dtype), raw)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros(5), "2-D"),
        (np.zeros((1, 3)), "at least 2 rows"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), "NaN"),
        (np.array([["a", "b"], ["c", "d"]]), "real numbers"),
        (np.array([[2**53 + 1, 0], [0, 0]], dtype=np.int64), "2\\*\\*53"),
        (np.array([[2**64 - 1, 0], [0, 0]], dtype=np.uint64), "2\\*\\*53"),
        (np.array([[1 + 1j, 0], [0, 0]]), "real numbers"),
    ],
    ids=["1d", "one-row", "nan", "strings", "int64-beyond-2^53", "uint64", "complex"],
)
def test_bad_features_are_refused_clearly(bad: np.ndarray, match: str) -> None:
    with pytest.raises(InvalidFeaturesError, match=match):
        prepare_features(bad, "euclidean")


def test_cosine_refuses_only_truly_zero_rows() -> None:
    with pytest.raises(InvalidFeaturesError, match=r"row\(s\) \[1\] are all zero"):
        prepare_features(np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]), "cosine")
    tiny = np.array([[1e-300, 0.0], [0.0, 1e-300], [1e-300, 1e-300]])
    nb, ds = exact_knn(prepare_features(tiny, "cosine"), 1, metric="cosine")
    assert nb[:, 0].tolist() == [2, 2, 0]
    np.testing.assert_allclose(ds[:, 0], 1 - np.sqrt(0.5), rtol=1e-6)


def test_bad_parameters() -> None:
    x = prepare_features(_case("centred"), "euclidean")
    with pytest.raises(InvalidParameterError, match=r"\[1, 299\]"):
        exact_knn(x, 300)
    with pytest.raises(InvalidParameterError):
        prepare_features(x, "manhattan")
    with pytest.raises(ValueError, match="unknown kNN backend"):
        resolve_backend("annoy")
    with pytest.raises(InvalidParameterError, match="not an exact"):
        exact_knn(x, 3, backend="hnswlib")


@pytest.mark.parametrize("backend", ["faiss", "hnswlib", "pynndescent", "faiss-hnsw"])
def test_optional_backends_are_refused_clearly_or_work(backend: str) -> None:
    assert resolve_backend("auto") == "numpy"  # never an approximate or optional backend implicitly
    package = {"faiss-hnsw": "faiss"}.get(backend, backend)
    if importlib.util.find_spec(package) is None:
        with pytest.raises(BackendUnavailableError, match=package):
            resolve_backend(backend)
        return
    raw = _case("centred")
    nb, ds = knn(prepare_features(raw, "euclidean"), 5, backend=resolve_backend(backend))
    ref_nb, ref_ds = _brute_force(raw, 5, "euclidean")
    assert key_backend(backend) != "exact" or backend == "faiss"
    assert not (nb == np.arange(len(raw))[:, None]).any()
    # Distances of whatever was returned are exact; recall is measured in the benchmark.
    assert (ds >= ref_ds - 1e-6).all()
    assert (nb == ref_nb).mean() > 0.5
