"""Assembling an experiment: a ragged feature of a source the file lacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

import dask_features as dfe

TWO_TAUS = {
    "version": "v2",
    "name": "two_taus",
    "features": [
        {"name": "gm", "extractor": "transfer.gm_max", "input": "transfer"},
        {"name": "tau_a", "extractor": "transient.tau_on_off", "input": "transient"},
        {
            "name": "tau_b",
            "extractor": "transient.tau_on_off",
            "input": "transient",
            "params": {"period": 0.2},
        },
    ],
}


def test_ragged_features_on_a_file_without_their_source(tmp_path: Path) -> None:
    """A transfer-only file still gets its transfer features; the tau rows are absent, with a reason."""
    path = dfe.synth.write_experiment(tmp_path, n_transfer=6, n_transient=0, sweep_points=41, seed=3)
    res = dfe.extract(path, TWO_TAUS, tmp_path / "out", progress=False, scheduler="sync")
    assert res.ok, res.summary()
    steps = pq.read_table(res.successful[str(path)])
    assert steps.num_rows == 6
    assert steps.column("gm").null_count < 6
    cycles = pq.read_table(
        res.successful[str(path)].parent.parent / "cycles" / res.successful[str(path)].name
    )
    assert cycles.num_rows == 0
    assert {"tau_a_tau_on", "tau_b_tau_on"} <= set(cycles.column_names)
    errors = res.errors
    assert set(errors["feature"]) == {"tau_a", "tau_b"}
    assert errors["message"].str.contains("only 0 transient steps").all()
    assert isinstance(errors, pd.DataFrame)
    assert len(errors) == 12
    assert np.array_equal(np.sort(errors["step_index"].unique()), np.arange(6))
