"""Chunk reads give the values of the general way (h5py slicing, then ``finite_or_nan``) bit for bit,
whatever the stored type, chunk shape and step range."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import dask_features as dfe
from dask_features import synth
from dask_features.io import _read, open_experiment
from dask_features.io._layout import finite_or_nan
from tests.io._chunked import same, values

#: How ``measurement_data`` is stored: dtype and chunk shape (None: contiguous, no filters); a
#: callable chunk shape gets the dataset's shape.
LAYOUTS: dict[str, tuple[str, Callable[[tuple[int, ...]], Any]]] = {
    "rows-chunked": ("<f8", lambda s: (3, 1, 7) if len(s) == 3 else (1, 64)),
    "joint-chunks": ("<f8", lambda s: (4, 2, s[2]) if len(s) == 3 else (3, 64)),
    "contiguous": ("<f8", lambda s: None),
    "big-endian": (">f8", lambda s: (3, 1, 7) if len(s) == 3 else (1, 64)),
    "float32": ("<f4", lambda s: (3, 1, 7) if len(s) == 3 else (1, 64)),
}


def _restore(f: h5py.File, name: str, dtype: str, chunks: Any, rng: np.random.Generator) -> None:
    """Rewrite ``name`` with ``dtype`` and ``chunks``, a few finite samples made +-inf."""
    data = f[name][...]
    flat = data.reshape(-1)
    finite = np.flatnonzero(np.isfinite(flat))
    pick = rng.choice(finite, size=max(2, finite.size // 200), replace=False)
    flat[pick] = np.where(np.arange(pick.size) % 2 == 0, np.inf, -np.inf)
    del f[name]
    filters = {"compression": "gzip", "shuffle": True, "fletcher32": True} if chunks else {}
    f.create_dataset(name, data=data.astype(dtype), chunks=chunks, **filters)


@pytest.fixture(scope="module", params=list(LAYOUTS))
def stored(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    path = synth.write_experiment(
        tmp_path_factory.mktemp(request.param),
        n_transfer=13,
        n_transient=9,
        sweep_points=21,
        transient_samples=60,
        defects={"ragged": 0.3, "nan_samples": 0.3, "empty_steps": 0.1},
        seed=5,
    )
    dtype, chunks = LAYOUTS[request.param]
    rng = np.random.default_rng(1)
    with h5py.File(path, "r+") as f:
        for group in ("transfer", "transient"):
            name = f"{group}/measurement_data"
            _restore(f, name, dtype, chunks(f[name].shape), rng)
    return request.param, path


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype == np.float64
    assert a.flags.c_contiguous
    assert a.shape == b.shape
    assert np.array_equal(a.view(np.uint64), b.view(np.uint64))  # NaN payloads included


@pytest.mark.parametrize(("start", "stop"), [(0, 13), (0, 1), (4, 11), (12, 13), (5, 5)])
def test_transfer_chunk_is_the_general_read(stored: tuple[str, Path], start: int, stop: int) -> None:
    path = stored[1]
    chunk = open_experiment(path).read_transfer(start, stop)
    with h5py.File(path) as f:
        data = f["transfer/measurement_data"][start:stop]
    vg, cur = finite_or_nan(data[:, 0, :]), finite_or_nan(data[:, 1, :])
    _same(chunk.vg, vg)
    _same(chunk.id, cur)
    assert not np.isinf(chunk.vg).any()
    assert not np.isinf(chunk.id).any()
    valid = np.isfinite(vg) | np.isfinite(cur)
    m = vg.shape[1]
    lengths = np.where(valid.any(axis=1), m - np.argmax(valid[:, ::-1], axis=1), 0)
    np.testing.assert_array_equal(chunk.lengths, lengths)
    assert chunk.lengths.dtype == np.int64


@pytest.mark.parametrize(("start", "stop"), [(0, 9), (2, 5), (8, 9), (3, 3)])
def test_transient_chunk_is_the_general_read(stored: tuple[str, Path], start: int, stop: int) -> None:
    path = stored[1]
    exp = open_experiment(path)
    chunk = exp.read_transient(start, stop)
    bounds = exp.transient_bounds(start, stop)
    with h5py.File(path) as f:
        data = f["transient/measurement_data"][...]
    idx = np.concatenate([np.arange(a, b) for a, b in bounds] + [np.zeros(0, np.int64)])
    _same(chunk.time, finite_or_nan(data[0, idx]))
    _same(chunk.current, finite_or_nan(data[2, idx]))


def test_only_native_float64_is_read_in_place(stored: tuple[str, Path]) -> None:
    layout, path = stored
    with h5py.File(path) as f:
        rows = _read.transfer_rows(f["transfer/measurement_data"].id, 2, 6)
        samples = _read.samples_row(f["transient/measurement_data"].id, 2, 5, 40)
    native = LAYOUTS[layout][0] == "<f8"
    assert (rows is not None) == native
    assert (samples is not None) == native
    if rows is not None:
        # built on pooled memory, each its own
        assert all(isinstance(a.base, bytearray) for a in rows)
        assert rows[0].base is not rows[1].base


@pytest.mark.parametrize(("start", "stop"), [(0, 0), (3, 2), (-1, 2), (0, 14)])
def test_ranges_outside_the_data_take_the_general_way(
    stored: tuple[str, Path], start: int, stop: int
) -> None:
    with h5py.File(stored[1]) as f:
        assert _read.transfer_rows(f["transfer/measurement_data"].id, start, stop) is None
        assert _read.samples_row(f["transient/measurement_data"].id, 0, start, stop + 10**6) is None


def test_chunks_kept_by_the_caller_are_never_overwritten(stored: tuple[str, Path]) -> None:
    exp = open_experiment(stored[1])
    kept = [exp.read_transfer(0, 6), exp.read_transfer(6, 12)]
    views = [exp.read_transfer(0, 6).vg[1:3]]  # a view alone keeps its array's memory
    expected = [(c.vg.copy(), c.id.copy()) for c in kept] + [(views[0].copy(), None)]
    for _ in range(5):  # freed chunks of the same size return to the pool and are read into again
        exp.read_transfer(6, 12)
        exp.read_transfer(0, 6)
    for chunk, (vg, cur) in zip(kept, expected, strict=False):
        _same(chunk.vg, vg)
        _same(chunk.id, cur)  # type: ignore[arg-type]
    _same(np.ascontiguousarray(views[0]), expected[2][0])


def test_threads_reading_at_once_get_arrays_of_their_own(stored: tuple[str, Path]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    exp = open_experiment(stored[1])
    ranges = [(0, 5), (5, 10), (3, 13), (0, 13)] * 6
    expected = {r: exp.read_transfer(*r) for r in set(ranges)}
    with ThreadPoolExecutor(4) as pool:  # every chunk kept until all are read
        chunks = list(pool.map(lambda r: exp.read_transfer(*r), ranges))
    for r, chunk in zip(ranges, chunks, strict=True):
        _same(chunk.vg, expected[r].vg)
        _same(chunk.id, expected[r].id)


@pytest.mark.parametrize(
    ("transfer_chunks", "places"),
    [((3, 1, 7), 2), ((4, 2, 21), 1)],  # Vg and Id in chunks of their own (two reads), or together
)
def test_the_chunk_readers_read_raw(tmp_path: Path, transfer_chunks: tuple[int, ...], places: int) -> None:
    """``transfer_rows`` (both ways) and ``samples_row`` place the chunks they read themselves."""
    from dask_features import _compiled
    from dask_features.io import _raw_kernels

    path = tmp_path / "f.h5"
    transfer, transient = values((13, 2, 21)), values((3, 500), seed=1)
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
    same(vg, _read.inf_to_nan(transfer[2:11, 0].copy()))
    same(cur, _read.inf_to_nan(transfer[2:11, 1].copy()))
    same(samples, _read.inf_to_nan(transient[2, 30:470].copy()))


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
