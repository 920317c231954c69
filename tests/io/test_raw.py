"""The raw chunk reader fills a hyperslab exactly as ``dsid.read`` does, or declines (and then the
read is HDF5's, errors included)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import dask_features as dfe
from dask_features import synth
from dask_features.io import _raw, _read

#: Values HDF5 must hand over untouched: NaN payloads, infinities, signed zeros, subnormals.
SPECIAL = np.array(
    [np.nan, -np.nan, np.inf, -np.inf, -0.0, 0.0, 5e-324, -2.2e-308, 1.7976931348623157e308, 1.0]
)


def _data(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.normal(size=shape) * 10.0 ** rng.integers(-12, 3, size=shape)
    flat = data.reshape(-1)
    pick = rng.choice(flat.size, size=min(flat.size, 4 * SPECIAL.size), replace=False)
    flat[pick] = np.resize(SPECIAL, pick.size)
    flat[pick[:2]] = np.frombuffer(
        np.array([0x7FF8_0000_DEAD_BEEF, 0xFFF0_0000_0000_0001], np.uint64), np.float64
    )
    return data


def _write(path: Path, data: np.ndarray, **kwargs: Any) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("d", data=data, **kwargs)


def _hdf5(dsid: h5py.h5d.DatasetID, start: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty(shape)
    fspace = dsid.get_space()
    fspace.select_hyperslab(start, shape)
    dsid.read(h5py.h5s.create_simple(shape), fspace, out, mtype=h5py.h5t.NATIVE_DOUBLE)
    return out


def _raw_read(dsid: h5py.h5d.DatasetID, start: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray | None:
    out = np.full(shape, 123.0)
    return out if _raw.read_into(dsid, out, start) else None


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    assert np.array_equal(a.view(np.uint64), b.view(np.uint64))


#: shape, chunk shape, selections (start, shape).
LAYOUTS = {
    "lab-transfer": (
        (400, 2, 301),
        (50, 1, 38),
        [
            ((0, 0, 0), (400, 2, 301)),
            ((0, 0, 0), (400, 1, 301)),
            ((0, 1, 0), (400, 1, 301)),
            ((7, 0, 0), (93, 2, 301)),
            ((399, 1, 300), (1, 1, 1)),
            ((49, 0, 37), (2, 2, 2)),
        ],
    ),
    "edges-everywhere": (
        (13, 2, 21),
        (3, 1, 8),
        [
            ((0, 0, 0), (13, 2, 21)),
            ((12, 0, 0), (1, 2, 21)),
            ((2, 1, 5), (9, 1, 11)),
            ((4, 0, 20), (9, 2, 1)),
        ],
    ),
    "both-rows-in-a-chunk": (
        (13, 2, 21),
        (5, 2, 21),
        [((0, 0, 0), (13, 2, 21)), ((4, 0, 0), (2, 2, 21)), ((3, 1, 2), (10, 1, 19))],
    ),
    "lab-transient": (
        (3, 5000),
        (1, 640),
        [
            ((0, 0), (3, 5000)),
            ((0, 0), (1, 5000)),
            ((2, 639), (1, 2)),
            ((2, 1000), (1, 3999)),
            ((1, 4999), (1, 1)),
        ],
    ),
    "rows-in-a-chunk": ((3, 1000), (2, 300), [((0, 0), (3, 1000)), ((1, 299), (2, 602))]),
    "one-dimension": ((1000,), (64,), [((0,), (1000,)), ((63,), (2,)), ((960,), (40,))]),
    "one-chunk": ((4, 2, 7), (4, 2, 7), [((0, 0, 0), (4, 2, 7)), ((1, 1, 3), (2, 1, 2))]),
}

#: The accepted pipelines (h5py stores them in this order: shuffle, deflate, fletcher32).
PIPELINES = {
    "deflate": {"shuffle": False, "fletcher32": False},
    "shuffle-deflate": {"shuffle": True, "fletcher32": False},
    "deflate-fletcher32": {"shuffle": False, "fletcher32": True},
    "shuffle-deflate-fletcher32": {"shuffle": True, "fletcher32": True},
}


@pytest.mark.parametrize("level", [1, 4, 9])
@pytest.mark.parametrize("pipeline", list(PIPELINES))
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_selection_is_hdf5s_read(layout: str, pipeline: str, level: int, tmp_path: Path) -> None:
    shape, chunks, selections = LAYOUTS[layout]
    _write(
        tmp_path / "f.h5",
        _data(shape),
        chunks=chunks,
        compression="gzip",
        compression_opts=level,
        **PIPELINES[pipeline],
    )
    with h5py.File(tmp_path / "f.h5", "r") as f:
        dsid = f["d"].id
        for start, sel in selections:
            got = _raw_read(dsid, start, sel)
            assert got is not None, (start, sel)
            _same(got, _hdf5(dsid, start, sel))


@pytest.mark.parametrize("value", [0.0, -0.0, np.nan, np.inf, 5e-324])
def test_constant_data(value: float, tmp_path: Path) -> None:
    """All-zero (and otherwise constant) chunks: the most compressible streams, zero words summed."""
    data = np.full((60, 2, 45), value)
    _write(tmp_path / "f.h5", data, chunks=(8, 1, 10), compression="gzip", shuffle=True, fletcher32=True)
    with h5py.File(tmp_path / "f.h5", "r") as f:
        got = _raw_read(f["d"].id, (0, 0, 0), data.shape)
    assert got is not None
    _same(got, data)


@pytest.fixture
def lab_file(tmp_path: Path) -> Path:
    path = tmp_path / "lab.h5"
    _write(path, _data((60, 2, 45)), chunks=(8, 1, 10), compression="gzip", shuffle=True, fletcher32=True)
    return path


def test_a_large_selection_is_read_in_pieces(lab_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_raw, "PIECE_BYTES", 3 * 8 * 10 * 8 + 5)  # three chunks at a time
    monkeypatch.setattr(_raw, "_GAP", -1)  # and each chunk read by a call of its own
    with h5py.File(lab_file, "r") as f:
        dsid = f["d"].id
        got = _raw_read(dsid, (3, 0, 2), (50, 2, 40))
        assert got is not None
        _same(got, _hdf5(dsid, (3, 0, 2), (50, 2, 40)))
        monkeypatch.setattr(_raw, "PIECE_BYTES", 8 * 10 * 8 - 1)  # a chunk is more than a piece
        assert _raw_read(dsid, (0, 0, 0), (60, 2, 45)) is None


@pytest.mark.parametrize(
    ("maxshape", "chunks"),
    [
        ((40, 2, 45), (8, 1, 10)),  # fixed array index
        ((None, 2, 45), (8, 1, 10)),  # extensible array
        ((None, None, 45), (8, 1, 10)),  # version 2 B-tree
        ((40, 2, 45), (40, 2, 45)),  # a single chunk
    ],
)
def test_every_chunk_index_of_the_latest_format(
    tmp_path: Path, maxshape: tuple[int | None, ...], chunks: tuple[int, ...]
) -> None:
    data = _data((40, 2, 45))
    with h5py.File(tmp_path / "f.h5", "w", libver="latest") as f:
        f.create_dataset(
            "d",
            data=data,
            maxshape=maxshape,
            chunks=chunks,
            compression="gzip",
            shuffle=True,
            fletcher32=True,
        )
    with h5py.File(tmp_path / "f.h5", "r") as f:
        dsid = f["d"].id
        for start, shape in [((0, 0, 0), (40, 2, 45)), ((3, 1, 9), (30, 1, 2))]:
            got = _raw_read(dsid, start, shape)
            assert got is not None
            _same(got, _hdf5(dsid, start, shape))


@pytest.mark.parametrize(
    ("start", "shape", "listed"),
    [
        ((7, 1, 0), (30, 1, 45), False),  # a few of many chunks: looked up by coordinates
        ((0, 0, 0), (120, 2, 45), True),  # most: listed at once
    ],
)
def test_chunks_are_looked_up_or_listed(
    tmp_path: Path, start: tuple[int, ...], shape: tuple[int, ...], listed: bool
) -> None:
    path = tmp_path / "f.h5"
    _write(path, _data((120, 2, 45)), chunks=(8, 1, 10), compression="gzip", shuffle=True, fletcher32=True)
    with h5py.File(path, "r") as f:
        dsid = f["d"].id
        got = _raw_read(dsid, start, shape)
        assert got is not None
        _same(got, _hdf5(dsid, start, shape))
        plan = _raw._plan(dsid)
        assert plan is not None
        assert (plan.every is not None) == listed


def _stored_chunk(path: Path, tail: int) -> None:
    """Chunk (5, 10) rewritten as a zlib stream followed by ``tail`` bytes (zlib stops at the
    stream's end, so HDF5 reads the same values)."""
    data = _data((20, 30))
    _write(path, data, chunks=(5, 10), compression="gzip")
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
        got = _raw_read(dsid, (0, 0), (20, 30))
        assert (got is not None) == read
        out = np.empty((20, 30))
        _read._read(dsid, out, (0, 0))
        _same(out, _hdf5(dsid, (0, 0), (20, 30)))


@pytest.mark.parametrize(("gap", "gaps_read"), [(64 << 10, 1 << 20), (64 << 10, 0), (-1, 0), (10, 1 << 20)])
def test_chunks_between_other_data_are_read_in_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gap: int, gaps_read: int
) -> None:
    """Chunks of two datasets written in turn lie between each other's: runs of nearby chunks are
    read at once, the bytes between them read along only up to a bound."""
    monkeypatch.setattr(_raw, "_GAP", gap)
    monkeypatch.setattr(_raw, "_GAPS_READ", gaps_read)
    data = _data((2, 12, 300))
    with h5py.File(tmp_path / "f.h5", "w") as f:
        a, b = (
            f.create_dataset(n, shape=(12, 300), dtype="<f8", chunks=(1, 100), compression="gzip")
            for n in "ab"
        )
        for i in range(12):
            a[i], b[i] = data[0, i], data[1, i]
            f.flush()
    with h5py.File(tmp_path / "f.h5", "r") as f:
        dsid = f["a"].id
        offsets = sorted(dsid.get_chunk_info(i).byte_offset for i in range(dsid.get_num_chunks()))
        assert max(np.diff(offsets)) > 1000  # interleaved indeed
        got = _raw_read(dsid, (1, 50), (10, 250))
        assert got is not None
        _same(got, data[0, 1:11, 50:])


