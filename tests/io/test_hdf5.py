"""Reader round trips on synthetic files of both writer flavours, and every bad-input error."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from dask_features import synth
from dask_features.errors import (
    ExperimentFormatError,
    FormatVersionError,
    IndexTableError,
    MissingGroupError,
    NotHDF5Error,
    TruncatedFileError,
)
from dask_features.io import StepBoundaryWarning, open_experiment


@pytest.fixture(scope="module", params=["serial", "parallel"])
def written(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp(f"exp-{request.param}")
    return synth.write_experiment(
        folder,
        n_transfer=12,
        n_transient=12,
        sweep_points=41,
        transient_samples=400,
        writer=request.param,
        seed=3,
    )


def test_metadata_round_trip(written: Path) -> None:
    exp = open_experiment(written)
    with h5py.File(written) as f:
        data = f["transfer/measurement_data"][:]
        version = f.attrs["format_version"]
    assert exp.format_version == (version.decode() if isinstance(version, bytes) else version)
    assert exp.n_transfer_steps == data.shape[0] == 12
    assert exp.transfer_max_points == data.shape[2]
    assert exp.n_transient_steps == 12
    assert exp.has_transient_index
    assert exp.chip_id
    assert exp.device_id
    assert exp.test_id.startswith("test_")
    assert exp.device_type in ("N", "P")
    assert exp.workflow is not None
    kinds = [s.type for s in exp.workflow]
    assert kinds.count("transfer") == 12
    assert kinds.count("transient") == 12


def test_handle_is_small_and_picklable(written: Path) -> None:
    exp = open_experiment(written)
    _ = exp.workflow  # populate the cached expansion; it must not travel
    blob = pickle.dumps(exp)
    assert len(blob) < 20_000
    again = pickle.loads(blob)
    assert again == exp
    np.testing.assert_array_equal(again.read_transfer(0, 2).vg, exp.read_transfer(0, 2).vg)


def test_transfer_chunk_matches_file(written: Path) -> None:
    exp = open_experiment(written)
    chunk = exp.read_transfer(3, 9)
    with h5py.File(written) as f:
        raw = f["transfer/measurement_data"][3:9]
    np.testing.assert_array_equal(chunk.vg, raw[:, 0])
    np.testing.assert_array_equal(chunk.id, raw[:, 1])
    np.testing.assert_array_equal(chunk.step_index, np.arange(3, 9))
    assert (chunk.lengths == exp.transfer_max_points).all()


def test_transient_chunk_matches_index_columns(written: Path) -> None:
    exp = open_experiment(written)
    chunk = exp.read_transient(2, 7)
    with h5py.File(written) as f:
        table = f["transient/step_info_table"][2:7]
        data = f["transient/measurement_data"]
        for i, row in enumerate(table):
            a, b = int(row["start_data_index"]), int(row["end_data_index"])
            t, y = chunk.step(i)
            np.testing.assert_array_equal(t, data[0, a:b])
            np.testing.assert_array_equal(y, data[2, a:b])
    np.testing.assert_allclose(chunk.period, 0.2)
    np.testing.assert_allclose(chunk.time_step, 1e-3)
    np.testing.assert_allclose(chunk.duty, 0.5)


def test_step_tables_decoded_to_str(written: Path) -> None:
    exp = open_experiment(written)
    table = exp.transfer_table()
    assert len(table) == 12
    assert table["type"].map(type).eq(str).all()
    assert len(exp.transient_table(0, 4)) == 4


def test_empty_and_full_ranges(written: Path) -> None:
    exp = open_experiment(written)
    assert exp.read_transfer(5, 5).vg.shape[0] == 0
    assert exp.read_transient(5, 5).offsets.tolist() == [0]
    assert exp.read_transient(0, exp.n_transient_steps).offsets[-1] == exp.transient_total_points
    with pytest.raises(IndexError, match="outside"):
        exp.read_transfer(0, 13)


@pytest.mark.parametrize("equal_steps", [True, False])
def test_old_files_without_index_columns(tmp_path: Path, equal_steps: bool) -> None:
    path = synth.write_experiment(
        tmp_path,
        n_transfer=4,
        n_transient=6,
        sweep_points=21,
        transient_samples=300,
        index_columns=False,
        seed=1,
    )
    if not equal_steps:  # steps of different lengths and no resets to find: only the equal split is left
        with h5py.File(path, "r+") as f:
            f["transient/measurement_data"][1, :] = np.arange(f["transient/measurement_data"].shape[1])
    with pytest.warns(StepBoundaryWarning, match="inferred" if equal_steps else "split equally"):
        exp = open_experiment(path)
    assert not exp.has_transient_index
    chunk = exp.read_transient(0, 6)
    assert chunk.lengths.tolist() == [300] * 6
    assert exp.problems


def test_numeric_ids_are_strings(tmp_path: Path) -> None:
    path = synth.write_experiment(
        tmp_path, n_transfer=2, n_transient=2, sweep_points=11, transient_samples=100, numeric_ids=True
    )
    exp = open_experiment(path)
    assert isinstance(exp.device_id, str)
    assert exp.device_id.isdigit()
    assert isinstance(exp.chip_id, str)


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    return synth.write_experiment(
        tmp_path, n_transfer=4, n_transient=4, sweep_points=21, transient_samples=200, seed=2
    )


def _edit(path: Path, action: str) -> None:
    with h5py.File(path, "r+") as f:
        if action == "no_version":
            del f.attrs["format_version"]
        elif action == "bad_version":
            f.attrs["format_version"] = "1.0_legacy"
        elif action == "no_groups":
            del f["transfer"], f["transient"]
        elif action == "no_transfer_data":
            del f["transfer/measurement_data"]
        elif action.endswith("_is_a_dataset"):  # HDF5 raised a bare RuntimeError naming no file
            group = action.removesuffix("_is_a_dataset")
            del f[group]
            f[group] = np.arange(3.0)
        elif action == "bad_shape":
            del f["transfer/measurement_data"]
            f["transfer/measurement_data"] = np.zeros((4, 3, 21))
        elif action == "bad_dtype":
            del f["transient/measurement_data"]
            f["transient/measurement_data"] = np.zeros((3, 800), dtype="S4")
        elif action == "table_rows":
            table = f["transfer/step_info_table"][:2]
            del f["transfer/step_info_table"]
            f["transfer/step_info_table"] = table
        elif action == "index_beyond_data":
            table = f["transient/step_info_table"][:]
            table["end_data_index"][-1] += 1000
            f["transient/step_info_table"][...] = table


@pytest.mark.parametrize(
    ("action", "error", "match"),
    [
        ("no_version", FormatVersionError, "no 'format_version'"),
        ("bad_version", FormatVersionError, "unsupported format_version '1.0_legacy'"),
        ("no_groups", MissingGroupError, "neither a 'transfer' nor a 'transient'"),
        ("no_transfer_data", MissingGroupError, "transfer/measurement_data"),
        ("transfer_is_a_dataset", MissingGroupError, "transfer/measurement_data"),
        ("transient_is_a_dataset", MissingGroupError, "transient/measurement_data"),
        ("bad_shape", ExperimentFormatError, r"shape \(4, 3, 21\)"),
        ("bad_dtype", ExperimentFormatError, "dtype"),
        ("table_rows", IndexTableError, "2 rows but measurement_data has 4 steps"),
        ("index_beyond_data", IndexTableError, "transient step 3 has sample range"),
    ],
)
def test_bad_files_raise_specific_errors(
    good_file: Path, action: str, error: type[Exception], match: str
) -> None:
    _edit(good_file, action)
    with pytest.raises(error, match=match) as info:
        open_experiment(good_file)
    assert str(good_file) in str(info.value)  # the message names the file


def _soft_linked_groups(f: h5py.File) -> None:
    f.move("transfer", "stored_transfer")
    f["transfer"] = h5py.SoftLink("/stored_transfer")
    f.move("raw/workflow", "raw/stored_workflow")
    f["raw/workflow"] = h5py.SoftLink("stored_workflow")  # relative to its group


@pytest.mark.parametrize("edit", [None, _soft_linked_groups, lambda f: f.__delitem__("transient")])
def test_layout_checks_reuse_the_storage_checks_objects(good_file: Path, edit: object) -> None:
    """The layout checks answer the same from the objects the storage check opened as by name."""
    from dask_features.io import _layout as layout
    from dask_features.io._safety import READ_PATHS, check_storage

    if callable(edit):
        with h5py.File(good_file, "r+") as f:
            edit(f)
    path = str(good_file)
    with h5py.File(good_file, "r") as f:
        objects = check_storage(f, path, "")
        assert set(objects) == {n for n in READ_PATHS if n in f}
        for name in ("transfer", "transient", "raw/workflow", "synth"):
            assert layout.contains(f, name, objects) == (name in f)
        assert layout.check_transfer(f, path, objects) == layout.check_transfer(f, path)
        by_name = layout.check_transient(f, path)
        assert layout.check_transient(f, path, objects=objects) == by_name
        assert layout.stored_value(f, "raw/workflow", objects) == layout.stored_value(f, "raw/workflow")


def test_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "notes-test_1.h5"
    path.write_text("this is a CSV, not HDF5\n1,2,3\n")
    with pytest.raises(NotHDF5Error, match="not an HDF5 file"):
        open_experiment(path)
    empty = tmp_path / "empty-test_2.h5"
    empty.touch()
    with pytest.raises(NotHDF5Error):
        open_experiment(empty)


def test_truncated(good_file: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut-test_3.h5"
    shutil.copy(good_file, cut)
    with open(cut, "r+b") as fh:
        fh.truncate(cut.stat().st_size // 2)
    with pytest.raises(TruncatedFileError, match="truncated"):
        open_experiment(cut)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_experiment(tmp_path / "nope.h5")


def test_invalid_workflow_is_reported_not_fatal(good_file: Path) -> None:
    with h5py.File(good_file, "r+") as f:
        del f["raw/workflow"]
        f["raw/workflow"] = '[{"type": "teleport", "id": "x"}]'
    exp = open_experiment(good_file)
    assert exp.workflow is None
    assert any("unknown step type 'teleport'" in p for p in exp.problems)
    assert np.isfinite(exp.read_transient(0, 2).period).all()  # step params still give the timing


# --- the low-level reads behind opening a file give what h5py's generic reads give ------------


def _odd_attributes(f: h5py.File) -> None:
    f.attrs["text"] = "héllo"
    f.attrs["bytes"] = b"ascii"
    f.attrs.create("vascii", "plain", dtype=h5py.string_dtype("ascii"))
    f.attrs["bad_utf8"] = np.bytes_(b"ab\xffcd")
    f.attrs.create("vlen_bad_utf8", b"ab\xffcd", dtype=h5py.string_dtype("ascii"))
    f.attrs["fixed"] = np.array(b"fixed", dtype="S8")
    f.attrs["empty"] = ""
    f.attrs["strings"] = ["x", "y"]
    f.attrs["opaque"] = np.void(b"\xff\xfe")
    f.attrs["null"] = h5py.Empty("f8")
    f.attrs["i32"] = np.int32(-5)
    f.attrs["u8"] = np.uint8(200)
    f.attrs["big_endian"] = np.array(7, dtype=">i8")
    f.attrs["f32"] = np.float32(0.5)
    f.attrs["nan"] = np.nan
    f.attrs["flag"] = True
    f.attrs["vector"] = np.arange(3.0)
    f.attrs["huge"] = "z" * 70_000


def test_attributes_read_as_h5py_reads_them(tmp_path: Path) -> None:
    from dask_features.io._attributes import _attribute, read_attributes

    def attribute(attrs: h5py.AttributeManager, key: str | bytes) -> object:
        raw = key if isinstance(key, bytes) else key.encode()
        return _attribute(attrs._id, raw, lambda: attrs[key])

    path = tmp_path / "attrs-test_1.h5"
    with h5py.File(path, "w") as f:
        _odd_attributes(f)
    with h5py.File(path, "r") as f:
        for key in f.attrs:
            mine, theirs = attribute(f.attrs, key), f.attrs[key]
            assert type(mine) is type(theirs), key
            if isinstance(theirs, np.ndarray):
                assert mine.dtype == theirs.dtype, key
                assert np.array_equal(mine, theirs), key
            elif isinstance(theirs, h5py.Empty):
                assert mine == theirs, key
            else:
                assert mine == theirs or (mine != mine and theirs != theirs), key
        values, problems = read_attributes(f.attrs, str(path))
    assert values["text"] == "héllo"
    assert values["bytes"] == "ascii"
    assert values["flag"] is True
    assert values["bad_utf8"] == values["vlen_bad_utf8"] == "ab\ufffdcd"
    assert values["huge"].startswith("<omitted: ")
    assert sum("undecodable bytes" in p for p in problems) == 2


@pytest.mark.parametrize("track_order", [False, True])
def test_attribute_names_in_h5pys_order(tmp_path: Path, track_order: bool) -> None:
    from dask_features.io._attributes import _h5py_name, _raw_names, read_attributes

    path = tmp_path / "order-test_1.h5"
    with h5py.File(path, "w", track_order=track_order) as f:
        for key in ("zeta", "alpha", b"k\xffey", "mid"):
            f.attrs[key] = 1
    with h5py.File(path, "r") as f:
        assert [_h5py_name(raw) for raw in _raw_names(f.attrs._id)] == list(f.attrs)
        assert list(read_attributes(f.attrs, str(path))[0]) == [
            k if isinstance(k, str) else "k\ufffdey" for k in f.attrs
        ]


def test_an_attribute_name_that_is_not_utf8_is_reported_not_fatal(good_file: Path) -> None:
    with h5py.File(good_file, "r+") as f:
        f.attrs[b"k\xffey"] = "value"
    exp = open_experiment(good_file)  # raised AttributeError (and stopped a whole extract run)
    assert exp.attrs["k\ufffdey"] == "value"
    assert any("'k\ufffdey': undecodable bytes replaced by U+FFFD" in p for p in exp.problems)


@pytest.mark.parametrize("dtype", ["<i8", "<i4", ">i8", "<u4", "<f8", "<f4"])
def test_index_rows_as_h5py_reads_them(tmp_path: Path, dtype: str) -> None:
    from dask_features.io._layout import INDEX_COLUMNS, index_rows

    fields = [("step_index", "<i8"), ("type", "S10"), *((c, dtype) for c in INDEX_COLUMNS)]
    rows = np.zeros(5, dtype=fields)
    rows["start_data_index"] = [0, 10, 20, 30, 40]
    rows["end_data_index"] = [10, 20, 30, 40, 50]
    if dtype[1] == "f":
        rows["end_data_index"][2] = np.nan
    with h5py.File(tmp_path / "t.h5", "w") as f:
        f["table"] = rows
        f["empty"] = rows[:0]
    with h5py.File(tmp_path / "t.h5", "r") as f:
        for name in ("table", "empty"):
            theirs = f[name].fields(list(INDEX_COLUMNS))[:]
            mine = index_rows(f[name].id)
            assert mine.dtype == theirs.dtype
            assert mine.shape == theirs.shape
            assert mine.tobytes() == theirs.tobytes()


@pytest.mark.parametrize(
    "stored",
    [
        '[{"type": "transfer"}]',
        b'[{"type": "transfer"}]',
        np.bytes_(b'[{"type": "tr\xffnsfer"}]'),
        np.array(b"[1, 2]", dtype="S6"),
        np.array(["a", "b"], dtype=h5py.string_dtype()),
        np.float64(3.5),
    ],
)
def test_stored_value_as_h5py_reads_it(tmp_path: Path, stored: object) -> None:
    from dask_features.io._layout import decode, stored_value

    with h5py.File(tmp_path / "w.h5", "w") as f:
        f["raw/workflow"] = stored
    with h5py.File(tmp_path / "w.h5", "r") as f:
        assert stored_value(f, "raw/workflow") == decode(f["raw/workflow"][()])


# --- the transient index is checked before any transient value, not for transfer-only readers ----


def test_transfer_reader_opens_a_file_whose_transient_index_is_broken(good_file: Path) -> None:
    _edit(good_file, "index_beyond_data")
    with pytest.raises(IndexTableError, match="transient step 3 has sample range"):
        open_experiment(good_file)
    with pytest.raises(IndexTableError, match="transient step 3 has sample range"):
        open_experiment(good_file, sources=("transfer", "transient"))
    exp = open_experiment(good_file, sources=("transfer",))
    assert not exp.transient_index_checked
    assert exp.n_transient_steps == 4
    assert exp.has_transient_index
    assert exp.read_transfer(0, 4).vg.shape[0] == 4
    # the handle (also in another process: pickled) checks the index before reading transient data
    for handle in (exp, pickle.loads(pickle.dumps(exp))):
        with pytest.raises(IndexTableError, match="transient step 3 has sample range"):
            handle.read_transient(0, 2)  # step 3 is not even read: the whole index is refused
        with pytest.raises(IndexTableError, match="transient step 3 has sample range"):
            handle.transient_bounds(0, 4)


def test_transfer_reader_handle_reads_transient_data_of_a_good_file(written: Path) -> None:
    lazy = open_experiment(written, sources=("transfer",))
    full = open_experiment(written)
    assert full.transient_index_checked
    assert lazy == full
    a, b = lazy.read_transient(0, 12), full.read_transient(0, 12)
    np.testing.assert_array_equal(a.offsets, b.offsets)
    np.testing.assert_array_equal(a.current, b.current)
