"""Local schedulers on a fresh process's first ``extract`` call: threads vs processes vs sync.

What ``choose_local_scheduler`` (``dask_features/engine/streams.py``) decides between: each round
runs one fresh process per scheduler (interleaved, so a busy machine weighs on all of them alike)
and times the first ``extract`` call after ``import dask_features``, as ``bench_presets.py`` does.
``auto`` is the default choice (no ``scheduler`` given), printed with its reason.

Data: ``--files`` copies of one generated experiment of ``--steps`` transfer steps (301 points),
or ``--transient`` transient steps too (then ``v2_mixed``). The package's bytecode is compiled
first, as an installed package has it.

Usage: ``python benchmarks/bench_local.py [--files 8] [--steps 400] [--transient 0] [--rounds 9]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _bytecode import compile_package
from bench_presets import make_data

CALL = """
import sys, time
import dask_features as dfe
scheduler = None if sys.argv[4] == "auto" else sys.argv[4]
t0 = time.perf_counter()
res = dfe.extract(sys.argv[1], sys.argv[2], sys.argv[3], progress=False, force=True, scheduler=scheduler)
call = time.perf_counter() - t0
assert res.ok, res.summary()
print("SCHEDULER", res.scheduler)
print("CALL", call)
"""

SCHEDULERS = ("auto", "threads", "processes", "sync")


def _call(*args: object, cwd: Path) -> tuple[float, str]:
    """The first call's time in a fresh process [s], and the scheduler it ran on."""
    proc = subprocess.run(
        [sys.executable, "-c", CALL, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=3600
    )
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    lines = dict(
        line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith(("CALL", "SCHED"))
    )
    return float(lines["CALL"]), lines["SCHEDULER"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--transient", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    compile_package()
    config = "v2_mixed" if args.transient else "v2_transfer_basic"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = make_data(tmp / "data", args.files, args.steps, args.transient)
        calls: dict[str, list[float]] = {s: [] for s in SCHEDULERS}
        chosen = ""
        for _ in range(args.rounds):
            for s in SCHEDULERS:
                call, ran = _call(data, config, tmp / s, s, cwd=tmp)
                calls[s].append(call)
                chosen = ran if s == "auto" else chosen
    print(
        f"\n== {config}, {args.files} x ({args.steps} transfer + {args.transient} transient steps): "
        f"first call of fresh processes, {args.rounds} rounds =="
    )
    for s, times in calls.items():
        print(f"  {s:10s} best {min(times):6.3f} s   median {statistics.median(times):6.3f} s")
    print(f"  processes / threads: best {min(calls['processes']) / min(calls['threads']):5.2f}")
    print(f"  auto chose: {chosen}")


if __name__ == "__main__":
    main()
