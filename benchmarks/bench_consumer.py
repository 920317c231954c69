"""Consumer headroom (issue 16): can one client keep up with hundreds of workers?

The client of a distributed run receives every finished experiment, writes its Parquet files,
records it in the catalog and does the bookkeeping. This benchmark measures that work alone, on
real results of the users' 5,000-step stability files, with no cluster in the way:

1. One real result per preset is computed in this process (its single-threaded CPU time ``W`` is
   what one worker spends per experiment).
2. The consumer's CPU per experiment ``C`` (unpickling the result as it arrives from a worker,
   writing the Parquet files atomically, one catalog record, the error table) is measured over
   repeated copies of that result; per step = ``C / 5000``.
3. ``W / C`` = the number of single-threaded workers one client can serve (target >= 200).
4. Controlled rate: a feeder thread hands the consumer pickled results at the rate ``k`` workers
   would produce them (``k / W`` per second) for several ``k``; the consumer keeps up when its
   backlog stays bounded (printed: backlog at the end and the consumer's busy fraction).

Usage: ``python benchmarks/bench_consumer.py [--quick] [--presets a,b]``
(``--quick``: 1,000-step files and fewer repetitions).
"""

from __future__ import annotations

import argparse
import pickle
import queue
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import dask_features as dfe
from dask_features.engine.output import write_tables
from dask_features.engine.tasks import assemble, run_chunk


def worker_result(path: Path, preset: str) -> tuple[Any, float, Any]:
    """(pickled result, worker CPU seconds, experiment) of one experiment, computed here."""
    cfg = dfe.load_config(preset)
    exp = dfe.open_experiment(path)
    t0 = time.process_time()
    chunks = []
    for source in cfg.sources:
        n = exp.n_transfer_steps if source == "transfer" else exp.n_transient_steps
        chunks.append(run_chunk(exp, cfg, source, 0, n))
    tables = assemble(exp, cfg, chunks)
    cpu = time.process_time() - t0
    return pickle.dumps(tables, protocol=5), cpu, exp


class Consumer:
    """What the client does with one finished experiment."""

    def __init__(self, out: Path, preset: str, catalog: Any, exp: Any) -> None:
        self.out, self.cfg, self.catalog, self.exp = out, dfe.load_config(preset), catalog, exp
        self.n = 0

    def __call__(self, payload: bytes) -> None:
        tables = pickle.loads(payload)
        stem = f"exp{self.n:05d}"
        written = write_tables(self.out, self.cfg, self.exp, stem, tables.steps, tables.cycles, tables.errors)
        if tables.errors.num_rows:
            frame = tables.errors.to_pandas()
            frame.insert(0, "source_file", self.exp.path)
        status = "partial" if tables.errors.num_rows else "success"
        self.catalog.record_extraction(
            self.exp.path, self.cfg.name, self.cfg.hash, written, status, seconds=1.0
        )
        self.n += 1


def consumer_cpu(consume: Consumer, payload: bytes, repeats: int) -> float:
    consume(payload)  # first write creates folders, warms imports
    t0 = time.process_time()
    for _ in range(repeats):
        consume(payload)
    return (time.process_time() - t0) / repeats


def feed(consume: Consumer, payload: bytes, rate: float, duration: float) -> tuple[int, int, float]:
    """Produce ``payload`` at ``rate`` per second for ``duration`` s; returns (produced, backlog, busy)."""
    q: queue.Queue[bytes | None] = queue.Queue()
    busy = 0.0

    def produce() -> None:
        t0 = time.perf_counter()
        k = 0
        while (now := time.perf_counter()) - t0 < duration:
            due = int((now - t0) * rate) + 1
            while k < due:
                q.put(payload)
                k += 1
            time.sleep(min(0.002, 1 / rate))
        q.put(None)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    produced = 0
    t_end = time.perf_counter() + duration
    while time.perf_counter() < t_end:
        try:
            item = q.get(timeout=0.05)
        except queue.Empty:
            continue
        if item is None:
            break
        t0 = time.perf_counter()
        consume(item)
        busy += time.perf_counter() - t0
        produced += 1
    producer.join()
    backlog = sum(1 for _ in iter(q.get_nowait, None)) if not q.empty() else 0
    return produced + backlog, backlog, busy / duration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--presets", default="v2_transfer_basic,v2_mixed,transient_tau")
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    steps = args.steps or (1000 if args.quick else 5000)
    repeats = 10 if args.quick else 30
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        path = dfe.synth.write_experiment(
            tmp, n_transfer=steps, n_transient=steps, transient_samples=1000, seed=1, test_id="test_big"
        )
        catalog = dfe.Catalog(tmp / "catalog.db")
        catalog.scan(tmp)
        print(
            f"== consumer headroom, {steps}-step experiments (transfer and transient), {repeats} repeats =="
        )
        for preset in args.presets.split(","):
            payload, w_cpu, exp = worker_result(path, preset)
            consume = Consumer(tmp / "out", preset, catalog, exp)
            c_cpu = consumer_cpu(consume, payload, repeats)
            workers = w_cpu / c_cpu
            print(
                f"  {preset:18s} worker {w_cpu:6.2f} s/exp   client {c_cpu * 1e3:6.1f} ms/exp "
                f"({c_cpu / steps * 1e6:5.2f} µs/step, result {len(payload) / 1e6:5.2f} MB)   "
                f"saturates at {workers:6.0f} workers (target >= 200)"
            )
            for k in (100, 200, 400):
                produced, backlog, busy = feed(consume, payload, k / w_cpu, 2.0 if args.quick else 5.0)
                print(
                    f"      fed as by {k:4d} workers: {produced:4d} results, backlog {backlog:3d}, client busy {busy:4.0%}"
                )


if __name__ == "__main__":
    main()
