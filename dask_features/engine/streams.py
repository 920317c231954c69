"""Scheduling: bundles of experiments submitted as plain calls, streamed back as each finishes.

An experiment cut into chunks (``mode="step"``) is one call per chunk, then one that assembles::

    run_chunk(exp, transfer, 0, 1000) ─┐
    run_chunk(exp, transfer, 1000, ..) ─┼─> safe_assemble(exp, config, chunks)  -> tables
    run_chunk(exp, transient, 0, 120)  ─┘

Experiments too small to fill a task (about 0.1 s of estimated work) are bundled: one
``compute_and_write`` call computes several of them, so per-task scheduling cost stays small next to the
work. No Dask graph is built (a graph per bundle cost more than the submits); at most ``window``
bundles are in flight, and the next ones are submitted as finished ones come back, so memory stays
flat however many experiments there are. This module runs them in this machine's threads or
processes (``sync`` runs everything in this thread; on Linux the processes are a
:class:`~dask_features.engine.forks.ForkPool`, which this process joins on short runs), without
importing Dask or ``distributed``;
:mod:`dask_features.engine.client_stream` does the same on a cluster.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ThreadPoolExecutor,
    wait,
)
from pathlib import Path
from typing import Any, NamedTuple

from dask_features.config.schema import FeatureConfig
from dask_features.engine.forks import ForkPool, can_fork
from dask_features.engine.plan import READ_COST_NS, ExperimentJob, Job
from dask_features.engine.tasks import Failure, run_chunk
from dask_features.engine.writing import (
    PlanFailure,
    WriteFailure,
    Written,
    assemble_and_write,
    compute_and_write,
)
from dask_features.io.sources import get_source

__all__ = [
    "LocalChoice",
    "Outcome",
    "choose_local_scheduler",
    "chunked",
    "per_job",
    "stream_local",
    "value_of",
]

logger = logging.getLogger(__name__)

#: One experiment's outcome as streamed back: the job, its tables or failure, wall time [s].
Outcome = tuple[Job, Written | WriteFailure | Failure | PlanFailure, float]


def chunked(bundle: list[Job], mode: str) -> ExperimentJob | None:
    """The experiment of ``bundle`` to run as a task per chunk, or None: the bundle is one task.

    Several experiments, ``"experiment"`` mode, a single chunk, or a file not opened by the plan
    (a :class:`~dask_features.engine.plan.FileJob`) run as one task computing whole files.
    """
    job = bundle[0]
    if len(bundle) > 1 or mode == "experiment" or not isinstance(job, ExperimentJob) or len(job.chunks) == 1:
        return None
    return job


def per_job(bundle: list[Job], value: Any) -> Iterator[tuple[Job, Any]]:
    """Pair a bundle's computed value (a list, or one value for a chunked experiment) with its jobs."""
    values = value if isinstance(value, list) else [value] * len(bundle)
    return zip(bundle, values, strict=True)


#: Work of one experiment's file that holds the GIL whatever its size [s]: opening it, reading its
#: attributes, writing its Parquet files (measured: 64 experiments of 5 steps x 41 points, sync,
#: 7.5 ms each).
FILE_SECONDS = 0.0075
#: Estimated GIL-bound time of a run (HDF5 reading and decoding, plus :data:`FILE_SECONDS` per
#: file) from which local runs use processes [s]. h5py holds the GIL while it reads, and opening
#: and writing files is Python, so threads mostly take turns on that work; processes do it in
#: parallel once it outweighs their cost (forking, shipping tasks and results: the first task
#: starts ~15 ms later). Measured on 2 cores shared with other jobs, best first call of fresh
#: processes, threads vs processes (``benchmarks/bench_local.py``): v2_transfer_basic on 4 x 400
#: steps (~0.06 s) 0.18 s vs 0.22 s; on 8 x 400 (~0.12 s) 0.25 s vs 0.22 s; on 8 x 2,000
#: (~0.37 s) 0.66 s vs 0.49 s; v2_mixed on 2 x (500 + 500) steps (~0.16 s, NumPy that releases
#: the GIL) 0.64 s vs 0.61 s. The old reading-only estimate chose threads for all of these, and
#: for 64 files of 5 steps, where processes took 0.34 s and threads 0.84 s.
PROCESSES_SECONDS = 0.08
#: Estimated GIL-bound time of a run [s] below which ``processes`` forks one worker less and this
#: process computes too (:class:`LocalChoice`). It is warm (modules, config, the plan's first
#: file): a short run saves a fork and that worker's first-task page faults, and runs ``n`` busy
#: processes instead of ``n + 1``. A long run loses by it: this process records outcomes between
#: its tasks and keeps glibc's default malloc (page faults on large arrays that the workers avoid).
#: Measured on 2 cores, first call of fresh processes, interleaved pairs, v2_transfer_basic on
#: 8 files (estimate in brackets): 400 steps (0.12 s) 0.90 of the time with 2 workers forked;
#: 2,000 steps (0.37 s) 1.00; 5,000 steps (0.9 s) 1.06.
CALLER_RUNS_SECONDS = 0.25


