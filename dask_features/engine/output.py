"""Output layout, atomic Parquet writes, the resume check and :func:`read_features`.

Layout under ``out_dir`` (one file per experiment and config; ``<stem>`` is the experiment file's
path relative to the data folder, without ``.h5``)::

    <out_dir>/<config name>/steps/<stem>.parquet    one row per step: step_index, features...
    <out_dir>/<config name>/cycles/<stem>.parquet   per-cycle (ragged) features: step_index, cycle, ...
    <out_dir>/<config name>/errors/<stem>.parquet   step_index, feature, message (only when any)

Each file carries key-value metadata ``dask_features`` (JSON): config name and hash, source file
with its size and mtime, experiment ids, package version. The ``steps`` file is written last and
is the completion marker: an experiment is done when its steps file exists with the same config
hash and the same source size/mtime. Every file is written to a hidden temporary name in the same
folder and renamed into place, so a killed run never leaves a half file under a final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dask_features._paths import check_output_folder
from dask_features._version import __version__
from dask_features.config.schema import FeatureConfig, load_config
from dask_features.errors import OutputError
from dask_features.io.hdf5 import Experiment

__all__ = ["TABLES", "experiment_stem", "is_complete", "output_paths", "read_features", "write_tables"]

TABLES = ("steps", "cycles", "errors")
_META_KEY = b"dask_features"
# Letters and digits of any script are kept (\\w is Unicode-aware): replacing every non-ASCII character
# by "_" made "芯片-1.h5" and "晶片-1.h5" the same output file, and the second silently overwrote the first.
_UNSAFE = re.compile(r"[^\w.#+-]+")
#: Longest file-name component [bytes, UTF-8]: leaves room for ".parquet" and the temporary-name affixes
#: within the 255-byte limit of common file systems.
_MAX_COMPONENT_BYTES = 200
#: Columns read_features puts in front of the features.
META_COLUMNS = ("chip_id", "device_id", "test_id", "source_file")


def _safe_component(part: str) -> str:
    cleaned = _UNSAFE.sub("_", part).lstrip(".") or "_"
    # Cut by bytes, not characters: 200 CJK characters are 600 bytes, too long for a file name.
    return cleaned.encode()[:_MAX_COMPONENT_BYTES].decode("utf-8", errors="ignore") or "_"


def experiment_stem(path: str, root: str | None) -> str:
    """Relative output name of an experiment file: its path below ``root`` without the suffix.

    Every component is sanitised (no ``..``, no absolute paths, no NUL or separators), so a name
    can never escape the output folder.
    """
    rel = os.path.relpath(path, root) if root else os.path.basename(path)
    if rel.startswith(".."):
        rel = os.path.basename(path)
    stem = os.path.splitext(rel)[0]
    return "/".join(_safe_component(p) for p in Path(stem).parts if p not in ("", ".", "..", "/"))


def unique_stem(stem: str, path: str, root: str | None) -> str:
    """``stem`` made unique for ``path`` by a short hash of its path below ``root`` (stable if the folder moves)."""
    rel = os.path.relpath(path, root) if root else os.path.basename(path)
    return f"{stem}--{hashlib.blake2b(rel.encode(), digest_size=4).hexdigest()}"


def output_paths(out_dir: str | os.PathLike[str], config_name: str, stem: str) -> dict[str, Path]:
    """Paths of the ``steps``, ``cycles`` and ``errors`` files of one experiment."""
    base = Path(out_dir) / _safe_component(config_name)
    return {t: base / t / f"{stem}.parquet" for t in TABLES}


def _metadata(config: FeatureConfig, experiment: Experiment, n_errors: int) -> dict[str, Any]:
    return {
        "config_name": config.name,
        "config_hash": config.hash,
        "source_file": experiment.path,
        "source_size": experiment.file_size,
        "source_mtime_ns": experiment.file_mtime_ns,
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


def _atomic_write(table: pa.Table, path: Path, meta: Mapping[str, Any]) -> None:
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), _META_KEY: json.dumps(meta).encode()}
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {path.parent}: {exc}") from exc
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a killed run
        with contextlib.suppress(OSError):
            stale.unlink()
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(f"cannot write {path}: {exc}") from exc


def write_tables(
    out_dir: str | os.PathLike[str],
    config: FeatureConfig,
    experiment: Experiment,
    stem: str,
    steps: pa.Table,
    cycles: pa.Table | None,
    errors: pa.Table,
) -> Path:
    """Write one experiment's tables atomically; the steps file last (it marks completion).

    Returns
    -------
    Path
        The steps file.

    Raises
    ------
    OutputError
        The output folder is not writable or the disk is full; no partial file is left behind.
    """
    paths = output_paths(out_dir, config.name, stem)
    meta = _metadata(config, experiment, errors.num_rows)
    # Stale companions of an earlier run would be mistaken for this run's: replace or remove them.
    for name, table in (("cycles", cycles), ("errors", errors if errors.num_rows else None)):
        if table is not None:
            _atomic_write(table, paths[name], meta)
        else:
            with contextlib.suppress(FileNotFoundError):
                paths[name].unlink()
    _atomic_write(steps, paths["steps"], meta)
    return paths["steps"]


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``dask_features`` metadata of an output file."""
    schema = pq.read_schema(path)
    raw = (schema.metadata or {}).get(_META_KEY)
    return json.loads(raw) if raw else {}


