"""Whole presets against their floor and against oect-infra (issue 16). Ratios from one run.

Every contender runs as a fresh process (interpreter start and imports included, as a user's
command would), the contenders interleaved round by round; the best round of each is compared.

1. ``v2_transfer_basic`` on 8 experiments x 400 steps x 301 points:
   our ``extract`` vs a process that only reads and decodes the same ``transfer/measurement_data``
   datasets with h5py (the physical floor; target <= 1.5x) and vs oect-infra's
   ``batch_extract_features_v2`` worker function on a ``ProcessPoolExecutor`` with 2 workers
   (target >= 40x faster).
2. ``v2_mixed`` on 2 experiments x 500 transfer + 500 transient steps: our ``extract`` vs oect-infra's
   serial loop (``n_workers=1``; target >= 10x faster).

The package's bytecode is compiled first, as an installed package has it (see ``bench_startup.py``).

Usage: ``python benchmarks/bench_presets.py [--quick] [--rounds N] [--only transfer,mixed]``
(``--quick``: a quarter of the steps, one round of oect-infra).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bytecode import compile_package

OURS = """
import sys
import dask_features as dfe
res = dfe.extract(sys.argv[1], sys.argv[2], sys.argv[3], progress=False, force=True)
assert res.ok, res.summary()
print(res.summary())
"""

FLOOR = """
import glob, sys
import h5py
for path in sorted(glob.glob(sys.argv[1] + "/*.h5")):
    with h5py.File(path, "r") as f:
        for name in sys.argv[2].split(","):
            f[name][...]
"""

INFRA = """
import glob, multiprocessing, os, sys
from concurrent.futures import ProcessPoolExecutor
from infra.catalog.unified import _extract_v2_wrapper
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
"""


def run(code: str, *args: object, cwd: Path) -> float:
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
    return elapsed


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
) -> dict[str, float]:
    best = {k: float("inf") for k in contenders}
    for r in range(max(rounds.values())):
        for key, (code, args) in contenders.items():
            if r < rounds[key]:
                best[key] = min(best[key], run(code, *args, cwd=tmp))
    print(f"\n== {name}: best wall time of fresh processes ==")
    for key, value in best.items():
        print(f"  {key:44s} {value:8.2f} s")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="transfer,mixed")
    args = parser.parse_args()
    only = set(args.only.split(","))
    compile_package()
    scale = 4 if args.quick else 1
    infra_rounds = 1 if args.quick else 2
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if "transfer" in only:
            data = make_data(tmp / "transfer", 8, 400 // scale, 0)
            best = compare(
                f"v2_transfer_basic, 8 x {400 // scale} steps x 301 points",
                {
                    "h5py read+decode (floor)": (FLOOR, (data, "transfer/measurement_data")),
                    "ours: extract": (OURS, (data, "v2_transfer_basic", tmp / "ours_t")),
                    "oect-infra: ProcessPool, 2 workers": (
                        INFRA,
                        (data, "v2_transfer_basic", tmp / "infra_t", 2),
                    ),
                },
                {
                    "h5py read+decode (floor)": args.rounds,
                    "ours: extract": args.rounds,
                    "oect-infra: ProcessPool, 2 workers": infra_rounds,
                },
                tmp,
            )
            ours = best["ours: extract"]
            print(f"  ours / floor      = {ours / best['h5py read+decode (floor)']:6.2f}   (target <= 1.5)")
            print(
                f"  oect-infra / ours = {best['oect-infra: ProcessPool, 2 workers'] / ours:6.1f}   (target >= 40)"
            )
        if "mixed" in only:
            data = make_data(tmp / "mixed", 2, 500 // scale, 500 // scale)
            best = compare(
                f"v2_mixed, 2 x ({500 // scale} transfer + {500 // scale} transient steps)",
                {
                    "ours: extract": (OURS, (data, "v2_mixed", tmp / "ours_m")),
                    "oect-infra: serial loop": (INFRA, (data, "v2_mixed", tmp / "infra_m", 1)),
                },
                {"ours: extract": args.rounds, "oect-infra: serial loop": infra_rounds},
                tmp,
            )
            print(
                f"  oect-infra / ours = {best['oect-infra: serial loop'] / best['ours: extract']:6.1f}   (target >= 10)"
            )


if __name__ == "__main__":
    main()
