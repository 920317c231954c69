"""Walk a folder and index its experiment files (readable or not) into the catalog."""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from dask_features._paths import resolve
from dask_features.catalog._connection import _CatalogConnection
from dask_features.catalog._schema import _COLUMNS, _now, _to_json
from dask_features.errors import DataFolderError
from dask_features.io.hdf5 import Experiment
from dask_features.io.opening import inspect_experiment

logger = logging.getLogger("dask_features.catalog")

# Files written by oect-infra's feature pipeline share the raw suffix but are not experiments.
_DEFAULT_EXCLUDE = ("*-feat_*.h5",)
# Commit scan results in batches so concurrent readers see progress on long scans.
_COMMIT_EVERY = 200


@dataclasses.dataclass
class ScanReport:
    """What one :meth:`Catalog.scan` did (paths absolute).

    Attributes
    ----------
    added, updated, unchanged, removed : list of str
        New files indexed, changed files re-read, files skipped as unchanged (known experiments and
        known unreadable files alike), and files gone from disk (dropped from the catalog).
    failed : dict of str to str
        Files read in this scan that could not be indexed, with the reason.
    duplicate_test_ids : dict of str to list of str
        Test ids carried by more than one file under the scanned folder, with those files.
    seconds : float
        Wall time of the scan [s].
    """

    added: list[str] = dataclasses.field(default_factory=list)
    updated: list[str] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)
    removed: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    duplicate_test_ids: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.unchanged)} unchanged, "
            f"{len(self.removed)} removed, {len(self.failed)} failed ({self.seconds:.2f} s)"
        )


class _Scanning(_CatalogConnection):
    """:meth:`Catalog.scan` and its helpers."""

    def scan(
        self,
        folder: str | os.PathLike[str],
        *,
        incremental: bool = True,
        pattern: str = "*.h5",
        exclude: Sequence[str] = _DEFAULT_EXCLUDE,
    ) -> ScanReport:
        """Index every experiment file under ``folder`` (recursively).

        Parameters
        ----------
        folder : str or path-like
            Folder to walk; a relative path is relative to the working directory.
        incremental : bool, default True
            Skip files whose size and mtime match the catalog (readable or not); False re-reads all.
        pattern : str, default "*.h5"
            File-name glob of experiment files.
        exclude : sequence of str, default ("*-feat_*.h5",)
            File-name globs to skip (oect-infra feature files).

        Returns
        -------
        ScanReport
            Unreadable files are recorded with their reason (see :meth:`unreadable`), never raised;
            catalog entries of files no longer on disk under ``folder`` are removed together with
            their extraction records (output files are left alone).
        """
        self._check_writable()
        start = time.perf_counter()
        top = resolve(folder)  # relative to the working directory, as in a shell
        if not top.is_dir():
            raise DataFolderError(f"{top}: not a folder")
        report = ScanReport()
        known = self._known_under(self._rel(top))
        seen: set[str] = set()
        pending = 0
        for file in self._walk(top, pattern, exclude):
            rel = self._rel(file)
            seen.add(rel)
            try:
                stat = file.stat()
            except OSError as exc:  # vanished or unreadable between listing and stat
                self._record_failure(rel, 0, 0, exc)
                report.failed[str(file)] = str(exc)
                continue
            previous = known.get(rel)
            if incremental and previous is not None and previous[1:] == (stat.st_size, stat.st_mtime_ns):
                report.unchanged.append(str(file))
                continue
            outcome = self._index_file(file, rel, stat.st_size, stat.st_mtime_ns)
            if isinstance(outcome, str):
                report.failed[str(file)] = outcome
            elif previous is None:
                report.added.append(str(file))
            else:
                report.updated.append(str(file))
            pending += 1
            if pending >= _COMMIT_EVERY:
                self._conn.commit()
                pending = 0
        for rel in sorted(known.keys() - seen):
            self._conn.execute("DELETE FROM experiments WHERE path = ?", (rel,))
            self._conn.execute("DELETE FROM unreadable WHERE path = ?", (rel,))
            report.removed.append(self._abs(rel))
        self._conn.commit()
        report.duplicate_test_ids = self._duplicates(seen)
        report.seconds = time.perf_counter() - start
        logger.info("scan of %s: %s", top, report)
        return report

    @staticmethod
    def _walk(top: Path, pattern: str, exclude: Sequence[str]) -> Iterator[Path]:
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if fnmatch.fnmatch(name, pattern) and not any(fnmatch.fnmatch(name, x) for x in exclude):
                    yield Path(dirpath, name)

    def _known_under(self, rel_top: str) -> dict[str, tuple[str, int, int]]:
        """Catalogued paths (readable or not) below ``rel_top``: path -> (table, size, mtime)."""
        prefix = "" if rel_top == "." else rel_top.rstrip("/") + "/"
        like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        known: dict[str, tuple[str, int, int]] = {}
        for table in ("unreadable", "experiments"):  # a readable entry wins over a stale failure
            rows = self._conn.execute(
                f"SELECT path, file_size, file_mtime_ns FROM {table} WHERE path LIKE ? ESCAPE '\\'", (like,)
            )
            known.update({r[0]: (table, r[1], r[2]) for r in rows})
        return known

    def _index_file(self, file: Path, rel: str, size: int, mtime_ns: int) -> Experiment | str:
        """Read one file and upsert it; on failure record and return the reason."""
        try:
            # Its warnings (e.g. guessed transient boundaries) are in Experiment.problems too: drop them.
            exp, _ = inspect_experiment(file)
        except Exception as exc:  # any unreadable file is recorded, never allowed to stop a scan
            self._conn.execute("DELETE FROM experiments WHERE path = ?", (rel,))
            return self._record_failure(rel, size, mtime_ns, exc)
        values = [getattr(exp, c) for c in _COLUMNS]
        placeholders = ", ".join("?" * (len(_COLUMNS) + 3))
        updates = ", ".join(f"{c} = excluded.{c}" for c in (*_COLUMNS, "metadata", "scanned_at"))
        # Upsert keeps the row id, so extraction records of a changed file survive (and turn stale).
        self._conn.execute(
            f"INSERT INTO experiments (path, {', '.join(_COLUMNS)}, metadata, scanned_at) "
            f"VALUES ({placeholders}) ON CONFLICT (path) DO UPDATE SET {updates}",
            (rel, *values, _to_json(exp), _now()),
        )
        self._conn.execute("DELETE FROM unreadable WHERE path = ?", (rel,))
        return exp

    def _record_failure(self, rel: str, size: int, mtime_ns: int, exc: BaseException) -> str:
        reason = str(exc) or type(exc).__name__
        logger.warning("cannot index %s: %s", rel, reason)
        self._conn.execute(
            "INSERT OR REPLACE INTO unreadable (path, file_size, file_mtime_ns, error, reason, scanned_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (rel, size, mtime_ns, type(exc).__name__, reason, _now()),
        )
        return reason

    def _duplicates(self, paths: set[str]) -> dict[str, list[str]]:
        rows = self._conn.execute(
            "SELECT test_id, path FROM experiments WHERE test_id IN "
            "(SELECT test_id FROM experiments GROUP BY test_id HAVING count(*) > 1) ORDER BY test_id, path"
        )
        out: dict[str, list[str]] = {}
        for test_id, rel in rows:
            if rel in paths:
                out.setdefault(test_id, []).append(self._abs(rel))
        return {k: v for k, v in out.items() if len(v) > 1}
