"""What an extraction did: :class:`ExtractionResult`, and the bookkeeper that fills it.

The bookkeeper is the one place where an experiment's fate is recorded: in the result, in the
catalog (when given) and on the progress bar. The planner and the writer only call
:meth:`Bookkeeper.failed`, :meth:`Bookkeeper.skipped` and :meth:`Bookkeeper.written`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dask_features.config.columns import IDENTITY_COLUMNS
from dask_features.config.schema import FeatureConfig
from dask_features.engine.tasks import ERROR_COLUMNS, ExperimentTables

if TYPE_CHECKING:
    import pandas as pd

    from dask_features.engine.writing import Written

__all__ = ["Bookkeeper", "ExtractionResult", "progress_bar"]

logger = logging.getLogger(__name__)

#: Attribute of the log record of a failed experiment (:meth:`Bookkeeper.failed`): its path.
FAILED_EXPERIMENT = "failed_experiment"

#: Columns of :attr:`ExtractionResult.errors`.
RESULT_ERROR_COLUMNS = ["source_file", *IDENTITY_COLUMNS, *ERROR_COLUMNS]


@dataclass
class ExtractionResult:
    """What :func:`~dask_features.extract` did.

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
        Source paths whose output was already complete (same config hash, same file content).
    timings : dict
        Source path -> wall time [s] from submission to written output.
    compute_seconds : dict
        Source path -> CPU time of its tasks [s].
    errors : pandas.DataFrame
        Per-step problems of successful experiments: ``source_file, chip_id, device_id, test_id,
        experiment, step_index, feature, message`` (the step's value is NaN). Built on first access
        (a run imports pandas only if its caller looks); :attr:`n_errors` counts them without it.
    total_seconds : float
        Wall time of the whole call [s].
    scheduler : str
        What computed the run and why (e.g. ``"threads (~0.06 s of HDF5 reading < 0.3 s: 2 threads
        ...)"``); also the last line of :meth:`summary`.
    """

    config_name: str
    config_hash: str
    out_dir: Path
    successful: dict[str, Path] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    compute_seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0
    scheduler: str = ""
    #: Per experiment with problems: its source path, identity columns and errors table.
    _error_tables: list[tuple[str, Mapping[str, str], pa.Table]] = field(
        default_factory=list, repr=False, compare=False
    )
    _frame: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    @property
    def errors(self) -> pd.DataFrame:
        """Per-step problems of successful experiments (see the class docstring)."""
        if self._frame is None:
            self._frame = _errors_frame(self._error_tables)
        return self._frame

    @property
    def n_errors(self) -> int:
        """Number of rows of :attr:`errors`."""
        return sum(table.num_rows for _, _, table in self._error_tables)

    @property
    def ok(self) -> bool:
        """True when no experiment failed."""
        return not self.failed

    @property
    def folder(self) -> Path:
        """The config's output folder (``out_dir / config_name``)."""
        return self.out_dir / self.config_name

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [
            f"config {self.config_name} ({self.config_hash}): {len(self.successful)} written, "
            f"{len(self.skipped)} skipped (up to date), {len(self.failed)} failed in {self.total_seconds:.1f} s",
            f"output: {self.folder}",
        ]
        if self.scheduler:
            lines.append(f"scheduler: {self.scheduler}")
        if self.n_errors:
            lines.append(f"{self.n_errors} step-level problem(s) recorded (values NaN); see result.errors")
        lines.extend(f"FAILED {path}: {reason}" for path, reason in self.failed.items())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<ExtractionResult {self.summary().splitlines()[0]}>"


def _errors_frame(tables: list[tuple[str, Mapping[str, str], pa.Table]]) -> pd.DataFrame:
    """:attr:`ExtractionResult.errors` from each experiment's errors table."""
    import pandas as pd

    frames = []
    for path, ids, table in tables:
        frame = table.to_pandas()
        for i, column in enumerate(IDENTITY_COLUMNS):
            frame.insert(i, column, ids[column])
        frame.insert(0, "source_file", path)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=RESULT_ERROR_COLUMNS)
    return pd.concat(frames, ignore_index=True).reindex(columns=RESULT_ERROR_COLUMNS)


#: Catalog records buffered before one transaction writes them, and the longest they wait [s].
_CATALOG_BATCH = 256
_CATALOG_SECONDS = 1.0


