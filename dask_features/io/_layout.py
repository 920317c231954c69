"""The layout of an oect-infra experiment file: its datasets, their shapes, the step tables, and the
decoding of stored values (bytes, NumPy scalars, ids written as floats).

:mod:`dask_features.io.hdf5` asks these functions whether a file has the expected layout and how to
read its values; every problem is an :class:`~dask_features.errors.ExperimentFormatError` subclass
naming the file and the object.
"""

from __future__ import annotations

import functools
import os
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

#: Low-level objects of a file already opened, by name (or None: look every name up).
Opened = Mapping[str, Any] | None

__all__ = [
    "INDEX_COLUMNS",
    "VLEN_TEXT",
    "as_float",
    "check_index",
    "check_transfer",
    "check_transient",
    "classify_open_error",
    "close_file",
    "contains",
    "dataset",
    "dataset_id",
    "decode",
    "decode_table",
    "device_type",
    "finite_or_nan",
    "index_rows",
    "open_file",
    "optional_text",
    "stored_value",
    "text",
]

#: Columns of the transient step table giving each step's ``[start, end)`` sample range.
INDEX_COLUMNS = ("start_data_index", "end_data_index")
#: The NumPy dtype h5py reads a variable-length string as, by the string's HDF5 character set.
VLEN_TEXT = {
    h5py.h5t.CSET_ASCII: h5py.string_dtype("ascii"),
    h5py.h5t.CSET_UTF8: h5py.string_dtype("utf-8"),
}


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
    """``f[name]``, which must be a dataset; the errors of :func:`dataset_id`."""
    return h5py.Dataset(dataset_id(f, path, name))


def stored_value(f: h5py.File, name: str, objects: Opened = None) -> Any:
    """``decode(f[name][()])``; a scalar variable-length string (e.g. ``raw/workflow``) is read with
    a few low-level calls instead (an ``h5py.Dataset`` costs ~10x the read). ``objects``: see
    :func:`dataset_id`."""
    try:
        obj = _opened(objects, name)
        if obj is None:
            obj = h5py.h5o.open(f.id, name.encode())
        if isinstance(obj, h5py.h5d.DatasetID):
            tid = obj.get_type()
            dtype = VLEN_TEXT.get(tid.get_cset()) if isinstance(tid, h5py.h5t.TypeStringID) else None
            scalar = obj.get_space().get_simple_extent_type() == h5py.h5s.SCALAR
            if dtype is not None and tid.is_variable_str() and scalar:
                out = np.zeros((), dtype=dtype)
                obj.read(h5py.h5s.ALL, h5py.h5s.ALL, out, mtype=_memory_text(tid.get_cset()))
                return decode(out[()])
    except Exception:  # h5py's own path reads it, or raises what it raises
        pass
    return decode(f[name][()])


@functools.cache
def _memory_text(cset: int) -> h5py.h5t.TypeID:
    """The memory type of :data:`VLEN_TEXT` ``[cset]``, built once per process."""
    return h5py.h5t.py_create(VLEN_TEXT[cset])


@functools.cache
def _read_access() -> h5py.h5p.PropFAID:
    from h5py._hl.files import make_fapl

    return make_fapl(None, locking=False)


def open_file(path: str) -> h5py.File:
    """``h5py.File(path, "r", locking=False)``, its file access settings built once per process.

    h5py builds them again at every open (a third of an open and close of a small file). The file
    is opened by the same call with the same settings, so it raises the same ``OSError``.
    ``locking=False``: readers never block on (or are blocked by) a writer holding the lock.
    """
    return h5py.File(h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY, fapl=_read_access()))


#: The objects of a file other than the file itself, opened through its identifier.
_INSIDE = (
    h5py.h5f.OBJ_LOCAL | h5py.h5f.OBJ_DATASET | h5py.h5f.OBJ_GROUP | h5py.h5f.OBJ_DATATYPE | h5py.h5f.OBJ_ATTR
)


def close_file(f: h5py.File) -> None:
    """``f.close()``, at about half the cost when no object of the file is open any more.

    h5py's close first closes every object still open in the file, then scans every h5py object of
    the process for the identifiers that invalidated (~0.2 ms). With no object left open there is
    nothing to close or invalidate: releasing the file's identifier closes the file. Otherwise (an
    object still referenced, e.g. by a traceback) h5py's close does it all, as before.
    """
    fid = f.id
    if fid.valid and h5py.h5f.get_obj_count(fid, _INSIDE) == 0:
        fid._close()
    else:
        f.close()


def classify_open_error(path: str, exc: OSError) -> ExperimentFormatError:
    text = str(exc)
    if "truncated" in text.lower() or "eof" in text.lower():
        return TruncatedFileError(path, f"file is truncated ({text})")
    if "signature" in text.lower():
        return NotHDF5Error(path, "not an HDF5 file")
    return ExperimentFormatError(path, f"cannot open as HDF5 ({text})")


def _opened(objects: Opened, name: str) -> Any:
    return None if objects is None else objects.get(name)


def contains(f: h5py.File, name: str, objects: Opened = None) -> bool:
    """``name in f``, answered without a lookup when ``name`` or an object below it is among the
    ``objects`` already opened (see :func:`dataset_id`)."""
    if objects is not None and any(o == name or o.startswith(f"{name}/") for o in objects):
        return True
    return name in f


