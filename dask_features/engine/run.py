"""``extract``: plan, stream, write.

* **plan** (:func:`_plan`): list the inputs, give each a safe unique output name, skip the ones whose
  output is up to date (same config version, same file content), open the others and cut them into
  chunks, recording each file's stat signature (the task that writes hashes the file). Runs lazily,
  so the client opens the next files while workers compute. When tasks run whole files, the
  client opens only the first file and the tasks open the others (:class:`FileJob`).
* **stream** (:mod:`dask_features.engine.streams`): bundles of jobs computed on a distributed
  cluster or a local scheduler, each experiment's tables coming back as soon as they are done.
* **write** (:mod:`dask_features.engine.writing`, inside the task that finishes an experiment):
  check that the source file did not change since it was planned, then publish the experiment's
  Parquet files atomically; the client only records the outcome (:func:`_record`).

A :class:`~dask_features.engine.results.Bookkeeper` records every outcome (result, catalog, progress
bar).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dask_features.config.schema import FeatureConfig, load_config
from dask_features.engine.client_stream import (
    cluster_window,
    resolve_client,
    stream_distributed,
    worker_count,
)
from dask_features.engine.identity import SourceIdentity
from dask_features.engine.names import output_stems
from dask_features.engine.output import is_complete
from dask_features.engine.plan import (
    TARGET_TASK_SECONDS,
    DataInput,
    ExperimentJob,
    FileJob,
    Job,
    bundle_jobs,
    bundle_size_cap,
    distributed_task_seconds,
    expand_inputs,
    failure_reason,
    item_path,
    make_job,
    missing_steps,
    open_item,
)
from dask_features.engine.results import Bookkeeper, ExtractionResult, progress_bar
from dask_features.engine.streams import Outcome, choose_local_scheduler, stream_local
from dask_features.engine.tasks import Failure
from dask_features.engine.versions import claim_version
from dask_features.engine.writing import PlanFailure, WriteFailure
from dask_features.errors import DaskFeaturesError, InvalidArgumentError, OutputError
from dask_features.io._safety import allowed_folder
from dask_features.io.hdf5 import Experiment

if TYPE_CHECKING:
    from distributed import Client

    from dask_features.catalog import Catalog

__all__ = ["DataInput", "ExtractionResult", "extract"]

logger = logging.getLogger(__name__)

Scheduler = Literal["threads", "processes", "sync", "distributed"]


@dataclasses.dataclass(frozen=True)
class _Settings:
    """The options of one :func:`extract` call that the plan and stream stages use."""

    config: FeatureConfig
    folder: Path
    root: str | None
    mode: str
    chunk_steps: int | str
    force: bool
    #: How the stream runs a chunked experiment (:func:`_split_mode`); the plan follows it.
    split: str = "step"

    @property
    def defer_open(self) -> bool:
        """Tasks open the files (whole-file tasks); the client opens only the first one."""
        return self.split == "experiment"


def _plan(items: list[str | Experiment], settings: _Settings, book: Bookkeeper) -> Iterator[Job]:
    """Jobs of the experiments to compute; up-to-date and unreadable ones go to ``book``.

    With ``settings.defer_open``, files after the first one that opens are not opened here: their
    task opens them (:class:`FileJob`, same checks and messages), and their work is estimated from
    their size at the first file's seconds per byte (it only groups small files into tasks).
    """
    cfg = settings.config
    stems = output_stems([item_path(i) for i in items], settings.root)
    allowed = allowed_folder()  # what this process allows, resolved here for the workers
    allow_in = os.path.realpath(allowed) if allowed else ""
    checked = False
    per_byte: float | None = None  # estimated work per file byte [s], from the first opened file
    for item in items:
        path = item_path(item)
        stem = stems[path]
        if not settings.force and is_complete(settings.folder, cfg, path, stem):
            book.skipped(path)
            continue
        job: Job
        try:
            identity = SourceIdentity.planned(path)  # hashed by the task that writes
            if per_byte is not None and isinstance(item, str):
                job = FileJob(path, stem, per_byte * identity.size, identity, settings.chunk_steps, allow_in)
            else:
                job = make_job(open_item(item, cfg.sources), cfg, stem, settings.chunk_steps, identity)
        except (DaskFeaturesError, OSError) as exc:
            book.failed(path, failure_reason(path, exc))
            continue
        if isinstance(job, ExperimentJob):
            why = missing_steps(job.experiment, cfg)
            if why is not None:
                book.failed(path, why)
                continue
            if settings.defer_open and per_byte is None:
                per_byte = job.seconds / max(identity.size, 1)
        if (
            not checked
        ):  # once, when the first experiment needs writing (a read-only folder is fine until then)
            _check_writable(settings.folder.parent)
            checked = True
        yield job


def _stream(
    jobs: Iterator[Job],
    settings: _Settings,
    client: Any,
    scheduler: str | None,
    options: Mapping[str, Any],
    book: Bookkeeper,
) -> Iterator[Outcome]:
    """Outcomes of ``jobs`` from the distributed ``client`` or a local scheduler."""
    caller_runs = False  # this process computes too: only where the automatic choice says so
    if client is not None:
        book.result.scheduler = "distributed client"
    elif scheduler is None:
        first = next(jobs, None)
        if first is None:
            return
        jobs = itertools.chain([first], jobs)
        assert isinstance(first, ExperimentJob)  # the plan opens the first file itself
        choice = choose_local_scheduler(first, settings.config, options["n_items"], options["workers"])
        scheduler, caller_runs = choice.scheduler, choice.caller_runs
        book.result.scheduler = f"{scheduler} ({choice.why})"
        logger.info("local scheduler: %s", book.result.scheduler)
    else:
        book.result.scheduler = f"{scheduler} (asked for)"
    n_workers = options["n_workers"]
    # "step" mode bundles small experiments into one task; "experiment" mode is one task each.
    most = bundle_size_cap(options["n_items"], n_workers)
    target = distributed_task_seconds(n_workers) if client is not None else TARGET_TASK_SECONDS
    bundles = bundle_jobs(jobs, target, most) if settings.mode == "step" else ([job] for job in jobs)
    if client is not None:
        window = options["max_in_flight"] or cluster_window(n_workers, settings.split)
        yield from stream_distributed(
            client,
            bundles,
            settings.config,
            settings.folder,
            settings.split,
            window,
            options["retries"],
            workers=n_workers,
        )
        return
    assert scheduler is not None  # chosen above when not given
    window = options["max_in_flight"] or max(4, 2 * n_workers)
    yield from stream_local(
        bundles,
        settings.config,
        settings.folder,
        settings.split,
        window,
        scheduler,
        options["workers"],
        caller_runs=caller_runs,
    )


#: Inputs per worker from which automatic chunking no longer splits an experiment into tasks.
WHOLE_FILES_PER_WORKER = 4


def _split_mode(settings: _Settings, n_items: int, n_workers: int) -> str:
    """How the stream runs a chunked experiment: ``"step"`` (a task per chunk) or ``"experiment"``.

    With automatic chunking and at least :data:`WHOLE_FILES_PER_WORKER` inputs per worker, whole
    files already keep every worker busy: one task per experiment (its chunks in sequence, same
    results) saves the chunk and assemble tasks' scheduling and transfers, which on a small
    machine compete with the workers for the cores (measured: v2_transfer_basic on 8 x 5,000 steps,
    2 workers, about a third less client and worker CPU).
    """
    if (
        settings.mode == "step"
        and settings.chunk_steps == "auto"
        and n_items >= WHOLE_FILES_PER_WORKER * n_workers
    ):
        return "experiment"
    return settings.mode


def _record(outcome: Outcome, book: Bookkeeper) -> None:
    """File one experiment's outcome; its task already published its files (or failed)."""
    job, value, wall = outcome
    path = job.path
    if isinstance(value, PlanFailure):  # its task opened the file: reported as the plan reports it
        if value.detail:
            logger.debug("%s: %s", path, value.detail)
        book.failed(path, value.reason)
    elif isinstance(value, Failure):
        if value.detail:
            logger.debug("%s: %s", path, value.detail)  # the worker-side traceback
        book.failed(path, f"{path}: {value.reason}", wall)
    elif isinstance(value, WriteFailure):
        book.failed(path, value.reason, wall)
    else:
        for found in value.warnings:  # raised where the task opened the file: shown here
            warnings.warn(found, stacklevel=2)
        book.written(path, value.steps_file, value, wall, value.ids)


