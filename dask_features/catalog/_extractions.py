"""Extraction records per (experiment, config hash), and the experiments still missing features."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from typing import Any, Literal

import pandas as pd

from dask_features.catalog._connection import _CatalogConnection
from dask_features.catalog._schema import _from_json, _now
from dask_features.errors import InvalidArgumentError, NotInCatalogError
from dask_features.io.hdf5 import Experiment

EXTRACTION_STATUSES = ("success", "partial", "failed")
"""Allowed ``status`` values of :meth:`Catalog.record_extraction`."""

ExtractionStatus = Literal["success", "partial", "failed"]

#: ``(experiment, config_name, config_hash, output_path, status, seconds, message)``.
ExtractionRecord = tuple[
    Experiment | str | os.PathLike[str],
    str,
    str,
    str | os.PathLike[str] | None,
    str,
    float | None,
    str | None,
]


class _Extractions(_CatalogConnection):
    """:meth:`Catalog.record_extraction`, :meth:`Catalog.extractions`, :meth:`Catalog.missing_features`."""

    def _experiment_row(self, experiment: Experiment | str | os.PathLike[str]) -> sqlite3.Row:
        path = experiment.path if isinstance(experiment, Experiment) else experiment
        row = self._conn.execute(
            "SELECT id, file_size, file_mtime_ns FROM experiments WHERE path = ?", (self._rel(path),)
        ).fetchone()
        if row is None:
            raise NotInCatalogError(f"{path}: not in catalog {self.db_path}; scan its folder first")
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
        NotInCatalogError
            (a ``KeyError``)
            The experiment is not in the catalog.
        InvalidArgumentError
            (a ``ValueError``)
            Unknown ``status``.
        """
        self.record_extractions(
            [(experiment, config_name, config_hash, output_path, status, seconds, message)]
        )

    def record_extractions(self, records: Sequence[ExtractionRecord]) -> None:
        """Record several extractions in one transaction (one disk sync instead of one per record).

        Parameters
        ----------
        records : sequence of tuples
            ``(experiment, config_name, config_hash, output_path, status, seconds, message)``, the
            arguments of :meth:`record_extraction` in order.

        Raises
        ------
        NotInCatalogError, InvalidArgumentError
            As :meth:`record_extraction`; nothing of the batch is recorded then.
        """
        self._check_writable()
        rows = []
        for experiment, config_name, config_hash, output_path, status, seconds, message in records:
            if status not in EXTRACTION_STATUSES:
                raise InvalidArgumentError(f"status must be one of {EXTRACTION_STATUSES}, got {status!r}")
            row = self._experiment_row(experiment)
            out = None if output_path is None else self._rel(output_path)
            rows.append(
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
                )
            )
        with self._conn:
            self._conn.executemany(
                "INSERT INTO extractions (experiment_id, config_name, config_hash, output_path, status, "
                "finished_at, seconds, message, source_size, source_mtime_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (experiment_id, config_hash) DO UPDATE SET config_name = excluded.config_name, "
                "output_path = excluded.output_path, status = excluded.status, finished_at = excluded.finished_at, "
                "seconds = excluded.seconds, message = excluded.message, source_size = excluded.source_size, "
                "source_mtime_ns = excluded.source_mtime_ns",
                rows,
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
