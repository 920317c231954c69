"""Per-file read of a whole dataset: HDF5's decoder vs the raw chunk reader (issue 16). Ratios.

Two generated files: a ``v2_transfer_basic`` experiment of 400 steps x 301 points (its
``transfer/measurement_data``, (400, 2, 301) in chunks of (50, 1, 38)) and a transient one (rows 0
and 2 of ``transient/measurement_data``, as ``read_transient`` reads them). Each round opens the
file afresh (an empty chunk cache, as each task of a run sees) and reads it four ways, interleaved:

- ``h5py``: ``dsid.read`` of the hyperslab into a preallocated array (HDF5 inflates and un-shuffles);
- ``raw``: :func:`dask_features.io._raw.read_into` of the same hyperslab;
- ``reader off`` / ``reader on``: ``Experiment.read_transfer`` / ``read_transient`` of every step
  with the raw reader switched off / on (``dask_features.io._read.RAW_CHUNKS``).

Figures are the median over rounds of CPU time [ms] (reads do little waiting; the machine may be
shared), and each raw figure's ratio to its HDF5 counterpart. Every raw read is checked to equal
HDF5's bit for bit first.

Usage: ``python benchmarks/bench_raw_read.py [--rounds N] [--quick]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from dask_features import open_experiment, synth
from dask_features.io import _raw, _read


def _hyperslab(path: Path, name: str, rows: tuple[int, ...]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(start, shape) of the reads of ``name``: the whole dataset, or one read per row in ``rows``."""
    with h5py.File(path, "r") as f:
        shape = f[name].shape
    if not rows:
        return [((0,) * len(shape), shape)]
    return [((r, 0), (1, shape[1])) for r in rows]


def _reader(path: Path, name: str, rows: tuple[int, ...], raw: bool) -> Callable[[], list[np.ndarray]]:
    slabs = _hyperslab(path, name, rows)

    def read() -> list[np.ndarray]:
        with h5py.File(path, "r") as f:
            dsid = f[name].id
            outs = []
            for start, shape in slabs:
                out = np.empty(shape)
                if not raw:
                    fspace = dsid.get_space()
                    fspace.select_hyperslab(start, shape)
                    dsid.read(h5py.h5s.create_simple(shape), fspace, out)
                elif not _raw.read_into(dsid, out, start):
                    raise RuntimeError(f"{name}: the raw reader declined")
                outs.append(out)
            return outs

    return read


def _experiment(path: Path, kind: str, raw: bool) -> Callable[[], object]:
    exp = open_experiment(path)
    n = exp.n_transfer_steps if kind == "transfer" else exp.n_transient_steps

    def read() -> object:
        _read.RAW_CHUNKS = raw
        try:
            return exp.read_transfer(0, n) if kind == "transfer" else exp.read_transient(0, n)
        finally:
            _read.RAW_CHUNKS = True

    return read


def _cpu_ms(fn: Callable[[], object]) -> float:
    t0 = time.process_time()
    fn()
    return (time.process_time() - t0) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--quick", action="store_true", help="11 rounds")
    args = parser.parse_args()
    rounds = 11 if args.quick else args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        transfer = synth.write_experiment(
            Path(tmp) / "t", n_transfer=400, n_transient=0, sweep_points=301, seed=1, test_id="transfer"
        )
        transient = synth.write_experiment(
            Path(tmp) / "r",
            n_transfer=0,
            n_transient=400,
            transient_samples=2000,
            seed=1,
            test_id="transient",
        )
        cases = {
            "transfer (400, 2, 301)": (transfer, "transfer/measurement_data", (), "transfer"),
            "transient rows 0, 2": (transient, "transient/measurement_data", (0, 2), "transient"),
        }
        for label, (path, name, rows, kind) in cases.items():
            h5, raw = _reader(path, name, rows, False), _reader(path, name, rows, True)
            for a, b in zip(h5(), raw(), strict=True):
                assert np.array_equal(a.view(np.uint64), b.view(np.uint64)), label
            with h5py.File(path, "r") as f:
                ds = f[name]
                print(f"{label}: {ds.shape}, chunks {ds.chunks}, {ds.id.get_num_chunks()} chunks")
            contenders = {
                "h5py": h5,
                "raw": raw,
                "reader off": _experiment(path, kind, False),
                "reader on": _experiment(path, kind, True),
            }
            for fn in contenders.values():
                fn()  # warm: imports, compiled kernels, pooled buffers
            times: dict[str, list[float]] = {k: [] for k in contenders}
            for _ in range(rounds):
                for key, fn in contenders.items():
                    times[key].append(_cpu_ms(fn))
            med = {k: statistics.median(v) for k, v in times.items()}
            print(
                f"  CPU ms, median of {rounds}: h5py {med['h5py']:.2f}  raw {med['raw']:.2f}  "
                f"(raw / h5py {med['raw'] / med['h5py']:.2f});  read_{kind} off {med['reader off']:.2f}  "
                f"on {med['reader on']:.2f}  (on / off {med['reader on'] / med['reader off']:.2f})"
            )


if __name__ == "__main__":
    main()
