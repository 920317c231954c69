"""Scheduling: Dask graphs of bundles of experiments, streamed back as each finishes.

Graph of an experiment cut into chunks (``mode="step"``)::

    run_chunk(exp, transfer, 0, 1000) ─┐
    run_chunk(exp, transfer, 1000, ..) ─┼─> safe_assemble(exp, config, chunks)  -> tables
    run_chunk(exp, transient, 0, 120)  ─┘

Experiments too small to fill a task (about 0.1 s of estimated work) are bundled: one
``run_bundle`` task computes several of them, so per-task scheduling cost stays small next to the
work. Each bundle is one ``dask.delayed`` graph computed as one future; at most ``window`` bundles
are in flight. The distributed stream takes finished ones with ``distributed.as_completed`` and
submits the next bundle, so memory stays flat however many experiments there are. Without a
distributed client the local schedulers run windows of ``window`` bundles.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import dask

from dask_features.config.schema import FeatureConfig
from dask_features.engine.cluster import local_cluster
from dask_features.engine.plan import ExperimentJob
from dask_features.engine.tasks import ExperimentTables, Failure, run_bundle, run_chunk, safe_assemble

__all__ = ["Outcome", "resolve_client", "stream_distributed", "stream_local", "worker_count"]

logger = logging.getLogger(__name__)

#: One experiment's outcome as streamed back: the job, its tables or failure, wall time [s].
Outcome = tuple[ExperimentJob, ExperimentTables | Failure, float]


def _graph(bundle: list[ExperimentJob], config: FeatureConfig, mode: str, run: str) -> Any:
    """Delayed graph of a bundle: a list of per-experiment values, or the value of one chunked experiment.

    Keys carry the ``run`` token: a rerun on the same cluster must never reuse the key of a task the
    scheduler may still be forgetting (that loses the new future and the run hangs).
    """
    tags = [f"{j.stem.replace('/', '.')}-{run}" for j in bundle]  # output stems are unique within a run
    # Handles and config enter the graph as opaque leaves: delayed would otherwise walk (and
    # rebuild on the worker) every field of these dataclasses for every task.
    leaves = [
        dask.delayed(j.experiment, name=f"handle-{t}", traverse=False)
        for j, t in zip(bundle, tags, strict=True)
    ]
    cfg_leaf = dask.delayed(config, name=f"config-{config.hash}-{tags[0]}", traverse=False)
    job, tag = bundle[0], tags[0]
    if len(bundle) > 1 or mode == "experiment" or len(job.chunks) == 1:
        # One task: several small experiments, or one experiment whose chunks run in sequence.
        name = f"experiments-{tag}-{len(bundle)}" if len(bundle) > 1 else f"experiment-{tag}"
        return dask.delayed(run_bundle, pure=False)(
            leaves, cfg_leaf, [j.chunks for j in bundle], dask_key_name=name
        )
    parts = [
        dask.delayed(run_chunk, pure=False)(
            leaves[0], cfg_leaf, source, start, stop, dask_key_name=f"chunk-{tag}-{source}-{start}"
        )
        for source, start, stop in job.chunks
    ]
    return dask.delayed(safe_assemble, pure=False)(
        leaves[0], cfg_leaf, parts, dask_key_name=f"assemble-{tag}"
    )


def _per_job(bundle: list[ExperimentJob], value: Any) -> Iterator[tuple[ExperimentJob, Any]]:
    """Pair a bundle's computed value (a list, or one value for a chunked experiment) with its jobs."""
    values = value if isinstance(value, list) else [value] * len(bundle)
    return zip(bundle, values, strict=True)


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
    if scheduler is None:
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


def stream_distributed(
    client: Any,
    bundles: Iterator[list[ExperimentJob]],
    config: FeatureConfig,
    mode: str,
    window: int,
    retries: int,
) -> Iterator[Outcome]:
    """Outcomes of ``bundles`` computed on a distributed cluster, ``window`` bundles in flight."""
    from distributed import as_completed

    run = uuid.uuid4().hex[:8]
    in_flight: dict[str, tuple[list[ExperimentJob], float]] = {}
    # Results are fetched here, not by as_completed(with_results=True): a failure while gathering
    # then surfaces as this bundle's error instead of dying inside as_completed's coroutine.
    completed = as_completed()

    def submit() -> bool:
        bundle = next(bundles, None)
        if bundle is None:
            return False
        future = client.compute(_graph(bundle, config, mode, run), retries=retries, optimize_graph=False)
        in_flight[future.key] = (bundle, time.perf_counter())
        completed.add(future)
        return True

    for _ in range(window):
        if not submit():
            break
    for future in completed:
        bundle, t0 = in_flight.pop(future.key)
        try:
            value = future.result()
        except BaseException as exc:  # task error, worker lost beyond retries, cancellation
            if isinstance(exc, KeyboardInterrupt):
                raise
            value = Failure(f"task failed: {type(exc).__name__}: {exc}")
        submit()  # keep the cluster busy while these results are written
        wall = time.perf_counter() - t0
        yield from ((job, v, wall) for job, v in _per_job(bundle, value))
        del future, value  # drop the last reference so the cluster frees the result


def stream_local(
    bundles: Iterator[list[ExperimentJob]],
    config: FeatureConfig,
    mode: str,
    window: int,
    scheduler: str,
    workers: int | None,
) -> Iterator[Outcome]:
    """Outcomes of ``bundles`` computed by a local scheduler, ``window`` bundles at a time."""
    run = uuid.uuid4().hex[:8]
    pool = ProcessPoolExecutor(max_workers=workers) if scheduler == "processes" else None
    kwargs: dict[str, Any] = {"scheduler": scheduler}
    if pool is not None:
        kwargs["pool"] = pool
    elif scheduler == "threads" and workers:
        kwargs["num_workers"] = workers
    try:
        while batch := list(itertools.islice(bundles, window)):
            t0 = time.perf_counter()
            values = dask.compute(
                *[_graph(b, config, mode, run) for b in batch], optimize_graph=False, **kwargs
            )
            wall = time.perf_counter() - t0
            for bundle, value in zip(batch, values, strict=True):
                yield from ((job, v, wall) for job, v in _per_job(bundle, value))
    finally:
        if pool is not None:
            pool.shutdown()
