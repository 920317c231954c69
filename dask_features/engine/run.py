"""``extract``: plan, schedule, stream results to Parquet.

Graph of an experiment cut into chunks (``mode="step"``)::

    run_chunk(exp, transfer, 0, 1000) ─┐
    run_chunk(exp, transfer, 1000, ..) ─┼─> safe_assemble(exp, config, chunks)  -> tables
    run_chunk(exp, transient, 0, 120)  ─┘

Experiments too small to fill a task (about 0.1 s of estimated work) are bundled: one
``run_bundle`` task computes several of them, so per-task scheduling cost stays small next to the
work. Each bundle is one ``dask.delayed`` graph computed as one future; at most ``max_in_flight``
bundles are in flight. A consumer takes finished ones with ``distributed.as_completed``, writes each
experiment's Parquet files atomically, records it in the catalog, frees it and submits the next
bundle, so memory stays flat however many experiments there are. With ``mode="experiment"`` each
experiment is one task. Without a distributed client the local schedulers run windows of
``max_in_flight`` bundles.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dask
import pandas as pd

from dask_features.config.schema import FeatureConfig, load_config
from dask_features.engine.cluster import local_cluster
from dask_features.engine.output import is_complete, unique_stem, write_tables
from dask_features.engine.plan import ExperimentJob, bundle_jobs, expand_inputs, make_job, open_item
from dask_features.engine.tasks import (
    ERROR_COLUMNS,
    ExperimentTables,
    Failure,
    run_bundle,
    run_chunk,
    safe_assemble,
)
from dask_features.errors import DaskFeaturesError, OutputError
from dask_features.io.hdf5 import Experiment

__all__ = ["ExtractionResult", "extract"]

logger = logging.getLogger(__name__)

Scheduler = Literal["threads", "processes", "sync", "distributed"]


@dataclass
class ExtractionResult:
    """What :func:`extract` did.

    Attributes
    ----------
    config_name, config_hash : str
        The config that was run.
    out_dir : Path
        Output folder.
    successful : dict
        Source path -> steps Parquet file written in this run.
    failed : dict
        Source path -> reason, for experiments with no output.
    skipped : list of str
        Source paths whose output was already complete (same config hash, unchanged file).
    timings : dict
        Source path -> wall time [s] from submission to written output.
    compute_seconds : dict
        Source path -> CPU time of its tasks [s].
    errors : pandas.DataFrame
        Per-step problems of successful experiments: ``source_file, test_id, step_index, feature,
        message`` (the step's value is NaN).
    total_seconds : float
        Wall time of the whole call [s].
    """

    config_name: str
    config_hash: str
    out_dir: Path
    successful: dict[str, Path] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    compute_seconds: dict[str, float] = field(default_factory=dict)
    errors: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=_ERROR_COLUMNS))
    total_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no experiment failed."""
        return not self.failed

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [
            f"config {self.config_name} ({self.config_hash}): {len(self.successful)} written, "
            f"{len(self.skipped)} skipped (up to date), {len(self.failed)} failed in {self.total_seconds:.1f} s",
            f"output: {self.out_dir / self.config_name}",
        ]
        if len(self.errors):
            lines.append(f"{len(self.errors)} step-level problem(s) recorded (values NaN); see result.errors")
        lines.extend(f"FAILED {path}: {reason}" for path, reason in self.failed.items())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<ExtractionResult {self.summary().splitlines()[0]}>"


_ERROR_COLUMNS = ["source_file", "test_id", *ERROR_COLUMNS]


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


def _resolve_client(
    client: Any, scheduler: str | None, workers: int | None
) -> tuple[Any, Callable[[], None]]:
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


def _progress(total: int, desc: str, enabled: bool | None) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total, desc=desc, unit="exp", disable=(None if enabled is None else not enabled), leave=True
    )


