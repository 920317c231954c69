"""Exact kNN on a 2-worker LocalCluster (``ensure(..., client=client)``) against one process.

Both paths compute the same exact answer (checked bit for bit here); the local one uses every BLAS
thread of this process, the distributed one 2 worker processes x 1 thread (BLAS pinned to one thread per
task), tiles of (query block x reference block) and a top-k merge. Each is timed once per repeat,
alternating, and the best is reported; the cluster is started before timing and its start-up is not
counted, the transfer of the features to the workers is.

Run::

    .venv/bin/python benchmarks/bench_knn_distributed.py            # 50,000 x 768, k=21: many minutes
    .venv/bin/python benchmarks/bench_knn_distributed.py --quick    # 5,000 x 128
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _knn_common import vit_like

K = 21


def _warm() -> None:
    from knn_store.neighbors import exact_knn, prepare_features

    exact_knn(prepare_features(np.random.default_rng(0).normal(size=(50, 4))), 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 x 128")
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    n, d = (5_000, 128) if args.quick else (args.n, args.d)

    from distributed import Client, LocalCluster

    from knn_store.distributed import distributed_knn
    from knn_store.neighbors import exact_knn, prepare_features

    x = prepare_features(vit_like(n, d)[0], "euclidean")
    exact_knn(x[:500], 5)  # compile/load the kernels outside the timing
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.run(_warm)  # workers load the kernels too
        t_local = t_dist = np.inf
        for _ in range(args.repeats):
            t = time.perf_counter()
            local = exact_knn(x, K)
            t_local = min(t_local, time.perf_counter() - t)
            t = time.perf_counter()
            remote = distributed_knn(x, K, metric="euclidean", client=client)
            t_dist = min(t_dist, time.perf_counter() - t)
    same = np.array_equal(local[0], remote[0]) and np.array_equal(local[1], remote[1])
    print(f"{n} x {d}, k={K}: local {t_local:.1f} s, 2-worker cluster {t_dist:.1f} s, "
          f"ratio cluster/local {t_dist / t_local:.2f}, identical: {same}")  # fmt: skip


if __name__ == "__main__":
    main()
