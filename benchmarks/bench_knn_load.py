"""Per-job cost of loading one k of a cached kNN entry inside a Dask worker.

For each size (n points x k_max=21) an entry is created with ``KNNStore.ensure`` (on 16-dimensional
features, so that building the 50,000-point entry takes seconds, not minutes; only n and k_max matter for
loading). Then, inside each of 2 fresh worker processes (``client.run``), measured in one run:

- ``import zarr``: paid once per worker process;
- ``first load``: open the Zarr group, read both arrays, verify their checksums, slice (memo miss);
- ``memo hit``: every later ``load(ref, k)`` in that process (a view into the memoised arrays);
- ``no memo``: the memo cleared before every load, i.e. what each job would pay without it.

It also times 198 tiny tasks that each call ``load(ref, k)`` end to end through the scheduler.

Run::

    .venv/bin/python benchmarks/bench_knn_load.py            # 3,000 and 50,000 points
    .venv/bin/python benchmarks/bench_knn_load.py --quick    # 3,000 and 10,000 points
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

K_MAX = 21
KS = list(range(3, 21))


def _measure(ref, ks):
    import sys
    import time

    already = "zarr" in sys.modules  # then the import costs nothing and is reported as NaN
    t = time.perf_counter()
    import zarr  # noqa: F401

    t_import = float("nan") if already else time.perf_counter() - t
    from knn_store.store import memo

    memo.clear_memo()
    t = time.perf_counter()
    memo.load(ref, ks[0])
    first = time.perf_counter() - t
    hits = []
    for k in ks * 10:
        t = time.perf_counter()
        memo.load(ref, k)
        hits.append(time.perf_counter() - t)
    cold = []
    for k in ks:
        memo.clear_memo()
        t = time.perf_counter()
        memo.load(ref, k)
        cold.append(time.perf_counter() - t)
    return {
        "import": t_import,
        "first": first,
        "hit": statistics.median(hits),
        "cold": statistics.median(cold),
    }


def _task(ref, k):
    from knn_store import load

    nb, _ = load(ref, k)
    return nb.shape


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="3,000 and 10,000 points instead of 3,000 and 50,000"
    )
    args = ap.parse_args()
    sizes = (3000, 10000) if args.quick else (3000, 50000)

    from distributed import Client, LocalCluster

    import knn_store

    print(f"{'n x k_max':>12s} {'entry MB':>9s} {'import zarr ms':>15s} {'first load ms':>14s} "
          f"{'memo hit ms':>12s} {'no memo ms':>11s} {'task e2e ms':>12s}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench_knn_load_") as root:
        store = knn_store.KNNStore(root, backend="numpy")
        for n in sizes:
            x = np.random.default_rng(n).normal(size=(n, 16)).astype(np.float32)
            ref = store.ensure(x, K_MAX)
            size = next(e.bytes for e in store.info() if e.key == ref.key)
            # A fresh cluster per size: the worker processes have not imported zarr yet.
            with (
                LocalCluster(
                    n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
                ) as cluster,
                Client(cluster) as client,
            ):
                per_worker = list(client.run(_measure, ref, KS).values())
                t = time.perf_counter()
                futures = [client.submit(_task, ref, k, pure=False) for k in KS * 11]
                client.gather(futures)
                e2e = (time.perf_counter() - t) / len(futures)
                del futures

            def med(key: str, rows: list[dict[str, float]] = per_worker) -> float:
                return 1000 * statistics.median(r[key] for r in rows)

            print(
                f"{f'{n} x {K_MAX}':>12s} {size / 1e6:9.2f} {med('import'):15.1f} {med('first'):14.2f} "
                f"{med('hit'):12.4f} {med('cold'):11.2f} {1000 * e2e:12.2f}"
            )
    print("memo hit = per-job cost after the first job of a worker; no memo = per-job cost without the memo")


if __name__ == "__main__":
    main()