def dataset_id(f: h5py.File, path: str, name: str, objects: Opened = None) -> h5py.h5d.DatasetID:
    """The low-level dataset ``name`` (its shape and dtype without building an ``h5py.Dataset``,
    which costs ~10x the lookup).

    ``objects``: objects of ``f`` already opened by name (what
    :func:`~dask_features.io._safety.check_storage` returns); ``name`` is looked up only when it
    is not among them.

    Raises
    ------
    MissingGroupError
        No object ``name``.
    TruncatedFileError
        Its object header cannot be read.
    ExperimentFormatError
        ``name`` is a group (or a named datatype), not a dataset.
    """
    obj = _opened(objects, name)
    try:
        if obj is None:
            obj = h5py.h5o.open(f.id, name.encode())
    except KeyError:
        raise MissingGroupError(path, f"missing dataset '{name}'") from None
    except OSError as exc:  # damaged object headers surface here
        raise TruncatedFileError(path, f"cannot read '{name}': {exc}") from None
    if not isinstance(obj, h5py.h5d.DatasetID):
        raise ExperimentFormatError(path, f"'{name}' is a group, expected a dataset")
    return obj


def measurement(
    f: h5py.File, path: str, group: str, axis: int, size: int, expected: str, objects: Opened = None
) -> h5py.h5d.DatasetID:
    """The group's float ``measurement_data`` whose axis ``axis`` has length ``size``."""
    name = f"{group}/measurement_data"
    data = dataset_id(f, path, name, objects)
    shape = data.shape  # its length is the rank: one dataspace read, not two
    if len(shape) != len(expected.split(",")) or shape[axis] != size:
        raise ExperimentFormatError(path, f"{name} has shape {shape}, expected ({expected})")
    if data.dtype.kind != "f":
        raise ExperimentFormatError(path, f"{name} has dtype {data.dtype}, expected float")
    return data


def check_transfer(f: h5py.File, path: str, objects: Opened = None) -> tuple[int, int]:
    """Steps and padded sweep length of the transfer data (0, 0 without a transfer group);
    ``objects``: see :func:`dataset_id`."""
    if not contains(f, "transfer", objects):
        return 0, 0
    data = measurement(f, path, "transfer", 1, 2, "n_steps, 2, max_points", objects).shape
    rows = dataset_id(f, path, "transfer/step_info_table", objects).shape[0]
    if rows != data[0]:
        raise IndexTableError(
            path, f"transfer/step_info_table has {rows} rows but measurement_data has {data[0]} steps"
        )
    return int(data[0]), int(data[2])


def check_transient(
    f: h5py.File, path: str, *, index: bool = True, objects: Opened = None
) -> tuple[int, int, bool, tuple[tuple[int, ...], bool] | None]:
    """Shape, dtype and step count of the transient data, and their step boundaries.

    ``index=False`` leaves the ``start/end_data_index`` values unchecked (the caller reads no
    transient data yet; :class:`~dask_features.io.hdf5.Experiment` checks them before it does).
    ``objects``: see :func:`dataset_id`.
    """
    if not contains(f, "transient", objects):
        return 0, 0, False, None
    data = measurement(f, path, "transient", 0, 3, "3, total_points", objects)
    table = dataset_id(f, path, "transient/step_info_table", objects)
    n, total = int(table.shape[0]), int(data.shape[1])
    fields = _field_names(table)
    has_index = all(c.encode() in fields for c in INDEX_COLUMNS)
    if has_index:
        if index:
            check_index(table, path, total)
        return n, total, True, None
    if n == 0:
        return 0, total, False, None
    return n, total, False, infer_offsets(h5py.Dataset(data), n, total)


def _field_names(table: h5py.h5d.DatasetID) -> set[bytes]:
    """Field names of a compound dataset (none otherwise): the names of ``table.dtype``, without
    converting every field's type to NumPy (~8x the time for a step table)."""
    tid = table.get_type()
    if not isinstance(tid, h5py.h5t.TypeCompoundID):
        return set()
    return {tid.get_member_name(i) for i in range(tid.get_nmembers())}


def index_rows(table: h5py.h5d.DatasetID) -> np.ndarray:
    """``h5py.Dataset(table).fields(list(INDEX_COLUMNS))[:]``: the index columns of every row, each
    in its stored dtype, read with low-level calls (h5py first converts all ~20 fields' types)."""
    tid = table.get_type()
    dtype = np.dtype(
        [(c, tid.get_member_type(tid.get_member_index(c.encode())).dtype) for c in INDEX_COLUMNS]
    )
    rows = np.zeros(table.shape, dtype=dtype)
    if rows.size:
        table.read(h5py.h5s.ALL, h5py.h5s.ALL, rows, mtype=h5py.h5t.py_create(dtype))
    return rows


def check_index(table: h5py.h5d.DatasetID, path: str, total: int) -> None:
    """Every transient step's ``[start, end)`` sample range lies inside the ``total`` samples."""
    rows = index_rows(table)
    start, end = rows[INDEX_COLUMNS[0]].astype(np.int64), rows[INDEX_COLUMNS[1]].astype(np.int64)
    bad = np.flatnonzero((start < 0) | (end < start) | (end > total))
    if bad.size:
        i = int(bad[0])
        raise IndexTableError(
            path,
            f"transient step {i} has sample range [{start[i]}, {end[i]}) outside the data "
            f"(0..{total}); {bad.size} step(s) affected",
        )


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
