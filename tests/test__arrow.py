"""Arrow arrays built from buffers equal ``pa.array(..., from_pandas=True)`` and import no pandas."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from dask_features._arrow import from_numpy, int64s, repeated_string, strings, to_numpy

NAN = np.nan
VALUES = {
    "float64 with NaN": np.array([1.5, NAN, -0.0, np.inf, 3.0]),
    "all NaN": np.full(4, NAN),
    "empty": np.zeros(0),
    "float32 with NaN": np.array([1.5, NAN, 2.0], dtype=np.float32),
    "float16": np.array([1.5, NAN], dtype=np.float16),
    "strided column": np.arange(12, dtype=np.float64).reshape(4, 3)[:, 1],
    "integral floats with NaN": np.array([1.0, NAN, -7.0]),
    "int64": np.array([1, -2, 2**40]),
    "int32": np.array([1, -2, 3], dtype=np.int32),
    "uint8": np.array([0, 255], dtype=np.uint8),
    "bool": np.array([True, False, True, True, False, False, True, False, True]),
    "object": np.array(["a", None], dtype=object),
}
TYPES = [None, pa.float64(), pa.float32(), pa.int64(), pa.int32(), pa.bool_(), pa.string()]


def _reference(
    values: np.ndarray, type_: pa.DataType | None, nan_as_null: bool
) -> pa.Array | type[Exception]:
    try:
        return pa.array(values, type=type_, from_pandas=nan_as_null)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        return type(exc)


@pytest.mark.parametrize("nan_as_null", [True, False])
@pytest.mark.parametrize("type_", TYPES, ids=str)
@pytest.mark.parametrize("name", VALUES)
def test_from_numpy_matches_pyarrow(name: str, type_: pa.DataType | None, nan_as_null: bool) -> None:
    values = VALUES[name]
    want = _reference(values, type_, nan_as_null)
    if isinstance(want, type):
        with pytest.raises(want):
            from_numpy(values, type_, nan_as_null=nan_as_null)
        return
    got = from_numpy(values, type_, nan_as_null=nan_as_null)
    assert got.type == want.type
    assert got.null_count == want.null_count
    # Array.equals says NaN != NaN: the values' text (None for null) instead
    assert str(got.to_pylist()) == str(want.to_pylist())


def test_from_numpy_big_endian() -> None:
    """pyarrow refuses non-native byte order; the same values in native order are what is meant."""
    values = np.array([1.0, NAN, 2.0], dtype=">f8")
    assert from_numpy(values).equals(pa.array(values.astype("=f8"), from_pandas=True))


@pytest.mark.parametrize("values", [["a", None, "", "ü€"], [], [None], ["x"] * 3])
def test_strings(values: list[str | None]) -> None:
    assert strings(values).equals(pa.array(values, type=pa.string()))


@pytest.mark.parametrize("n", [0, 1, 5])
@pytest.mark.parametrize("value", ["", "chip-1", "ü"])
def test_repeated_string(value: str, n: int) -> None:
    assert repeated_string(value, n).equals(pa.array([value] * n, type=pa.string()))


@pytest.mark.parametrize("values", [[1, None, -3], [], [None, None], [2**62]])
def test_int64s(values: list[int | None]) -> None:
    assert int64s(values).equals(pa.array(values, type=pa.int64()))


@pytest.mark.parametrize(
    "column",
    [
        pa.array(np.arange(6, dtype=np.int64)).slice(2, 3),
        pa.chunked_array([pa.array([1.5, 2.5]), pa.array([3.5], type=pa.float64())]),
        pa.array([], type=pa.int32()),
        pa.chunked_array([], type=pa.int64()),
        pa.array([1.0, None]),
        pa.array([True, False]),
    ],
    ids=["sliced", "chunked", "empty", "no chunks", "with null", "bool"],
)
def test_to_numpy(column: pa.Array | pa.ChunkedArray) -> None:
    got, want = (
        to_numpy(column),
        column.to_numpy(zero_copy_only=False) if isinstance(column, pa.Array) else column.to_numpy(),
    )
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_imports_no_pandas() -> None:
    code = (
        "import sys, numpy as np\n"
        "from dask_features._arrow import from_numpy, strings, repeated_string, int64s, to_numpy\n"
        "from_numpy(np.array([1.0, np.nan]), None).cast('int64')\n"
        "from_numpy(np.array([True]), None); strings(['a', None]); repeated_string('a', 2); int64s([1, None])\n"
        "to_numpy(from_numpy(np.arange(3)).slice(1))\n"
        "assert 'pandas' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
