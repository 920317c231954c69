""":func:`read_features`: one config version's results, all experiments together, never mixed.

A config (object, dict or YAML path) is read by its content hash: the current folder if it holds
that version, else its archived folder, else nothing. A bare config *name* reads whatever version
the folder holds now (one version by construction). The frame's ``attrs`` say which experiments
have results in another version but not this one (``missing``) and which were computed from a file
that has changed since (``stale``); an :class:`~dask_features.errors.IncompleteOutputWarning` says it
too.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dask_features._paths import check_output_folder
from dask_features.config.columns import IDENTITY_COLUMNS, READ_COLUMNS, TABLES
from dask_features.config.schema import FeatureConfig, load_config
from dask_features.engine.identity import same_content
from dask_features.engine.names import experiment_stem
from dask_features.engine.output import META_KEY
from dask_features.engine.plan import DataInput, expand_inputs, item_path
from dask_features.engine.versions import folder_name, version_folders
from dask_features.errors import IncompleteOutputWarning, InvalidArgumentError, OutputNotFoundError

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

__all__ = ["read_features"]


def _files(folder: Path | None, table: str) -> list[Path]:
    sub = None if folder is None else folder / table
    if sub is None or not sub.is_dir():
        return []
    return sorted(p for p in sub.rglob("*.parquet") if not p.name.startswith("."))


def _keys(folder: Path, table: str = "steps") -> set[str]:
    base = folder / table
    return {p.relative_to(base).as_posix().removesuffix(".parquet") for p in _files(folder, table)}


def _list_columns(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if pa.types.is_list(f.type) or pa.types.is_large_list(f.type)]


def _widths(files: Iterable[Path]) -> dict[str, int]:
    """Longest list of every list column over ``files`` (read back as that many columns)."""
    widths: dict[str, int] = {}
    for path in files:
        names = _list_columns(pq.read_schema(path))
        if names:
            table = pq.read_table(path, columns=names)
            for name in names:
                lengths = pa.compute.list_value_length(table.column(name))
                widths[name] = max(widths.get(name, 0), int(pa.compute.max(lengths).as_py() or 0))
    return widths


def _expand(frame: pd.DataFrame, name: str, width: int) -> pd.DataFrame:
    import pandas as pd

    values = np.full((len(frame), width), np.nan)
    for i, row in enumerate(frame[name]):
        if row is not None and len(row):
            values[i, : len(row)] = row
    at = frame.columns.get_loc(name)
    expanded = pd.DataFrame(values, columns=[f"{name}_{j}" for j in range(width)], index=frame.index)
    return pd.concat([frame.iloc[:, :at], expanded, frame.iloc[:, at + 1 :]], axis=1)


def _read_one(path: Path, widths: Mapping[str, int]) -> pd.DataFrame:
    # pandas is imported here, not with the module: extract() imports the engine, and a run that
    # never reads its results back should not pay half a second for it.
    import pandas as pd

    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
    frame = table.to_pandas()
    for name, width in widths.items():
        if name in frame:
            frame = _expand(frame, name, width)
    for i, col in enumerate(IDENTITY_COLUMNS):
        if col not in frame:  # written before rows carried their identity: take it from the metadata
            value = meta.get(col) or (path.stem if col == "experiment" else "")
            frame.insert(i, col, value)
    at = len(IDENTITY_COLUMNS)
    for col in READ_COLUMNS:
        frame.insert(at, col, pd.Series([meta.get(col, "")] * len(frame), dtype="string"))
    for col in IDENTITY_COLUMNS:
        frame[col] = frame[col].astype("string")
    return frame


def _stale(files: Iterable[Path]) -> list[str]:
    """Source files changed (or gone) since their results were written.

    Cheap for unchanged files (a stat); a file whose stat differs is hashed to tell a copy from a change.
    """
    stale = []
    for path in files:
        meta = json.loads((pq.read_schema(path).metadata or {}).get(META_KEY, b"{}"))
        source = meta.get("source_file", "")
        if not same_content(meta, source):
            stale.append(source)
    return stale


def _status(
    out_dir: str | os.PathLike[str], name: str, folder: Path | None, data: DataInput | None
) -> tuple[list[str], list[str]]:
    """``(missing, stale)``: experiment keys done in another version only (or in ``data`` and not
    done); changed sources."""
    have = _keys(folder) if folder is not None else set()
    wanted: set[str] = set()
    for other in version_folders(out_dir, name).values():
        if other != folder:
            wanted |= _keys(other)
    if data is not None:
        items, root = expand_inputs(data)
        wanted |= {experiment_stem(item_path(i), root) for i in items}
    stale = _stale(_files(folder, "steps"))
    return sorted(wanted - have), stale


def read_features(
    out_dir: str | os.PathLike[str],
    config: FeatureConfig | str | Mapping[str, Any],
    table: Literal["steps", "cycles", "errors"] = "steps",
    *,
    as_dask: bool = False,
    data: DataInput | None = None,
) -> pd.DataFrame | dd.DataFrame:
    """Read extracted features back, one row per step (or per cycle), all experiments together.

    Parameters
    ----------
    out_dir : str or path-like
        The ``out_dir`` given to :func:`~dask_features.extract`.
    config : FeatureConfig, str or dict
        The config whose outputs to read. A config object, dict or YAML path selects exactly its
        version (content hash), current or archived; a bare name reads the version the folder holds.
    table : {"steps", "cycles", "errors"}, default "steps"
        Which table.
    as_dask : bool, default False
        Return a lazy ``dask.dataframe.DataFrame`` with one partition per experiment.
    data : path, folder, Experiment or iterable of these, optional
        The ``data`` given to :func:`~dask_features.extract`: its experiments without results are
        listed in ``attrs["missing"]`` too.

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame
        Columns ``chip_id, device_id, test_id, experiment, source_file``, then ``step_index`` (and
        ``cycle``), then the features. Per-step vectors of experiment-dependent length (stored as
        list columns) are spread into ``{name}_0, {name}_1, ...`` (NaN-padded to the longest).
        ``attrs["config_hash"]``, ``attrs["missing"]`` (experiment keys with results only in another
        version of the config, or in ``data`` without results) and ``attrs["stale"]`` (source files
        changed since) describe it.

    Warns
    -----
    IncompleteOutputWarning
        When ``missing`` or ``stale`` is not empty.
    """
    if table not in TABLES:
        raise InvalidArgumentError(f"table must be one of {TABLES}, got {table!r}")
    if isinstance(config, str) and not config.endswith((".yaml", ".yml")):
        name, wanted = config, None  # a bare name: whatever version the folder holds
    else:
        cfg = load_config(config)
        name, wanted = cfg.name, cfg.hash
    versions = version_folders(out_dir, name)
    current = Path(out_dir) / folder_name(name)
    if not versions and not current.is_dir():
        check_output_folder(out_dir, folder_name(name))  # a misspelled folder or name: say so
    if wanted is None:
        folder = current if current.is_dir() else None
        wanted = next((h for h, f in versions.items() if f == current), None)
    else:
        folder = versions.get(wanted)
    files = _files(folder, table)
    missing, stale = _status(out_dir, name, folder, data)
    if missing or stale:
        warnings.warn(
            f"config {name!r} ({wanted}): {len(missing)} experiment(s) have results only in another "
            f"version ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}), {len(stale)} "
            "were computed from files changed since; see .attrs['missing'] and .attrs['stale'], "
            "rerun extract() to update",
            IncompleteOutputWarning,
            stacklevel=2,
        )
    import pandas as pd

    widths = _widths(files)
    if as_dask:
        import dask.dataframe as dd

        if not files:
            raise OutputNotFoundError(f"no {table} files for config {name!r} under {out_dir}")
        result = dd.from_map(partial(_read_one, widths=widths), files)
    elif files:
        result = pd.concat([_read_one(p, widths) for p in files], ignore_index=True)
    else:
        result = pd.DataFrame(columns=[*IDENTITY_COLUMNS, *READ_COLUMNS, "step_index"])
    if not as_dask:  # a dask DataFrame has no attrs; the warning above says it
        result.attrs.update({"config_hash": wanted, "missing": missing, "stale": stale})
    return result