def extract(
    data: Any,
    config: FeatureConfig | Mapping[str, Any] | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    client: Any = None,
    scheduler: Scheduler | None = None,
    workers: int | None = None,
    mode: Literal["step", "experiment"] = "step",
    chunk_steps: int | Literal["auto"] = "auto",
    force: bool = False,
    catalog: Any = None,
    max_in_flight: int | None = None,
    retries: int = 2,
    progress: bool | None = None,
) -> ExtractionResult:
    """Extract features from experiment files and write one Parquet file per experiment.

    Parameters
    ----------
    data : path, folder, Experiment or iterable of these
        What to process; folders are searched recursively for ``*.h5``. A catalog query's result
        (a list of :class:`~dask_features.Experiment`) works as is.
    config : FeatureConfig, dict, str or path
        Feature config: a preset name, a YAML path, a dict or a loaded config. Validated before any
        work starts.
    out_dir : str or path
        Output folder (layout in :mod:`dask_features.engine.output`).
    client : distributed.Client or str, optional
        A client, or a scheduler address to connect to. Default: the current default client if
        there is one, else a local scheduler.
    scheduler : {"threads", "processes", "sync", "distributed"}, optional
        Without a client: which local scheduler; ``"distributed"`` starts a ``LocalCluster`` with
        ``workers`` worker processes for this call.
    workers : int, optional
        Worker count for ``scheduler="processes"`` / ``"distributed"``.
    mode : {"step", "experiment"}, default "step"
        ``"step"``: one task per chunk of steps, chunks of all experiments in flight interleave;
        ``"experiment"``: one task per experiment. Outputs are identical.
    chunk_steps : int or "auto", default "auto"
        Steps per task (see :mod:`dask_features.engine.plan`).
    force : bool, default False
        Recompute experiments whose output is already up to date.
    catalog : Catalog or path, optional
        Record every extraction (output path, time, status) in this catalog.
    max_in_flight : int, optional
        Tasks (a chunked experiment, or a bundle of small ones) computed at once; bounds memory.
        Default: twice the worker count, at least 4.
    retries : int, default 2
        Task retries on a distributed cluster (e.g. after a worker was killed).
    progress : bool, optional
        Show a progress bar over experiments; ``None`` shows it on a terminal or in Jupyter only.

    Returns
    -------
    ExtractionResult

    Raises
    ------
    ConfigError
        The config is invalid (nothing is run).
    OutputError
        ``out_dir`` cannot be created or written.
    """
    t_start = time.perf_counter()
    cfg = load_config(config)
    if mode not in ("step", "experiment"):
        raise ValueError(f"mode must be 'step' or 'experiment', got {mode!r}")
    if chunk_steps != "auto" and (not isinstance(chunk_steps, int) or chunk_steps < 1):
        raise ValueError(f"chunk_steps must be a positive integer or 'auto', got {chunk_steps!r}")
    out = Path(out_dir)
    if not out.is_dir():  # an existing folder is checked when something needs writing (read-only is fine)
        _check_writable(out)
    result = ExtractionResult(cfg.name, cfg.hash, out)
    items, root = expand_inputs(data)
    cat = _open_catalog(catalog)
    dask_client, close = _resolve_client(client, scheduler, workers)
    n_workers = _worker_count(dask_client, workers)
    window = max_in_flight or max(4, 2 * n_workers)
    bar = _progress(len(items), cfg.name, progress)

    def fail(path: str, reason: str, wall: float | None = None) -> None:
        result.failed[path] = reason
        logger.error("%s", reason)
        _record(cat, path, cfg, None, "failed", wall, reason)
        bar.update()

    stems: dict[str, str] = {}

    def jobs() -> Iterator[ExperimentJob]:
        # Files are opened here, lazily, so the client checks the next files while workers compute.
        for item in items:
            path = item.path if isinstance(item, Experiment) else item
            try:
                job = make_job(open_item(item), cfg, root, chunk_steps)
            except (DaskFeaturesError, OSError) as exc:
                fail(path, str(exc))
                continue
            first = stems.setdefault(job.stem, path)
            if first != path:
                # "a b.h5" and "a_b.h5" sanitise alike: never let one output replace another.
                stem = unique_stem(job.stem, path, root)
                logger.warning(
                    "%s and %s map to the output name %r; the second is written as %r",
                    first,
                    path,
                    job.stem,
                    stem,
                )
                job = dataclasses.replace(job, stem=stem)
                stems[stem] = path
            missing = [s for s in cfg.sources if _n_steps(job, s) == 0]
            if len(missing) == len(cfg.sources):
                fail(path, f"{path}: no {' or '.join(missing)} steps, which config {cfg.name!r} needs")
            elif not force and is_complete(out, cfg, job.experiment, job.stem):
                result.skipped.append(path)
                bar.total -= 1  # the ETA is over work to do: up-to-date experiments are not part of it
                bar.refresh()
            else:
                _check_writable(out)
                yield job

    errors: list[pd.DataFrame] = []
    try:
        # "step" mode bundles small experiments into one task; "experiment" mode is one task each.
        bundles = bundle_jobs(jobs()) if mode == "step" else ([job] for job in jobs())
        stream = (
            _stream_distributed(dask_client, bundles, cfg, mode, window, retries)
            if dask_client is not None
            else _stream_local(bundles, cfg, mode, window, scheduler or "threads", workers)
        )
        for job, value, wall in stream:
            path = job.experiment.path
            result.timings[path] = wall
            if not isinstance(value, ExperimentTables):
                if value.detail:
                    logger.debug("%s: %s", path, value.detail)  # the worker-side traceback
                fail(path, f"{path}: {value.reason}", wall)
                continue
            try:
                written = write_tables(
                    out, cfg, job.experiment, job.stem, value.steps, value.cycles, value.errors
                )
            except OutputError as exc:
                fail(path, str(exc), wall)
                continue
            result.successful[path] = written
            result.compute_seconds[path] = value.compute_seconds
            if value.errors.num_rows:
                frame = value.errors.to_pandas()
                frame.insert(0, "test_id", job.experiment.test_id)
                frame.insert(0, "source_file", path)
                errors.append(frame)
            _record(cat, path, cfg, written, "partial" if value.errors.num_rows else "success", wall, None)
            bar.update()
    finally:
        bar.close()
        close()
    if errors:
        result.errors = pd.concat(errors, ignore_index=True)[_ERROR_COLUMNS]
    result.total_seconds = time.perf_counter() - t_start
    logger.debug("%s", result.summary())  # callers print it; at INFO the CLI would show it twice
    return result


