"""The layout of an oect-infra experiment file: its datasets, their shapes, the step tables, and the
decoding of stored values (bytes, NumPy scalars, ids written as floats).

:mod:`dask_features.io.hdf5` asks these functions whether a file has the expected layout and how to
read its values; every problem is an :class:`~dask_features.errors.ExperimentFormatError` subclass
naming the file and the object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from dask_features.errors import (
    ExperimentFormatError,
    IndexTableError,
    MissingGroupError,
    NotHDF5Error,
    TruncatedFileError,
)

if TYPE_CHECKING:
    import pandas as pd  # imported where a table is built

__all__ = [
    "INDEX_COLUMNS",
    "as_float",
    "check_transfer",
    "check_transient",
    "classify_open_error",
    "dataset",
    "decode",
    "decode_table",
    "device_type",
    "finite_or_nan",
    "optional_text",
    "text",
]

#: Columns of the transient step table giving each step's ``[start, end)`` sample range.
INDEX_COLUMNS = ("start_data_index", "end_data_index")


def decode(value: Any) -> Any:
    """Decode h5py attribute values: bytes -> str, numpy scalars -> Python, string arrays -> lists."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SO":
            return [decode(v) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def text(attrs: Mapping[str, Any], key: str, default: str = "") -> str:
    value = attrs.get(key)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # numeric ids written as floats by some exports
    return str(value)


def optional_text(attrs: Mapping[str, Any], key: str) -> str | None:
    return text(attrs, key) if attrs.get(key) is not None else None


def device_type(value: Any) -> str | None:
    """Normalise ``N-type``/``n``/``P-type``/... to ``"N"`` or ``"P"``; anything else -> None."""
    if value is None:
        return None
    text = str(value).strip().upper()
    if text.startswith("N"):
        return "N"
    if text.startswith("P"):
        return "P"
    return None


def finite_or_nan(values: np.ndarray) -> np.ndarray:
    """Contiguous float64 copy with +-inf replaced by NaN.

    An infinite sample is an overflowed or invalid reading, not a measurement: it is treated as a
    missing sample (which every extractor handles) instead of turning a peak or a mean into inf.
    """
    out = np.ascontiguousarray(values, dtype=np.float64)
    inf = np.isinf(out)
    if inf.any():
        out = out.copy()  # may be a view of the block just read
        out[inf] = np.nan
    return out


def as_float(column: np.ndarray) -> np.ndarray:
    if column.dtype.kind in "SUO":
        import pandas as pd

        return pd.to_numeric(pd.Series([decode(v) for v in column]), errors="coerce").to_numpy(float)
    return column.astype(np.float64)


def decode_table(rows: np.ndarray) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame({name: rows[name] for name in rows.dtype.names or ()})
    for name in frame.columns:
        if rows.dtype[name].kind in "SO":
            frame[name] = [decode(v) for v in rows[name]]
    return frame


def dataset(f: h5py.File, path: str, name: str) -> h5py.Dataset:
    try:
        obj = f[name]
    except KeyError:
        raise MissingGroupError(path, f"missing dataset '{name}'") from None
    except OSError as exc:  # damaged object headers surface here
        raise TruncatedFileError(path, f"cannot read '{name}': {exc}") from None
    if not isinstance(obj, h5py.Dataset):
        raise ExperimentFormatError(path, f"'{name}' is a group, expected a dataset")
    return obj


def classify_open_error(path: str, exc: OSError) -> ExperimentFormatError:
    text = str(exc)
    if "truncated" in text.lower() or "eof" in text.lower():
        return TruncatedFileError(path, f"file is truncated ({text})")
    if "signature" in text.lower():
        return NotHDF5Error(path, "not an HDF5 file")
    return ExperimentFormatError(path, f"cannot open as HDF5 ({text})")


def measurement(f: h5py.File, path: str, group: str, axis: int, size: int, expected: str) -> h5py.Dataset:
    """The group's float ``measurement_data`` whose axis ``axis`` has length ``size``."""
    name = f"{group}/measurement_data"
    data = dataset(f, path, name)
    if data.ndim != len(expected.split(",")) or data.shape[axis] != size:
        raise ExperimentFormatError(path, f"{name} has shape {data.shape}, expected ({expected})")
    if data.dtype.kind != "f":
        raise ExperimentFormatError(path, f"{name} has dtype {data.dtype}, expected float")
    return data


def check_transfer(f: h5py.File, path: str) -> tuple[int, int]:
    if "transfer" not in f:
        return 0, 0
    data = measurement(f, path, "transfer", 1, 2, "n_steps, 2, max_points")
    table = dataset(f, path, "transfer/step_info_table")
    if table.shape[0] != data.shape[0]:
        raise IndexTableError(
            path,
            f"transfer/step_info_table has {table.shape[0]} rows but measurement_data has {data.shape[0]} steps",
        )
    return int(data.shape[0]), int(data.shape[2])


def check_transient(f: h5py.File, path: str) -> tuple[int, int, bool, tuple[tuple[int, ...], bool] | None]:
    if "transient" not in f:
        return 0, 0, False, None
    data = measurement(f, path, "transient", 0, 3, "3, total_points")
    table = dataset(f, path, "transient/step_info_table")
    n, total = int(table.shape[0]), int(data.shape[1])
    names = table.dtype.names or ()
    has_index = all(c in names for c in INDEX_COLUMNS)
    if has_index:
        rows = table.fields(list(INDEX_COLUMNS))[:]
        start, end = rows[INDEX_COLUMNS[0]].astype(np.int64), rows[INDEX_COLUMNS[1]].astype(np.int64)
        bad = np.flatnonzero((start < 0) | (end < start) | (end > total))
        if bad.size:
            i = int(bad[0])
            raise IndexTableError(
                path,
                f"transient step {i} has sample range [{start[i]}, {end[i]}) outside the data "
                f"(0..{total}); {bad.size} step(s) affected",
            )
        return n, total, True, None
    if n == 0:
        return 0, total, False, None
    return n, total, False, infer_offsets(data, n, total)


def infer_offsets(data: h5py.Dataset, n: int, total: int) -> tuple[tuple[int, ...], bool]:
    """Step boundaries for old files: where ``original_time`` restarts, else an equal split."""
    original = data[1, :]
    starts = np.flatnonzero(np.diff(original) <= 0) + 1
    if starts.size == n - 1:
        return tuple(int(v) for v in np.concatenate([[0], starts, [total]])), True
    # oect-infra's rule: equal parts, the remainder goes to the last step.
    size = total // n
    offsets = [i * size for i in range(n)] + [total]
    return tuple(offsets), False