def is_complete(
    out_dir: str | os.PathLike[str], config: FeatureConfig, experiment: Experiment, stem: str
) -> bool:
    """True when the experiment's output exists for this config hash and an unchanged source file."""
    path = output_paths(out_dir, config.name, stem)["steps"]
    if not path.exists():
        return False
    try:
        meta = read_metadata(path)
    except (OSError, pa.ArrowException, ValueError):
        return False  # unreadable output: recompute
    return (
        meta.get("config_hash") == config.hash
        and meta.get("source_size") == experiment.file_size
        and meta.get("source_mtime_ns") == experiment.file_mtime_ns
    )


def _files(out_dir: str | os.PathLike[str], config_name: str, table: str) -> Iterator[Path]:
    folder = Path(out_dir) / _safe_component(config_name) / table
    if folder.is_dir():
        yield from sorted(p for p in folder.rglob("*.parquet") if not p.name.startswith("."))


def _read_one(path: Path) -> pd.DataFrame:
    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))
    frame = table.to_pandas()
    for i, col in enumerate(META_COLUMNS):
        frame.insert(i, col, pd.Series([meta.get(col, "")] * len(frame), dtype="string"))
    return frame


def read_features(
    out_dir: str | os.PathLike[str],
    config: FeatureConfig | str | Mapping[str, Any],
    table: Literal["steps", "cycles", "errors"] = "steps",
    *,
    as_dask: bool = False,
) -> Any:
    """Read extracted features back, one row per step (or per cycle), all experiments together.

    Parameters
    ----------
    out_dir : str or path-like
        The ``out_dir`` given to :func:`~dask_features.extract`.
    config : FeatureConfig, str or dict
        The config (or its name) whose outputs to read.
    table : {"steps", "cycles", "errors"}, default "steps"
        Which table.
    as_dask : bool, default False
        Return a lazy ``dask.dataframe.DataFrame`` with one partition per experiment.

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame
        Columns ``chip_id, device_id, test_id, source_file``, then ``step_index`` (and ``cycle``),
        then the features. Experiments whose vector features differ in width are aligned by name
        (missing columns are NaN).
    """
    if table not in TABLES:
        raise ValueError(f"table must be one of {TABLES}, got {table!r}")
    if isinstance(config, str) and not config.endswith((".yaml", ".yml")):
        name = config  # a bare name: no need to resolve a preset or re-validate
    else:
        name = load_config(config).name
    check_output_folder(out_dir, _safe_component(name))
    files = list(_files(out_dir, name, table))
    if as_dask:
        import dask.dataframe as dd

        if not files:
            raise FileNotFoundError(f"no {table} files for config {name!r} under {out_dir}")
        return dd.from_map(_read_one, files)
    if not files:
        return pd.DataFrame(columns=[*META_COLUMNS, "step_index"])
    return pd.concat([_read_one(p) for p in files], ignore_index=True)