def _pipeline_out_of_order(path: Path) -> None:
    data = _data((20, 30))
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
    data = _data((20, 30))
    _write(path, data, chunks=(5, 10), compression="gzip", shuffle=True)
    import zlib

    with h5py.File(path, "r+") as f:
        f["d"].id.write_direct_chunk((5, 10), zlib.compress(data[5:10, 10:20].tobytes(), 4), filter_mask=1)


def _unallocated(path: Path) -> None:
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("d", shape=(20, 30), dtype="<f8", chunks=(5, 10), compression="gzip")
        ds[:5] = _data((5, 30))


def _with(dtype: str = "<f8", **kwargs: Any) -> Any:
    def write(path: Path) -> None:
        with np.errstate(over="ignore", invalid="ignore"):  # float32: the largest become inf
            _write(path, _data((20, 30)).astype(dtype), **kwargs)

    return write


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
        assert _raw_read(dsid, (0, 0), (20, 30)) is None
        out = np.full((20, 30), 123.0)
        _read._read(dsid, out, (0, 0))  # the caller's read: HDF5's values (fill value, conversions)
        _same(out, f["d"][...].astype(np.float64))


def test_allocated_chunks_of_a_partly_written_dataset_are_read(tmp_path: Path) -> None:
    _unallocated(tmp_path / "f.h5")
    with h5py.File(tmp_path / "f.h5", "r") as f:
        got = _raw_read(f["d"].id, (1, 3), (4, 20))
        assert got is not None
        _same(got, f["d"][1:5, 3:23])


