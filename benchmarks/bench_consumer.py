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

5. The whole client on a real cluster: the steps above leave out what ``distributed`` itself costs
   the client per task (submitting it, following its future, fetching its result). A scheduler and
   2 workers run in their own processes; ``extract`` runs over 400 links to the file with its own
   tasks (one file each), with ~4 and with ~40 experiments per task, and a straight line through
   this process's CPU against the number of tasks gives the client's cost per task (slope) and per
   experiment (intercept). From them: the workers one client serves with one task per file, and
   with the tasks ``extract`` makes for 200 workers on a long run
   (:func:`dask_features.engine.plan.distributed_task_seconds`, :func:`~dask_features.engine.plan.bundle_size_cap`).
   Once more with results arriving faster than the client handles them (many small experiments,
   a deep window): the per-task cost of a saturated client, which submits and fetches in batches.

Usage: ``python benchmarks/bench_consumer.py [--quick] [--presets a,b]``
(``--quick``: 1,000-step files and fewer repetitions).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil

import dask_features as dfe
from dask_features.engine import run as engine_run
from dask_features.engine.identity import SourceIdentity
from dask_features.engine.output import write_tables
from dask_features.engine.plan import bundle_size_cap, distributed_task_seconds, make_job
from dask_features.engine.results import Bookkeeper, ExtractionResult, progress_bar
from dask_features.engine.run import _plan, _record, _Settings
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
        self.book = Bookkeeper(result, self.cfg, catalog, progress_bar(0, preset, False))

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
    book = Bookkeeper(ExtractionResult(cfg.name, cfg.hash, folder), cfg, None, progress_bar(0, preset, False))
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


