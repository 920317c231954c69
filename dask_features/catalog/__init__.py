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

from dask_features.catalog._extractions import EXTRACTION_STATUSES, _Extractions
from dask_features.catalog._extractions import ExtractionStatus as ExtractionStatus  # type of `status`
from dask_features.catalog._scan import ScanReport, _Scanning
from dask_features.catalog._schema import SCHEMA_VERSION
from dask_features.catalog._search import _Searching

__all__ = ["EXTRACTION_STATUSES", "SCHEMA_VERSION", "Catalog", "ScanReport"]


class Catalog(_Scanning, _Searching, _Extractions):
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
    CatalogNotFoundError
        (a ``FileNotFoundError``) ``read_only`` and the database does not exist.
    CatalogError
        (a ``RuntimeError``) The database was written by a newer, incompatible schema.
    """
