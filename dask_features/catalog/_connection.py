"""Open a catalog database, create or check its schema, and map paths to and from its folder."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Self

from dask_features.catalog._schema import _SCHEMA, SCHEMA_VERSION
from dask_features.errors import CatalogError, CatalogNotFoundError, ReadOnlyCatalogError


class _CatalogConnection:
    """Connection, schema and path handling shared by the parts of :class:`Catalog`."""

    def __init__(
        self, db_path: str | os.PathLike[str], *, read_only: bool = False, timeout: float = 30.0
    ) -> None:
        self.db_path = Path(db_path).expanduser().resolve()
        self.root = self.db_path.parent
        self.read_only = read_only
        if read_only:
            if not self.db_path.exists():
                raise CatalogNotFoundError(f"{self.db_path}: no such catalog")
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
            raise CatalogError(
                f"{self.db_path}: catalog schema version {version} is newer than this dask_features "
                f"supports ({SCHEMA_VERSION}); upgrade dask_features"
            )
        if self.read_only:
            if version < SCHEMA_VERSION:
                raise CatalogError(f"{self.db_path}: not a dask_features catalog (schema version {version})")
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

    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyCatalogError(f"{self.db_path}: catalog opened read-only")
