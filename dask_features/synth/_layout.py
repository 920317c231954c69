"""HDF5 building blocks of the oect-infra raw layout, reproduced with each writer's quirks.

Step tables are NumPy structured arrays built column by column with the converter's dtype rules
(strings -> ``S{max(len, 10)}``, integers -> ``<i8``, floats -> ``<f8``, anything else, such as
booleans, -> ``S50`` text), never row by row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import h5py
import numpy as np

__all__ = ["Compression", "sanitize", "step_table", "write_measurement", "write_table"]

Compression = Literal["gzip", "lzf"] | None

_UNSAFE = re.compile(r'[\\/:*?"<>|\r\n\t]')
_SPACES = re.compile(r"\s+")
_MAX_NAME = 120


def sanitize(value: object) -> str:
    """Make a file-name component the way the batch converter does.

    Parameters
    ----------
    value : object
        Attribute value; ``None`` or an empty string becomes ``"NA"``.

    Returns
    -------
    str
        ``\\/:*?"<>|``, CR, LF and TAB replaced by ``_``, whitespace collapsed, at most 120 chars.
    """
    text = "" if value is None else str(value)
    text = _SPACES.sub(" ", _UNSAFE.sub("_", text)).strip()[:_MAX_NAME]
    return text or "NA"


def _filters(compression: Compression) -> dict[str, Any]:
    """Dataset creation keywords: the real writer uses gzip level 4, shuffle and fletcher32."""
    if compression is None:
        return {"chunks": True, "fletcher32": True}
    opts = 4 if compression == "gzip" else None
    return {
        "chunks": True,
        "compression": compression,
        "compression_opts": opts,
        "shuffle": True,
        "fletcher32": True,
    }


def _column(values: np.ndarray) -> np.ndarray:
    """One step-table column converted with the converter's dtype rule."""
    kind = values.dtype.kind
    if kind in "iu":
        return values.astype("<i8")
    if kind == "f":
        return values.astype("<f8")
    if kind in "SUO":
        encoded = np.char.encode(values.astype(str), "utf-8")
        return encoded.astype(f"S{max(encoded.dtype.itemsize, 10)}")
    # pandas hands booleans and other objects to the "S50" branch as their text.
    return np.char.encode(values.astype(str), "utf-8").astype("S50")


def step_table(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Compound step table from equally long columns, in the given order.

    Parameters
    ----------
    columns : mapping of str to ndarray
        Column name to values.

    Returns
    -------
    ndarray
        Structured array, one row per step.
    """
    converted = {name: _column(np.asarray(values)) for name, values in columns.items()}
    n_rows = len(next(iter(converted.values())))
    table = np.empty(n_rows, dtype=[(name, col.dtype) for name, col in converted.items()])
    for name, col in converted.items():
        table[name] = col
    return table


def write_table(group: h5py.Group, table: np.ndarray, description: str, compression: Compression) -> None:
    """Write ``group/step_info_table`` with the converter's attributes."""
    dset = group.create_dataset("step_info_table", data=table, **_filters(compression))
    dset.attrs["description"] = description
    dset.attrs.create("columns", np.array(table.dtype.names, dtype=object), dtype=h5py.string_dtype())


def write_measurement(
    group: h5py.Group,
    data: np.ndarray,
    *,
    dimension_labels: list[str],
    data_type_labels: list[str],
    description: str,
    compression: Compression,
) -> None:
    """Write ``group/measurement_data`` (float64) with its label attributes."""
    dset = group.create_dataset("measurement_data", data=data, dtype="<f8", **_filters(compression))
    for name, labels in (("dimension_labels", dimension_labels), ("data_type_labels", data_type_labels)):
        dset.attrs.create(name, np.array(labels, dtype=object), dtype=h5py.string_dtype())
    dset.attrs["description"] = description
