"""Throughput of the vectorised transfer extractors against a per-step NumPy loop.

Both sides compute the five features of oect-infra's ``v2_transfer_basic`` preset (gm_max and Von
for both halves, absI_max of the whole sweep) with the same definitions; the loop is the
straightforward implementation one writes for a single sweep (NumPy per step, derivatives shared
between the features of a step). The vectorised side builds a fresh chunk for every repetition so
the per-chunk memo does not carry over.

Run::

    .venv/bin/python benchmarks/bench_transfer.py [--steps 2000] [--points 201] [--repeat 20]

Prints steps per second (single thread, i.e. per core) for both sides and their ratio, all measured
in one run. BLAS threads are irrelevant here (no linear algebra), but the numbers are per process
on one core.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from _worker_env import use_worker_malloc_settings

from dask_features.extractors import transfer
from dask_features.io.chunks import TransferChunk


def make_sweeps(n_steps: int, n_points: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric double sweeps of a softplus N-type transistor with noise, shape (n, n_points)."""
    rng = np.random.default_rng(seed)
    half = (n_points + 1) // 2
    up = np.linspace(-0.6, 0.4, half)
    vg = np.tile(np.concatenate([up, up[::-1][1 : n_points - half + 1]]), (n_steps, 1))
    vth = rng.uniform(-0.3, 0.1, (n_steps, 1))
    id_ = 4e-8 * np.logaddexp(0.0, (vg - vth) / 0.04) + 1e-10
    id_ *= 1 + rng.normal(0.0, 0.01, id_.shape)
    return vg, id_


def _safe_diff(f: np.ndarray, x: np.ndarray) -> np.ndarray:
    if len(f) < 2:
        return np.full(len(f), np.nan)
    dx = np.diff(x)
    dx[np.abs(dx) < 1e-12] = 1e-12
    q = np.diff(f) / dx
    d = np.empty(len(f))
    d[0], d[-1] = q[0], q[-1]
    d[1:-1] = (q[:-1] + q[1:]) / 2
    return d


def loop_features(vg: np.ndarray, id_: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per-step reference: (n, 5) = gm_max fwd/rev, Von fwd/rev (N-type), absI_max raw."""
    out = np.full((len(vg), 5), np.nan)
    for i in range(len(vg)):
        x, y = vg[i, : lengths[i]], id_[i, : lengths[i]]
        keep = np.isfinite(x) & np.isfinite(y)
        x, y = x[keep], y[keep]
        if len(x) < 2:
            continue
        up = x.max() - x[0] >= x[0] - x.min()
        tp = int(np.argmax(x) if up else np.argmin(x))
        logy = np.log10(np.clip(np.abs(y), 1e-12, None))
        for j, sl in enumerate((slice(0, tp + 1), slice(tp + 1, None))):
            xs = x[sl]
            if len(xs) < 2:
                continue
            out[i, j] = np.abs(_safe_diff(y[sl], xs)).max()
            out[i, 2 + j] = xs[np.argmax(_safe_diff(logy[sl], xs))]
        out[i, 4] = np.abs(y).max()
    return out


def vectorised_features(vg: np.ndarray, id_: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The same five columns through the registered extractors on one chunk."""
    chunk = TransferChunk(step_index=np.arange(len(vg)), vg=vg, id=id_, lengths=lengths)
    return np.column_stack(
        [
            transfer.gm_max(chunk, direction="both"),
            transfer.Von(chunk, direction="both"),
            transfer.absI_max(chunk),
        ]
    )


def best_times(fns: list[Callable[[], object]], repeat: int) -> list[float]:
    """Best wall time of each function; the functions alternate so load changes hit both alike."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def main() -> None:
    use_worker_malloc_settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="steps per chunk")
    parser.add_argument("--points", type=int, default=201, help="points per sweep")
    parser.add_argument("--repeat", type=int, default=20, help="repetitions; the best time is kept")
    parser.add_argument(
        "--quick", action="store_true", help="500 steps, 5 repetitions (what `make bench` runs)"
    )
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeat = 500, 5

    vg, id_ = make_sweeps(args.steps, args.points)
    lengths = np.full(args.steps, args.points)
    ref = loop_features(vg, id_, lengths)
    vec = vectorised_features(vg, id_, lengths)
    np.testing.assert_allclose(vec, ref, rtol=1e-12)

    t_loop, t_vec = best_times(
        [lambda: loop_features(vg, id_, lengths), lambda: vectorised_features(vg, id_, lengths)], args.repeat
    )
    print(
        f"chunk: {args.steps} steps x {args.points} points, 5 features (v2_transfer_basic), best of {args.repeat}"
    )
    print(f"per-step NumPy loop : {t_loop * 1e3:9.1f} ms  {args.steps / t_loop:12,.0f} steps/s/core")
    print(f"vectorised extractors: {t_vec * 1e3:9.1f} ms  {args.steps / t_vec:12,.0f} steps/s/core")
    print(f"speed-up: {t_loop / t_vec:.1f}x")


if __name__ == "__main__":
    main()
