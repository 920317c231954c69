"""The users' SS-DDBC job: their loops (re-implemented) against ``knn_store`` on the kNN cache.

Three measurements, all in one process, BLAS pinned to one thread in every job:

1. **Per-job CPU** at 3,000 x 768 (a synthetic stand-in for one CIFAR-100 superclass; ``--quick``: 1,000 x
   128) on a sample of grid points, their job and ours interleaved, for their variant B (what their newest
   batch runner runs) and A. Their job is ``_ssddbc_users.users_job``: a fresh scikit-learn kNN with a
   Python re-sort, the Python loops of the growth and of the non-core assignment, test-split ACC (v2) and
   their loss (cross-entropy ``l1``, plus 3 x silhouette in B). Ours is the same job inside
   ``grid_search``: the kNN comes from the cache, the per-k work (density, cut-off) is shared by the 11
   percentiles of a task and counted as 1/11 per job, the distance matrix (assignment and silhouette) is
   computed once per feature set and worker and counted as 1/198 per job. The standalone ratio (one
   ``ssddbc`` call plus scoring, nothing shared) is printed too. Partitions and loss values are checked
   equal.
2. **The 198-job grid** (k 3..20 x percentiles 40..90): ``knn_store.grid_search`` wall time from scratch
   (hashing, kNN, store, all jobs, loss columns), serially in this process, against their batch runner, which
   on this 2-core machine runs ``cpu_count() // 2 = 1`` worker, i.e. their jobs one after another: its wall
   time is extrapolated as 198 x the mean wall time of the sampled jobs (``--full-baseline`` runs all 198).
   With ``--workers N`` ours also runs on a LocalCluster of N processes (started before timing).
3. **ACC All/Old/New on scikit-learn digits** (L2-normalised; classes 0-6 Old; 70 % train, 80 % of the Old
   train points labelled) for both algorithms over their grid, best configuration by their rule (first best
   All ACC in k-major order) and by their pipeline's label-free score (``-l1 + l2``); scored on every
   unlabelled point.

Run::

    .venv/bin/python benchmarks/bench_ssddbc.py            # 3,000 x 768, about 5 minutes
    .venv/bin/python benchmarks/bench_ssddbc.py --quick    # 1,000 x 128
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
from _knn_common import vit_like
from _ssddbc_users import VARIANT_A, VARIANT_B, users_job
from threadpoolctl import threadpool_limits

KS = range(3, 21)
PERCENTILES = range(40, 95, 5)


def _canon(labels: np.ndarray) -> np.ndarray:
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inv]


def per_job(
    x: np.ndarray, y: np.ndarray, labeled: np.ndarray, sample: list[tuple[int, int]], variant: str
) -> list[float]:
    """Print per-job CPU ratios for one variant; return their sampled job wall times."""
    from knn_store import gcd_scores, ssddbc
    from knn_store.cluster.jobs import JobSpec, clear_shared_points, run_jobs, shared_points
    from knn_store.cluster.loss import UsersLoss
    from knn_store.neighbors import exact_knn

    users = VARIANT_B if variant == "B" else VARIANT_A
    params = {key: v for key, v in users.items() if key in ("dense_method", "assign_model")}
    weights = None if variant == "B" else {}  # B: 3 x silhouette; A: no l2 component
    spec = JobSpec(params=params, l2_weights=weights)
    known = y < y.max()  # vit_like: the last class is New
    knn = exact_knn(x, max(KS))
    theirs_cpu, grid_cpu, single_cpu, walls, same = [], [], [], [], 0
    with threadpool_limits(1):
        clear_shared_points()
        t0 = time.process_time()
        points = shared_points("bench", x)  # once per feature set and worker in the grid
        share = (time.process_time() - t0) / (len(KS) * len(PERCENTILES))
        for k, p in sample:
            w0, t0 = time.perf_counter(), time.process_time()
            theirs = users_job(x, y, labeled, ~labeled, known, k=k, density_percentile=p, variant=users)
            theirs_cpu.append(time.process_time() - t0)
            walls.append(time.perf_counter() - w0)
            t0 = time.process_time()
            rows = run_jobs(x, y, labeled, k, tuple(float(q) for q in PERCENTILES), knn, spec, points)
            grid_cpu.append((time.process_time() - t0) / len(PERCENTILES) + share)
            t0 = time.process_time()
            res = ssddbc(x, y, labeled, k=k, density_percentile=p, precomputed_knn=knn, **params)
            gcd_scores(y, res.labels, labeled)
            UsersLoss(x, y, labeled, weights)(res.labels, res.core)
            single_cpu.append(time.process_time() - t0)
            same += bool(np.array_equal(_canon(res.labels), _canon(theirs["labels"])))
            row = next(r for r in rows if r["density_percentile"] == p)
            assert row["n_clusters"] == theirs["n_clusters"], (k, p)
            assert abs(row["loss"] - theirs["loss"]) < 1e-4, (k, p)
        clear_shared_points()
    mean = statistics.mean
    print(f"  variant {variant}: identical partitions (ours vs their job): {same}/{len(sample)}")
    print(f"  their job CPU, mean of {len(sample)}:           {mean(theirs_cpu):8.3f} s")
    print(f"  our grid job CPU (shared work amortised): {mean(grid_cpu):8.4f} s  -> ratio "
          f"{mean(theirs_cpu) / mean(grid_cpu):6.1f}x (target >= 50x)")  # fmt: skip
    print(f"  our standalone job CPU (nothing shared):  {mean(single_cpu):8.4f} s  -> ratio "
          f"{mean(theirs_cpu) / mean(single_cpu):6.1f}x")  # fmt: skip
    return walls


def grid(
    x: np.ndarray, y: np.ndarray, labeled: np.ndarray, their_walls: list[float], full: bool, workers: int
) -> None:
    from knn_store import grid_search

    known = y < y.max()
    jobs = len(KS) * len(PERCENTILES)
    if full:
        w0, c0 = time.perf_counter(), time.process_time()
        with threadpool_limits(1):
            for k in KS:
                for p in PERCENTILES:
                    users_job(x, y, labeled, ~labeled, known, k=k, density_percentile=p, variant=VARIANT_B)
        theirs, how = time.perf_counter() - w0, "measured, 198 jobs"
    else:
        theirs, how = statistics.mean(their_walls) * jobs, f"mean of {len(their_walls)} sampled jobs x 198"
    w0, c0 = time.perf_counter(), time.process_time()
    df = grid_search(x, y, labeled, progress=False)  # their grid, temporary store, kNN from scratch
    ours, ours_cpu = time.perf_counter() - w0, time.process_time() - c0
    assert len(df) == jobs
    print(f"  their batch runner (1 worker), wall:  {theirs:8.1f} s ({how})")
    print(f"  knn_store.grid_search, serial, wall:   {ours:8.1f} s (hash + kNN + 198 jobs + loss columns;"
          f" CPU {ours_cpu:.1f} s)")  # fmt: skip
    print(f"  ratio {theirs / ours:6.1f}x (target >= 100x)")
    if workers > 1:
        from distributed import Client, LocalCluster

        with (
            LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cl,
            Client(cl) as client,
        ):
            client.run(lambda: None)  # workers up before timing, as a user's long-lived client
            w0 = time.perf_counter()
            grid_search(x, y, labeled, client=client, progress=False)
            ours = time.perf_counter() - w0
        print(f"  knn_store.grid_search, {workers} workers, wall: {ours:6.1f} s  -> ratio {theirs / ours:6.1f}x"
              " (their runner uses cpu_count() // 2 workers: 1 here)")  # fmt: skip


def digits_acc() -> None:
    from sklearn.datasets import load_digits

    from knn_store import best_configurations, grid_search

    x, y = load_digits(return_X_y=True)
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    rng = np.random.default_rng(0)
    labeled = (y < 7) & (rng.random(y.size) < 0.7) & (rng.random(y.size) < 0.8)
    print(f"  {y.size} points, {labeled.sum()} labelled, Old classes 0-6, scored on the unlabelled points")
    for algorithm in ("reference", "ours"):
        df = grid_search(x, y, labeled, algorithm=algorithm, progress=False)
        for by in ("acc_all", "score"):
            b = best_configurations(df, by=by, rule="first").iloc[0]
            print(f"  {algorithm:9s} best by {by:7s}: k={b.k:2d} p={b.density_percentile:4.0f}  All {b.acc_all:.4f}"
                  f"  Old {b.acc_old:.4f}  New {b.acc_new:.4f}  clusters {b.n_clusters:3d}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 x 128 and 4 sampled jobs")
    parser.add_argument("--full-baseline", action="store_true", help="run all 198 of their jobs (long)")
    parser.add_argument(
        "--workers", type=int, default=0, help="also time our grid on a LocalCluster of N workers"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)
    n, d = (1000, 128) if args.quick else (3000, 768)
    x, y, labeled = vit_like(n, d)
    sample = [(3, 40), (20, 90)] if args.quick else [(k, p) for k in (3, 8, 14, 20) for p in (40, 65, 90)]
    print(f"1. per-job CPU at {n} x {d} ({len(sample)} sampled grid points, interleaved)")
    walls = per_job(x, y, labeled, sample, "B")
    per_job(x, y, labeled, sample[:: 2 if args.quick else 3], "A")
    print(f"2. the 198-job grid at {n} x {d}")
    grid(x, y, labeled, walls, args.full_baseline, args.workers)
    print("3. ACC on scikit-learn digits, their grid, both algorithms")
    digits_acc()


if __name__ == "__main__":
    main()
