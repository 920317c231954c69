"""Whole presets against their floor and against oect-infra (issue 16). Ratios from one run.

Every contender runs as a fresh process, the contenders interleaved round by round; the best round
of each is compared, two ways: the whole process (interpreter start and imports included, as a
user's command pays) and the call alone (the issue's measure: the work timed inside the fresh
process after its package's import: our first ``extract`` call, the floor's read loop,
oect-infra's batch with its worker pool).

1. ``v2_transfer_basic`` on 8 experiments x 400 steps x 301 points:
   our ``extract`` vs a process that only reads and decodes the same ``transfer/measurement_data``
   datasets with h5py (the physical floor; target <= 1.5x) and vs oect-infra's
   ``batch_extract_features_v2`` worker function on a ``ProcessPoolExecutor`` with 2 workers
   (target >= 40x faster).
2. ``v2_mixed`` on 2 experiments x 500 transfer + 500 transient steps: our ``extract`` vs oect-infra's
   serial loop (``n_workers=1``; target >= 10x faster).

The package's bytecode is compiled first, as an installed package has it (see ``bench_startup.py``).

``--before TREE`` adds a contender: our ``extract`` from another source tree (e.g. a checkout of the
previous commit, its compiled kernels built), interleaved with the others, so a change is measured
under the same machine load as the floor.

Usage: ``python benchmarks/bench_presets.py [--quick] [--rounds N] [--only transfer,mixed]
[--before TREE]`` (``--quick``: a quarter of the steps, one round of oect-infra).
"""

from __future__ import annotations

import argparse
import compileall
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bytecode import compile_package

OURS = """
import sys, time
import dask_features as dfe
t0 = time.perf_counter()
res = dfe.extract(sys.argv[1], sys.argv[2], sys.argv[3], progress=False, force=True)
call = time.perf_counter() - t0
assert res.ok, res.summary()
print(res.summary())
print("CALL", call)
"""

#: OURS from the source tree in argv[4] (imported first; its worker processes inherit it).
BEFORE = (
    "import os, sys\n"
    "sys.path.insert(0, sys.argv[4])\n"
    "os.environ['PYTHONPATH'] = os.pathsep.join([sys.argv[4], os.environ.get('PYTHONPATH', '')])\n" + OURS
)

FLOOR = """
import glob, sys, time
import h5py
t0 = time.perf_counter()
for path in sorted(glob.glob(sys.argv[1] + "/*.h5")):
    with h5py.File(path, "r") as f:
        for name in sys.argv[2].split(","):
            f[name][...]
print("CALL", time.perf_counter() - t0)
"""

INFRA = """
import glob, multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from infra.catalog.unified import _extract_v2_wrapper
t0 = time.perf_counter()
data, config, out, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
os.makedirs(out, exist_ok=True)
paths = sorted(glob.glob(data + "/*.h5"))
args = [(f"exp{i}", "chip", str(i), p, config, out, "parquet") for i, p in enumerate(paths)]
if workers == 1:  # batch_extract_features_v2(n_workers=1): the serial loop
    for a in args:
        _extract_v2_wrapper(*a)
else:
    # spawn: forking after infra's import deadlocks its workers here (its logging threads).
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for future in [pool.submit(_extract_v2_wrapper, *a) for a in args]:
            future.result()
print("CALL", time.perf_counter() - t0)
"""


