"""Assembling an experiment: ragged features' rows joined, a source the file lacks, no pandas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import dask_features as dfe
from dask_features.engine.tasks import _merge_cycles, _merge_cycles_pandas

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


def _cycles(step: list[int], cycle: list[int], **fields: list[object]) -> pa.Table:
    arrays = {"step_index": pa.array(step, pa.int64()), "cycle": pa.array(cycle, pa.int64())}
    arrays.update({k: pa.array(v) for k, v in fields.items()})
    return pa.table(arrays)


MERGES = {
    "overlapping": [
        _cycles([0, 0, 2, 5], [0, 1, 0, 3], a=[1.0, None, 3.0, 4.0], flag=[True, False, None, True]),
        _cycles([0, 1, 2], [1, 0, 0], b=[7, 8, 9]),
    ],
    "three, one empty": [
        _cycles([3, 1], [0, 0], a=[1.5, 2.5]),
        _cycles([], [], b=pa.array([], pa.float32())),
        _cycles([1, 1], [1, 0], c=["x", None]),
    ],
    "disjoint": [_cycles([0], [0], a=[1.0]), _cycles([1], [0], b=[2.0])],
}


@pytest.mark.parametrize("name", MERGES)
def test_merge_matches_the_pandas_outer_join(name: str) -> None:
    tables = MERGES[name]
    got = _merge_cycles(tables)
    want = _merge_cycles_pandas(tables)
    assert got is not None
    assert got.schema == want.schema
    assert got.to_pylist() == want.to_pylist()


def test_merge_with_null_keys_goes_through_pandas() -> None:
    tables = [_cycles([0, None], [0, 0], a=[1.0, 2.0]), _cycles([0], [0], b=[3.0])]  # type: ignore[list-item]
    got = _merge_cycles(tables)
    assert got is not None
    assert got.to_pylist() == _merge_cycles_pandas(tables).to_pylist()
    assert got.to_pylist() == [  # the null key is a row of its own, still int64
        {"step_index": 0, "cycle": 0, "a": 1.0, "b": 3.0},
        {"step_index": None, "cycle": 0, "a": 2.0, "b": None},
    ]
    assert got.schema.field("step_index").type == pa.int64()


def test_merge_with_repeated_keys_keeps_every_pair() -> None:
    tables = [_cycles([0, 0], [1, 1], a=[1.0, 2.0]), _cycles([0], [1], b=[3.0])]
    got = _merge_cycles(tables)
    assert got is not None
    assert got.to_pylist() == _merge_cycles_pandas(tables).to_pylist()
    assert got.num_rows == 2
    assert got.column("a").to_pylist() == [1.0, 2.0]
    assert got.column("b").to_pylist() == [3.0, 3.0]


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
    assert len(errors) == 12 == res.n_errors
    assert np.array_equal(np.sort(errors["step_index"].unique()), np.arange(6))


@pytest.mark.parametrize(
    ("func", "bad_steps"),
    [
        ("lambda g: g / 0", "all"),  # +inf everywhere
        ("lambda g: np.log(g - np.nanmedian(g))", "half"),  # NaN (log of a negative) from finite inputs
        ("lambda g: g * 2", "none"),
    ],
    ids=["inf", "nan-from-finite", "fine"],
)
def test_a_derived_value_that_is_not_defined_is_nan_with_a_record(
    func: str, bad_steps: str, tmp_path: Path
) -> None:
    path = dfe.synth.write_experiment(tmp_path, n_transfer=8, n_transient=0, sweep_points=41, seed=3)
    config = {
        "name": "derived_edges",
        "features": [
            {"name": "gm", "extractor": "transfer.gm_max", "params": {"direction": "forward"}},
            {"name": "d", "func": func, "input": "gm"},
        ],
    }
    res = dfe.extract(path, config, tmp_path / "out", progress=False, scheduler="sync")
    frame = dfe.read_features(tmp_path / "out", "derived_edges")
    assert frame["gm"].notna().all()
    assert not np.isinf(frame["d"]).any()  # never written as a number
    records = res.errors[res.errors.feature == "d"] if res.n_errors else pd.DataFrame({"step_index": []})
    missing = set(frame.loc[frame["d"].isna(), "step_index"])
    assert set(records["step_index"]) == missing  # every NaN has its record, no record without a NaN
    expected = {"all": 8, "none": 0}.get(bad_steps)
    if expected is not None:
        assert len(missing) == expected
    else:
        assert 0 < len(missing) < 8
