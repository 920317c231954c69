"""ensure(..., client=client) computes the exact kNN blockwise on a real LocalCluster, same bits as local."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from knn_store import KNNStore, load
from knn_store.distributed import distributed_knn, plan_blocks
from knn_store.neighbors import exact_knn, prepare_features

pytestmark = pytest.mark.cluster


def _data(kind: str) -> np.ndarray:
    rng = np.random.default_rng(11)
    if kind == "offset1000":
        return (rng.random((900, 24)) + 1000).astype(np.float32)
    return rng.integers(1, 4, (700, 5)).astype(np.float32)  # heavy ties and duplicates across tiles


@pytest.mark.parametrize(("kind", "metric", "blocks"), [("offset1000", "euclidean", 3),
                                                         ("ties", "euclidean", 4), ("ties", "cosine", 2)])  # fmt: skip
def test_blockwise_equals_local(dask_client, kind: str, metric: str, blocks: int) -> None:
    x = prepare_features(_data(kind), metric)
    local = exact_knn(x, 12, metric=metric)
    remote = distributed_knn(x, 12, metric=metric, client=dask_client, blocks=blocks)
    np.testing.assert_array_equal(remote[0], local[0])
    np.testing.assert_array_equal(remote[1], local[1])
    assert not dask_client.futures


def test_ensure_with_client_publishes_the_same_entry(dask_client, tmp_path: Path) -> None:
    raw = _data("offset1000")
    on_cluster = KNNStore(tmp_path / "a").ensure(raw, 9, client=dask_client)
    local = KNNStore(tmp_path / "b").ensure(raw, 9)
    assert on_cluster.key == local.key  # the exact answer is one key, however it was computed
    for a, b in zip(load(on_cluster, 9), load(local, 9), strict=True):
        np.testing.assert_array_equal(a, b)


def test_plan_blocks_covers_every_row_once() -> None:
    for n, workers in ((5, 2), (1000, 2), (50_000, 2), (50_000, 16)):
        ranges = plan_blocks(n, workers)
        assert ranges[0][0] == 0
        assert ranges[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
