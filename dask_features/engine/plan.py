"""Which experiments to run and how to cut them into chunks of steps.

A task must carry enough work to pay for its scheduling (3-7 ms per task on a LocalCluster here)
and for the per-call overhead of the vectorised extractors. The automatic chunk size aims at
:data:`TARGET_TASK_SECONDS` of estimated work per task from the number of data points per step and
each extractor's declared ``cost``; small experiments become a single chunk. Chunk boundaries
depend only on the experiment and the config (never on the number of workers), so results are the
same on 1 or 100 workers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias, TypeVar

from dask_features.config.schema import FeatureConfig
from dask_features.engine.identity import SourceIdentity
from dask_features.errors import ExperimentNotFoundError, InputTypeError
from dask_features.io.hdf5 import Experiment
from dask_features.io.opening import open_experiment
from dask_features.io.sources import get_source

__all__ = [
    "DataInput",
    "ExperimentJob",
    "FileJob",
    "Job",
    "bundle_jobs",
    "bundle_size_cap",
    "chunk_ranges",
    "distributed_task_seconds",
    "expand_inputs",
    "failure_reason",
    "item_path",
    "make_job",
    "missing_steps",
    "open_item",
    "plan_chunks",
]

#: What :func:`~dask_features.extract` reads: files, folders, handles, or (nested) iterables of these.
DataInput: TypeAlias = "str | os.PathLike[str] | Experiment | Iterable[DataInput]"

#: Estimated work per task the automatic chunking aims at [s].
TARGET_TASK_SECONDS = 0.1
#: Cost of reading and decompressing one data point [ns] (measured: 29-35 with gzip + shuffle + fletcher32).
READ_COST_NS = 32.0
#: Cap on the raw data one chunk holds in memory [bytes].
MAX_CHUNK_BYTES = 256 * 2**20
_FILE_SUFFIXES = (".h5", ".hdf5")


#: Most experiments one task may carry when small experiments are bundled.
MAX_BUNDLE = 32
#: Bundles per worker a run makes at least (when it has enough experiments), so the last ones
#: spread over the workers instead of leaving one of them alone with a large bundle.
BUNDLES_PER_WORKER = 4

#: The client's CPU per task of a distributed run [s]: submitting it, following its future and
#: fetching its result. Measured 5.6-8.2 ms on 2 cores with the scheduler in its own process,
#: results taken one at a time (``benchmarks/bench_consumer.py``, step 5; ~4 ms once they queue up
#: and come in batches), against ~0.3 ms per experiment a task carries.
CLIENT_SECONDS_PER_TASK = 0.006
#: Share of one core the client may spend on per-task costs while the workers compute.
CLIENT_SHARE = 0.25


#: A chunk of one experiment: ``(source name, first step, stop step)``.
ChunkRange = tuple[str, int, int]


@dataclass(frozen=True)
class ExperimentJob:
    """One experiment to run.

    Attributes
    ----------
    experiment : Experiment
        The handle (shipped to the tasks).
    stem : str
        Output name (the ``experiment`` column).
    chunks : tuple of (source, start, stop)
        Its chunks of steps.
    seconds : float
        Estimated work [s].
    source : SourceIdentity or None
        The file as planned; results are written only if it is unchanged then.
    """

    experiment: Experiment
    stem: str
    chunks: tuple[ChunkRange, ...]
    seconds: float = 0.0
    source: SourceIdentity | None = None

    @property
    def path(self) -> str:
        """The source file."""
        return self.experiment.path


@dataclass(frozen=True)
class FileJob:
    """One experiment whose task opens and plans the file itself (whole-file tasks).

    The task runs :func:`~dask_features.io.opening.open_experiment`'s checks and :func:`make_job` on
    the worker, so the client's serial path costs a ``stat`` per file instead of opening it.

    Attributes
    ----------
    path : str
        The source file.
    stem : str
        Output name.
    seconds : float
        Estimated work [s] (from the file size; only groups small files into tasks).
    source : SourceIdentity
        The file as planned (stat signature).
    chunk_steps : int or "auto"
        Steps per chunk (the chunks of a task run in sequence; results do not depend on them).
    allow_external_in : str
        The client's folder for external data (``""``: none), so the worker checks what the client
        would have.
    """

    path: str
    stem: str
    seconds: float
    source: SourceIdentity
    chunk_steps: int | str = "auto"
    allow_external_in: str = ""


#: What a task computes: an experiment planned on the client, or a file the task opens itself.
Job: TypeAlias = ExperimentJob | FileJob
#: A kind of job: the bundles of :func:`bundle_jobs` hold the kind it was given.
J = TypeVar("J", bound=Job)


def seconds_per_step(experiment: Experiment, config: FeatureConfig, source: str) -> float:
    """Estimated work of one step of ``source`` [s]: data points x (read + extractor costs)."""
    cost_ns = READ_COST_NS + sum(f.impl.cost for f in config.step_features(source) if f.impl is not None)
    return get_source(source).points_per_step(experiment) * cost_ns * 1e-9


def auto_chunk_steps(experiment: Experiment, config: FeatureConfig, source: str) -> int:
    """Steps per chunk so that a task carries about :data:`TARGET_TASK_SECONDS` of work."""
    points = get_source(source).points_per_step(experiment)
    by_time = math.ceil(TARGET_TASK_SECONDS / max(seconds_per_step(experiment, config, source), 1e-12))
    by_memory = max(1, int(MAX_CHUNK_BYTES // (points * 8)))
    return max(1, min(by_time, by_memory))


def chunk_ranges(n_steps: int, chunk_steps: int) -> list[tuple[int, int]]:
    """Cut ``range(n_steps)`` into equal-sized ``[start, stop)`` ranges of at most ``chunk_steps``."""
    if n_steps <= 0:
        return []
    n_chunks = math.ceil(n_steps / max(chunk_steps, 1))
    size = math.ceil(n_steps / n_chunks)  # balance: no tiny last chunk
    return [(a, min(a + size, n_steps)) for a in range(0, n_steps, size)]


def plan_chunks(
    experiment: Experiment, config: FeatureConfig, chunk_steps: int | str = "auto"
) -> tuple[ChunkRange, ...]:
    """All ``(source, start, stop)`` chunks of one experiment for a config."""
    chunks: list[ChunkRange] = []
    for source in config.sources:
        n = get_source(source).n_steps(experiment)
        size = auto_chunk_steps(experiment, config, source) if chunk_steps == "auto" else int(chunk_steps)
        chunks.extend((source, a, b) for a, b in chunk_ranges(n, size))
    return tuple(chunks)


def _expand(item: object) -> Iterable[str | Experiment]:
    if isinstance(item, Experiment):
        yield item
        return
    if isinstance(item, str | os.PathLike):
        path = os.fspath(item)
        if os.path.isdir(path):
            files = _files_below(path)
            if not files:  # a wrong folder, or data not there yet: not a successful run of nothing
                raise ExperimentNotFoundError(
                    f"{path}: no experiment files (*.h5, *.hdf5) in this folder or below"
                )
            yield from files
        else:
            yield str(Path(path))
        return
    if isinstance(item, Iterable):
        for sub in item:
            yield from _expand(sub)
        return
    raise InputTypeError(
        f"cannot read experiments from {type(item).__name__}: give paths, folders or Experiment handles"
    )


def _files_below(folder: str) -> list[str]:
    """The experiment files in ``folder`` and its subfolders, in path order.

    As ``Path.rglob`` would find them (symlinked folders are not entered, symlinked files are kept,
    unreadable folders are skipped) in the order of sorted ``Path`` objects (component by
    component), at about half the cost: a run over 10,000 files lists them on the client.
    """
    found: list[list[str]] = []
    base = str(Path(folder))  # normalised, as Path would print it
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            if os.path.splitext(name)[1].lower() in _FILE_SUFFIXES:
                full = os.path.join(dirpath, name)
                if os.path.isfile(full):
                    found.append(full.split(os.sep))
    found.sort()
    return [os.sep.join(parts) for parts in found]


def expand_inputs(data: DataInput) -> tuple[list[str | Experiment], str | None]:
    """List what ``data`` names without opening anything.

    Parameters
    ----------
    data : Experiment, str, path-like or iterable of these
        Files, folders (searched recursively for ``*.h5``/``*.hdf5``), handles (e.g. a catalog
        query's result).

    Returns
    -------
    items : list of str or Experiment
        Absolute paths and handles, duplicates removed, in order.
    root : str or None
        Common folder of all files (output names are relative to it).
    """
    items: list[str | Experiment] = []
    seen: set[str] = set()
    for item in _expand(data):
        key = item.path if isinstance(item, Experiment) else os.path.abspath(item)
        if key not in seen:
            seen.add(key)
            items.append(item if isinstance(item, Experiment) else key)
    paths = [i.path if isinstance(i, Experiment) else i for i in items]
    root = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else None
    return items, root


def item_path(item: str | Experiment) -> str:
    """The file path of an expanded input."""
    return item.path if isinstance(item, Experiment) else item


def open_item(item: str | Experiment, sources: Collection[str] | None = None) -> Experiment:
    """The handle of an expanded input (opening and checking the file if needed, for reading
    ``sources``: see :func:`~dask_features.io.opening.open_experiment`)."""
    return item if isinstance(item, Experiment) else open_experiment(item, sources=sources)


def make_job(
    experiment: Experiment,
    config: FeatureConfig,
    stem: str,
    chunk_steps: int | str,
    source: SourceIdentity | None = None,
) -> ExperimentJob:
    """The job of one experiment, written under output name ``stem``."""
    seconds = sum(
        get_source(s).n_steps(experiment) * seconds_per_step(experiment, config, s) for s in config.sources
    )
    return ExperimentJob(experiment, stem, plan_chunks(experiment, config, chunk_steps), seconds, source)


def missing_steps(experiment: Experiment, config: FeatureConfig) -> str | None:
    """Why ``config`` cannot run on ``experiment`` (data of a source ``config`` reads cannot be read,
    or it has no step of any of them), or None."""
    for s in config.sources:
        why = get_source(s).unavailable(experiment)
        if why is not None:
            return why
    counts = {s: get_source(s).n_steps(experiment) for s in config.sources}
    if any(counts.values()):
        return None
    return f"{experiment.path}: no {' or '.join(counts)} steps, which config {config.name!r} needs"


def failure_reason(path: str, exc: BaseException) -> str:
    """Why ``path`` cannot be planned, as reported: ``exc``'s message, naming the file once."""
    return str(exc) if path in str(exc) else f"{path}: {exc}"


def bundle_size_cap(n_items: int, n_workers: int) -> int:
    """Most experiments a run bundles into one task.

    The estimated work that :func:`bundle_jobs` groups by leaves out each file's fixed cost
    (opening, attributes, writing: most of a small experiment's time), so on its own it makes a
    few large bundles of a short run: v2_transfer_basic on 8 x 2,000 steps became bundles of
    1, 1, 2, 2 and 2 files, one process doing 5 files while the other did 3. At least
    :data:`BUNDLES_PER_WORKER` bundles per worker keep the workers busy to the end; many
    small files are still bundled (64 files on 2 workers: 8 per task).
    """
    return max(1, min(MAX_BUNDLE, n_items // (BUNDLES_PER_WORKER * max(n_workers, 1))))


def distributed_task_seconds(n_workers: int) -> float:
    """Work per task [s] of a distributed run: enough that the client keeps up with the workers.

    ``n_workers`` workers finishing a task of ``T`` seconds each send the client ``n_workers / T``
    tasks a second; at :data:`CLIENT_SECONDS_PER_TASK` each, ``T >= n_workers *
    CLIENT_SECONDS_PER_TASK / CLIENT_SHARE`` keeps it within :data:`CLIENT_SHARE` of a core: the
    usual :data:`TARGET_TASK_SECONDS` up to 4 workers, 4.8 s for 200 (one task per 5,000-step
    transfer file, 0.18 s, would saturate the client at ~20-40 workers). :func:`bundle_size_cap`
    still leaves every worker several tasks.
    """
    return max(TARGET_TASK_SECONDS, n_workers * CLIENT_SECONDS_PER_TASK / CLIENT_SHARE)


def _fills_tasks(job: Job, target: float) -> bool:
    """Whether ``job`` needs a task (or several) of its own: it is cut into chunks, or will be."""
    if isinstance(job, FileJob):
        return job.seconds >= target  # automatic chunking cuts it into about seconds / target chunks
    return len(job.chunks) > 1


def bundle_jobs(
    jobs: Iterable[J], target: float = TARGET_TASK_SECONDS, most: int = MAX_BUNDLE
) -> Iterator[list[J]]:
    """Group single-chunk experiments so one task carries about ``target`` seconds of work.

    An experiment cut into several chunks is its own bundle (its chunks already fill tasks); small
    experiments are bundled, in order, until their estimated work reaches ``target`` (at most
    ``most`` per task), so many small files do not drown in per-task overhead.
    """
    bundle: list[J] = []
    work = 0.0
    # The first bundles are smaller so workers start while the client still opens files.
    goal = target / 4
    for job in jobs:
        if _fills_tasks(job, target):
            yield [job]
            continue
        bundle.append(job)
        work += job.seconds
        if work >= goal or len(bundle) >= most:
            yield bundle
            bundle, work, goal = [], 0.0, min(2 * goal, target)
    if bundle:
        yield bundle
