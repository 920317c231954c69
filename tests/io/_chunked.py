"""Chunked datasets for the raw chunk reader's tests: values HDF5 must hand over untouched, and
reads by HDF5 and by the raw reader to compare."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from dask_features.io import _raw

__all__ = ["SPECIAL", "hdf5", "raw_read", "same", "values", "write"]

SPECIAL = np.array(
    [np.nan, -np.nan, np.inf, -np.inf, -0.0, 0.0, 5e-324, -2.2e-308, 1.7976931348623157e308, 1.0]
)


def values(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.normal(size=shape) * 10.0 ** rng.integers(-12, 3, size=shape)
    flat = data.reshape(-1)
    pick = rng.choice(flat.size, size=min(flat.size, 4 * SPECIAL.size), replace=False)
    flat[pick] = np.resize(SPECIAL, pick.size)
    flat[pick[:2]] = np.frombuffer(
        np.array([0x7FF8_0000_DEAD_BEEF, 0xFFF0_0000_0000_0001], np.uint64), np.float64
    )
    return data


def write(path: Path, data: np.ndarray, **kwargs: Any) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=data, **kwargs)


def hdf5(dsid: h5py.h5d.DatasetID, start: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty(shape)
    fspace = dsid.get_space()
    fspace.select_hyperslab(start, shape)
    dsid.read(h5py.h5s.create_simple(shape), fspace, out, mtype=h5py.h5t.NATIVE_DOUBLE)
    return out


def raw_read(dsid: h5py.h5d.DatasetID, start: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray | None:
    out = np.full(shape, 123.0)
    return out if _raw.read_into(dsid, out, start) else None


def same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    assert np.array_equal(a.view(np.uint64), b.view(np.uint64))


#: shape, chunk shape, selections (start, shape).
