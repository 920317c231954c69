"""SQLite index of a data folder: which experiments exist, which are unreadable, which have features.

The catalog answers the "find my experiments" question without opening thousands of HDF5 files:
:meth:`Catalog.scan` reads each new or changed file once with
:func:`~dask_features.io.open_experiment` and stores its metadata (the whole
:class:`~dask_features.io.Experiment` as JSON plus indexed columns), so :meth:`Catalog.search`
rebuilds ``Experiment`` handles from the database alone.

Design choices
--------------
* Paths are stored relative to the folder holding the database file (POSIX separators); moving the
  folder with its data keeps the catalog valid, and nothing depends on the working directory.
* Experiments are keyed by path, not by ``test_id``: two files with the same test id are both
  indexed, and :attr:`ScanReport.duplicate_test_ids` names them.
* An extraction is recorded per (experiment, config hash) together with the size and mtime of the
  experiment file at that time; when the file changes later the record counts as stale and the
  experiment is "missing" features again.
* WAL journal: one writing process at a time, any number of readers (``read_only=True``).
* Every SQL value is a bound parameter; only whitelisted column names are ever formatted in.

>>> from dask_features import Catalog
>>> with Catalog("data/catalog.db") as cat:                 # doctest: +SKIP
...     report = cat.scan("data")
...     todo = cat.missing_features(config_hash)
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import logging
import os
import sqlite3
import time
import warnings
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Literal, Self

import pandas as pd

from dask_features.io.hdf5 import Experiment, open_experiment

__all__ = ["EXTRACTION_STATUSES", "SCHEMA_VERSION", "Catalog", "ScanReport"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""Stored in ``PRAGMA user_version``; a catalog written by a newer schema is refused."""

EXTRACTION_STATUSES = ("success", "partial", "failed")
"""Allowed ``status`` values of :meth:`Catalog.record_extraction`."""

ExtractionStatus = Literal["success", "partial", "failed"]

# Files written by oect-infra's feature pipeline share the raw suffix but are not experiments.
_DEFAULT_EXCLUDE = ("*-feat_*.h5",)
# Commit scan results in batches so concurrent readers see progress on long scans.
_COMMIT_EVERY = 200

_SCHEMA = """
CREATE TABLE experiments (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    file_size INTEGER NOT NULL,
    file_mtime_ns INTEGER NOT NULL,
    format_version TEXT NOT NULL,
    chip_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    test_id TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT,
    created_at TEXT,
    completed_at TEXT,
    device_type TEXT,
    n_transfer_steps INTEGER NOT NULL,
    n_transient_steps INTEGER NOT NULL,
    transfer_max_points INTEGER NOT NULL,
    transient_total_points INTEGER NOT NULL,
    has_transient_index INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    scanned_at TEXT NOT NULL
);
CREATE INDEX experiments_chip ON experiments (chip_id, device_id);
CREATE INDEX experiments_test ON experiments (test_id);
CREATE INDEX experiments_status ON experiments (status);
CREATE TABLE unreadable (
    path TEXT PRIMARY KEY,
    file_size INTEGER NOT NULL,
    file_mtime_ns INTEGER NOT NULL,
    error TEXT NOT NULL,
    reason TEXT NOT NULL,
    scanned_at TEXT NOT NULL
);
CREATE TABLE extractions (
    id INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    config_name TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    output_path TEXT,
    status TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    seconds REAL,
    message TEXT,
    source_size INTEGER NOT NULL,
    source_mtime_ns INTEGER NOT NULL,
    UNIQUE (experiment_id, config_hash)
);
CREATE INDEX extractions_hash ON extractions (config_hash, status);
"""

# Columns of `experiments` filled from the Experiment attribute of the same name.
_COLUMNS = (
    "file_size",
    "file_mtime_ns",
    "format_version",
    "chip_id",
    "device_id",
    "test_id",
    "description",
    "status",
    "created_at",
    "completed_at",
    "device_type",
    "n_transfer_steps",
    "n_transient_steps",
    "transfer_max_points",
    "transient_total_points",
    "has_transient_index",
)
_ORDER_BY = {"path", "created_at", "completed_at", "chip_id", "device_id", "test_id", "status"}


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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _to_json(exp: Experiment) -> str:
    state = {f.name: getattr(exp, f.name) for f in dataclasses.fields(exp) if f.name != "path"}
    return json.dumps(state, default=str, ensure_ascii=False)