class LocalChoice(NamedTuple):
    """A run's local scheduler: its name, why, and whether this process is one of its workers."""

    scheduler: str
    why: str
    caller_runs: bool = False


def choose_local_scheduler(
    first: ExperimentJob, config: FeatureConfig, n_items: int, workers: int | None
) -> LocalChoice:
    """The scheduler of a run without a client: threads, or processes for GIL-bound runs.

    The run's GIL-bound time is estimated from its first experiment (reading) times the number of
    inputs. A LocalCluster is never chosen by default: a process pool starts in milliseconds where
    a cluster takes seconds; ask for one with ``scheduler="distributed"`` (dashboard, memory limits).
    """
    n = workers or os.cpu_count() or 1
    points = sum(
        get_source(s).points_per_step(first.experiment) * get_source(s).n_steps(first.experiment)
        for s in config.sources
    )
    serial = (points * READ_COST_NS * 1e-9 + FILE_SECONDS) * n_items
    what = f"~{serial:.2f} s of HDF5 reading and file handling"
    if n > 1 and serial >= PROCESSES_SECONDS:
        why = f"{what} >= {PROCESSES_SECONDS} s: {n} processes work in parallel"
        if serial < CALLER_RUNS_SECONDS:
            return LocalChoice("processes", f"{why}, this one included", caller_runs=True)
        return LocalChoice("processes", why)
    why = "one core" if n == 1 else f"{what} < {PROCESSES_SECONDS} s"
    return LocalChoice("threads", f"{why}: {n} threads (no process start-up)")


def _preload() -> None:
    """Load now what every task loads on its first call (the raw chunk reader with libdeflate, the
    compiled kernel module), so the forked workers inherit it instead of each loading it and
    faulting its pages in during its first task. Measured on v2_transfer_basic, 8 x 400 steps, first
    call of fresh processes, three runs of 12-20 interleaved pairs: paired medians 0.93, 0.99 and 0.98
    of the time without it (a few ms of each worker's first task, near this machine's noise)."""
    from dask_features import _compiled  # imported only by runs that fork (start-up of the rest)
    from dask_features.io import _read

    _read.preload()
    _compiled.preload()


