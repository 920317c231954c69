"""Write synthetic experiment files and data sets in the oect-infra raw layout."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

from dask_features.errors import InvalidArgumentError
from dask_features.synth._file import _write_groups, _write_root_attrs, _write_truth
from dask_features.synth._layout import Compression, sanitize
from dask_features.synth._simulate import DEFECTS, simulate
from dask_features.synth._steps import (
    _FORMAT,
    _PULSE_V,
    _SWEEP_V,
    _TRANSFER_TIME_STEP_MS,
    Writer,
    _fill_times,
    _hardware_params,
    _json_steps,
    _step_columns,
    _test_info,
    _workflow,
)
from dask_features.synth._traces import GatePulse

__all__ = ["generate_dataset", "write_experiment"]

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
        raise InvalidArgumentError(
            f"sweep_points must be odd and >= 3 (turning point in the middle), got {sweep_points}"
        )
    if device_type not in ("N", "P"):
        raise InvalidArgumentError(f"device_type must be 'N' or 'P', got {device_type!r}")
    if writer not in _FORMAT:
        raise InvalidArgumentError(f"writer must be 'serial' or 'parallel', got {writer!r}")
    if not 0 < duty < 1 or period <= 0 or time_step <= 0:
        raise InvalidArgumentError(
            f"need 0 < duty < 1, period > 0, time_step > 0; got {duty=}, {period=}, {time_step=}"
        )
    unknown = set(defects) - set(DEFECTS)
    if unknown:
        raise InvalidArgumentError(f"unknown defect kind(s) {sorted(unknown)}; known: {list(DEFECTS)}")
    bad = {k: v for k, v in defects.items() if not 0 <= v <= 1}
    if bad:
        raise InvalidArgumentError(f"defect fractions must lie in [0, 1], got {bad}")


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
        raise InvalidArgumentError("step and sample counts must be >= 0")
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