def _tuple_fields() -> frozenset[str]:
    # JSON turns tuples into lists; these fields must come back as tuples (hashable, as the reader makes them).
    return frozenset(f.name for f in dataclasses.fields(Experiment) if str(f.type).startswith("tuple"))


def _from_json(path: str, metadata: str) -> Experiment:
    state: dict[str, Any] = json.loads(metadata)
    known = {f.name for f in dataclasses.fields(Experiment)}
    for name in _tuple_fields() & state.keys():
        if isinstance(state[name], list):
            state[name] = tuple(state[name])
    return Experiment(path=path, **{k: v for k, v in state.items() if k in known})


class Catalog:
    """SQLite catalog of the experiment files in a folder tree, and of the features extracted.

    Parameters
    ----------
    db_path : str or path-like
        Database file; created (with its folder) unless ``read_only``. Stored paths are relative to
        its folder.
    read_only : bool, default False
        Open an existing catalog for reading only (safe next to a process that scans or records).
    timeout : float, default 30.0
        How long to wait for a lock held by another connection [s].

    Raises
    ------
    FileNotFoundError
        ``read_only`` and the database does not exist.
    RuntimeError
        The database was written by a newer, incompatible schema.
    """

    def __init__(
        self, db_path: str | os.PathLike[str], *, read_only: bool = False, timeout: float = 30.0
    ) -> None:
        self.db_path = Path(db_path).expanduser().resolve()
        self.root = self.db_path.parent
        self.read_only = read_only
        if read_only:
            if not self.db_path.exists():
                raise FileNotFoundError(f"{self.db_path}: no such catalog")
            self._conn = sqlite3.connect(f"{self.db_path.as_uri()}?mode=ro", uri=True, timeout=timeout)
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.db_path, timeout=timeout)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._init_schema()

    # --- lifecycle ----------------------------------------------------------------------------

    def _init_schema(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            self._conn.close()
            raise RuntimeError(
                f"{self.db_path}: catalog schema version {version} is newer than this dask_features "
                f"supports ({SCHEMA_VERSION}); upgrade dask_features"
            )
        if self.read_only:
            if version < SCHEMA_VERSION:
                raise RuntimeError(f"{self.db_path}: not a dask_features catalog (schema version {version})")
            return
        self._conn.execute("PRAGMA journal_mode = WAL")
        if version == 0:
            with self._conn:
                self._conn.executescript(
                    f"BEGIN;\n{_SCHEMA}\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;"
                )

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Catalog({str(self.db_path)!r})"

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM experiments").fetchone()[0])

    # --- paths --------------------------------------------------------------------------------

    def _rel(self, path: str | os.PathLike[str]) -> str:
        """Path relative to the catalog folder, POSIX style."""
        absolute = os.path.abspath(os.fspath(path))
        try:
            return PurePosixPath(Path(os.path.relpath(absolute, self.root))).as_posix()
        except ValueError:  # another drive on Windows: no relative form exists
            return Path(absolute).as_posix()

    def _abs(self, rel: str) -> str:
        return os.path.normpath(os.path.join(self.root, rel))

    # --- scanning -----------------------------------------------------------------------------

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
            Folder to walk; relative paths are taken relative to the catalog folder, not the
            working directory.
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
        top = Path(self.root, folder).resolve() if not os.path.isabs(folder) else Path(folder).resolve()
        if not top.is_dir():
            raise NotADirectoryError(f"{top}: not a folder")
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
            with warnings.catch_warnings():
                # Non-fatal findings (e.g. guessed transient boundaries) are kept in Experiment.problems.
                warnings.simplefilter("ignore")
                exp = open_experiment(file)
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

    def _check_writable(self) -> None:
        if self.read_only:
            raise PermissionError(f"{self.db_path}: catalog opened read-only")

    # --- queries ------------------------------------------------------------------------------

    def search(
        self,
        *,
        chip_id: str | Sequence[str] | None = None,
        device_id: str | Sequence[str] | None = None,
        test_id: str | Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        device_type: str | None = None,
        has_transient: bool | None = None,
        min_steps: int | None = None,
        text: str | None = None,
        order_by: str = "path",
        limit: int | None = None,
    ) -> list[Experiment]:
        """Experiments matching all given filters, rebuilt from the catalog without opening files.

        Parameters
        ----------
        chip_id, device_id, test_id, status : str or sequence of str, optional
            Exact match, or any of several values.
        device_type : {"N", "P"}, optional
            Polarity (``"N-type"``/``"P-type"`` accepted).
        has_transient : bool, optional
            Whether the experiment has transient steps.
        min_steps : int, optional
            Minimum number of steps, transfer and transient together.
        text : str, optional
            Case-insensitive substring of chip id, device id, test id, description or path.
        order_by : str, default "path"
            One of ``path``, ``created_at``, ``completed_at``, ``chip_id``, ``device_id``,
            ``test_id``, ``status``.
        limit : int, optional
            Return at most this many.

        Returns
        -------
        list of Experiment
            Paths are absolute, resolved against the catalog folder.
        """
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("chip_id", chip_id),
            ("device_id", device_id),
            ("test_id", test_id),
            ("status", status),
        ):
            if value is None:
                continue
            values = [value] if isinstance(value, str) else list(value)
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
        if device_type is not None:
            where.append("device_type = ?")
            params.append(str(device_type).strip().upper()[:1])
        if has_transient is not None:
            where.append("n_transient_steps > 0" if has_transient else "n_transient_steps = 0")
        if min_steps is not None:
            where.append("n_transfer_steps + n_transient_steps >= ?")
            params.append(int(min_steps))
        if text:
            like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append(
                "("
                + " OR ".join(
                    f"{c} LIKE ? ESCAPE '\\'"
                    for c in ("chip_id", "device_id", "test_id", "description", "path")
                )
                + ")"
            )
            params.extend([like] * 5)
        if order_by not in _ORDER_BY:
            raise ValueError(f"order_by must be one of {sorted(_ORDER_BY)}, got {order_by!r}")
        sql = "SELECT path, metadata FROM experiments"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {order_by}, path"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_from_json(self._abs(r[0]), r[1]) for r in self._conn.execute(sql, params)]

    def unreadable(self) -> pd.DataFrame:
        """Files that could not be indexed: ``path`` (absolute), ``error`` (exception type), ``reason``,
        ``file_size`` [bytes], ``scanned_at`` (UTC ISO 8601)."""
        rows = self._conn.execute(
            "SELECT path, error, reason, file_size, scanned_at FROM unreadable ORDER BY path"
        ).fetchall()
        frame = pd.DataFrame(
            [tuple(r) for r in rows], columns=["path", "error", "reason", "file_size", "scanned_at"]
        )
        frame["path"] = [self._abs(p) for p in frame["path"]]
        return frame

    # --- extraction records -------------------------------------------------------------------

    def _experiment_row(self, experiment: Experiment | str | os.PathLike[str]) -> sqlite3.Row:
        path = experiment.path if isinstance(experiment, Experiment) else experiment
        row = self._conn.execute(
            "SELECT id, file_size, file_mtime_ns FROM experiments WHERE path = ?", (self._rel(path),)
        ).fetchone()
        if row is None:
            raise KeyError(f"{path}: not in catalog {self.db_path}; scan its folder first")
        return row

    def record_extraction(
        self,
        experiment: Experiment | str | os.PathLike[str],
        config_name: str,
        config_hash: str,
        output_path: str | os.PathLike[str] | None,
        status: ExtractionStatus,
        seconds: float | None = None,
        message: str | None = None,
    ) -> None:
        """Record (or replace) the extraction of one config from one experiment.

        Parameters
        ----------
        experiment : Experiment or path
            A catalogued experiment.
        config_name : str
            Config name as the user gave it (preset name or file).
        config_hash : str
            Hash of the resolved config; records are kept per (experiment, hash).
        output_path : str or path-like or None
            Output file (stored relative to the catalog folder).
        status : {"success", "partial", "failed"}
            Outcome; ``"partial"`` = some steps failed but output was written.
        seconds : float, optional
            Wall time of the extraction [s].
        message : str, optional
            Error text or notes.

        Raises
        ------
        KeyError
            The experiment is not in the catalog.
        ValueError
            Unknown ``status``.
        """
        self._check_writable()
        if status not in EXTRACTION_STATUSES:
            raise ValueError(f"status must be one of {EXTRACTION_STATUSES}, got {status!r}")
        row = self._experiment_row(experiment)
        out = None if output_path is None else self._rel(output_path)
        with self._conn:
            self._conn.execute(
                "INSERT INTO extractions (experiment_id, config_name, config_hash, output_path, status, "
                "finished_at, seconds, message, source_size, source_mtime_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (experiment_id, config_hash) DO UPDATE SET config_name = excluded.config_name, "
                "output_path = excluded.output_path, status = excluded.status, finished_at = excluded.finished_at, "
                "seconds = excluded.seconds, message = excluded.message, source_size = excluded.source_size, "
                "source_mtime_ns = excluded.source_mtime_ns",
                (
                    row["id"],
                    config_name,
                    config_hash,
                    out,
                    status,
                    _now(),
                    seconds,
                    message,
                    row["file_size"],
                    row["file_mtime_ns"],
                ),
            )

    def extractions(self, config_hash: str | None = None, status: str | None = None) -> pd.DataFrame:
        """Recorded extractions, optionally filtered.

        Returns
        -------
        pandas.DataFrame
            ``path`` (experiment, absolute), ``test_id``, ``config_name``, ``config_hash``,
            ``output_path`` (absolute or None), ``status``, ``finished_at`` (UTC ISO 8601),
            ``seconds`` [s], ``message``, ``stale`` (the experiment file changed since).
        """
        sql = (
            "SELECT e.path, e.test_id, x.config_name, x.config_hash, x.output_path, x.status, x.finished_at, "
            "x.seconds, x.message, (x.source_size != e.file_size OR x.source_mtime_ns != e.file_mtime_ns) "
            "FROM extractions x JOIN experiments e ON e.id = x.experiment_id WHERE 1 = 1"
        )
        params: list[Any] = []
        if config_hash is not None:
            sql += " AND x.config_hash = ?"
            params.append(config_hash)
        if status is not None:
            sql += " AND x.status = ?"
            params.append(status)
        rows = [
            (self._abs(r[0]), *r[1:4], None if r[4] is None else self._abs(r[4]), *r[5:])
            for r in self._conn.execute(sql + " ORDER BY e.path, x.config_hash", params)
        ]
        columns = [
            "path",
            "test_id",
            "config_name",
            "config_hash",
            "output_path",
            "status",
            "finished_at",
            "seconds",
            "message",
            "stale",
        ]
        frame = pd.DataFrame(rows, columns=columns)
        # Keep None (not NaN) for "no output file": pandas would infer a string column otherwise.
        frame["output_path"] = pd.Series([r[4] for r in rows], index=frame.index, dtype=object)
        frame["seconds"] = frame["seconds"].astype(float)
        frame["stale"] = frame["stale"].astype(bool)
        return frame

    def missing_features(self, config_hash: str) -> list[Experiment]:
        """Experiments without a successful, up-to-date extraction for ``config_hash``.

        Failed or partial extractions, and successful ones of a file that changed since, count as
        missing.
        """
        rows = self._conn.execute(
            "SELECT e.path, e.metadata FROM experiments e WHERE NOT EXISTS ("
            " SELECT 1 FROM extractions x WHERE x.experiment_id = e.id AND x.config_hash = ?"
            " AND x.status = 'success' AND x.source_size = e.file_size AND x.source_mtime_ns = e.file_mtime_ns"
            ") ORDER BY e.path",
            (config_hash,),
        )
        return [_from_json(self._abs(r[0]), r[1]) for r in rows]
