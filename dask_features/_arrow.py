"""Arrow arrays from NumPy arrays and Python lists, built from their buffers.

``pyarrow.array`` imports pandas the first time it converts anything (to ask whether the input is a
pandas object), which costs a fresh process about half a second. The engine builds every output
column with these functions instead, which wrap the NumPy memory as Arrow buffers and import
nothing. They give the same arrays as ``pa.array(values, type=type, from_pandas=True)``: NaN of a
float input is null, a cast to another type is a safe cast (a truncated or overflowing value
raises ``pyarrow.ArrowInvalid``). Inputs they do not cover (object, datetime and other dtypes, or
non-primitive target types) go through ``pa.array`` unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

__all__ = ["from_numpy", "int64s", "repeated_string", "strings", "to_numpy"]

#: NumPy dtype kinds built from buffers: bool, signed and unsigned integers, floats.
_KINDS = "biuf"
#: Largest total length [bytes] of a string array's data (its offsets are int32).
_MAX_STRING_BYTES = 2**31 - 1


def _primitive(type_: pa.DataType) -> bool:
    return pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_boolean(type_)


def _validity(valid: np.ndarray) -> pa.Buffer:
    """Arrow's validity bitmap (least significant bit first) of a boolean mask."""
    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def _nulls(missing: np.ndarray) -> tuple[pa.Buffer | None, int]:
    """Validity bitmap (None when nothing is missing) and null count of a boolean mask of nulls."""
    null_count = int(np.count_nonzero(missing))
    return (_validity(~missing) if null_count else None), null_count


def from_numpy(
    values: np.ndarray,
    type: pa.DataType | None = None,
    *,
    nan_as_null: bool = True,
) -> pa.Array:
    """A 1-D NumPy array as an Arrow array of ``type``, NaN as null.

    Parameters
    ----------
    values : ndarray, shape (n,)
        Bool, integer or float values (any strides or byte order).
    type : pyarrow.DataType, optional
        Arrow type of the result; default: the one matching ``values.dtype``.
    nan_as_null : bool, default True
        False keeps NaN as a float value.

    Returns
    -------
    pyarrow.Array
        Same as ``pa.array(values, type=type, from_pandas=nan_as_null)``.

    Raises
    ------
    pyarrow.ArrowInvalid
        A value does not fit ``type`` (truncated float, integer out of range).
    """
    values = np.asarray(values)
    if values.ndim != 1 or values.dtype.kind not in _KINDS or (type is not None and not _primitive(type)):
        return pa.array(values, type=type, from_pandas=nan_as_null)
    values = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("="))
    own = pa.from_numpy_dtype(values.dtype)
    n = len(values)
    validity, null_count = _nulls(np.isnan(values)) if nan_as_null and values.dtype.kind == "f" else (None, 0)
    data = _validity(values) if values.dtype.kind == "b" else pa.py_buffer(values)
    array = pa.Array.from_buffers(own, n, [validity, data], null_count=null_count)
    return array if type is None or type == own else array.cast(type)


def strings(values: Sequence[str | None]) -> pa.Array:
    """A string array (``None`` as null) from a list of ``str``."""
    encoded = [b"" if v is None else v.encode() for v in values]
    ends = np.cumsum([len(b) for b in encoded], dtype=np.int64)
    if len(ends) and ends[-1] > _MAX_STRING_BYTES:
        return pa.array(values, type=pa.string())  # pyarrow splits or errors as it sees fit
    offsets = np.concatenate([np.zeros(1, np.int32), ends.astype(np.int32)])
    validity, null_count = _nulls(np.array([v is None for v in values], dtype=bool))
    return pa.Array.from_buffers(
        pa.string(),
        len(encoded),
        [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))],
        null_count,
    )


def repeated_string(value: str, n: int) -> pa.Array:
    """A string array of ``n`` times ``value`` (one identity column of a table)."""
    raw = value.encode()
    if len(raw) * n > _MAX_STRING_BYTES:
        return pa.array([value] * n, type=pa.string())
    offsets = np.arange(n + 1, dtype=np.int32) * len(raw)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(raw * n)])


def int64s(values: Sequence[int | None]) -> pa.Array:
    """An int64 array (``None`` as null) from a list of ``int``."""
    validity, null_count = _nulls(np.array([v is None for v in values], dtype=bool))
    data = np.array([0 if v is None else v for v in values], dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(data), [validity, pa.py_buffer(data)], null_count)


def to_numpy(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An integer or float column without nulls as a NumPy array (read-only, may share memory).

    Other columns go through ``to_numpy(zero_copy_only=False)``.
    """
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    type_ = array.type
    if array.null_count or not (pa.types.is_integer(type_) or pa.types.is_floating(type_)):
        return array.to_numpy(zero_copy_only=False)
    dtype = np.dtype(type_.to_pandas_dtype())
    data = array.buffers()[1]
    if data is None:  # an empty array may have no data buffer
        return np.zeros(0, dtype)
    return np.frombuffer(data, dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)
