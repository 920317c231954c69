"""The files follow the oect-infra raw layout, checked with plain h5py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from dask_features.synth import generate_dataset, write_experiment

TRANSFER_PARAMS = [
    "param_isSweep",
    "param_timeStep",
    "param_sourceVoltage",
    "param_drainVoltage",
    "param_gateVoltageStart",
    "param_gateVoltageEnd",
    "param_gateVoltageStep",
]
TRANSIENT_PARAMS = [
    "param_timeStep",
    "param_sourceVoltage",
    "param_drainVoltage",
    "param_bottomTime",
    "param_topTime",
    "param_gateVoltageBottom",
    "param_gateVoltageTop",
    "param_cycles",
]
WORKFLOW_COLUMNS = [
    "workflow_step_index",
    "workflow_total_steps",
    "workflow_path_readable",
    "workflow_iteration_info_type",
    "workflow_iteration_info_total",
    "workflow_iteration_info_current",
]
BASE_COLUMNS = ["step_index", "type", "start_time", "end_time", "reason", "data_file"]


def _string_encoding(attrs: h5py.AttributeManager, name: str) -> str | None:
    info = h5py.check_string_dtype(attrs.get_id(name).dtype)
    return None if info is None else info.encoding


@pytest.mark.parametrize(
    ("writer", "version", "encoding", "json_type"),
    [("serial", "2.0_direct_new_storage", "ascii", bytes), ("parallel", "2.0_new_storage", "utf-8", str)],
)
@pytest.mark.parametrize("device_type", ["N", "P"])
def test_root_and_raw(
    make_file: Callable[..., Path],
    writer: str,
    version: str,
    encoding: str,
    json_type: type,
    device_type: str,
) -> None:
    path = make_file(writer=writer, device_type=device_type)
    with h5py.File(path, "r") as f:
        attrs = f.attrs
        assert attrs["format_version"] == version
        assert attrs["chip_id"] == "#20250804008"
        assert attrs["device_number"] == "3"
        assert attrs["test_id"] == "test_1754300000000"
        assert attrs["device_type"] == f"{device_type}-type"
        assert attrs["status"] == "completed"
        assert attrs["total_steps"] == 12
        assert attrs["created_at"] < attrs["completed_at"]
        # Test-info strings keep the writer's encoding; the identity attributes are re-written as str.
        assert _string_encoding(attrs, "status") == encoding
        assert _string_encoding(attrs, "chip_id") == "utf-8"
        assert ("creation_method" in attrs) == (writer == "parallel")
        raw_json = f["raw/json"][()]
        info = json.loads(raw_json)
        if json_type is str:
            assert f["raw/json"].asstr()[()] == raw_json.decode()
            assert ", " not in raw_json.decode()  # compact separators
        assert h5py.check_string_dtype(f["raw/json"].dtype).encoding == encoding
        assert info["test_id"] == "test_1754300000000"
        assert len(info["steps"]) == 12
        flow = json.loads(f["raw/workflow"][()])
    (loop,) = flow
    assert loop["type"] == "loop"
    assert loop["iterations"] == 6
    assert [s["type"] for s in loop["steps"]] == ["transfer", "transient"]
    params = loop["steps"][1]["params"]
    assert params["timeStep"] == 1
    assert params["topTime"] + params["bottomTime"] == 200
    assert params["cycles"] == 2


@pytest.mark.parametrize("writer", ["serial", "parallel"])
def test_transfer_group(make_file: Callable[..., Path], writer: str) -> None:
    path = make_file(writer=writer)
    with h5py.File(path, "r") as f:
        data = f["transfer/measurement_data"]
        assert data.shape == (6, 2, 61)
        assert data.dtype == np.float64
        assert (data.compression, data.compression_opts, data.shuffle, data.fletcher32) == (
            "gzip",
            4,
            True,
            True,
        )
        assert list(data.attrs["data_type_labels"]) == ["Vg", "Id"]
        assert list(data.attrs["dimension_labels"]) == ["step_index", "data_type", "data_point"]
        vg = data[:, 0, :]
        table = f["transfer/step_info_table"][()]
        columns = list(f["transfer/step_info_table"].attrs["columns"])
    np.testing.assert_allclose(vg[:, 30], 0.6)  # turning point in the middle
    np.testing.assert_allclose(vg[:, 0], vg[:, -1])
    assert list(table.dtype.names) == columns == BASE_COLUMNS + TRANSFER_PARAMS + WORKFLOW_COLUMNS
    assert table.dtype["step_index"] == np.dtype("<i8")
    assert table.dtype["type"] == np.dtype("S10")
    assert table.dtype["param_isSweep"] == np.dtype("S50")
    assert table["param_gateVoltageStep"][0] == 40
    expected = np.arange(6) if writer == "serial" else 2 * np.arange(6)
    np.testing.assert_array_equal(table["step_index"], expected)
    np.testing.assert_array_equal(table["workflow_iteration_info_current"], np.arange(1, 7))


@pytest.mark.parametrize("index_columns", [True, False])
def test_transient_group(make_file: Callable[..., Path], index_columns: bool) -> None:
    path = make_file(index_columns=index_columns, time_step=2e-3, transient_samples=300)
    with h5py.File(path, "r") as f:
        data = f["transient/measurement_data"][()]
        labels = list(f["transient/measurement_data"].attrs["data_type_labels"])
        table = f["transient/step_info_table"][()]
    assert labels == ["continuous_time", "original_time", "drain_current"]
    assert data.shape == (3, 6 * 300)
    names = list(table.dtype.names)
    assert names[: len(BASE_COLUMNS)] == BASE_COLUMNS
    assert (names[-2:] == ["start_data_index", "end_data_index"]) == index_columns
    np.testing.assert_array_equal(table["param_timeStep"], 2)
    # Continuous time never restarts and steps by timeStep; original time restarts per step.
    np.testing.assert_allclose(np.diff(data[0]), 2e-3)
    np.testing.assert_allclose(data[1].reshape(6, 300), np.tile(np.arange(300) * 2e-3, (6, 1)))
    if index_columns:
        np.testing.assert_array_equal(table["start_data_index"], np.arange(6) * 300)
        np.testing.assert_array_equal(table["end_data_index"], np.arange(1, 7) * 300)


def test_index_columns_cover_unequal_steps(make_file: Callable[..., Path]) -> None:
    path = make_file(n_transient=10, defects={"ragged": 0.3, "empty_steps": 0.2})
    with h5py.File(path, "r") as f:
        total = f["transient/measurement_data"].shape[1]
        table = f["transient/step_info_table"][()]
    start, end = table["start_data_index"], table["end_data_index"]
    assert start[0] == 0
    assert end[-1] == total
    np.testing.assert_array_equal(start[1:], end[:-1])
    assert (end - start).min() == 0
    assert len(set(end - start)) > 2


def test_without_workflow(make_file: Callable[..., Path]) -> None:
    path = make_file(workflow=False)
    with h5py.File(path, "r") as f:
        assert "workflow" not in f["raw"]
        for group in ("transfer", "transient"):
            names = f[f"{group}/step_info_table"].dtype.names
            assert not [n for n in names if n.startswith("workflow_")]
            assert "param_timeStep" in names


def test_numeric_ids(make_file: Callable[..., Path]) -> None:
    with h5py.File(make_file(numeric_ids=True), "r") as f:
        assert f.attrs["chip_id"] == 20250804008
        assert f.attrs["device_number"] == 3
        assert isinstance(f.attrs["test_id"], str)


def test_directory_target_uses_sanitised_name(tmp_path: Path) -> None:
    path = write_experiment(
        tmp_path,
        n_transfer=1,
        n_transient=1,
        sweep_points=5,
        transient_samples=10,
        description='a/b:c  "x"',
        test_id="test_42",
    )
    assert path.parent == tmp_path
    assert path.name == "#20250804008-3-a_b_c _x_-test_42.h5"
    with h5py.File(path, "r") as f:
        assert f.attrs["description"] == "a_b_c _x_"
        assert f.attrs["output_filename"] == path.name


def test_generate_dataset_mixes_devices_and_writers(tmp_path: Path) -> None:
    paths = generate_dataset(tmp_path, n_experiments=4, n_steps=2, sweep_points=11, transient_samples=50)
    assert sorted(paths) == sorted(tmp_path.glob("*-test_*.h5"))
    seen = set()
    for path in paths:
        with h5py.File(path, "r") as f:
            seen.add((f.attrs["device_type"], f.attrs["format_version"], f.attrs["test_id"]))
    assert {(d, v) for d, v, _ in seen} == {
        (d, v) for d in ("N-type", "P-type") for v in ("2.0_direct_new_storage", "2.0_new_storage")
    }
    assert len({t for _, _, t in seen}) == 4


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sweep_points": 60},
        {"device_type": "X"},
        {"writer": "csv"},
        {"defects": {"holes": 0.1}},
        {"defects": {"ragged": 1.5}},
        {"duty": 1.0},
    ],
)
def test_rejects_bad_arguments(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        write_experiment(tmp_path / "bad.h5", **kwargs)  # type: ignore[arg-type]
