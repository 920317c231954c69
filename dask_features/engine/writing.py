"""Tasks publish their own experiment's Parquet files; the client only records what was written.

With hundreds of workers, a client that encodes and writes every experiment's tables itself becomes
the bottleneck (measured by ``benchmarks/bench_consumer.py``). So the task that finishes an
experiment also writes it, with the same guarantees as before:

* the source file is checked to be unchanged since it was planned, right before publishing;
* every file is written to a temporary of its writer and renamed into place, the ``steps`` file
  last (it marks completion), so nothing partial is ever visible;
* the task returns a small :class:`Written` record (the steps file, the error rows, timings); the
  client files it in the result and the catalog, in the order experiments complete.

The config's output folder is claimed by the client for the whole run
(:func:`dask_features.engine.versions.claim_version`) before any task starts.

A task given a :class:`~dask_features.engine.plan.FileJob` opens and checks the file itself (the
same checks and messages as the client's plan) and returns what the client needs to report it: the
identity columns and any warnings, or a :class:`PlanFailure` worded as the plan would have.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from dask_features.config.schema import FeatureConfig
from dask_features.engine.output import identity_values, write_tables
from dask_features.engine.plan import ExperimentJob, FileJob, Job, failure_reason, make_job, missing_steps
from dask_features.engine.tasks import (
    NO_ERRORS,
    ChunkResult,
    ExperimentTables,
    Failure,
    run_experiment,
    safe_assemble,
)
from dask_features.errors import DaskFeaturesError, OutputError, SourceChangedError
from dask_features.io.opening import inspect_experiment

__all__ = [
    "PlanFailure",
    "WriteFailure",
    "Written",
    "assemble_and_write",
    "compute_and_write",
    "open_job",
    "write_outcome",
]


@dataclass
class Written:
    """One experiment whose files are published.

    Attributes
    ----------
    steps_file : Path
        The steps file (its companions sit next to it).
    errors : pyarrow.Table
        Per-step problems (values NaN), without identity columns.
    compute_seconds : float
        CPU time of its computation [s].
    n_steps : int
        Rows of the steps table.
    ids : dict
        Its identity columns (``chip_id``, ``device_id``, ``test_id``) as written.
    warnings : tuple of Warning
        Warnings of opening the file in the task (the client emits them).
    """

    steps_file: Path
    errors: pa.Table
    compute_seconds: float
    n_steps: int
    ids: dict[str, str] = field(default_factory=dict)
    warnings: tuple[Warning, ...] = ()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # The client unpickles one of these per experiment: an empty Arrow table cost it ~65 us
        # and a Path ~10 us of its ~0.2 ms per experiment (benchmarks/bench_consumer.py), and most
        # experiments have no error rows (their table is the shared NO_ERRORS).
        errors = None if self.errors is NO_ERRORS else self.errors
        return _written, (
            str(self.steps_file),
            errors,
            self.compute_seconds,
            self.n_steps,
            self.ids,
            self.warnings,
        )


def _written(steps_file: str, errors: pa.Table | None, *rest: Any) -> Written:
    return Written(Path(steps_file), NO_ERRORS if errors is None else errors, *rest)


@dataclass
class WriteFailure:
    """Computed, but not published; ``reason`` names the file."""

    reason: str


@dataclass
class PlanFailure:
    """A file its task could not open or plan; ``reason`` names the file, as the client's plan would."""

    reason: str
    detail: str = ""


def open_job(
    job: FileJob, config: FeatureConfig, *, keep_open: bool = False
) -> tuple[ExperimentJob, tuple[Warning, ...]] | PlanFailure:
    """Open and plan ``job``'s file inside its task, with the checks the client's plan runs.

    ``keep_open=True``: the planned experiment keeps the file it was checked on open for its first
    read (:meth:`~dask_features.io.hdf5.Experiment.lend`); the caller must release it
    (:meth:`~dask_features.io.hdf5.Experiment.release`) when done with it.
    """
    experiment = None
    try:
        experiment, found = inspect_experiment(
            job.path, allow_external_in=job.allow_external_in, sources=config.sources, keep_open=keep_open
        )
        why = missing_steps(experiment, config)
        if why is not None:
            return PlanFailure(why)
        planned = make_job(experiment, config, job.stem, job.chunk_steps, job.source)
        experiment = None  # handed over with the job: its file is the caller's to release
        return planned, found
    except (DaskFeaturesError, OSError) as exc:
        return PlanFailure(failure_reason(job.path, exc))
    except Exception as exc:  # a bug, not the file's fault: this file fails, not the whole task
        return PlanFailure(
            f"{job.path}: cannot be opened: {type(exc).__name__}: {exc}", traceback.format_exc()
        )
    finally:
        if experiment is not None:  # not planned: nothing will read it
            experiment.release()


def write_outcome(
    job: ExperimentJob,
    value: ExperimentTables | Failure,
    config: FeatureConfig,
    folder: Path,
    found: tuple[Warning, ...] = (),
) -> Written | WriteFailure | Failure:
    """Publish one computed experiment, unless it failed or its file changed since it was planned.

    ``found``: warnings of opening the file in this task, handed to the client with the result.
    """
    if not isinstance(value, ExperimentTables):
        return value
    path = job.experiment.path
    assert job.source is not None  # the plan records every file's identity
    # Hashed here, in the task, not on the client's serial plan path.
    source = job.source.confirmed(path)
    if source is None:
        return WriteFailure(
            str(SourceChangedError(f"{path}: the file changed while it was extracted; results not written"))
        )
    tables = {"steps": value.steps, "cycles": value.cycles, "errors": value.errors}
    ids = identity_values(job.experiment, job.stem)
    try:
        steps_file = write_tables(folder, config, job.experiment, job.stem, source, tables, ids)
    except OutputError as exc:
        return WriteFailure(str(exc))
    return Written(steps_file, value.errors, value.compute_seconds, value.n_steps, ids, found)


def compute_and_write(
    bundle: Sequence[Job], config: FeatureConfig, folder: Path
) -> list[Written | WriteFailure | Failure | PlanFailure]:
    """One task: each experiment of ``bundle`` in turn opened if needed, computed (chunks in
    sequence) and published, so one experiment's tables are in memory at a time and each one's
    files appear as soon as it is done."""
    return [_compute_and_write_one(job, config, folder) for job in bundle]


def _compute_and_write_one(
    job: Job, config: FeatureConfig, folder: Path
) -> Written | WriteFailure | Failure | PlanFailure:
    # A file opened here stays open for its first read (no second open and lookup); closed at the
    # latest when its computation ends, whatever happens, so no file outlives its task.
    opened = open_job(job, config, keep_open=True) if isinstance(job, FileJob) else (job, ())
    if isinstance(opened, PlanFailure):
        return opened
    planned, found = opened
    try:
        value = run_experiment(planned.experiment, config, planned.chunks)
    finally:
        planned.experiment.release()
    return write_outcome(planned, value, config, folder, found)


def assemble_and_write(
    job: ExperimentJob, config: FeatureConfig, parts: Sequence[ChunkResult], folder: Path
) -> Written | WriteFailure | Failure:
    """The last task of a chunked experiment: join its chunks and publish it."""
    return write_outcome(job, safe_assemble(job.experiment, config, parts), config, folder)
