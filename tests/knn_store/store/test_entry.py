"""A published group is a plain Zarr 3 group that zarr, dask.array and xarray open as they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knn_store import KNNStore, load


@pytest.fixture
def published(tmp_path: Path, features: np.ndarray) -> tuple[str, np.ndarray, np.ndarray]:
    ref = KNNStore(tmp_path).ensure(features, 12)
    nb, ds = load(ref, 12)
    return ref.group, nb, ds


def test_zarr_reads_the_arrays_with_dimension_names(published: tuple[str, np.ndarray, np.ndarray]) -> None:
    import zarr

    group, nb, ds = published
    g = zarr.open_group(group, mode="r")
    for name, expected in (("neighbors", nb), ("distances", ds)):
        arr = g[name]
        assert arr.metadata.dimension_names == ("point", "neighbor")
        assert np.array_equal(arr[...], expected)
    assert g["distances"].attrs["units"] == "same as the features"
    assert g.attrs["exact"] is True
    assert g.attrs["conventions"]["order"] == "distance,index"


def test_dask_array_reads_one_k_slice_of_one_row_block(published: tuple[str, np.ndarray, np.ndarray]) -> None:
    import dask.array as da

    group, _, ds = published
    arr = da.from_zarr(group, component="distances")
    assert arr.chunks[1] == (12,)  # a chunk is a block of rows with every k: one read per row block
    assert np.array_equal(arr[:50, :5].compute(), ds[:50, :5])


def test_xarray_opens_the_group_without_masking_neighbour_zero(
    published: tuple[str, np.ndarray, np.ndarray],
) -> None:
    xr = pytest.importorskip("xarray")
    group, nb, ds = published
    dset = xr.open_zarr(group, consolidated=False)
    assert dset["neighbors"].dims == ("point", "neighbor")
    assert (nb == 0).any()  # so the next check can fail if id 0 were taken for a fill value
    assert np.array_equal(dset["neighbors"].values, nb)
    assert np.array_equal(dset["distances"].values, ds)
    assert dset["distances"].attrs["units"] == "same as the features"


def test_chunks_stay_near_one_megabyte(tmp_path: Path) -> None:
    import zarr

    rng = np.random.default_rng(0)
    ref = KNNStore(tmp_path).ensure(rng.normal(size=(6_000, 4)).astype(np.float32), 100)
    arr = zarr.open_group(ref.group, mode="r")["neighbors"]
    rows, k = arr.chunks
    assert k == 100
    assert rows * k * 4 <= 1 << 20
    assert rows < 6_000  # several row blocks
