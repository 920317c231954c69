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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from dask_features.config.schema import FeatureConfig
from dask_features.engine.output import write_tables
from dask_features.engine.plan import ExperimentJob
from dask_features.engine.tasks import ChunkResult, ExperimentTables, Failure, run_bundle, safe_assemble
from dask_features.errors import OutputError, SourceChangedError

__all__ = ["WriteFailure", "Written", "assemble_and_write", "compute_and_write", "write_outcome"]


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
    """

    steps_file: Path
    errors: pa.Table
    compute_seconds: float
    n_steps: int


@dataclass
class WriteFailure:
    """Computed, but not published; ``reason`` names the file."""

    reason: str


def write_outcome(
    job: ExperimentJob, value: ExperimentTables | Failure, config: FeatureConfig, folder: Path
) -> Written | WriteFailure | Failure:
    """Publish one computed experiment, unless it failed or its file changed since it was planned."""
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
    try:
        steps_file = write_tables(folder, config, job.experiment, job.stem, source, tables)
    except OutputError as exc:
        return WriteFailure(str(exc))
    return Written(steps_file, value.errors, value.compute_seconds, value.n_steps)


def compute_and_write(
    bundle: Sequence[ExperimentJob], config: FeatureConfig, folder: Path
) -> list[Written | WriteFailure | Failure]:
    """One task: every experiment of ``bundle`` computed (chunks in sequence) and published."""
    values = run_bundle([j.experiment for j in bundle], config, [j.chunks for j in bundle])
    return [write_outcome(j, v, config, folder) for j, v in zip(bundle, values, strict=True)]


def assemble_and_write(
    job: ExperimentJob, config: FeatureConfig, parts: Sequence[ChunkResult], folder: Path
) -> Written | WriteFailure | Failure:
    """The last task of a chunked experiment: join its chunks and publish it."""
    return write_outcome(job, safe_assemble(job.experiment, config, parts), config, folder)
