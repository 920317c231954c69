"""Start-up costs (issue 16): import time, ``--help``/``--version``, first vs second ``extract``.

1. ``import dask_features`` in a fresh interpreter vs ``import numpy, h5py, pyarrow.parquet`` (target
   <= 1.3x); ``dask-features --version`` and ``--help`` likewise. Every command runs in its own fresh
   process, the commands interleaved round by round; the ratio of medians is printed.
2. The first ``extract`` of a one-step file in a fresh process vs a second call in the same process
   (target: <= 0.3 s more), per preset, after ``import dask_features``. The numba cache of the tau
   kernels is warmed before (as ``python -m dask_features.warmup`` does at install). Each round
   also times ``import numpy, h5py, pyarrow.parquet`` alone in a fresh process: the part of the
   first call no package using those libraries can avoid, on this machine at this moment.

The package's bytecode is compiled first (``compileall``), as an installed package has it: with
``PYTHONDONTWRITEBYTECODE`` set, every fresh process would otherwise compile every module again.

Usage: ``python benchmarks/bench_startup.py [--rounds N] [--only imports,first]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bytecode import compile_package

IMPORTS = {
    "baseline: import numpy, h5py, pyarrow.parquet": "import numpy, h5py, pyarrow.parquet",
    "import dask_features": "import dask_features",
    "dask-features --version": "import sys; from dask_features.cli import main; sys.argv = ['dask-features', '--version']; main()",
    "dask-features --help": "import sys; from dask_features.cli import main; sys.argv = ['dask-features', '--help']; main()",
}

FIRST_SECOND = """
import json, sys, time
t0 = time.perf_counter()
import dask_features as dfe
t1 = time.perf_counter()
path, preset, out = sys.argv[1:4]
times = []
for i in range(2):
    s = time.perf_counter()
    # ``dfe.extract`` is resolved inside the timed call: a user's first call pays for the lazy
    # import of the engine, so the measure must too.
    res = dfe.extract(path, preset, f"{out}/{i}", progress=False)
    assert res.ok, res.summary()
    times.append(time.perf_counter() - s)
print(json.dumps({"import": t1 - t0, "first": times[0], "second": times[1]}))
"""

FLOOR_IMPORTS = """
import json, time
t0 = time.perf_counter()
import numpy, h5py, pyarrow.parquet
print(json.dumps(time.perf_counter() - t0))
"""


def run(code: str, *args: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    if proc.returncode not in (0,) and "--help" not in code and "--version" not in code:
        raise RuntimeError(proc.stderr)
    return elapsed, proc.stdout


def bench_imports(rounds: int) -> None:
    print(f"\n== fresh-process wall time, {rounds} interleaved rounds (median; min) ==")
    samples: dict[str, list[float]] = {k: [] for k in IMPORTS}
    for _ in range(rounds):
        for name, code in IMPORTS.items():
            samples[name].append(run(code)[0])
    base = statistics.median(samples[next(iter(IMPORTS))])
    base_min = min(samples[next(iter(IMPORTS))])
    for name, values in samples.items():
        med = statistics.median(values)
        print(
            f"  {name:48s} {med * 1e3:7.0f} ms  ({min(values) * 1e3:5.0f})  "
            f"ratio {med / base:4.2f} (min/min {min(values) / base_min:4.2f})"
        )
    print("  target: every ratio <= 1.3")


def bench_first(rounds: int, presets: list[str]) -> None:
    import dask_features as dfe

    print(f"\n== first vs second extract of a one-step file, fresh process, median of {rounds} ==")
    with tempfile.TemporaryDirectory() as tmp:
        path = dfe.synth.write_experiment(
            Path(tmp), n_transfer=1, n_transient=1, transient_samples=2000, seed=1, test_id="test_one"
        )
        # Warm caches (numba, OS page cache) once, as an installed environment would have them.
        run(FIRST_SECOND, str(path), "transient_tau", f"{tmp}/warm")
        for preset in presets:
            rows, floor = [], []
            for r in range(rounds):
                _, out = run(FIRST_SECOND, str(path), preset, f"{tmp}/{preset}{r}")
                rows.append(json.loads(out.strip().splitlines()[-1]))
                # Interleaved: what importing the three libraries alone costs this machine right now.
                floor.append(json.loads(run(FLOOR_IMPORTS)[1].strip().splitlines()[-1]))
            imp = statistics.median(x["import"] for x in rows)
            first = statistics.median(x["first"] for x in rows)
            second = statistics.median(x["second"] for x in rows)
            extra = statistics.median(x["first"] - x["second"] for x in rows)
            base = statistics.median(floor)
            print(
                f"  {preset:20s} import {imp * 1e3:5.0f} ms  first {first * 1e3:6.0f} ms  "
                f"second {second * 1e3:6.0f} ms  first - second {extra * 1e3:6.0f} ms (target <= 300); "
                f"importing numpy, h5py, pyarrow.parquet alone: {base * 1e3:4.0f} ms"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", default="imports,first")
    parser.add_argument("--presets", default="v2_transfer_basic,v2_mixed,transient_tau")
    parser.add_argument("--quick", action="store_true", help="3 rounds (what `make bench` runs)")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 3
    only = set(args.only.split(","))
    compile_package()
    if "imports" in only:
        bench_imports(args.rounds)
    if "first" in only:
        bench_first(max(1, args.rounds // 2), args.presets.split(","))


if __name__ == "__main__":
    main()