class Bookkeeper:
    """Records each experiment's outcome in the result, the catalog and the progress bar."""

    def __init__(
        self,
        result: ExtractionResult,
        config: FeatureConfig,
        catalog: Any,
        bar: Any,
        work: Mapping[str, int] | None = None,
    ) -> None:
        self.result = result
        self.config = config
        self.catalog = catalog
        self.bar = bar
        # The bar advances by each experiment's share of the work (its file size [bytes]), so its
        # ETA holds for runs mixing small and large files; without sizes, one unit per experiment.
        self._work = dict(work or {})
        self._done = 0
        self._pending: list[tuple[Any, ...]] = []
        self._flushed = time.monotonic()

    def failed(self, path: str, reason: str, wall: float | None = None) -> None:
        """``path`` produced no output, because of ``reason`` (which names the file)."""
        self.result.failed[path] = reason
        if wall is not None:
            self.result.timings[path] = wall
        # Marked so that a front end listing failures itself (the CLI's summary) can leave it out.
        logger.error("%s", reason, extra={FAILED_EXPERIMENT: path})
        self._record(path, None, "failed", wall, reason)

    def skipped(self, path: str) -> None:
        """``path`` is up to date."""
        self.result.skipped.append(path)
        self.bar.total -= self._work.get(path, 1)  # the ETA is over work to do, not up-to-date files
        self.bar.refresh()

    def written(
        self,
        path: str,
        steps_file: Path,
        tables: ExperimentTables | Written,
        wall: float,
        ids: Mapping[str, str],
    ) -> None:
        """``path``'s results are in ``steps_file`` (and its companions); ``ids``: its identity columns."""
        self.result.successful[path] = steps_file
        self.result.timings[path] = wall
        self.result.compute_seconds[path] = tables.compute_seconds
        n_errors = tables.errors.num_rows
        if n_errors:
            self.result._error_tables.append((path, dict(ids), tables.errors))
        self._record(path, steps_file, "partial" if n_errors else "success", wall, None)

    def finish(self, total_seconds: float) -> ExtractionResult:
        """The completed result."""
        self.bar.close()
        if self.catalog is not None:
            self.flush()
        self.result.total_seconds = total_seconds
        logger.debug("%s", self.result.summary())  # callers print it; at INFO the CLI would show it twice
        return self.result

    def _record(
        self, path: str, output: Path | None, status: str, seconds: float | None, message: str | None
    ) -> None:
        self._done += 1
        self.bar.set_postfix_str(f"{self._done} experiment(s)", refresh=False)
        self.bar.update(self._work.get(path, 1))
        if self.catalog is None:
            return
        self._pending.append(
            (
                path,
                self.config.name,
                self.config.hash,
                None if output is None else str(output),
                status,
                seconds,
                message,
            )
        )
        # One transaction (one disk sync, ~10 ms) per batch, not per experiment: a client serving
        # hundreds of workers would otherwise spend its time waiting for the disk.
        if len(self._pending) >= _CATALOG_BATCH or time.monotonic() - self._flushed > _CATALOG_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the buffered catalog records (also done by :meth:`finish`)."""
        pending, self._pending = self._pending, []
        self._flushed = time.monotonic()
        if not pending:
            return
        try:
            self.catalog.record_extractions(pending)
            return
        except Exception:  # one bad record must not cost the others theirs: record one by one
            pass
        for record in pending:
            try:
                self.catalog.record_extraction(*record)
            except Exception as exc:  # the catalog is bookkeeping: never lose results over it
                logger.warning("could not record %s in the catalog: %s", record[0], exc)


class _NoBar:
    """Stands in for a disabled progress bar (importing tqdm costs a few hundred ms)."""

    total = 0

    def update(self, n: int = 1) -> None:
        pass

    def refresh(self) -> None:
        pass

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, enabled: bool | None) -> Any:
    """A tqdm bar over ``total`` bytes, or a stand-in that shows nothing.

    ``enabled=None`` shows it only on a terminal or in Jupyter (what tqdm's ``disable=None`` does),
    without importing tqdm when nothing is shown.
    """
    if enabled is False or (enabled is None and not (sys.stderr.isatty() or "ipykernel" in sys.modules)):
        return _NoBar()  # what tqdm's disable=None would do: no bar off a terminal or Jupyter
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=(None if enabled is None else not enabled),
        leave=True,
    )
