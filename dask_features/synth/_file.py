"""Root attributes, measurement groups and ground truth of one synthetic file; reading the truth back."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from dask_features.errors import MissingGroupError
from dask_features.synth._layout import Compression, sanitize, step_table, write_measurement, write_table
from dask_features.synth._simulate import Run
from dask_features.synth._steps import _FORMAT, Writer

__all__ = ["TRUTH_GROUP", "read_ground_truth"]

TRUTH_GROUP = "synth"
"""Root group holding the ground truth (oect-infra ignores groups it does not know)."""


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
        ``hysteresis`` [V] (reverse minus forward, the sign of ``transfer.hysteresis``), ``von_forward``/``von_reverse`` [V] (gate voltage
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
            raise MissingGroupError(str(path), f"no /{TRUTH_GROUP} group; not written by dask_features.synth")
        group = f[TRUTH_GROUP]
        return {name: pd.DataFrame(group[name][()]) for name in ("transfer", "transient")}
