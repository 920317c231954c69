"""Ground truth agrees with the data; generation is deterministic; defects appear where flagged."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from dask_features.synth import DEFECTS, read_ground_truth, square_wave_response
from dask_features.synth._device import DeviceParams, drain_current


def _read(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, DeviceParams]:
    with h5py.File(path, "r") as f:
        transfer = f["transfer/measurement_data"][()]
        transient = f["transient/measurement_data"][()]
        table = f["transient/step_info_table"][()]
        dev = DeviceParams(**json.loads(f["synth"].attrs["device"]))
    return transfer, transient, table, dev


def _all_datasets(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: (
                out.update({name: np.asarray(obj[()])}) if isinstance(obj, h5py.Dataset) else None
            )
        )
    return out


def test_deterministic_for_a_seed(make_file: Callable[..., Path]) -> None:
    defects = {"nan_samples": 0.3, "ragged": 0.3, "flat_cycles": 0.3}
    first, second = (_all_datasets(make_file(seed=7, defects=defects)) for _ in range(2))
    other = _all_datasets(make_file(seed=8, defects=defects))
    assert first.keys() == second.keys()
    for name, values in first.items():
        if values.dtype.kind == "f":
            np.testing.assert_array_equal(values, second[name])
        else:
            assert values.tobytes() == second[name].tobytes(), name
    assert not np.allclose(first["transfer/measurement_data"][:, 1], other["transfer/measurement_data"][:, 1])


@pytest.mark.parametrize("device_type", ["N", "P"])
def test_transfer_truth_matches_noise_free_sweep(make_file: Callable[..., Path], device_type: str) -> None:
    path = make_file(device_type=device_type, sweep_points=301)
    transfer, _, _, dev = _read(path)
    truth = read_ground_truth(path)["transfer"]
    vg = transfer[0, 0]
    turn = 150
    for direction, part in (("forward", slice(0, turn + 1)), ("reverse", slice(turn + 1, None))):
        vth = truth[f"vth_{direction}"].to_numpy()[:, None]
        clean = drain_current(vg[part], vth, truth["k"].to_numpy()[:, None], dev)
        gm = np.abs(np.gradient(clean, vg[part], axis=1))
        peak = gm.argmax(axis=1)
        np.testing.assert_allclose(gm.max(axis=1), truth[f"gm_max_{direction}"], rtol=0.01)
        np.testing.assert_allclose(vg[part][peak], truth[f"vg_gm_max_{direction}"], atol=0.01)
        # The recorded currents scatter around the noise-free curve by the documented noise.
        z = (transfer[:, 1, part] - clean) / (dev.noise_rel * np.abs(clean) + dev.noise_abs)
        assert 0.8 < z.std() < 1.2
        assert abs(z.mean()) < 0.2
    # Polarity: |I| grows towards the on side, and its sign follows the drain bias.
    sign = 1 if device_type == "N" else -1
    assert np.all(np.sign(transfer[:, 1, turn]) == sign)
    assert np.all(np.abs(transfer[:, 1, turn]) > 100 * np.abs(transfer[:, 1, 0]))
    assert np.all(sign * transfer[:, 0, turn] > 0)
    hyst = truth["vth_reverse"] - truth["vth_forward"]
    np.testing.assert_allclose(hyst, truth["hysteresis"])
    assert np.all(sign * hyst < 0)
    assert np.all(sign * (truth["von_forward"] - truth["vth_forward"]) < 0)  # onset below threshold


@pytest.mark.parametrize("device_type", ["N", "P"])
def test_transient_truth_matches_data(make_file: Callable[..., Path], device_type: str) -> None:
    path = make_file(device_type=device_type, n_transient=8)
    _, transient, table, _ = _read(path)
    truth = read_ground_truth(path)["transient"]
    assert truth["tau_on"].between(1e-3, 50e-3).all()
    assert truth["tau_off"].between(1e-3, 50e-3).all()
    assert truth["tau_on"].iloc[-1] > truth["tau_on"].iloc[0]  # drift over the run
    sign = 1 if device_type == "N" else -1
    for row in truth.itertuples():
        part = slice(table["start_data_index"][row.Index], table["end_data_index"][row.Index])
        t, current = transient[1, part], transient[2, part]
        clean = square_wave_response(
            t,
            period=row.period,
            tau_on=row.tau_on,
            tau_off=row.tau_off,
            i_low=row.i_low,
            i_high=row.i_high,
            duty=row.duty,
            phase=row.phase,
        )
        residual = sign * current - clean
        assert 0.7 < residual.std() / row.noise_sigma < 1.3


def _nan_inside(data: np.ndarray) -> np.ndarray:
    """Steps (rows of Id) with a NaN before their last finite sample."""
    finite = np.isfinite(data)
    last = data.shape[1] - 1 - np.argmax(finite[:, ::-1], axis=1)
    return np.array([np.isnan(row[:end]).any() for row, end in zip(data, last, strict=True)])


@pytest.mark.parametrize("kind", DEFECTS)
def test_defects_where_flagged(make_file: Callable[..., Path], kind: str) -> None:
    path = make_file(n_transfer=10, n_transient=10, defects={kind: 0.3})
    transfer, transient, table, _ = _read(path)
    truth = read_ground_truth(path)
    for other in DEFECTS:
        if other != kind:
            assert not truth["transfer"][other].any()
            assert not truth["transient"][other].any()
    tr_flag, ts_flag = truth["transfer"][kind].to_numpy(), truth["transient"][kind].to_numpy()
    transient_counts = table["end_data_index"] - table["start_data_index"]
    steps = np.split(transient[2], table["end_data_index"][:-1])
    if kind in ("nan_samples", "ragged", "clipped"):
        assert tr_flag.sum() == 3
    else:
        assert not tr_flag.any()
    assert ts_flag.sum() == 3
    if kind == "nan_samples":
        np.testing.assert_array_equal(_nan_inside(transfer[:, 1]), tr_flag)
        np.testing.assert_array_equal([np.isnan(s).any() for s in steps], ts_flag)
    elif kind == "ragged":
        n_points = np.isfinite(transfer[:, 0]).sum(axis=1)
        np.testing.assert_array_equal(n_points < 61, tr_flag)
        np.testing.assert_array_equal(n_points, truth["transfer"]["n_points"])
        np.testing.assert_array_equal(transient_counts < 400, ts_flag)
    elif kind == "empty_steps":
        np.testing.assert_array_equal(transient_counts == 0, ts_flag)
    elif kind == "clipped":
        level = truth["transient"]["clip_level"].to_numpy()
        at_level = [np.isclose(np.abs(s), lv).sum() > 5 for s, lv in zip(steps, level, strict=True)]
        np.testing.assert_array_equal(at_level, ts_flag)
        tr_level = truth["transfer"]["clip_level"].to_numpy()
        assert np.all(np.nanmax(np.abs(transfer[tr_flag, 1]), axis=1) <= tr_level[tr_flag] * (1 + 1e-12))
    elif kind == "flat_cycles":
        ts = truth["transient"]
        for step, row in zip(steps, ts.itertuples(), strict=True):
            t = np.arange(step.size) * row.time_step
            inside = (t >= row.flat_start) & (t < row.flat_stop)
            assert inside.any() == row.flat_cycles
            if row.flat_cycles:
                assert np.abs(np.abs(step[inside]) - row.i_low).max() < 6 * row.noise_sigma
