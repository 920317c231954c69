"""Cost of opening experiment files in the engine's path: before/after one change, interleaved.

Per file, what the engine does besides computing: ``inspect_experiment`` (storage check, root
attributes, layout and step-table checks, workflow) and the identity of the source
(``SourceIdentity.planned(path).confirmed(path)``: stat, SHA-1 of the bytes, stat). Then the whole
second ``extract(..., scheduler="sync", force=True)`` of ``--files`` copies of one file.

Two source trees are compared (``--before`` and ``--after``, e.g. the main checkout and a work
tree): each round runs one subprocess per tree with ``PYTHONPATH`` set to it, alternating, so both
see the same machine load; the figures are medians over rounds of each subprocess's best CPU time.
Per-file times are CPU time of this process [ms] (the checks do no waiting); the extract time is
CPU time of the whole call.

Before timing, both trees extract every case with ``v2_transfer_basic``, ``v2_mixed`` and
``transient_tau`` and the outputs are compared: the same files, the same metadata (but the time
they were written), the same values (NaN equal to NaN); the script stops if they differ.

Usage::

    python benchmarks/bench_open.py --before /path/to/old/tree --after . [--rounds 7] [--quick]
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

#: (name, config, synthetic experiment): transfer-only files under a transfer config, as in the
#: issue's profile, and files with transient steps under a config reading both.
CASES = {
    "transfer": ("v2_transfer_basic", {"n_transfer": 400, "n_transient": 0}),
    "mixed": ("v2_mixed", {"n_transfer": 50, "n_transient": 50, "transient_samples": 500}),
}


def _cpu(fn: Callable[[], object], number: int, repeat: int) -> float:
    """Best CPU time of one call [s] over ``repeat`` runs of ``number`` calls."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(number):
            fn()
        best = min(best, (time.process_time() - t0) / number)
    return best


def worker(folder: Path, config: str, quick: bool) -> dict[str, float]:
    """Figures of the tree first on ``sys.path`` (run in a subprocess)."""
    import dask_features as dfe
    from dask_features.config.schema import load_config
    from dask_features.engine.identity import SourceIdentity
    from dask_features.io.opening import inspect_experiment

    files = sorted((folder / "in").glob("*.h5"))
    sources = load_config(config).sources
    # What the engine passes (a tree whose opener has no ``sources`` checks every source).
    kwargs = {"sources": sources} if "sources" in inspect.signature(inspect_experiment).parameters else {}
    number, repeat = (3, 3) if quick else (10, 5)

    def open_all() -> None:
        for path in files:
            inspect_experiment(path, **kwargs)

    def identify_all() -> None:
        for path in files:
            SourceIdentity.planned(path).confirmed(path)

    def extract() -> None:
        dfe.extract(folder / "in", config, folder / "out", progress=False, force=True, scheduler="sync")

    return {
        "inspect_ms": 1e3 * _cpu(open_all, number, repeat) / len(files),
        "identity_ms": 1e3 * _cpu(identify_all, number, repeat) / len(files),
        "extract_s": _cpu(extract, 1, 3 if quick else 8),
    }


#: Configs whose outputs must be the same before and after.
COMPARED = ("v2_transfer_basic", "v2_mixed", "transient_tau")


def write_outputs(folder: Path, out: Path) -> None:
    """Extract ``folder/in`` with every config of :data:`COMPARED` into ``out`` (run in a subprocess)."""
    import warnings

    import dask_features as dfe

    warnings.simplefilter("ignore")  # the same warnings in both trees; the outputs are compared
    for config in COMPARED:
        dfe.extract(folder / "in", config, out, progress=False, force=True, scheduler="sync")


