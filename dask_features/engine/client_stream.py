"""Bundles computed on a ``distributed`` cluster, streamed back as they finish.

Every task costs the client CPU: telling the scheduler about it, following its future, fetching
its result (measured 6-8 ms per task on 2 cores, ``benchmarks/bench_consumer.py``). With hundreds
of workers the client is the bottleneck, so it works in batches wherever results allow:

* the bundles that refill the window go to the scheduler in one message (``Client.map``), not one
  message per task;
* the results of every bundle finished since the last look are fetched together
  (``as_completed.batches`` and one ``Client.gather``).

A busy client therefore pays less per task the more work is waiting for it: it cannot fall behind
the way a one-result-at-a-time loop does. A result that cannot be fetched together with the others
(its task failed, its worker died) is fetched alone and reported as that bundle's failure.

The window is topped up once a quarter of it has finished (:func:`refill_size`), not after every
result, so even a client that keeps up submits in batches. When every task computes whole files,
the window is deeper (:func:`cluster_window`): such a task holds nothing until a worker runs it
(the scheduler queues it) and returns a small record, so the depth costs the workers nothing and
the client submits and fetches in larger batches. Measured on 2 workers, 5,000-step transfer files
one per task: 15-20 % less client CPU (8 files on a LocalCluster: 45 vs 53 ms a run; 100 files,
scheduler in its own process: 2.9 vs 3.5 ms a file).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from dask_features.config.schema import FeatureConfig
from dask_features.engine.cluster import local_cluster
from dask_features.engine.plan import ExperimentJob, Job
from dask_features.engine.shipping import PackedConfig, call_packed, call_with_config, unpacked
from dask_features.engine.streams import Outcome, chunked, per_job, value_of
from dask_features.engine.tasks import Failure, run_chunk
from dask_features.engine.writing import assemble_and_write, compute_and_write

__all__ = ["cluster_window", "refill_size", "resolve_client", "stream_distributed", "worker_count"]

logger = logging.getLogger(__name__)

#: Bundles in flight per worker by default: tasks of whole files, tasks of a chunked experiment.
WINDOW_PER_WORKER = {"experiment": 4, "step": 2}


def resolve_client(client: Any, scheduler: str | None, workers: int | None) -> tuple[Any, Callable[[], None]]:
    """Return ``(client or None, close)``; start a LocalCluster only when asked to."""
    if isinstance(client, str):
        from distributed import Client

        c = Client(client)
        return c, c.close
    if client is not None:
        return client, lambda: None
    if scheduler == "distributed":
        from distributed import Client

        cluster = local_cluster(workers)
        c = Client(cluster)
        logger.info(
            "started a LocalCluster with %d workers; dashboard: %s", len(cluster.workers), c.dashboard_link
        )

        def close() -> None:
            c.close()
            cluster.close()

        return c, close
    if scheduler is None and "distributed" in sys.modules:
        # A default client exists only if distributed was imported; importing it just to look
        # costs about a second.
        with contextlib.suppress(ImportError, ValueError):
            from distributed import default_client

            return default_client(), lambda: None
    return None, lambda: None


def worker_count(client: Any, workers: int | None) -> int:
    """Workers available to the run (for the default window)."""
    if client is not None:
        with contextlib.suppress(Exception):
            return max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
        return 1
    return workers or os.cpu_count() or 1


def cluster_window(n_workers: int, mode: str) -> int:
    """Default bundles in flight on a cluster of ``n_workers`` (``mode`` as in :func:`stream_distributed`).

    Tasks of whole files (``"experiment"``) wait on the scheduler at no cost; the chunk results of
    a chunked experiment wait on the workers for their assembly, so the window bounds their memory.
    """
    return max(4, WINDOW_PER_WORKER[mode] * n_workers)


def refill_size(window: int, workers: int) -> int:
    """Free places in the window from which it is topped up: a quarter of it, but never so many
    that fewer bundles than workers remain in flight (a worker would wait for the client)."""
    return max(1, min(window // 4, window - workers))


class _Submitter:
    """Turns bundles into futures, keyed by the ``run`` token.

    Keys carry the token: a rerun on the same cluster must never reuse the key of a task the
    scheduler may still be forgetting (that loses the new future and the run hangs).
    """

    def __init__(self, client: Any, config: FeatureConfig, folder: Path, mode: str, retries: int) -> None:
        self.client = client
        self.config = PackedConfig.pack(config)  # pickled once, not once per task (engine.shipping)
        self.folder = folder
        self.mode = mode
        self.retries = retries
        self.run = uuid.uuid4().hex[:8]

    def _tag(self, job: Job) -> str:
        return f"{job.stem.replace('/', '.')}-{self.run}"  # output stems are unique within a run

    def submit(self, bundles: Sequence[list[Job]]) -> list[Any]:
        """One future per bundle: its list of per-experiment outcomes, or a chunked experiment's value.

        Whole bundles (one task computing their experiments in turn) go in one ``Client.map``; an
        experiment cut into chunks is a task per chunk and one that assembles them on a worker.
        """
        jobs = [chunked(b, self.mode) for b in bundles]
        whole = [b for b, job in zip(bundles, jobs, strict=True) if job is None]
        keys = [
            f"experiments-{self._tag(b[0])}-{len(b)}" if len(b) > 1 else f"experiment-{self._tag(b[0])}"
            for b in whole
        ]
        mapped = iter(
            self.client.map(
                call_packed,
                [compute_and_write] * len(whole),
                whole,
                [self.config] * len(whole),
                [self.folder] * len(whole),
                key=keys,
                retries=self.retries,
                pure=False,
            )
            if whole
            else []
        )
        return [next(mapped) if job is None else self._chunks(job) for job in jobs]

    def _chunks(self, job: ExperimentJob) -> Any:
        tag = self._tag(job)
        parts = [
            self.client.submit(
                call_with_config,
                run_chunk,
                job.experiment,
                self.config,
                source,
                start,
                stop,
                key=f"chunk-{tag}-{source}-{start}",
                retries=self.retries,
                pure=False,
            )
            for source, start, stop in job.chunks
        ]
        return self.client.submit(
            call_packed,
            assemble_and_write,
            job,
            self.config,
            parts,
            self.folder,
            key=f"assemble-{tag}",
            retries=self.retries,
            pure=False,
        )


def _values(client: Any, futures: list[Any]) -> list[Any]:
    """The results of finished ``futures``, fetched together; a future that fails gives a Failure."""
    gathered: dict[str, Any] = {}
    ready = [f for f in futures if f.status == "finished"]
    if len(ready) > 1:
        # Anything going wrong here (a worker lost after finishing) is sorted out one by one below.
        with contextlib.suppress(Exception):
            gathered = dict(zip([f.key for f in ready], client.gather(ready), strict=True))
    return [_unpack(gathered[f.key] if f.key in gathered else value_of(f)) for f in futures]


def _unpack(value: Any) -> Any:
    """A task's value as computed (see :func:`~dask_features.engine.shipping.call_packed`); one the
    client cannot read is that task's failure, as when ``distributed`` cannot deserialize it."""
    try:
        return unpacked(value)
    except Exception as exc:
        return Failure(f"cannot read the task's result: {type(exc).__name__}: {exc}")