def test_an_unallocated_chunk_looked_up_by_coordinates(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "f.h5", "w") as f:
        ds = f.create_dataset("d", shape=(100, 30), dtype="<f8", chunks=(5, 10), compression="gzip")
        ds[:90] = _data((90, 30))
    with h5py.File(tmp_path / "f.h5", "r") as f:
        dsid = f["d"].id
        assert _raw_read(dsid, (88, 0), (4, 10)) is None  # rows 90-91: never written
        got = _raw_read(dsid, (80, 0), (10, 10))
        assert got is not None
        _same(got, f["d"][80:90, 0:10])


@pytest.mark.parametrize("how", ["r+", "core-driver"])
def test_files_not_read_through_a_plain_descriptor_are_left_to_hdf5(lab_file: Path, how: str) -> None:
    kwargs = {"mode": "r+"} if how == "r+" else {"mode": "r", "driver": "core"}
    with h5py.File(lab_file, **kwargs) as f:
        assert _raw_read(f["d"].id, (0, 0, 0), (60, 2, 45)) is None


def test_a_user_block_never_misplaces_offsets(tmp_path: Path) -> None:
    path = tmp_path / "f.h5"
    data = _data((60, 2, 45))
    with h5py.File(path, "w", userblock_size=4096) as f:
        f.create_dataset("d", data=data, chunks=(8, 1, 10), compression="gzip", shuffle=True, fletcher32=True)
    with h5py.File(path, "r") as f:
        got = _raw_read(f["d"].id, (0, 0, 0), data.shape)
        if got is not None:  # the listed offsets are the file's: read, and the same
            _same(got, data)


def _readonly(shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape)
    out.flags.writeable = False
    return out


