"""Exact kNN blockwise on a Dask cluster, for feature sets that outgrow one process.

The matrix is conditioned once on the client (column mean, power-of-two scales, cosine row norms: a few
passes over the data), cut into row blocks that are scattered to the workers once, and every
(query block, reference block) pair becomes one task computing the exact top k of its tile
(:func:`knn_store.exact.knn_tile`). One merge task per query block keeps the global top k by (distance,
index). A pair's float64 distance does not depend on the tile it was scored in, so the result is
bit-identical to :func:`knn_store.neighbors.exact_knn` in one process.

Tasks carry row blocks (futures), never the whole matrix; each tile is an (n/B)^2 x d GEMM, seconds of work
at n = 50,000; BLAS runs single-threaded inside a task (the cluster provides the parallelism).
"""

from __future__ import annotations

import itertools
import logging
import math
import uuid
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from knn_store.exact import Conditioned, condition, finish, knn_tile, merge_topk

__all__ = ["distributed_knn", "plan_blocks"]

logger = logging.getLogger(__name__)

_MIN_TILE_ROWS = 512  # below this a tile is mostly task overhead


def plan_blocks(n: int, n_workers: int, blocks: int | None = None) -> list[tuple[int, int]]:
    """Row ranges of the blocks: enough tiles (blocks^2) to keep every worker busy, tiles not tiny."""
    if blocks is None:
        blocks = max(2, math.ceil(math.sqrt(4 * max(1, n_workers))))
        blocks = min(blocks, max(1, n // _MIN_TILE_ROWS))
    blocks = max(1, min(blocks, n))
    edges = np.linspace(0, n, blocks + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges.tolist()) if b > a]


def _tile(q: Conditioned, r: Conditioned, k: int) -> tuple[np.ndarray, np.ndarray]:
    with threadpool_limits(limits=1):
        return knn_tile(q, r, k)


def _merge(k: int, *parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return merge_topk(list(parts), k)


def distributed_knn(
    x: np.ndarray, k: int, *, metric: str, client: Any, blocks: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact kNN of the rows of ``x`` computed on ``client``'s cluster.

    Parameters
    ----------
    x : numpy.ndarray, shape (n, d)
        Output of :func:`knn_store.neighbors.prepare_features`.
    k : int
        ``1 <= k <= n - 1``.
    metric : {"euclidean", "cosine"}
    client : distributed.Client
    blocks : int, optional
        Row blocks per side (``blocks**2`` tile tasks); default from the number of workers.

    Returns
    -------
    neighbors : numpy.ndarray, int32, shape (n, k)
    distances : numpy.ndarray, float32, shape (n, k)
        Identical to the single-process :func:`~knn_store.neighbors.exact_knn`.
    """
    cond = condition(x, metric)
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    ranges = plan_blocks(x.shape[0], n_workers, blocks)
    parts = client.scatter([cond.rows(lo, hi) for lo, hi in ranges])
    token = uuid.uuid4().hex[:12]  # task keys unique per call, readable in the dashboard
    futures = list(parts)
    try:
        merged = []
        for qi, q in enumerate(parts):
            tiles = [
                client.submit(_tile, q, r, k, key=f"knn-tile-{token}-{qi}-{ri}") for ri, r in enumerate(parts)
            ]
            merged.append(client.submit(_merge, k, *tiles, key=f"knn-merge-{token}-{qi}"))
            futures += [*tiles, merged[-1]]
        results = client.gather(merged)
    finally:
        # Leave nothing on a shared cluster, also when interrupted or failed.
        client.cancel(futures)
        del futures, parts
    idx = np.concatenate([r[0] for r in results])
    d2 = np.concatenate([r[1] for r in results])
    logger.debug("distributed exact kNN n=%d k=%d in %d tiles", x.shape[0], k, len(ranges) ** 2)
    return finish(cond, idx, d2)