def stream_distributed(
    client: Any,
    bundles: Iterator[list[Job]],
    config: FeatureConfig,
    folder: Path,
    mode: str,
    window: int,
    retries: int,
    *,
    workers: int = 1,
) -> Iterator[Outcome]:
    """Outcomes of ``bundles`` computed on a distributed cluster, at most ``window`` bundles in flight.

    ``mode`` is how a chunked experiment runs: ``"step"`` (a task per chunk) or ``"experiment"``
    (one task for the whole file). ``workers``: the cluster's workers (see :func:`refill_size`).
    """
    from distributed import as_completed

    submitter = _Submitter(client, config, folder, mode, retries)
    in_flight: dict[str, tuple[list[Job], float]] = {}
    # Results are fetched here, not by as_completed(with_results=True): a failure while fetching
    # then surfaces as its bundle's error instead of dying inside as_completed's coroutine.
    completed = as_completed()

    def submit(n: int) -> None:
        batch = list(itertools.islice(bundles, n))
        if not batch:
            return
        t0 = time.perf_counter()
        futures = submitter.submit(batch)
        for bundle, future in zip(batch, futures, strict=True):
            in_flight[future.key] = (bundle, t0)
        completed.update(futures)

    refill = refill_size(window, workers)
    submit(window)
    for finished in completed.batches():
        values = _values(client, finished)
        free = window - len(in_flight) + len(finished)
        if free >= refill:
            submit(free)  # before recording these results: the cluster keeps busy meanwhile
        for future, value in zip(finished, values, strict=True):
            bundle, t0 = in_flight.pop(future.key)
            wall = time.perf_counter() - t0
            yield from ((job, v, wall) for job, v in per_job(bundle, value))
        del finished, values, future, value  # the last references: the cluster frees the results