def _run_here(
    future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Run a task taken back from the pool in this process and resolve its future (Ctrl-C is
    raised again: the run stops)."""
    try:
        future.set_result(fn(*args, **kwargs))
    except BaseException as exc:
        future.set_exception(exc)
        if not isinstance(exc, Exception):
            raise


def value_of(future: Any) -> Any:
    """The result of a finished ``future`` (``concurrent.futures`` or ``distributed``), or a
    :class:`Failure` naming why there is none (task error, cancelled, worker lost).

    The error is asked for before the result, not caught from it: ``distributed`` keeps a task's
    exception in the future's state, and raising it would attach the caller's frame (and through it
    the run's futures) to its traceback, so the cluster would keep those results as long as the
    client lives. Ctrl-C is raised again.
    """
    try:
        error = future.exception()
        if error is None:
            return future.result()
    except BaseException as exc:  # cancelled, or its worker lost beyond retries
        if isinstance(exc, KeyboardInterrupt):
            raise
        exc.__traceback__ = None  # see above
        error = exc
    if isinstance(error, KeyboardInterrupt):
        raise error
    return Failure(f"task failed: {type(error).__name__}: {error}")


def stream_local(
    bundles: Iterator[list[Job]],
    config: FeatureConfig,
    folder: Path,
    mode: str,
    window: int,
    scheduler: str,
    workers: int | None,
    *,
    caller_runs: bool = False,
) -> Iterator[Outcome]:
    """Outcomes of ``bundles`` computed in this machine's threads or processes, as each finishes.

    Plain ``submit`` on a thread or process pool, no Dask graph: a bundle of small experiments is one
    call, a chunked experiment one call per chunk plus one to assemble them once its last chunk is in.
    At most ``window`` bundles are in flight. Threads overlap one task's HDF5 read (h5py allows one
    per process) with other tasks' NumPy kernels (which release the GIL). ``caller_runs``: with a
    fork pool, ``workers - 1`` processes are forked and this one runs a task whenever every worker
    holds its next one (see :data:`CALLER_RUNS_SECONDS`).
    """
    if scheduler == "sync":
        for bundle in bundles:
            t0 = time.perf_counter()
            values = compute_and_write(bundle, config, folder)
            yield from ((job, v, time.perf_counter() - t0) for job, v in zip(bundle, values, strict=True))
        return
    n = workers or os.cpu_count() or 1
    fork_pool: ForkPool | None = None
    ends_early = True  # shut the pool down once the last bundle is submitted (see fill)
    if scheduler == "threads":
        # A thread's task costs microseconds, not a bundle's worth of scheduling: one task per
        # experiment keeps every thread busy to the end (a bundle of four would finish alone).
        bundles = ([job] for bundle in bundles for job in bundle)
        pool: Executor = ThreadPoolExecutor(n)
    elif can_fork():  # forked here, before the plan opens more files: nothing to import
        _preload()
        joins = caller_runs and n > 1  # this process is one of the n
        pool = ForkPool(n - 1 if joins else n, shared=(config,))
        fork_pool = pool if joins else None
    else:
        from concurrent.futures import ProcessPoolExecutor  # loads multiprocessing: only when used

        pool = ProcessPoolExecutor(n)
        # Its first shutdown forgets its processes: after an early shutdown(wait=False) the final
        # one would return while they still run, holding the output folder's lock they inherited.
        ends_early = False
    # Per future: what to do with its value. Returns the outcomes it completes.
    pending: dict[Future[Any], Callable[[Future[Any]], list[Outcome]]] = {}
    bundles_in_flight = 0
    assembling: set[str] = set()  # chunked experiments whose assemble task is not submitted yet
    ending = False

    def submit_bundle(bundle: list[Job]) -> None:
        t0 = time.perf_counter()
        job = chunked(bundle, mode)
        if job is None:

            def done(f: Future[Any]) -> list[Outcome]:
                value = value_of(f)
                values = [value] * len(bundle) if isinstance(value, Failure) else value
                wall = time.perf_counter() - t0
                return [(j, v, wall) for j, v in zip(bundle, values, strict=True)]

            pending[pool.submit(compute_and_write, bundle, config, folder)] = done
            return
        parts: list[Any] = [None] * len(job.chunks)
        left = [len(job.chunks)]

        def assembled(f: Future[Any]) -> list[Outcome]:
            return [(job, value_of(f), time.perf_counter() - t0)]

        def chunk_done(i: int) -> Callable[[Future[Any]], list[Outcome]]:
            def done(f: Future[Any]) -> list[Outcome]:
                if left[0] < 0:  # an earlier chunk failed: the experiment is already reported
                    return []
                value = value_of(f)
                if isinstance(value, Failure):
                    left[0] = -1
                    assembling.discard(job.stem)
                    return [(job, value, time.perf_counter() - t0)]
                parts[i] = value
                left[0] -= 1
                if left[0] == 0:
                    pending[pool.submit(assemble_and_write, job, config, parts, folder)] = assembled
                    assembling.discard(job.stem)
                return []

            return done

        assembling.add(job.stem)  # output stems are unique within a run
        for i, (source, start, stop) in enumerate(job.chunks):
            pending[pool.submit(run_chunk, job.experiment, config, source, start, stop)] = chunk_done(i)

    def fill() -> None:
        nonlocal bundles_in_flight, ending
        while bundles_in_flight < window:
            bundle = next(bundles, None)
            if bundle is None:
                if not assembling and not ending:
                    # Nothing more to submit: a worker that is done ends while the others finish
                    # (a forked worker's exit then costs the run nothing).
                    if ends_early:
                        pool.shutdown(wait=False)
                    ending = True
                return
            submit_bundle(bundle)
            bundles_in_flight += 1

    try:
        fill()
        while pending:
            taken = fork_pool.take() if fork_pool is not None else None
            if taken is not None:
                _run_here(*taken)  # the workers meanwhile run the tasks they hold
                done = {f for f in pending if f.done()}
            else:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in done:
                outcomes = pending.pop(future)(future)
                if outcomes:  # a bundle's outcomes all come at once
                    bundles_in_flight -= 1
                yield from outcomes
            fill()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
