"""Consumer headroom (issue 16): can one client keep up with hundreds of workers?

The client of a distributed run receives every finished experiment, writes its Parquet files,
records it in the catalog and does the bookkeeping. This benchmark measures that work alone, on
real results of the users' 5,000-step stability files, with no cluster in the way:

1. One real result per preset is computed in this process (its single-threaded CPU time ``W`` is
   what one worker spends per experiment).
2. The consumer's CPU per experiment ``C`` is measured over repeated copies of that result: the
   workers publish their own Parquet files, so the client unpickles a small record and files it
   (``extract``'s own code: result, error table, one catalog record, progress); per step =
   ``C / 5000``. For comparison, the same with the client writing the files itself.
3. ``W / C`` = the number of single-threaded workers one client can serve (target >= 200).
   The client also plans each experiment before submitting it: ``extract``'s planner over copies of
   the file, opening each one (chunked runs) or leaving that to the task (whole-file tasks).
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
from dask_features.engine.identity import SourceIdentity
from dask_features.engine.output import write_tables
from dask_features.engine.plan import make_job
from dask_features.engine.results import Bookkeeper, ExtractionResult
from dask_features.engine.run import _plan, _progress, _record, _Settings
from dask_features.engine.tasks import assemble, run_chunk
from dask_features.engine.writing import write_outcome


def worker_result(path: Path, preset: str, folder: Path) -> tuple[bytes, bytes, float, Any]:
    """One experiment as a worker does it: (pickled Written, pickled tables, worker CPU [s], job).

    The worker computes the tables and publishes them (``Written`` is what it returns); the pickled
    tables are what a worker returned before workers wrote their own files (for comparison).
    """
    cfg = dfe.load_config(preset)
    exp = dfe.open_experiment(path)
    job = make_job(exp, cfg, "exp", "auto", SourceIdentity.of(path))
    t0 = time.process_time()
    chunks = []
    for source in cfg.sources:
        n = exp.n_transfer_steps if source == "transfer" else exp.n_transient_steps
        chunks.append(run_chunk(exp, cfg, source, 0, n))
    tables = assemble(exp, cfg, chunks)
    written = write_outcome(job, tables, cfg, folder)
    cpu = time.process_time() - t0
    return pickle.dumps(written, protocol=5), pickle.dumps(tables, protocol=5), cpu, job


class Consumer:
    """The client's work per finished experiment: ``extract``'s own recording code."""

    def __init__(self, preset: str, catalog: Any, job: Any) -> None:
        self.cfg, self.job = dfe.load_config(preset), job
        result = ExtractionResult(self.cfg.name, self.cfg.hash, Path("."))
        self.book = Bookkeeper(result, self.cfg, catalog, _progress(0, preset, False))

    def __call__(self, payload: bytes) -> None:
        _record((self.job, pickle.loads(payload), 1.0), self.book)


class WritingConsumer(Consumer):
    """The client as it was: it also wrote every experiment's Parquet files itself."""

    def __init__(self, preset: str, catalog: Any, job: Any, folder: Path) -> None:
        super().__init__(preset, catalog, job)
        self.folder = folder

    def __call__(self, payload: bytes) -> None:
        tables = pickle.loads(payload)
        parts = {"steps": tables.steps, "cycles": tables.cycles, "errors": tables.errors}
        steps_file = write_tables(self.folder, self.cfg, self.job.experiment, "exp", self.job.source, parts)
        self.book.written(self.job.experiment.path, steps_file, tables, 1.0, {})


def plan_cpu(path: Path, preset: str, folder: Path, n: int, defer_open: bool) -> float:
    """Client CPU per experiment of ``extract``'s planner over ``n`` links to ``path`` [s]."""
    links = folder / "links"
    links.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(n):
        link = links / f"copy{i:04d}-test_{i}.h5"
        if not link.exists():
            link.symlink_to(path)
        items.append(str(link))
    cfg = dfe.load_config(preset)
    split = "experiment" if defer_open else "step"
    settings = _Settings(cfg, folder / "out" / preset, str(links), "step", "auto", True, split)
    book = Bookkeeper(ExtractionResult(cfg.name, cfg.hash, folder), cfg, None, _progress(0, preset, False))
    t0 = time.process_time()
    jobs = list(_plan(items, settings, book))
    cpu = time.process_time() - t0
    assert len(jobs) == n, book.result.failed
    return cpu / n


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
            folder = tmp / "out" / preset
            written, tables, w_cpu, job = worker_result(path, preset, folder)
            old_cpu = consumer_cpu(
                WritingConsumer(preset, catalog, job, folder), tables, max(3, repeats // 3)
            )
            consume = Consumer(preset, catalog, job)
            c_cpu = consumer_cpu(consume, written, repeats)
            print(
                f"  {preset:18s} worker {w_cpu:6.2f} s/exp (incl. writing)   client {c_cpu * 1e3:6.2f} ms/exp "
                f"({c_cpu / steps * 1e6:6.3f} µs/step)   saturates at {w_cpu / c_cpu:6.0f} workers "
                f"(target >= 200); a client writing the files itself: {old_cpu * 1e3:6.1f} ms/exp, "
                f"{w_cpu / old_cpu:5.0f} workers"
            )
            opened, deferred = (plan_cpu(path, preset, tmp / "plan", 100, d) for d in (False, True))
            print(
                f"      planning: {opened * 1e3:5.2f} ms/exp opening each file on the client "
                f"(saturates at {w_cpu / opened:5.0f} workers), {deferred * 1e3:5.2f} ms/exp when "
                f"whole-file tasks open them ({w_cpu / deferred:6.0f} workers)"
            )
            for k in (100, 200, 400):
                produced, backlog, busy = feed(consume, written, k / w_cpu, 2.0 if args.quick else 5.0)
                print(
                    f"      fed as by {k:4d} workers: {produced:5d} results, backlog {backlog:4d}, client busy {busy:4.0%}"
                )


if __name__ == "__main__":
    main()
