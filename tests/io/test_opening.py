"""A file checked by its task is read through the same open file, and never stays open after."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from dask_features import synth
from dask_features.errors import IndexTableError
from dask_features.io import _layout as layout
from dask_features.io._attributes import read_attributes
from dask_features.io.opening import inspect_experiment, open_experiment


def _open_count(path: Path) -> int:
    """How many descriptors of this process point at ``path``: 0 once every opening is closed."""
    fds = Path("/proc/self/fd")
    target = os.path.realpath(path)
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) == target)


pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    return synth.write_experiment(
        tmp_path, n_transfer=6, n_transient=6, sweep_points=21, transient_samples=200, seed=4
    )


def _same_chunk(a: object, b: object) -> None:
    for name in ("step_index", "vg", "id", "lengths", "time", "current", "offsets", "period"):
        if hasattr(a, name):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("read", ["read_transfer", "read_transient"])
def test_the_first_read_uses_the_checked_file_then_closes_it(good_file: Path, read: str) -> None:
    plain = open_experiment(good_file)
    lent, found = inspect_experiment(good_file, keep_open=True)
    assert found == ()
    assert lent == plain
    assert _open_count(good_file) == 1  # kept open by the opener
    _same_chunk(getattr(lent, read)(1, 5), getattr(plain, read)(1, 5))
    assert _open_count(good_file) == 0  # closed right after the first read
    _same_chunk(getattr(lent, read)(0, 6), getattr(plain, read)(0, 6))  # later reads open it again
    assert _open_count(good_file) == 0
    lent.release()  # nothing left to release


def test_a_file_no_read_took_is_closed_by_release(good_file: Path) -> None:
    lent, _ = inspect_experiment(good_file, keep_open=True)
    copy = pickle.loads(pickle.dumps(lent))  # a handle sent elsewhere opens the file itself
    assert copy == lent
    assert _open_count(good_file) == 1
    lent.release()
    assert _open_count(good_file) == 0
    lent.release()
    np.testing.assert_array_equal(copy.read_transfer(0, 6).vg, lent.read_transfer(0, 6).vg)
    assert _open_count(good_file) == 0


def test_a_file_that_fails_its_checks_is_closed(good_file: Path) -> None:
    with h5py.File(good_file, "r+") as f:
        del f["transfer/step_info_table"]
        f["transfer/step_info_table"] = np.zeros(2)
    with pytest.raises(IndexTableError):
        inspect_experiment(good_file, keep_open=True)
    assert _open_count(good_file) == 0


def test_transient_ranges_unchecked_at_opening_are_checked_before_the_lent_file_is_used(
    good_file: Path,
) -> None:
    with h5py.File(good_file, "r+") as f:
        table = f["transient/step_info_table"][:]
        table["end_data_index"][-1] += 1000
        f["transient/step_info_table"][...] = table
    lent, _ = inspect_experiment(good_file, sources=("transfer",), keep_open=True)
    assert not lent.transient_index_checked
    with pytest.raises(IndexTableError, match="transient step 5 has sample range"):
        lent.read_transient(0, 2)
    assert _open_count(good_file) == 0


@pytest.mark.parametrize("hold", [False, True])
def test_close_file_closes_the_file_whether_objects_are_open_or_not(good_file: Path, hold: bool) -> None:
    f = layout.open_file(str(good_file))
    held = h5py.h5o.open(f.id, b"transfer/measurement_data") if hold else None
    layout.close_file(f)
    assert not f.id.valid
    if held is not None:  # h5py's own close ran: what was open in the file is closed with it
        assert not held.valid
    assert _open_count(good_file) == 0


def test_attributes_of_a_file_its_root_group_and_their_manager_are_the_same(good_file: Path) -> None:
    with h5py.File(good_file, "r+") as f:
        f.attrs[b"k\xffey"] = "value"
        f.attrs["vector"] = np.arange(3)
    with h5py.File(good_file, "r") as f:
        by_manager = read_attributes(f.attrs, "p")
        assert read_attributes(f, "p") == by_manager
        assert read_attributes(f["/"], "p") == by_manager
    assert by_manager[0]["vector"] == [0, 1, 2]
    assert any("k\ufffdey" in p for p in by_manager[1])


@pytest.mark.parametrize("kind", ["fifo", "folder", "text", "garbage_after_signature"])
def test_what_is_not_a_regular_hdf5_file_is_refused_without_hanging(tmp_path: Path, kind: str) -> None:
    from dask_features.errors import ExperimentFormatError, NotHDF5Error

    path = tmp_path / "x-test_1.h5"
    if kind == "fifo":  # opening it for reading would wait for a writer forever
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "text":
        path.write_text("Vg,Id\n0.1,1e-6\n")
    else:
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 200)
    error = ExperimentFormatError if kind == "garbage_after_signature" else NotHDF5Error
    with pytest.raises(error) as info:
        inspect_experiment(path, keep_open=True)
    if error is NotHDF5Error:
        assert str(info.value) == f"{path}: not an HDF5 file (no HDF5 signature)"
    else:
        assert "cannot open as HDF5" in str(info.value)