def _n_steps(job: ExperimentJob, source: str) -> int:
    exp = job.experiment
    return exp.n_transfer_steps if source == "transfer" else exp.n_transient_steps


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out}: {exc}") from exc
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {out} is not writable")


def _worker_count(client: Any, workers: int | None) -> int:
    if client is not None:
        with contextlib.suppress(Exception):
            return max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
        return 1
    return workers or os.cpu_count() or 1


def _stream_distributed(
    client: Any,
    bundles: Iterator[list[ExperimentJob]],
    config: FeatureConfig,
    mode: str,
    window: int,
    retries: int,
) -> Iterator[tuple[ExperimentJob, ExperimentTables | Failure, float]]:
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


def _stream_local(
    bundles: Iterator[list[ExperimentJob]],
    config: FeatureConfig,
    mode: str,
    window: int,
    scheduler: str,
    workers: int | None,
) -> Iterator[tuple[ExperimentJob, ExperimentTables | Failure, float]]:
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


def _open_catalog(catalog: Any) -> Any:
    if catalog is None or hasattr(catalog, "record_extraction"):
        return catalog
    from dask_features.catalog import Catalog

    return Catalog(catalog)


def _record(
    cat: Any,
    path: str,
    cfg: FeatureConfig,
    output: Path | None,
    status: str,
    seconds: float | None,
    message: str | None,
) -> None:
    if cat is None:
        return
    try:
        cat.record_extraction(
            path,
            cfg.name,
            cfg.hash,
            None if output is None else str(output),
            status,
            seconds=seconds,
            message=message,
        )
    except Exception as exc:  # the catalog is bookkeeping: never lose results over it
        logger.warning("could not record %s in the catalog: %s", path, exc)
