"""Cost of the input-safety checks: bounded YAML loading and the HDF5 storage check per file open.

* YAML (issue 17): a config at the size limit loaded by ``load_config``'s bounded loader (event walk
  for depth and alias expansion, then the C safe loader) vs ``yaml.safe_load`` (pure Python), which
  the package used before. Target: faster than before, and a config at the limit loads in seconds.
* HDF5: ``open_experiment`` with and without ``check_storage`` on the same small file, interleaved.
  Target: under 10 % of an open.

Ratios are measured interleaved in one process; absolute times on a shared machine mean little.

Usage: ``python benchmarks/bench_input_checks.py [--quick]``
"""

from __future__ import annotations

import argparse
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

import yaml

import dask_features.io.opening as opening
from dask_features import synth
from dask_features.config._yaml import MAX_YAML_BYTES, load_yaml


def best_of(fn: Callable[[], object], repeat: int) -> float:
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a quarter of the size limit, fewer repeats")
    args = parser.parse_args()
    repeat = 2 if args.quick else 5

    line = "  - {name: f%d, extractor: transfer.gm_max, params: {direction: forward}}\n"
    lines, size, i = ["name: big\nfeatures:\n"], 0, 0
    while size < (MAX_YAML_BYTES // 4 if args.quick else MAX_YAML_BYTES - 100):
        lines.append(line % i)
        size += len(lines[-1])
        i += 1
    text = "".join(lines)
    bounded = best_of(lambda: load_yaml(text, "bench"), repeat)
    plain = best_of(lambda: yaml.safe_load(text), repeat)
    print(
        f"YAML {len(text) / 1024:.0f} kB, {i} features: bounded C loader {bounded:.2f} s, yaml.safe_load {plain:.2f} s, ratio {plain / bounded:.1f}x"
    )

    with tempfile.TemporaryDirectory() as tmp:
        path = synth.write_experiment(
            Path(tmp), n_transfer=50, n_transient=50, sweep_points=101, transient_samples=500, seed=0
        )
        check = opening.check_storage
        with_check, without = [], []
        for _ in range(repeat * 10):
            opening.check_storage = check
            with_check.append(best_of(lambda: opening.open_experiment(path), 5))
            opening.check_storage = lambda *args, **kwargs: None
            without.append(best_of(lambda: opening.open_experiment(path), 5))
        opening.check_storage = check
        a, b = min(with_check), min(without)
        print(
            f"open_experiment: {a * 1e3:.2f} ms with the storage check, {b * 1e3:.2f} ms without, overhead {100 * (a / b - 1):.0f} %"
        )


if __name__ == "__main__":
    main()
