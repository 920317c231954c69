"""Reader cost: 100 steps from the middle of a 5,000-step file vs a direct h5py hyperslab read.

Target (issue 2): ``Experiment.read_transfer/read_transient`` within 3x of reading the same steps
with h5py directly, i.e. the reader never loads the whole file. A whole-dataset read is timed too,
to show what "loading everything" would cost. Ratios are measured in one process run; absolute
times on this shared machine mean little.

Usage: ``python benchmarks/bench_reader.py [--quick] [--steps N]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from dask_features import open_experiment, synth


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000-step file instead of 5,000")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    n = args.steps or (1000 if args.quick else 5000)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = synth.write_experiment(
            Path(tmp), n_transfer=n, n_transient=n, sweep_points=301, transient_samples=2000, seed=0
        )
        gen = time.perf_counter() - t0
        size = path.stat().st_size / 2**20
        print(
            f"generated {n} transfer + {n} transient steps (301 pts, 2000 samples) in {gen:.1f} s, {size:.0f} MiB"
        )

        exp = open_experiment(path)
        a, b = n // 2 - 50, n // 2 + 50

        def direct_transfer() -> np.ndarray:
            with h5py.File(path, "r") as f:
                return f["transfer/measurement_data"][a:b]

        def direct_transient() -> tuple[np.ndarray, np.ndarray]:
            with h5py.File(path, "r") as f:
                rows = f["transient/step_info_table"].fields(["start_data_index", "end_data_index"])[a:b]
                lo, hi = int(rows["start_data_index"][0]), int(rows["end_data_index"][-1])
                ds = f["transient/measurement_data"]
                return ds[0, lo:hi], ds[2, lo:hi]

        def whole_transfer() -> np.ndarray:
            with h5py.File(path, "r") as f:
                return f["transfer/measurement_data"][:]

        def whole_transient() -> np.ndarray:
            with h5py.File(path, "r") as f:
                return f["transient/measurement_data"][:]

        rows = [
            ("transfer", lambda: exp.read_transfer(a, b), direct_transfer, whole_transfer),
            ("transient", lambda: exp.read_transient(a, b), direct_transient, whole_transient),
        ]
        print(f"\nreading steps [{a}, {b}) (best of {args.repeat}):")
        print(
            f"{'source':10s} {'reader ms':>10s} {'h5py ms':>10s} {'ratio':>7s} {'whole ms':>10s} {'whole/reader':>13s}"
        )
        for name, ours, direct, whole in rows:
            t_ours, t_direct = best_of(ours, args.repeat), best_of(direct, args.repeat)
            t_whole = best_of(whole, 2)
            print(
                f"{name:10s} {t_ours * 1e3:10.2f} {t_direct * 1e3:10.2f} {t_ours / t_direct:7.2f} "
                f"{t_whole * 1e3:10.1f} {t_whole / t_ours:13.0f}"
            )
        t_open = best_of(lambda: open_experiment(path), args.repeat)
        print(f"\nopen_experiment (checks + metadata): {t_open * 1e3:.1f} ms")
        print("target: reader / h5py <= 3 for both sources")


if __name__ == "__main__":
    main()