@pytest.mark.parametrize(
    "make",
    [
        _readonly,
        lambda shape: np.zeros(shape, np.float32),
        lambda shape: np.zeros(shape, ">f8"),
        lambda shape: np.zeros(shape[::-1]).T,
        lambda shape: np.zeros((2, *shape))[0],  # a view: fine when contiguous
        lambda shape: np.zeros((*shape, 1)),
        lambda shape: np.zeros((0, *shape[1:])),
    ],
)
def test_outputs_it_cannot_fill_are_declined(lab_file: Path, make: Any) -> None:
    out = make((60, 2, 45))
    fillable = out.dtype == np.dtype("<f8") and out.ndim == 3 and out.size and out.flags.c_contiguous
    fillable = fillable and out.flags.writeable
    with h5py.File(lab_file, "r") as f:
        assert _raw.read_into(f["d"].id, out, (0, 0, 0, 0)[: out.ndim]) == bool(fillable)
        if fillable:
            _same(out, f["d"][...])


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
        assert _raw_read(dsid, (0, 0, 0), (60, 2, 45)) is None
        out = np.empty((60, 2, 45))
        _read._read(dsid, out, (0, 0, 0))
        _same(out, f["d"][...])


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
    _write(
        path, _data((60, 2, 45)), chunks=(8, 1, 10), compression="gzip", shuffle=True, fletcher32=fletcher32
    )
    with h5py.File(path, "r") as f:
        info = f["d"].id.get_chunk_info(7)
    _flip(path, info.byte_offset + {"header": 0, "middle": info.size // 2, "checksum": info.size - 2}[where])
    with h5py.File(path, "r") as f:
        dsid = f["d"].id
        expected = _error(dsid, False, monkeypatch)
        assert _raw_read(dsid, (0, 0, 0), (60, 2, 45)) is None
        assert _error(dsid, True, monkeypatch) == expected


@pytest.mark.parametrize(
    ("transfer_chunks", "places"),
    [((3, 1, 7), 2), ((4, 2, 21), 1)],  # Vg and Id in chunks of their own (two reads), or together
)
def test_the_chunk_readers_read_raw(tmp_path: Path, transfer_chunks: tuple[int, ...], places: int) -> None:
    """``transfer_rows`` (both ways) and ``samples_row`` place the chunks they read themselves."""
    from dask_features import _compiled
    from dask_features.io import _raw_kernels

    path = tmp_path / "f.h5"
    transfer, transient = _data((13, 2, 21)), _data((3, 500), seed=1)
    with h5py.File(path, "w") as f:
        lab = {"compression": "gzip", "shuffle": True, "fletcher32": True}
        f.create_dataset("transfer", data=transfer, chunks=transfer_chunks, **lab)
        f.create_dataset("transient", data=transient, chunks=(1, 64), **lab)
    with h5py.File(path, "r") as f, _compiled.recording() as calls:
        vg, cur = _read.transfer_rows(f["transfer"].id, 2, 11) or (None, None)
        placed_rows = sum(k is _raw_kernels.place for k, _ in calls)
        samples = _read.samples_row(f["transient"].id, 2, 30, 470)
        placed_samples = sum(k is _raw_kernels.place for k, _ in calls) - placed_rows
    assert (placed_rows, placed_samples) == (places, 1)
    assert vg is not None
    assert cur is not None
    assert samples is not None
    _same(vg, _read.inf_to_nan(transfer[2:11, 0].copy()))
    _same(cur, _read.inf_to_nan(transfer[2:11, 1].copy()))
    _same(samples, _read.inf_to_nan(transient[2, 30:470].copy()))


@pytest.mark.parametrize("preset", ["v2_transfer_basic", "v2_mixed"])
def test_extract_writes_the_same_tables_either_way(
    preset: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for seed in range(2):
        synth.write_experiment(
            data,
            n_transfer=120,
            n_transient=30,
            seed=seed,
            test_id=f"t{seed}",
            defects={"ragged": 0.2, "nan_samples": 0.2, "empty_steps": 0.05},
        )
    tables = {}
    for raw in (False, True):
        monkeypatch.setattr(_read, "RAW_CHUNKS", raw)
        out = tmp_path / f"out-{raw}"
        res = dfe.extract(data, preset, out, scheduler="sync", progress=False)
        assert res.ok
        assert len(res.successful) == 2
        files = sorted((out / preset).glob("*/*.parquet"))
        assert files
        tables[raw] = {f.relative_to(out).as_posix(): pq.read_table(f) for f in files}
    assert tables[False].keys() == tables[True].keys()
    for name, table in tables[True].items():
        _same_table(table, tables[False][name])


def _same_table(a: pa.Table, b: pa.Table) -> None:
    """Same schema, nulls and values, floats bit for bit (``Table.equals`` finds NaN unequal)."""
    assert a.schema.equals(b.schema)
    for name in a.column_names:
        x, y = a[name].combine_chunks(), b[name].combine_chunks()
        if pa.types.is_floating(x.type):
            assert x.is_null().equals(y.is_null()), name
            xs, ys = x.fill_null(0).to_numpy(), y.fill_null(0).to_numpy()
            assert np.array_equal(xs.view(f"u{xs.itemsize}"), ys.view(f"u{ys.itemsize}")), name
        else:
            assert x.equals(y), name
