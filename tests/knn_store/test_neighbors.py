from __future__ import annotations

import numpy as np
import pytest

from knn_store import BackendUnavailableError, InvalidFeaturesError, InvalidParameterError
from knn_store.neighbors import exact_knn, prepare_features, resolve_backend

EXACT = ["numpy", "sklearn"]


def _reference(x: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Brute force in float64, ordered by (distance, index), self removed by index."""
    x64 = x.astype(np.float64)
    d = np.sqrt(((x64[:, None, :] - x64[None, :, :]) ** 2).sum(-1))
    if metric == "cosine":
        d = d**2 / 2
    np.fill_diagonal(d, np.inf)
    order = np.lexsort((np.broadcast_to(np.arange(len(x)), d.shape), d), axis=1)[:, :k]
    return order, np.take_along_axis(d, order, axis=1)


@pytest.mark.parametrize("backend", EXACT)
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_matches_brute_force(features: np.ndarray, backend: str, metric: str) -> None:
    x = prepare_features(features, metric)
    nb, ds = exact_knn(x, 12, metric=metric, backend=backend)
    ref_nb, ref_ds = _reference(x, 12, metric)
    assert nb.dtype == np.int32
    assert ds.dtype == np.float32
    assert nb.shape == (300, 12)
    np.testing.assert_allclose(ds, ref_ds, rtol=1e-4, atol=1e-4)
    # Continuous random data has no near-ties at this scale: identical neighbour lists.
    assert (nb == ref_nb).mean() > 0.999


@pytest.mark.parametrize("backend", EXACT)
def test_ties_are_broken_by_index_and_self_removed_by_index(tied_features: np.ndarray, backend: str) -> None:
    x = prepare_features(tied_features, "euclidean")
    nb, ds = exact_knn(x, 15, backend=backend)
    ref_nb, ref_ds = _reference(x, 15, "euclidean")
    np.testing.assert_array_equal(nb, ref_nb)
    np.testing.assert_allclose(ds, ref_ds, atol=1e-6)
    assert not (nb == np.arange(len(x))[:, None]).any()
    # Duplicated rows are kept as neighbours at distance 0 (only the point itself is excluded).
    assert (ds[:, 0] == 0).any()


@pytest.mark.parametrize("backend", EXACT)
def test_prefix_property_under_ties(tied_features: np.ndarray, backend: str) -> None:
    x = prepare_features(tied_features, "euclidean")
    nb_max, ds_max = exact_knn(x, 21, backend=backend)
    for k in (1, 3, 7, 20):
        nb, ds = exact_knn(x, k, backend=backend)
        np.testing.assert_array_equal(nb, nb_max[:, :k])
        np.testing.assert_array_equal(ds, ds_max[:, :k])


def test_block_size_does_not_change_selection(tied_features: np.ndarray) -> None:
    x = prepare_features(tied_features, "euclidean")
    a = exact_knn(x, 9, block_rows=7)
    b = exact_knn(x, 9)
    np.testing.assert_array_equal(a[0], b[0])


@pytest.mark.parametrize(
    ("bad", "exc"),
    [
        (np.zeros(5), InvalidFeaturesError),
        (np.zeros((1, 3)), InvalidFeaturesError),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), InvalidFeaturesError),
        (np.array([["a", "b"], ["c", "d"]]), InvalidFeaturesError),
    ],
    ids=["1d", "one-row", "nan", "strings"],
)
def test_bad_features_are_rejected(bad: np.ndarray, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        prepare_features(bad, "euclidean")


def test_bad_parameters(features: np.ndarray) -> None:
    x = prepare_features(features, "euclidean")
    with pytest.raises(InvalidParameterError, match=r"\[1, 299\]"):
        exact_knn(x, 300)
    with pytest.raises(InvalidParameterError):
        prepare_features(features, "manhattan")
    with pytest.raises(ValueError, match="unknown kNN backend"):
        resolve_backend("annoy")
    with pytest.raises(InvalidFeaturesError, match="all-zero"):
        prepare_features(np.zeros((3, 2)), "cosine")


def test_faiss_is_optional() -> None:
    try:
        import faiss  # noqa: F401
    except ImportError:
        with pytest.raises(BackendUnavailableError, match="faiss"):
            resolve_backend("faiss")
        assert resolve_backend("auto") == "numpy"
    else:
        assert resolve_backend("auto") == "faiss"