def run(code: str, *args: object, cwd: Path) -> tuple[float, float]:
    """Wall time of a fresh process running ``code``, and the time of the call it printed [s]."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        timeout=3600,
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    calls = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("CALL ")]
    return elapsed, float(calls[-1])


def make_data(folder: Path, n_experiments: int, n_transfer: int, n_transient: int) -> Path:
    """One generated experiment copied ``n_experiments`` times (generation is not measured)."""
    import dask_features as dfe

    folder.mkdir(parents=True)
    proto = dfe.synth.write_experiment(
        folder.parent, n_transfer=n_transfer, n_transient=n_transient, seed=1, test_id="test_proto"
    )
    for i in range(n_experiments):
        shutil.copy(proto, folder / f"exp{i:03d}-test_{i}.h5")
    proto.unlink()
    return folder


def compare(
    name: str, contenders: dict[str, tuple[str, tuple[object, ...]]], rounds: dict[str, int], tmp: Path
) -> tuple[dict[str, float], dict[str, float]]:
    """Best whole-process and best call time of each contender [s], rounds interleaved."""
    whole = {k: float("inf") for k in contenders}
    call = {k: float("inf") for k in contenders}
    for r in range(max(rounds.values())):
        for key, (code, args) in contenders.items():
            if r < rounds[key]:
                w, c = run(code, *args, cwd=tmp)
                whole[key], call[key] = min(whole[key], w), min(call[key], c)
    print(f"\n== {name}: best of fresh processes ==")
    print(f"  {'':44s} {'process':>8s}   {'call':>8s}")
    for key in contenders:
        print(f"  {key:44s} {whole[key]:8.2f} s {call[key]:8.3f} s")
    return whole, call


def _before(
    tree: Path | None, data: Path, preset: str, out: Path
) -> dict[str, tuple[str, tuple[object, ...]]]:
    """The ``before: extract`` contender when ``--before`` names a tree, else none."""
    return {} if tree is None else {"before: extract": (BEFORE, (data, preset, out, tree.resolve()))}


def report(times: tuple[dict[str, float], dict[str, float]], slow: str, fast: str, target: str) -> None:
    """Print ``slow / fast`` for the whole processes and for the calls alone."""
    whole, call = times
    print(
        f"  {slow} / {fast}: process {whole[slow] / whole[fast]:6.2f}   "
        f"call {call[slow] / call[fast]:6.2f}   (target {target})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="transfer,mixed")
    parser.add_argument("--before", type=Path, default=None, help="another source tree to compare")
    args = parser.parse_args()
    only = set(args.only.split(","))
    compile_package()
    if args.before is not None:
        compileall.compile_dir(args.before / "dask_features", quiet=1)
    scale = 4 if args.quick else 1
    infra_rounds = 1 if args.quick else 2
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if "transfer" in only:
            data = make_data(tmp / "transfer", 8, 400 // scale, 0)
            times = compare(
                f"v2_transfer_basic, 8 x {400 // scale} steps x 301 points",
                {
                    "h5py read+decode (floor)": (FLOOR, (data, "transfer/measurement_data")),
                    "ours: extract": (OURS, (data, "v2_transfer_basic", tmp / "ours_t")),
                    **_before(args.before, data, "v2_transfer_basic", tmp / "before_t"),
                    "oect-infra: ProcessPool, 2 workers": (
                        INFRA,
                        (data, "v2_transfer_basic", tmp / "infra_t", 2),
                    ),
                },
                {
                    "h5py read+decode (floor)": args.rounds,
                    "ours: extract": args.rounds,
                    "before: extract": args.rounds,
                    "oect-infra: ProcessPool, 2 workers": infra_rounds,
                },
                tmp,
            )
            report(times, "ours: extract", "h5py read+decode (floor)", "<= 1.5")
            if args.before is not None:
                report(times, "before: extract", "h5py read+decode (floor)", "<= 1.5")
            report(times, "oect-infra: ProcessPool, 2 workers", "ours: extract", ">= 40")
        if "mixed" in only:
            data = make_data(tmp / "mixed", 2, 500 // scale, 500 // scale)
            times = compare(
                f"v2_mixed, 2 x ({500 // scale} transfer + {500 // scale} transient steps)",
                {
                    "ours: extract": (OURS, (data, "v2_mixed", tmp / "ours_m")),
                    **_before(args.before, data, "v2_mixed", tmp / "before_m"),
                    "oect-infra: serial loop": (INFRA, (data, "v2_mixed", tmp / "infra_m", 1)),
                },
                {
                    "ours: extract": args.rounds,
                    "before: extract": args.rounds,
                    "oect-infra: serial loop": infra_rounds,
                },
                tmp,
            )
            report(times, "oect-infra: serial loop", "ours: extract", ">= 10")


if __name__ == "__main__":
    main()
