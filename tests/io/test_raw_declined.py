"""Datasets, files and chunks the raw chunk reader leaves to HDF5 (whose values and errors the
caller then gets, exactly as before)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from dask_features.io import _raw, _read
from tests.io._chunked import hdf5, raw_read, same, values, write


def _stored_chunk(path: Path, tail: int) -> None:
    """Chunk (5, 10) rewritten as a zlib stream followed by ``tail`` bytes (zlib stops at the
    stream's end, so HDF5 reads the same values)."""
    data = values((20, 30))
    write(path, data, chunks=(5, 10), compression="gzip")
    import zlib

    stream = zlib.compress(data[5:10, 10:20].tobytes(), 4) + b"\x00" * tail
    with h5py.File(path, "r+") as f:
        f["d"].id.write_direct_chunk((5, 10), stream)


@pytest.mark.parametrize(("tail", "read"), [(3, True), (5000, False)])
def test_trailing_bytes_after_a_stream(tmp_path: Path, tail: int, read: bool) -> None:
    """A few are ignored as HDF5 does; a chunk stored larger than zlib could make it is left to HDF5."""
    _stored_chunk(tmp_path / "f.h5", tail)
    with h5py.File(tmp_path / "f.h5", "r") as f:
        dsid = f["d"].id
        got = raw_read(dsid, (0, 0), (20, 30))
        assert (got is not None) == read
        out = np.empty((20, 30))
        _read._read(dsid, out, (0, 0))
        same(out, hdf5(dsid, (0, 0), (20, 30)))


def _pipeline_out_of_order(path: Path) -> None:
    data = values((20, 30))
    with h5py.File(path, "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((5, 10))
        dcpl.set_fletcher32()
        dcpl.set_shuffle()
        dcpl.set_deflate(4)
        space = h5py.h5s.create_simple(data.shape)
        dsid = h5py.h5d.create(f.id, b"d", h5py.h5t.IEEE_F64LE, space, dcpl=dcpl)
        dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, data)


def _skipped_filter(path: Path) -> None:
    """A chunk stored with its shuffle skipped (filter mask bit 0), as an optional filter may be."""
    data = values((20, 30))
    write(path, data, chunks=(5, 10), compression="gzip", shuffle=True)
    import zlib

    with h5py.File(path, "r+") as f:
        f["d"].id.write_direct_chunk((5, 10), zlib.compress(data[5:10, 10:20].tobytes(), 4), filter_mask=1)


def _unallocated(path: Path) -> None:
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("d", shape=(20, 30), dtype="<f8", chunks=(5, 10), compression="gzip")
        ds[:5] = values((5, 30))


def _with(dtype: str = "<f8", **kwargs: Any) -> Any:
    def make(path: Path) -> None:
        with np.errstate(over="ignore", invalid="ignore"):  # float32: the largest become inf
            write(path, values((20, 30)).astype(dtype), **kwargs)

    return make


#: Datasets HDF5 must read itself (the reader declines), with a selection that shows it.
DECLINED = {
    "lzf": _with(chunks=(5, 10), compression="lzf"),
    "scaleoffset": _with(chunks=(5, 10), scaleoffset=4),
    "shuffle-only": _with(chunks=(5, 10), shuffle=True),
    "fletcher32-only": _with(chunks=(5, 10), fletcher32=True),
    "big-endian": _with(chunks=(5, 10), compression="gzip", dtype=">f8"),
    "float32": _with(chunks=(5, 10), compression="gzip", dtype="<f4"),
    "contiguous": _with(),
    "out-of-order-pipeline": _pipeline_out_of_order,
    "skipped-filter": _skipped_filter,
    "unallocated": _unallocated,
}


@pytest.mark.parametrize("case", list(DECLINED))
def test_other_datasets_are_left_to_hdf5(case: str, tmp_path: Path) -> None:
    path = tmp_path / "f.h5"
    DECLINED[case](path)
    with h5py.File(path, "r") as f:
        dsid = f["d"].id
        assert raw_read(dsid, (0, 0), (20, 30)) is None
        out = np.full((20, 30), 123.0)
        _read._read(dsid, out, (0, 0))  # the caller's read: HDF5's values (fill value, conversions)
        same(out, f["d"][...].astype(np.float64))


def test_allocated_chunks_of_a_partly_written_dataset_are_read(tmp_path: Path) -> None:
    _unallocated(tmp_path / "f.h5")
    with h5py.File(tmp_path / "f.h5", "r") as f:
        got = raw_read(f["d"].id, (1, 3), (4, 20))
        assert got is not None
        same(got, f["d"][1:5, 3:23])


def test_an_unallocated_chunk_looked_up_by_coordinates(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "f.h5", "w") as f:
        ds = f.create_dataset("d", shape=(100, 30), dtype="<f8", chunks=(5, 10), compression="gzip")
        ds[:90] = values((90, 30))
    with h5py.File(tmp_path / "f.h5", "r") as f:
        dsid = f["d"].id
        assert raw_read(dsid, (88, 0), (4, 10)) is None  # rows 90-91: never written
        got = raw_read(dsid, (80, 0), (10, 10))
        assert got is not None
        same(got, f["d"][80:90, 0:10])


@pytest.mark.parametrize("how", ["r+", "core-driver"])
def test_files_not_read_through_a_plain_descriptor_are_left_to_hdf5(lab_file: Path, how: str) -> None:
    kwargs = {"mode": "r+"} if how == "r+" else {"mode": "r", "driver": "core"}
    with h5py.File(lab_file, **kwargs) as f:
        assert raw_read(f["d"].id, (0, 0, 0), (60, 2, 45)) is None


def test_a_user_block_never_misplaces_offsets(tmp_path: Path) -> None:
    path = tmp_path / "f.h5"
    data = values((60, 2, 45))
    with h5py.File(path, "w", userblock_size=4096) as f:
        f.create_dataset("d", data=data, chunks=(8, 1, 10), compression="gzip", shuffle=True, fletcher32=True)
    with h5py.File(path, "r") as f:
        got = raw_read(f["d"].id, (0, 0, 0), data.shape)
        if got is not None:  # the listed offsets are the file's: read, and the same
            same(got, data)


@pytest.fixture
def without_libdeflate(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(sys.modules, "deflate", None)  # import deflate raises ImportError
    importlib.reload(_raw)
    yield
    monkeypatch.undo()
    importlib.reload(_raw)


def test_without_libdeflate_hdf5_reads(lab_file: Path, without_libdeflate: None) -> None:
    assert _raw._libdeflate is None
    with h5py.File(lab_file, "r") as f:
        dsid = f["d"].id
        assert raw_read(dsid, (0, 0, 0), (60, 2, 45)) is None
        out = np.empty((60, 2, 45))
        _read._read(dsid, out, (0, 0, 0))
        same(out, f["d"][...])


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x04]))


def _error(dsid: h5py.h5d.DatasetID, raw: bool, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(_read, "RAW_CHUNKS", raw)
    with pytest.raises(OSError) as info:
        _read._read(dsid, np.empty((60, 2, 45)), (0, 0, 0))
    return str(info.value)


@pytest.mark.parametrize("fletcher32", [True, False])
@pytest.mark.parametrize("where", ["header", "middle", "checksum"])
def test_a_damaged_chunk_raises_hdf5s_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fletcher32: bool, where: str
) -> None:
    path = tmp_path / "f.h5"
    write(
        path, values((60, 2, 45)), chunks=(8, 1, 10), compression="gzip", shuffle=True, fletcher32=fletcher32
    )
    with h5py.File(path, "r") as f:
        info = f["d"].id.get_chunk_info(7)
    _flip(path, info.byte_offset + {"header": 0, "middle": info.size // 2, "checksum": info.size - 2}[where])
    with h5py.File(path, "r") as f:
        dsid = f["d"].id
        expected = _error(dsid, False, monkeypatch)
        assert raw_read(dsid, (0, 0, 0), (60, 2, 45)) is None
        assert _error(dsid, True, monkeypatch) == expected
