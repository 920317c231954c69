"""Write synthetic experiment files and data sets in the oect-infra raw layout; read their truth."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import pandas as pd

from dask_features.synth._layout import Compression, sanitize, step_table, write_measurement, write_table
from dask_features.synth._simulate import DEFECTS, Run, simulate
from dask_features.synth._traces import GatePulse

__all__ = ["TRUTH_GROUP", "generate_dataset", "read_ground_truth", "write_experiment"]

TRUTH_GROUP = "synth"
"""Root group holding the ground truth (oect-infra ignores groups it does not know)."""

Writer = Literal["serial", "parallel"]
_FORMAT = {"serial": "2.0_direct_new_storage", "parallel": "2.0_new_storage"}
_SWEEP_V = {"N": (-0.6, 0.6), "P": (0.6, -0.6)}  # turn-on direction first
_DRAIN_V = {"N": 0.1, "P": -0.1}
_PULSE_V = {"N": (0.0, 0.5), "P": (-0.5, 0.0)}  # (bottom, top) gate voltage
_TRANSFER_TIME_STEP_MS = 5
_STEP_GAP_S = 0.5  # instrument set-up time between steps; only visible in start/end times
_TEST_ID_BASE = 1754300000000
_START = np.datetime64("2025-08-04T09:00:00", "us")


def _check_args(
    sweep_points: int,
    device_type: str,
    writer: str,
    duty: float,
    period: float,
    time_step: float,
    defects: Mapping[str, float],
) -> None:
    if sweep_points < 3 or sweep_points % 2 == 0:
        raise ValueError(
            f"sweep_points must be odd and >= 3 (turning point in the middle), got {sweep_points}"
        )
    if device_type not in ("N", "P"):
        raise ValueError(f"device_type must be 'N' or 'P', got {device_type!r}")
    if writer not in _FORMAT:
        raise ValueError(f"writer must be 'serial' or 'parallel', got {writer!r}")
    if not 0 < duty < 1 or period <= 0 or time_step <= 0:
        raise ValueError(
            f"need 0 < duty < 1, period > 0, time_step > 0; got {duty=}, {period=}, {time_step=}"
        )
    unknown = set(defects) - set(DEFECTS)
    if unknown:
        raise ValueError(f"unknown defect kind(s) {sorted(unknown)}; known: {list(DEFECTS)}")
    bad = {k: v for k, v in defects.items() if not 0 <= v <= 1}
    if bad:
        raise ValueError(f"defect fractions must lie in [0, 1], got {bad}")


def _num(value: float) -> int | float:
    """Hardware parameters are integers in mV / ms where possible, as in workflow.json."""
    rounded = round(value, 9)
    return int(rounded) if float(rounded).is_integer() else rounded


def _hardware_params(
    device_type: str, sweep_points: int, pulse: GatePulse, cycles: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Transfer and transient step parameters in hardware units (mV, ms)."""
    v_start, v_end = _SWEEP_V[device_type]
    drain_mv = _num(_DRAIN_V[device_type] * 1000)
    transfer = {
        "isSweep": True,
        "timeStep": _TRANSFER_TIME_STEP_MS,
        "sourceVoltage": 0,
        "drainVoltage": drain_mv,
        "gateVoltageStart": _num(v_start * 1000),
        "gateVoltageEnd": _num(v_end * 1000),
        "gateVoltageStep": _num(abs(v_end - v_start) * 1000 / ((sweep_points - 1) // 2)),
    }
    transient = {
        "timeStep": _num(pulse.time_step * 1000),
        "sourceVoltage": 0,
        "drainVoltage": drain_mv,
        "bottomTime": _num(pulse.bottom_time * 1000),
        "topTime": _num(pulse.top_time * 1000),
        "gateVoltageBottom": _num(pulse.v_bottom * 1000),
        "gateVoltageTop": _num(pulse.v_top * 1000),
        "cycles": cycles,
    }
    return transfer, transient


def _workflow(n_transfer: int, n_transient: int, params: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """workflow.json of a stability run: one loop of transfer then transient."""
    body = [
        {"id": f"{kind}-1", "type": kind, "command_id": i + 1, "params": params[kind]}
        for i, (kind, n) in enumerate((("transfer", n_transfer), ("transient", n_transient)))
        if n
    ]
    return [{"id": "loop-1", "type": "loop", "iterations": max(n_transfer, n_transient, 1), "steps": body}]


def _step_columns(
    kind: str, writer: Writer, n_transfer: int, n_transient: int, params: dict[str, Any], workflow: bool
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Step-table columns of one type, and the global (execution order) index of each step."""
    n = n_transfer if kind == "transfer" else n_transient
    k = np.arange(n)
    # Iteration i runs transfer i, then transient i, for as long as each type has steps.
    global_index = k + np.minimum(k, n_transient) if kind == "transfer" else k + np.minimum(k + 1, n_transfer)
    position = 1 if kind == "transfer" else 2
    cols: dict[str, np.ndarray] = {
        "step_index": k if writer == "serial" else global_index,
        "type": np.full(n, kind),
        "start_time": np.empty(n, dtype=object),  # filled by _fill_times
        "end_time": np.empty(n, dtype=object),
        "reason": np.full(n, "completed"),
        "data_file": np.char.add(np.char.add((global_index + 1).astype(str), "_"), f"{kind}.csv"),
    }
    for name, value in params.items():
        cols[f"param_{name}"] = np.full(n, value)
    if workflow:
        total = n_transfer + n_transient
        iterations = max(n_transfer, n_transient)
        cols["workflow_step_index"] = global_index
        cols["workflow_total_steps"] = np.full(n, total)
        cols["workflow_path_readable"] = np.char.add(
            np.char.add("Step 1 (loop) iteration ", (k + 1).astype(str)),
            f"/{iterations} > Step 1.{position} ({kind})",
        )
        cols["workflow_iteration_info_type"] = np.full(n, "loop")
        cols["workflow_iteration_info_total"] = np.full(n, iterations)
        cols["workflow_iteration_info_current"] = k + 1
    return cols, global_index


def _fill_times(
    tables: list[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]], start: np.datetime64
) -> np.datetime64:
    """ISO start/end times of every step in execution order; returns the end of the last step."""
    n_total = sum(idx.shape[0] for _, idx, _ in tables)
    duration = np.zeros(n_total)
    for _, idx, seconds in tables:
        duration[idx] = seconds
    begin = np.concatenate([[0.0], np.cumsum(duration + _STEP_GAP_S)[:-1]])
    begin_us = start + (begin * 1e6).astype("timedelta64[us]")
    end_us = begin_us + (duration * 1e6).astype("timedelta64[us]")
    for cols, idx, _ in tables:
        cols["start_time"] = np.datetime_as_string(begin_us[idx], unit="us")
        cols["end_time"] = np.datetime_as_string(end_us[idx], unit="us")
    return end_us[-1] if n_total else start


def _default_test_id(seed: int) -> str:
    return f"test_{_TEST_ID_BASE + seed}"


def _file_name(chip_id: object, device_number: object, description: object, test_id: object) -> str:
    return "-".join(sanitize(v) for v in (chip_id, device_number, description, test_id)) + ".h5"


def write_experiment(
    path: str | Path,
    *,
    n_transfer: int = 50,
    n_transient: int = 50,
    sweep_points: int = 301,
    transient_samples: int = 2000,
    device_type: Literal["N", "P"] = "N",
    period: float = 0.2,
    time_step: float = 1e-3,
    duty: float = 0.5,
    writer: Writer = "serial",
    index_columns: bool = True,
    workflow: bool = True,
    defects: Mapping[str, float] | None = None,
    seed: int = 0,
    chip_id: str = "#20250804008",
    device_number: str = "3",
    test_id: str | None = None,
    description: str = "stability",
    numeric_ids: bool = False,
    compression: Compression = "gzip",
) -> Path:
    """Write one synthetic stability experiment in the oect-infra raw HDF5 layout.

    Parameters
    ----------
    path : str or Path
        Output file, or an existing directory to write ``{chip_id}-{device_number}-{description}-
        {test_id}.h5`` into (components sanitised like oect-infra's converter).
    n_transfer, n_transient : int, default 50
        Number of transfer and transient steps (loop iterations run transfer then transient).
    sweep_points : int, default 301
        Points per transfer sweep, forward then reverse; odd, turning point in the middle.
    transient_samples : int, default 2000
        Samples per transient step.
    device_type : {"N", "P"}, default "N"
        Channel polarity. P-type currents are negative (negative drain bias).
    period : float, default 0.2
        Gate pulse period of the transient steps [s].
    time_step : float, default 1e-3
        Transient sampling interval [s].
    duty : float, default 0.5
        Fraction of the period in which |I| is high.
    writer : {"serial", "parallel"}, default "serial"
        Writer flavour to reproduce: ``"serial"`` -> format ``2.0_direct_new_storage`` (raw/json as
        bytes, test-info string attributes as ASCII bytes, ``step_index`` counted within each
        type); ``"parallel"`` -> ``2.0_new_storage`` (UTF-8 strings, ``step_index`` = position in
        the test-info step list, ``creation_method`` and ``successful_steps`` attributes).
    index_columns : bool, default True
        Append ``start_data_index`` / ``end_data_index`` to the transient step table (files from
        before oect-infra 1.0.10 lack them).
    workflow : bool, default True
        Write ``raw/workflow`` and the ``workflow_*`` step-table columns.
    defects : mapping of str to float, optional
        Fraction of steps affected per defect kind: ``nan_samples`` (NaN Id samples inside sweeps
        and traces), ``ragged`` (aborted sweeps, NaN-padded; shortened transient steps),
        ``flat_cycles`` (1-3 transient cycles without response), ``clipped`` (|I| saturated at a
        level), ``empty_steps`` (transient steps with no samples). A non-zero fraction affects at
        least one step. Affected steps are flagged in the truth tables.
    seed : int, default 0
        Seed of the device, its drift, the noise and the defects; the same seed gives the same file
        content.
    chip_id, device_number, description : str
        Identity attributes.
    test_id : str, optional
        ``test_<digits>``; by default derived from ``seed``.
    numeric_ids : bool, default False
        Store ``chip_id`` (its digits) and ``device_number`` as integers, as some users' files
        have them (oect-infra fails on those files).
    compression : {"gzip", "lzf", None}, default "gzip"
        Dataset filter; ``"gzip"`` is level 4 + shuffle + fletcher32 like the real writer.

    Returns
    -------
    Path
        The file written.
    """
    defects = dict(defects or {})
    _check_args(sweep_points, device_type, writer, duty, period, time_step, defects)
    if min(n_transfer, n_transient, transient_samples) < 0:
        raise ValueError("step and sample counts must be >= 0")
    test_id = test_id or _default_test_id(seed)
    path = Path(path)
    if path.is_dir():
        path = path / _file_name(chip_id, device_number, description, test_id)
    path.parent.mkdir(parents=True, exist_ok=True)

    v_bottom, v_top = _PULSE_V[device_type]
    on_time, off_time = duty * period, (1.0 - duty) * period
    on_is_top = device_type == "N"
    pulse = GatePulse(
        v_bottom=v_bottom,
        v_top=v_top,
        bottom_time=off_time if on_is_top else on_time,
        top_time=on_time if on_is_top else off_time,
        time_step=time_step,
        on_is_top=on_is_top,
    )
    run = simulate(
        n_transfer=n_transfer,
        n_transient=n_transient,
        sweep_points=sweep_points,
        transient_samples=transient_samples,
        device_type=device_type,
        sweep_v=_SWEEP_V[device_type],
        pulse=pulse,
        defects=defects,
        seed=seed,
    )
    cycles = int(np.ceil(transient_samples * time_step / period - 1e-9))
    tr_params, ts_params = _hardware_params(device_type, sweep_points, pulse, cycles)
    tr_cols, tr_idx = _step_columns("transfer", writer, n_transfer, n_transient, tr_params, workflow)
    ts_cols, ts_idx = _step_columns("transient", writer, n_transfer, n_transient, ts_params, workflow)
    created = _START + np.timedelta64(seed % 10_000, "h")
    finished = _fill_times(
        [
            (tr_cols, tr_idx, run.ragged_len * _TRANSFER_TIME_STEP_MS / 1000),
            (ts_cols, ts_idx, run.n_samples * time_step),
        ],
        created,
    )
    if index_columns:
        ends = np.cumsum(run.n_samples)
        ts_cols["start_data_index"] = ends - run.n_samples
        ts_cols["end_data_index"] = ends

    info = _test_info(
        writer=writer,
        chip_id=chip_id,
        device_number=device_number,
        test_id=test_id,
        description=description,
        device_type=device_type,
        created=created,
        finished=finished,
        n_steps=n_transfer + n_transient,
        numeric_ids=numeric_ids,
    )
    info["steps"] = _json_steps([tr_cols, ts_cols], [tr_idx, ts_idx], [tr_params, ts_params], workflow)
    flow = _workflow(n_transfer, n_transient, {"transfer": tr_params, "transient": ts_params})
    with h5py.File(path, "w") as f:
        _write_root_attrs(f, info, writer, path, numeric_ids)
        raw = f.create_group("raw")
        if writer == "serial":
            raw.create_dataset("json", data=json.dumps(info).encode())
        else:
            text = json.dumps(info, separators=(",", ":"), ensure_ascii=False)
            raw.create_dataset("json", data=text, dtype=h5py.string_dtype())
        if workflow:
            raw.create_dataset(
                "workflow", data=json.dumps(flow, ensure_ascii=False), dtype=h5py.string_dtype()
            )
        _write_groups(f, run, tr_cols, ts_cols, compression)
        _write_truth(
            f,
            run,
            seed=seed,
            writer=writer,
            tr_table_index=tr_cols["step_index"],
            ts_table_index=ts_cols["step_index"],
        )
    return path


def _test_info(
    *,
    writer: Writer,
    chip_id: str,
    device_number: str,
    test_id: str,
    description: str,
    device_type: str,
    created: np.datetime64,
    finished: np.datetime64,
    n_steps: int,
    numeric_ids: bool,
) -> dict[str, Any]:
    """Cleaned test_info.json root keys (``device_id`` already renamed ``test_unit_id``)."""
    ids: tuple[object, object] = (chip_id, device_number)
    if numeric_ids:
        digits = re.sub(r"\D", "", chip_id)
        if not digits or not str(device_number).isdigit():
            raise ValueError(
                f"numeric_ids needs digits in chip_id and device_number, got {chip_id!r}, {device_number!r}"
            )
        ids = (int(digits), int(device_number))
    return {
        "sync_mode": True,
        "batch_id": f"batch_{str(created)[:10].replace('-', '')}",
        "test_id": test_id,
        "name": f"{description} {device_number}",
        "description": description,
        "test_unit_id": f"{chip_id}-{device_number}",
        "chip_id": ids[0],
        "device_number": ids[1],
        "port": "COM3",
        "baudrate": 115200,
        "created_at": str(np.datetime_as_string(created, unit="s")),
        "completed_at": str(np.datetime_as_string(finished, unit="s")),
        "status": "completed",
        "total_steps": n_steps,
        "completed_steps": n_steps,
        "completion_percentage": 100.0,
        "device_type": f"{device_type}-type",
        "file_type": "raw",
    }


def _json_steps(
    cols: list[dict[str, np.ndarray]], indices: list[np.ndarray], params: list[dict[str, Any]], workflow: bool
) -> list[dict[str, Any]]:
    """The test-info ``steps`` list in execution order (the source the step tables derive from)."""
    steps: list[dict[str, Any] | None] = [None] * sum(len(i) for i in indices)
    for table, idx, par in zip(cols, indices, params, strict=True):
        keys = ("type", "start_time", "end_time", "reason", "data_file")
        columns = [table[key].tolist() for key in keys]
        wf = (
            [table[f"workflow_{k}"].tolist() for k in ("step_index", "total_steps", "path_readable")]
            + [table[f"workflow_iteration_info_{k}"].tolist() for k in ("type", "total", "current")]
            if workflow
            else None
        )
        for row, g in enumerate(idx.tolist()):
            step: dict[str, Any] = dict(zip(keys, (c[row] for c in columns), strict=True))
            step["step_index"] = g
            step["parameters"] = par
            if wf is not None:
                step["workflow_info"] = {
                    "step_index": wf[0][row],
                    "total_steps": wf[1][row],
                    "path_readable": wf[2][row],
                    "iteration_info": {"type": wf[3][row], "total": wf[4][row], "current": wf[5][row]},
                }
            steps[g] = step
    return [s for s in steps if s is not None]


def _write_root_attrs(
    f: h5py.File, info: dict[str, Any], writer: Writer, path: Path, numeric_ids: bool
) -> None:
    f.attrs["format_version"] = _FORMAT[writer]
    for key, value in info.items():
        if isinstance(value, dict | list):
            continue
        # The serial writer hands h5py encoded bytes (stored as variable-length ASCII).
        f.attrs[key] = value.encode() if writer == "serial" and isinstance(value, str) else value
    # Provenance of the batch converter, which also re-writes the identity attributes sanitised.
    f.attrs["source_folder_name"] = path.stem
    f.attrs["source_folder_path"] = f"/data/raw_csv/{path.stem}"
    f.attrs["source_json_name"] = "test_info.json"
    f.attrs["export_time_utc"] = info["completed_at"] + "Z"
    f.attrs["output_filename"] = path.name
    for key in (
        ("description", "test_id") if numeric_ids else ("chip_id", "device_number", "description", "test_id")
    ):
        f.attrs[key] = sanitize(info[key])
    if writer == "parallel":
        f.attrs["creation_method"] = "direct_csv2hdf_parallel"
        f.attrs["successful_steps"] = info["total_steps"]


def _write_groups(
    f: h5py.File,
    run: Run,
    tr_cols: dict[str, np.ndarray],
    ts_cols: dict[str, np.ndarray],
    compression: Compression,
) -> None:
    transfer = f.create_group("transfer")
    write_measurement(
        transfer,
        run.transfer,
        dimension_labels=["step_index", "data_type", "data_point"],
        data_type_labels=["Vg", "Id"],
        description="Transfer measurement data: [step, Vg/Id, point], NaN-padded",
        compression=compression,
    )
    write_table(transfer, step_table(tr_cols), "Transfer step information", compression)
    transient = f.create_group("transient")
    write_measurement(
        transient,
        run.transient,
        dimension_labels=["data_type", "data_point"],
        data_type_labels=["continuous_time", "original_time", "drain_current"],
        description="Transient measurement data, all steps concatenated",
        compression=compression,
    )
    write_table(transient, step_table(ts_cols), "Transient step information", compression)


def _write_truth(
    f: h5py.File,
    run: Run,
    *,
    seed: int,
    writer: Writer,
    tr_table_index: np.ndarray,
    ts_table_index: np.ndarray,
) -> None:
    group = f.create_group(TRUTH_GROUP)
    group.attrs["generator"] = "dask_features.synth"
    group.attrs["seed"] = seed
    group.attrs["writer"] = writer
    group.attrs["device"] = json.dumps(asdict(run.dev))
    for name, truth, table_index in (
        ("transfer", run.transfer_truth, tr_table_index),
        ("transient", run.transient_truth, ts_table_index),
    ):
        columns = {"step_index": truth["step_index"], "table_step_index": np.asarray(table_index, np.int64)}
        columns.update(truth)
        group.create_dataset(name, data=_records(columns))


def _records(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Structured array from equally long columns."""
    n = len(next(iter(columns.values())))
    table = np.empty(n, dtype=[(k, np.asarray(v).dtype) for k, v in columns.items()])
    for name, values in columns.items():
        table[name] = values
    return table


def read_ground_truth(path: str | Path) -> dict[str, pd.DataFrame]:
    """Per-step ground truth stored by `write_experiment` in the ``/synth`` group.

    Parameters
    ----------
    path : str or Path
        A file written by `write_experiment`.

    Returns
    -------
    dict of str to pandas.DataFrame
        ``"transfer"``: ``step_index`` (row of ``transfer/measurement_data``), ``table_step_index``
        (value in the step table), ``vth_forward``/``vth_reverse`` [V] (model thresholds),
        ``hysteresis`` [V] (forward minus reverse), ``von_forward``/``von_reverse`` [V] (gate voltage
        of the steepest log10|Id| rise, oect-infra's Von), ``gm_max_forward``/``gm_max_reverse``
        [S] and ``vg_gm_max_forward``/``vg_gm_max_reverse`` [V] (|gm| peak of the noise-free
        sweep), ``k`` [A/V²], ``n_points``, ``clip_level`` [A], and one boolean column per defect kind.
        ``"transient"``: ``step_index``, ``table_step_index``, ``tau_on``/``tau_off`` [s],
        ``period`` [s], ``duty``, ``phase`` [s] (first rising |I| edge, step-local), ``time_step``
        [s], ``i_low``/``i_high`` [A] (settled |I|), ``noise_sigma`` [A], ``n_samples``,
        ``start_data_index``/``end_data_index``, ``clip_level`` [A], ``flat_start``/``flat_stop``
        [s] (step-local, NaN if none), and the defect flags.

    Raises
    ------
    KeyError
        The file holds no ground truth.
    """
    with h5py.File(path, "r") as f:
        if TRUTH_GROUP not in f:
            raise KeyError(f"{path}: no /{TRUTH_GROUP} group; not written by dask_features.synth")
        group = f[TRUTH_GROUP]
        return {name: pd.DataFrame(group[name][()]) for name in ("transfer", "transient")}


def generate_dataset(
    out_dir: str | Path, *, n_experiments: int = 4, n_steps: int = 50, seed: int = 0, **kwargs: Any
) -> list[Path]:
    """Write a folder of synthetic experiments.

    Device types cycle N, P, P, N and writers serial, parallel, serial, parallel, so four
    experiments cover every combination; ``device_number`` counts from 1.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write into (created if missing).
    n_experiments : int, default 4
        Number of files.
    n_steps : int, default 50
        Transfer and transient steps per file.
    seed : int, default 0
        Seed of the whole data set; experiment ``i`` uses ``seed * 10_000 + i``.
    **kwargs
        Passed to `write_experiment`; ``device_type`` and ``writer`` given here apply to all files.

    Returns
    -------
    list of Path
        The files, in generation order.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_experiments):
        options: dict[str, Any] = {
            "device_type": "NPPN"[i % 4],
            "writer": ("serial", "parallel")[i % 2],
            "device_number": str(i + 1),
            "n_transfer": n_steps,
            "n_transient": n_steps,
            **kwargs,
        }
        paths.append(write_experiment(out, seed=seed * 10_000 + i, **options))
    return paths