@contextlib.contextmanager
def external_cluster(n_workers: int) -> Iterator[str]:
    """A scheduler and ``n_workers`` single-threaded workers, each in its own process; yields its address."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    port = 8700 + os.getpid() % 1000
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "dask", "scheduler", "--port", str(port), "--no-dashboard"], **quiet
    )
    worker_args = [
        "--nthreads",
        "1",
        "--nworkers",
        str(n_workers),
        "--no-dashboard",
        "--memory-limit",
        "4GiB",
    ]
    workers = subprocess.Popen([sys.executable, "-m", "dask", "worker", address, *worker_args], **quiet)
    try:
        yield address
    finally:
        for proc in (workers, scheduler):
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
            proc.kill()


def client_cpu(
    address: str, path: Path, folder: Path, n: int, per_task: float | None, window: int | None = None
) -> tuple[float, int]:
    """This process's CPU over one distributed ``extract`` of ``n`` links to ``path`` [s], and its tasks.

    ``per_task``: work per task [s] to bundle for, instead of what ``extract`` picks for the cluster;
    ``window``: bundles in flight, instead of ``extract``'s default for the cluster.
    """
    from distributed import Client

    links = folder / "links"
    links.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        link = links / f"copy{i:04d}-test_{i}.h5"
        if not link.exists():
            os.link(path, link)
    tasks = 0
    bundle_jobs, task_seconds = engine_run.bundle_jobs, engine_run.distributed_task_seconds

    def counted(*args: Any, **kwargs: Any) -> Iterator[Any]:
        nonlocal tasks
        for bundle in bundle_jobs(*args, **kwargs):
            tasks += 1
            yield bundle

    engine_run.bundle_jobs = counted
    if per_task is not None:
        engine_run.distributed_task_seconds = lambda *_: per_task  # type: ignore[assignment]
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            me = psutil.Process()
            before = sum(me.cpu_times()[:2])
            res = dfe.extract(
                links,
                "v2_transfer_basic",
                folder / "out",
                client=client,
                force=True,
                progress=False,
                max_in_flight=window,
            )
            used = sum(me.cpu_times()[:2]) - before
    finally:
        engine_run.bundle_jobs, engine_run.distributed_task_seconds = bundle_jobs, task_seconds
    assert res.ok, res.summary()
    return used, tasks


def _costs(runs: list[tuple[float, int]], n: int) -> tuple[float, float]:
    """Client CPU per task and per experiment [s] from runs over ``n`` experiments in different
    numbers of tasks: the slope and intercept of a straight line through (tasks, CPU).

    A run with few tasks pins the per-experiment cost (there it is most of the CPU); the difference
    from one with a task per file alone would be a small difference of large numbers.
    """
    tasks = np.array([t for _, t in runs], dtype=float)
    cpu = np.array([c for c, _ in runs])
    per_task, fixed = np.polyfit(tasks, cpu, 1)
    return float(per_task), float(fixed) / n


def whole_client(path: Path, tmp: Path, n: int, workers: dict[str, float]) -> None:
    """Step 5: the client's CPU per task and per experiment on a real cluster, and what it serves.

    Measured twice: with the 5,000-step file (the 2 workers finish a task now and then, the client
    handles each result alone), in runs of one, four and ~40 files a task; and saturated: 400
    experiments of 20 steps, 64 bundles in flight, so results arrive faster than the client handles
    them. That is the client's state at the worker count where it saturates; it then submits and
    fetches in batches (``engine.client_stream``).
    """
    small = dfe.synth.write_experiment(tmp, n_transfer=20, n_transient=0, seed=2, test_id="test_small")
    with external_cluster(2) as address:
        client_cpu(address, path, tmp / "warm", 4, None)
        w = workers.get("v2_transfer_basic", 0.2)
        runs = [client_cpu(address, path, tmp / f"b{f}", n, f and f * w) for f in (None, 4, 40)]
        busy = [client_cpu(address, small, tmp / k, 400, t, 64) for k, t in (("s1", 1e-4), ("s2", 10.0))]
    per_task, per_exp = _costs(runs, n)
    busy_task, busy_exp = _costs(busy, 400)
    measured = ", ".join(f"{cpu / n * 1e3:.2f} ms/exp with {tasks} tasks" for cpu, tasks in runs)
    print(
        f"  whole client, {n} experiments on a 2-worker cluster (scheduler in its own process): "
        f"{measured}: {per_task * 1e3:.2f} ms per task + {per_exp * 1e3:.3f} ms per experiment\n"
        f"  saturated (400 x 20 steps, {busy[0][1]} and {busy[1][1]} tasks, 64 in flight): "
        f"{busy_task * 1e3:.2f} ms per task (+ {busy_exp * 1e3:.2f} ms per small experiment)"
    )
    for preset, w_cpu in workers.items():
        served = []
        for files in (10_000, 100_000):  # a longer run affords larger tasks (bundle_size_cap)
            b = min(bundle_size_cap(files, 200), max(1, int(-(-distributed_task_seconds(200) // w_cpu))))
            served.append(
                f"{files:,} files: {b} files a task, {w_cpu / (per_task / b + per_exp):4.0f} workers "
                f"({w_cpu / (busy_task / b + per_exp):4.0f} saturated)"
            )
        print(
            f"      {preset:18s} one task per file: saturates at {w_cpu / (per_task + per_exp):4.0f} workers "
            f"({w_cpu / (busy_task + per_exp):4.0f} counting the batches a saturated client makes); "
            f"extract's tasks for 200 workers on {'; on '.join(served)} (target >= 200)"
        )


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
        workers: dict[str, float] = {}
        for preset in args.presets.split(","):
            folder = tmp / "out" / preset
            written, tables, w_cpu, job = worker_result(path, preset, folder)
            workers[preset] = w_cpu
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
        (tmp / "cluster").mkdir()
        transfer_only = dfe.synth.write_experiment(
            tmp / "cluster", n_transfer=steps, n_transient=0, seed=1, test_id="test_transfer"
        )
        whole_client(transfer_only, tmp / "cluster", 100 if args.quick else 400, workers)


if __name__ == "__main__":
    main()
