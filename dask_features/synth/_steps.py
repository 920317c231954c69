"""Step metadata of a synthetic run: hardware parameters, workflow, step-table columns, test info."""

from __future__ import annotations

import re
from typing import Any, Literal

import numpy as np

from dask_features.errors import InvalidArgumentError
from dask_features.synth._traces import GatePulse

Writer = Literal["serial", "parallel"]
_FORMAT = {"serial": "2.0_direct_new_storage", "parallel": "2.0_new_storage"}
_SWEEP_V = {"N": (-0.6, 0.6), "P": (0.6, -0.6)}  # turn-on direction first
_DRAIN_V = {"N": 0.1, "P": -0.1}
_PULSE_V = {"N": (0.0, 0.5), "P": (-0.5, 0.0)}  # (bottom, top) gate voltage
_TRANSFER_TIME_STEP_MS = 5
_STEP_GAP_S = 0.5  # instrument set-up time between steps; only visible in start/end times


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
            raise InvalidArgumentError(
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
