"""The raw chunk reader fills a hyperslab exactly as ``dsid.read`` does, for every layout, pipeline,
chunk index and selection it takes, in pieces of bounded memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from dask_features.io import _raw
from tests.io._chunked import hdf5, raw_read, same, values, write

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
    write(
        tmp_path / "f.h5",
        values(shape),
        chunks=chunks,
        compression="gzip",
        compression_opts=level,
        **PIPELINES[pipeline],
    )
    with h5py.File(tmp_path / "f.h5", "r") as f:
        dsid = f["d"].id
        for start, sel in selections:
            got = raw_read(dsid, start, sel)
            assert got is not None, (start, sel)
            same(got, hdf5(dsid, start, sel))


@pytest.mark.parametrize("value", [0.0, -0.0, np.nan, np.inf, 5e-324])
def test_constant_data(value: float, tmp_path: Path) -> None:
    """All-zero (and otherwise constant) chunks: the most compressible streams, zero words summed."""
    data = np.full((60, 2, 45), value)
    write(tmp_path / "f.h5", data, chunks=(8, 1, 10), compression="gzip", shuffle=True, fletcher32=True)
    with h5py.File(tmp_path / "f.h5", "r") as f:
        got = raw_read(f["d"].id, (0, 0, 0), data.shape)
    assert got is not None
    same(got, data)


def test_a_large_selection_is_read_in_pieces(lab_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_raw, "PIECE_BYTES", 3 * 8 * 10 * 8 + 5)  # three chunks at a time
    monkeypatch.setattr(_raw, "_GAP", -1)  # and each chunk read by a call of its own
    with h5py.File(lab_file, "r") as f:
        dsid = f["d"].id
        got = raw_read(dsid, (3, 0, 2), (50, 2, 40))
        assert got is not None
        same(got, hdf5(dsid, (3, 0, 2), (50, 2, 40)))
        monkeypatch.setattr(_raw, "PIECE_BYTES", 8 * 10 * 8 - 1)  # a chunk is more than a piece
        assert raw_read(dsid, (0, 0, 0), (60, 2, 45)) is None


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
    data = values((40, 2, 45))
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
            got = raw_read(dsid, start, shape)
            assert got is not None
            same(got, hdf5(dsid, start, shape))


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
    write(path, values((120, 2, 45)), chunks=(8, 1, 10), compression="gzip", shuffle=True, fletcher32=True)
    with h5py.File(path, "r") as f:
        dsid = f["d"].id
        got = raw_read(dsid, start, shape)
        assert got is not None
        same(got, hdf5(dsid, start, shape))
        plan = _raw._plan(dsid)
        assert plan is not None
        assert (plan.every is not None) == listed


@pytest.mark.parametrize(("gap", "gaps_read"), [(64 << 10, 1 << 20), (64 << 10, 0), (-1, 0), (10, 1 << 20)])
def test_chunks_between_other_data_are_read_in_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gap: int, gaps_read: int
) -> None:
    """Chunks of two datasets written in turn lie between each other's: runs of nearby chunks are
    read at once, the bytes between them read along only up to a bound."""
    monkeypatch.setattr(_raw, "_GAP", gap)
    monkeypatch.setattr(_raw, "_GAPS_READ", gaps_read)
    data = values((2, 12, 300))
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
        got = raw_read(dsid, (1, 50), (10, 250))
        assert got is not None
        same(got, data[0, 1:11, 50:])


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
            same(out, f["d"][...])