def _check_options(mode: str, chunk_steps: object) -> None:
    if mode not in ("step", "experiment"):
        raise InvalidArgumentError(f"mode must be 'step' or 'experiment', got {mode!r}")
    if chunk_steps != "auto" and (not isinstance(chunk_steps, int) or chunk_steps < 1):
        raise InvalidArgumentError(f"chunk_steps must be a positive integer or 'auto', got {chunk_steps!r}")


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out}: {exc}") from exc
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {out} is not writable")


def _work_sizes(items: list[str | Experiment]) -> dict[str, int]:
    """Source path -> file size [bytes], the progress bar's measure of each experiment's work."""
    sizes = {}
    for item in items:
        path = item_path(item)
        try:
            sizes[path] = max(1, os.path.getsize(path))
        except OSError:
            sizes[path] = 1  # reported as a failure by the planner
    return sizes


def _open_catalog(catalog: Catalog | str | os.PathLike[str] | None) -> Catalog | None:
    if catalog is None:
        return None  # without importing the catalog package (SQLite, pandas)
    from dask_features.catalog import Catalog

    if isinstance(catalog, Catalog):
        return catalog
    return Catalog(catalog)


def extract(
    data: DataInput,
    config: FeatureConfig | Mapping[str, Any] | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    client: Client | str | None = None,
    scheduler: Scheduler | None = None,
    workers: int | None = None,
    mode: Literal["step", "experiment"] = "step",
    chunk_steps: int | Literal["auto"] = "auto",
    force: bool = False,
    catalog: Catalog | str | os.PathLike[str] | None = None,
    max_in_flight: int | None = None,
    retries: int = 2,
    progress: bool | None = None,
) -> ExtractionResult:
    """Extract features from experiment files and write one Parquet file per experiment and table.

    Parameters
    ----------
    data : path, folder, Experiment or iterable of these
        What to process; folders are searched recursively for ``*.h5``. A catalog query's result
        (a list of :class:`~dask_features.Experiment`) works as is.
    config : FeatureConfig, dict, str or path
        Feature config: a preset name, a YAML path, a dict or a loaded config. Validated (including
        its output columns) before any work starts.
    out_dir : str or path
        Output folder (layout in :mod:`dask_features.engine.output`). Outputs of an earlier version
        of the same config are moved to ``out_dir/_versions/`` first, never mixed with these.
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
        Tasks (a chunked experiment, or a bundle of small ones) in flight at once; bounds memory.
        Default: twice the worker count, at least 4; on a cluster running whole files (one task
        per file or bundle), four times.
    retries : int, default 2
        Task retries on a distributed cluster (e.g. after a worker was killed).
    progress : bool, optional
        Show a progress bar over the run's data (bytes of the files to extract); ``None`` shows it on a terminal or in Jupyter only.

    Returns
    -------
    ExtractionResult

    Raises
    ------
    ConfigError
        The config is invalid, or two features would write the same column (nothing is run).
    InvalidArgumentError
        ``mode`` or ``chunk_steps`` is not accepted.
    ExperimentNotFoundError
        (a ``FileNotFoundError``) A folder in ``data`` holds no ``*.h5`` / ``*.hdf5`` file.
    OutputError
        ``out_dir`` cannot be created or written.
    OutputBusyError
        Another extraction is writing a different version of this config into ``out_dir``.
    """
    t_start = time.perf_counter()
    cfg = load_config(config)
    _check_options(mode, chunk_steps)
    items, root = expand_inputs(data)  # a wrong input fails before anything is created
    out = Path(out_dir).absolute()  # workers (any cwd) write there themselves
    if not out.is_dir():  # an existing folder is checked once something needs writing (read-only is fine)
        _check_writable(out)
    result = ExtractionResult(cfg.name, cfg.hash, out)
    work = _work_sizes(items)
    bar = progress_bar(sum(work.values()), cfg.name, progress)
    book = Bookkeeper(result, cfg, _open_catalog(catalog), bar, work)
    dask_client, close = resolve_client(client, scheduler, workers)
    try:
        n_workers = worker_count(dask_client, workers)
        options: dict[str, Any] = {
            "workers": workers,
            "max_in_flight": max_in_flight,
            "retries": retries,
            "n_items": len(items),
            "n_workers": n_workers,
        }
        with claim_version(out, cfg) as folder:
            settings = _Settings(cfg, folder, root, mode, chunk_steps, force)
            # Whole-file tasks open their files themselves: the client's serial opening (10-20 ms
            # a file) no longer competes with the workers or limits how many it can feed.
            settings = dataclasses.replace(settings, split=_split_mode(settings, len(items), n_workers))
            for outcome in _stream(
                _plan(items, settings, book), settings, dask_client, scheduler, options, book
            ):
                _record(outcome, book)
    finally:
        close()
        book.finish(time.perf_counter() - t_start)
    return result
