"""Exactness and cost of the default kNN, against a float64 brute force and against the plain GEMM path.

For each data set (ViT-like centred features; the same uniform features shifted by 100 and by 1000;
integer features around 2^30) at 3,000 x 768 and 20,000 x 256, k = 21:

* ``exact``: share of rows whose neighbours equal the float64 brute force (distance, then index), for the
  default ``exact_knn`` and for the plain float32 GEMM path (``|x|^2 - 2 x.y + |y|^2`` without
  conditioning, k+1 candidates, (distance, index) order: the path before exact-by-construction). The brute
  force costs n*d per row, so it is checked on ``--sample`` random rows (all rows in ``--quick``).
* ``time``: best of ``--repeats`` interleaved runs of each path in this process, and their ratio
  (target: exact costs at most 1.3x the plain GEMM).

``--recall`` adds the approximate backends that are installed (hnswlib, pynndescent, faiss-hnsw):
recall@k against the exact answer and time relative to it, at 3,000 x 768.

Run::

    .venv/bin/python benchmarks/bench_knn_exact.py            # both sizes, a few minutes
    .venv/bin/python benchmarks/bench_knn_exact.py --quick    # 1,000 x 128, seconds
    .venv/bin/python benchmarks/bench_knn_exact.py --recall   # approximate backends' recall
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import numpy as np
from _knn_common import vit_like
from threadpoolctl import threadpool_limits

K = 21


def datasets(n: int, d: int) -> dict[str, np.ndarray]:
    """The four inputs of the issue: centred, offset 100, offset 1000, integer."""
    rng = np.random.default_rng(0)
    base = vit_like(n, d)[0]
    uniform = rng.random((n, d))
    return {
        "centred": base,
        "offset 100": (uniform + 100).astype(np.float32),
        "offset 1000": (uniform + 1000).astype(np.float32),
        "integer ~2^30": rng.integers(0, 64, (n, d)) + 2**30,
    }


def plain_gemm(x: np.ndarray, k: int) -> np.ndarray:
    """The unconditioned float32 GEMM path (for exactness and as the cost baseline)."""
    x32 = np.asarray(x, dtype=np.float32)
    n = len(x32)
    sq = np.einsum("ij,ij->i", x32, x32)
    out = np.empty((n, k), dtype=np.int64)
    rows = max(1, min(4096, (64 << 20) // (4 * n)))
    for s in range(0, n, rows):
        d2 = x32[s : s + rows] @ x32.T
        d2 *= np.float32(-2)
        d2 += sq[s : s + rows, None]
        d2 += sq[None, :]
        b = d2.shape[0]
        d2[np.arange(b), s + np.arange(b)] = np.inf
        cand = np.argpartition(d2, k, axis=1)[:, : k + 1]
        cd = np.take_along_axis(d2, cand, axis=1)
        order = np.lexsort((cand, cd), axis=1)
        out[s : s + b] = np.take_along_axis(cand, order, axis=1)[:, :k]
    return out


def brute_force_rows(x: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """float64 brute force for the given rows: squared differences, lexsort by (distance, index)."""
    v = np.asarray(x, dtype=np.float64)
    out = np.empty((len(rows), k), dtype=np.int64)
    for j, i in enumerate(rows):
        d2 = ((v - v[i]) ** 2).sum(axis=1)
        d2[i] = np.inf
        out[j] = np.lexsort((np.arange(len(v)), d2))[:k]
    return out


def _best(fn, repeats: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    best, out = np.inf, None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def exactness(sizes: list[tuple[int, int]], sample: int, repeats: int) -> None:
    from knn_store.neighbors import exact_knn, prepare_features

    print(
        f"{'data':>14} {'n x d':>11} | {'exact rows':>10} {'plain rows':>10} | {'exact s':>8} {'plain s':>8} {'ratio':>6}"
    )
    for n, d in sizes:
        for name, raw in datasets(n, d).items():
            x = prepare_features(raw, "euclidean")
            exact_knn(x[:200], 5)  # compile/load the scorer outside the timing
            t_exact = t_plain = np.inf
            for _ in range(repeats):  # interleaved, so load changes hit both alike
                t, (nb, _) = _best(lambda x=x: exact_knn(x, K), 1)
                t_exact = min(t_exact, t)
                t, plain = _best(lambda raw=raw: plain_gemm(raw, K), 1)
                t_plain = min(t_plain, t)
            rows = np.random.default_rng(1).choice(n, size=min(sample, n), replace=False)
            truth = brute_force_rows(x, rows, K)
            ok_exact = (nb[rows] == truth).all(axis=1).mean()
            ok_plain = (plain[rows] == truth).all(axis=1).mean()
            print(
                f"{name:>14} {n:>5}x{d:<5} | {ok_exact:>10.1%} {ok_plain:>10.1%} | "
                f"{t_exact:>8.2f} {t_plain:>8.2f} {t_exact / t_plain:>5.2f}x",
                flush=True,
            )


def recall(n: int, d: int) -> None:
    from knn_store.approximate import APPROXIMATE, approximate_knn
    from knn_store.neighbors import exact_knn, prepare_features

    x = prepare_features(vit_like(n, d)[0], "euclidean")
    exact_knn(x[:200], 5)  # compile/load the kernels outside the timing
    t_exact, (nb, _) = _best(lambda: exact_knn(x, K), 1)
    print(f"exact: {t_exact:.2f} s at {n} x {d}, k={K}")
    for name, spec in APPROXIMATE.items():
        if importlib.util.find_spec(spec.package) is None:
            print(f"{name:>12}: not installed")
            continue
        t, (approx, _) = _best(lambda name=name: approximate_knn(x, K, metric="euclidean", backend=name), 1)
        hits = np.mean([len(np.intersect1d(a, b)) / K for a, b in zip(approx, nb, strict=True)])
        print(f"{name:>12}: recall@{K} {hits:.3f}, {t:.2f} s ({t / t_exact:.2f}x exact), {spec.identifier()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 x 128 only")
    parser.add_argument("--recall", action="store_true", help="approximate backends' recall instead")
    parser.add_argument("--sample", type=int, default=300, help="rows checked against brute force")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: all)")
    parser.add_argument("--size", action="append", default=None, help="n x d, e.g. 3000x768 (repeatable)")
    args = parser.parse_args()
    with threadpool_limits(limits=args.threads):
        if args.recall:
            recall(*((1000, 128) if args.quick else (3000, 768)))
            return
        sizes = [(1000, 128)] if args.quick else [(3000, 768), (20000, 256)]
        if args.size:
            sizes = [tuple(int(v) for v in size.lower().split("x")) for size in args.size]
        exactness(sizes, 10**9 if args.quick else args.sample, 1 if args.quick else args.repeats)


if __name__ == "__main__":
    main()
