"""What an extraction did: :class:`ExtractionResult`, and the bookkeeper that fills it.

The bookkeeper is the one place where an experiment's fate is recorded: in the result, in the
catalog (when given) and on the progress bar. The planner and the writer only call
:meth:`Bookkeeper.failed`, :meth:`Bookkeeper.skipped` and :meth:`Bookkeeper.written`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from dask_features.config.columns import IDENTITY_COLUMNS
from dask_features.config.schema import FeatureConfig
from dask_features.engine.tasks import ERROR_COLUMNS, ExperimentTables

if TYPE_CHECKING:
    from dask_features.engine.writing import Written

__all__ = ["Bookkeeper", "ExtractionResult"]

logger = logging.getLogger(__name__)

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
        experiment, step_index, feature, message`` (the step's value is NaN).
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
    errors: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=RESULT_ERROR_COLUMNS))
    total_seconds: float = 0.0
    scheduler: str = ""

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
        if len(self.errors):
            lines.append(f"{len(self.errors)} step-level problem(s) recorded (values NaN); see result.errors")
        lines.extend(f"FAILED {path}: {reason}" for path, reason in self.failed.items())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<ExtractionResult {self.summary().splitlines()[0]}>"


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
        self._errors: list[pd.DataFrame] = []
        self._pending: list[tuple[Any, ...]] = []
        self._flushed = time.monotonic()

    def failed(self, path: str, reason: str, wall: float | None = None) -> None:
        """``path`` produced no output, because of ``reason`` (which names the file)."""
        self.result.failed[path] = reason
        if wall is not None:
            self.result.timings[path] = wall
        logger.error("%s", reason)
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
            frame = tables.errors.to_pandas()
            for i, column in enumerate(IDENTITY_COLUMNS):
                frame.insert(i, column, ids[column])
            frame.insert(0, "source_file", path)
            self._errors.append(frame)
        self._record(path, steps_file, "partial" if n_errors else "success", wall, None)

    def finish(self, total_seconds: float) -> ExtractionResult:
        """The completed result."""
        self.bar.close()
        if self.catalog is not None:
            self.flush()
        if self._errors:
            frame = pd.concat(self._errors, ignore_index=True)
            self.result.errors = frame.reindex(columns=RESULT_ERROR_COLUMNS)
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
