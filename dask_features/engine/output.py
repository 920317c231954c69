"""Output layout, atomic Parquet writes and the resume check.

Layout under ``out_dir`` (one file per experiment and table; ``<key>`` is the experiment's safe
output name, see :mod:`dask_features.engine.names`)::

    <out_dir>/<config name>/_config.json            the config version this folder holds
    <out_dir>/<config name>/steps/<key>.parquet     one row per step
    <out_dir>/<config name>/cycles/<key>.parquet    one row per cycle (ragged features)
    <out_dir>/<config name>/errors/<key>.parquet    one row per problem (only when any)
    <out_dir>/_versions/<config name>/<hash>/...    older versions of the config, kept apart

Every row starts with the identity columns ``chip_id, device_id, test_id, experiment`` and every
file of a table has the same schema (planned from the config), so any Parquet reader pointed at a
table folder gets self-describing rows. Each file also carries key-value metadata ``dask_features``
(JSON): config name and hash, the source file with its size, times and content digest, the
experiment ids, package version. The ``steps`` file is written last and marks completion.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dask_features._arrow import repeated_string
from dask_features._version import __version__
from dask_features.config.columns import DERIVED_SCALAR, IDENTITY_COLUMNS, TABLES
from dask_features.config.schema import FeatureConfig
from dask_features.engine.files import publish
from dask_features.engine.identity import SourceIdentity, same_content
from dask_features.errors import OutputError
from dask_features.io.hdf5 import Experiment

__all__ = ["TABLES", "is_complete", "output_paths", "read_metadata", "write_tables"]

META_KEY = b"dask_features"


def output_paths(folder: str | os.PathLike[str], key: str) -> dict[str, Path]:
    """Paths of the ``steps``, ``cycles`` and ``errors`` files of experiment ``key`` in a config folder."""
    return {t: Path(folder) / t / f"{key}.parquet" for t in TABLES}


def identity_values(experiment: Experiment, key: str) -> dict[str, str]:
    """The identity columns' values of one experiment."""
    values = {"chip_id": experiment.chip_id, "device_id": experiment.device_id, "test_id": experiment.test_id}
    return {c: values.get(c, key) for c in IDENTITY_COLUMNS}


def _metadata(
    config: FeatureConfig, experiment: Experiment, key: str, source: SourceIdentity, n_errors: int
) -> dict[str, Any]:
    return {
        "config_name": config.name,
        "config_hash": config.hash,
        "experiment": key,
        "source_file": experiment.path,
        **source.as_metadata(),
        "chip_id": experiment.chip_id,
        "device_id": experiment.device_id,
        "test_id": experiment.test_id,
        "description": experiment.description,
        "device_type": experiment.device_type,
        "package_version": __version__,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "n_errors": n_errors,
        # Non-fatal findings of the reader (invalid workflow, guessed step boundaries): kept with the
        # values they may affect instead of only in a log line.
        "problems": list(experiment.problems),
        "features": {
            f.name: {
                "unit": f.unit,
                "extractor": f.extractor,
                "params": {
                    k: v for k, v in f.params.items() if isinstance(v, str | int | float | bool | None)
                },
            }
            for f in config.features
        },
    }


def _with_identity(table: pa.Table, schema: pa.Schema, ids: Mapping[str, str]) -> pa.Table:
    """``table`` with the identity columns in front, cast to the config's planned ``schema``."""
    n = table.num_rows
    columns = [repeated_string(ids[c], n) for c in IDENTITY_COLUMNS]
    columns += [table.column(f.name) for f in schema if f.name not in IDENTITY_COLUMNS]
    try:
        return pa.Table.from_arrays(columns, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:  # a kind's arrays disagree with its columns
        raise OutputError(f"results do not match the planned schema: {exc}") from exc


def _derived_types(config: FeatureConfig, steps: pa.Table) -> dict[str, pa.DataType]:
    schema = steps.schema
    names = set(schema.names)
    return {
        f.name: schema.field(f.name).type if f.name in names else DERIVED_SCALAR
        for f in config.derived_features
    }


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """The columns worth dictionary encoding: strings (identity columns, error messages repeat).

    Numeric columns are written plain: their values rarely repeat, so the dictionary the writer
    tries first is discarded after costing a third of the write (and a few % of the file size).
    The encoding is invisible to readers: they get the same values and types either way.
    """
    return [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]


def _parquet_writer(table: pa.Table) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        # Encoded in memory (a few kB per experiment), then written with one call: the same bytes
        # as writing to the path, without pyarrow resolving a filesystem and opening its own stream.
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd", use_dictionary=_dictionary_columns(table.schema))
        with open(tmp, "wb") as f:
            f.write(sink.getvalue())

    return write


def write_tables(
    folder: str | os.PathLike[str],
    config: FeatureConfig,
    experiment: Experiment,
    key: str,
    source: SourceIdentity,
    tables: Mapping[str, pa.Table | None],
    ids: Mapping[str, str] | None = None,
) -> Path:
    """Write one experiment's tables atomically; the steps file last (it marks completion).

    Parameters
    ----------
    folder : path
        The config's output folder (``<out_dir>/<config name>``).
    config : FeatureConfig
    experiment : Experiment
    key : str
        The experiment's output name (also its ``experiment`` column).
    source : SourceIdentity
        The source file as it was read.
    tables : mapping
        ``"steps"``, ``"cycles"`` (or None) and ``"errors"`` tables without identity columns.
    ids : mapping, optional
        The identity columns' values (:func:`identity_values`), when the caller has them already.

    Returns
    -------
    Path
        The steps file.

    Raises
    ------
    OutputError
        The output folder is not writable or the disk is full; no partial file is left behind.
    """
    paths = output_paths(folder, key)
    errors = tables.get("errors")
    n_errors = 0 if errors is None else errors.num_rows
    meta = json.dumps(_metadata(config, experiment, key, source, n_errors)).encode()
    ids = identity_values(experiment, key) if ids is None else ids
    steps = tables["steps"]
    assert steps is not None
    derived = _derived_types(config, steps)
    # Stale companions of an earlier run would be mistaken for this run's: replace or remove them.
    for name in ("cycles", "errors", "steps"):
        table = tables.get(name)
        if table is None or (name == "errors" and not table.num_rows):
            with contextlib.suppress(FileNotFoundError):
                paths[name].unlink()
            continue
        full = _with_identity(table, config.columns.schema(name, derived), ids)
        full = full.replace_schema_metadata({META_KEY: meta})
        publish(paths[name], _parquet_writer(full))
    return paths["steps"]


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``dask_features`` metadata of an output file."""
    schema = pq.read_schema(path)
    raw = (schema.metadata or {}).get(META_KEY)
    return json.loads(raw) if raw else {}


def is_complete(folder: str | os.PathLike[str], config: FeatureConfig, source_file: str, key: str) -> bool:
    """True when experiment ``key`` has output for this config hash from the current content of its file."""
    path = output_paths(folder, key)["steps"]
    if not path.exists():
        return False
    try:
        meta = read_metadata(path)
    except (OSError, pa.ArrowException, ValueError):
        return False  # unreadable output: recompute
    return meta.get("config_hash") == config.hash and same_content(meta, source_file)