def differences(before: Path, after: Path) -> list[str]:
    """What differs between two output folders: files, metadata (but ``written_at``), values."""
    import pyarrow.parquet as pq

    files = {p.relative_to(before) for p in before.rglob("*.parquet")}
    found = [f"only in one: {p}" for p in files ^ {p.relative_to(after) for p in after.rglob("*.parquet")}]
    for rel in sorted(files):
        if not (after / rel).is_file():
            continue
        a, b = pq.read_table(before / rel), pq.read_table(after / rel)
        meta = [json.loads((t.schema.metadata or {}).get(b"dask_features", b"{}")) for t in (a, b)]
        for m in meta:
            m.pop("written_at", None)
        if meta[0] != meta[1]:
            found.append(f"metadata of {rel}")
        if a.schema != b.schema or a.num_rows != b.num_rows:
            found.append(f"schema of {rel}")
            continue
        for name in a.column_names:
            x, y = a.column(name).to_pylist(), b.column(name).to_pylist()
            if any(not _same(u, v) for u, v in zip(x, y, strict=True)):
                found.append(f"values of {rel}: {name}")
    return found


def _same(u: object, v: object) -> bool:
    if isinstance(u, list) and isinstance(v, list):
        return len(u) == len(v) and all(_same(p, q) for p, q in zip(u, v, strict=True))
    if isinstance(u, float) and isinstance(v, float):
        return u == v or (math.isnan(u) and math.isnan(v))
    return u == v


def make_data(root: Path, n_files: int) -> dict[str, Path]:
    from dask_features.synth import write_experiment

    folders = {}
    for name, (_, params) in CASES.items():
        folder = root / name
        (folder / "in").mkdir(parents=True)
        source = write_experiment(folder, seed=1, test_id="test_1", **params)  # type: ignore[arg-type]
        for i in range(n_files):
            shutil.copy(source, folder / "in" / f"exp{i:03d}-test_{i}.h5")
        source.unlink()
        folders[name] = folder
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", help="source tree of the old code (required)")
    parser.add_argument("--after", default=".", help="source tree of the new code (default: .)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--files", type=int, default=8, help="copies of each file")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("FOLDER", "CONFIG"), help=argparse.SUPPRESS)
    parser.add_argument("--outputs", nargs=2, metavar=("FOLDER", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(Path(args.worker[0]), args.worker[1], args.quick)))
        return
    if args.outputs:
        write_outputs(Path(args.outputs[0]), Path(args.outputs[1]))
        return
    if not args.before:
        parser.error("--before is required")
    trees = {"before": os.path.abspath(args.before), "after": os.path.abspath(args.after)}
    with tempfile.TemporaryDirectory(prefix="bench_open") as tmp:
        folders = make_data(Path(tmp), args.files)
        for case, folder in folders.items():
            for label, tree in trees.items():
                cmd = [sys.executable, __file__, "--outputs", str(folder), str(folder / label)]
                subprocess.run(cmd, env={**os.environ, "PYTHONPATH": tree}, check=True)
            found = differences(folder / "before", folder / "after")
            if found:
                sys.exit(f"{case}: outputs differ: " + "; ".join(found))
        print(f"outputs of {', '.join(COMPARED)}: the same before and after")
        runs: dict[tuple[str, str], list[dict[str, float]]] = {}
        for r in range(args.rounds):
            for case, folder in folders.items():
                order = list(trees.items()) if r % 2 == 0 else list(trees.items())[::-1]
                for label, tree in order:
                    env = {**os.environ, "PYTHONPATH": tree}
                    cmd = [sys.executable, __file__, "--worker", str(folder), CASES[case][0]]
                    cmd += ["--quick"] if args.quick else []
                    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
                    runs.setdefault((case, label), []).append(json.loads(out.splitlines()[-1]))
    print(f"{args.files} copies of one file per case, {args.rounds} rounds; medians of best CPU times")
    print(f"{'case':9s} {'figure':12s} {'before':>9s} {'after':>9s} {'before/after':>13s}")
    for case in CASES:
        for key, unit in (("inspect_ms", "ms/file"), ("identity_ms", "ms/file"), ("extract_s", "s")):
            before = statistics.median(x[key] for x in runs[(case, "before")])
            after = statistics.median(x[key] for x in runs[(case, "after")])
            print(
                f"{case:9s} {key.split('_')[0]:12s} {before:9.3f} {after:9.3f} {before / after:12.2f}x  [{unit}]"
            )


if __name__ == "__main__":
    main()
