"""Features are evaluated in dependency order and never share a column (issue cases 1 and 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import dask_features as dfe


def test_reversed_config_is_evaluated_in_dependency_order(dataset: Path, tmp_path: Path) -> None:
    # Listed consumer first: the engine used to evaluate in file order and silently drop b and a.
    config = {
        "name": "reversed",
        "features": [
            {"name": "b", "func": "lambda a: a + 1", "input": "a"},
            {"name": "a", "func": "lambda gm: gm * 2", "input": "gm"},
            {"name": "gm", "extractor": "transfer.gm_max"},
        ],
    }
    res = dfe.extract(dataset, config, tmp_path, scheduler="sync", progress=False)
    assert res.ok
    assert len(res.successful) == 3
    assert res.errors.empty, res.errors
    frame = dfe.read_features(tmp_path, "reversed")
    assert list(frame.columns[-3:]) == ["b", "a", "gm"]  # config order is the column order
    assert frame["gm"].notna().all()
    np.testing.assert_allclose(frame["a"], 2 * frame["gm"])
    np.testing.assert_allclose(frame["b"], 2 * frame["gm"] + 1)


GM_PAIR = {"name": "c", "extractor": "transfer.gm_max", "params": {"direction": "both"}}


@pytest.mark.parametrize(
    ("features", "message"),
    [
        # A scalar c_0 next to the 2-vector c: c_0 used to overwrite the vector's first column.
        ([GM_PAIR, {"name": "c_0", "extractor": "transfer.absI_max"}], "'c_0'"),
        ([{"name": "c_1", "extractor": "transfer.absI_max"}, GM_PAIR], "'c_1'"),
        # A derived vector is read back as c_0, c_1, ...: a scalar c_3 would be hidden by it.
        (
            [
                {"name": "g", "extractor": "transfer.gm_max"},
                {"name": "c", "func": "lambda g: g", "input": "g"},
                {"name": "c_3", "extractor": "transfer.absI_max"},
            ],
            "c_0, c_1",
        ),
        # Per-experiment-width vectors (list columns) are read back the same way.
        (
            [
                {"name": "cyc", "extractor": "transient.cycles"},
                {"name": "cyc_12", "extractor": "transient.peak_current"},
            ],
            "cyc_0",
        ),
        ([{"name": "experiment", "extractor": "transfer.absI_max"}], "reserved"),
        ([{"name": "source_file", "extractor": "transfer.absI_max"}], "reserved"),
    ],
)
def test_column_collisions_are_config_errors(
    features: list[dict[str, Any]], message: str, dataset: Path, tmp_path: Path
) -> None:
    with pytest.raises(dfe.ConfigError, match=message):
        dfe.extract(dataset, {"name": "clash", "features": features}, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # nothing was started


def test_vector_columns_next_to_other_names_are_fine() -> None:
    cfg = dfe.load_config(
        {
            "name": "ok",
            "features": [
                GM_PAIR,
                {"name": "c_x", "extractor": "transfer.absI_max"},
                {"name": "c_0_0", "extractor": "transfer.absI_min"},
            ],
        }
    )
    names = cfg.columns.schema("steps").names
    assert names[names.index("step_index") + 1 :] == ["c_0", "c_1", "c_x", "c_0_0"]


def test_ragged_fields_clashing_with_each_other_are_prefixed() -> None:
    cfg = dfe.load_config(
        {
            "name": "two_taus",
            "features": [
                {"name": "fast", "extractor": "transient.tau_on_off"},
                {"name": "slow", "extractor": "transient.tau_on_off", "params": {"min_r2": 0.9}},
            ],
        }
    )
    names = cfg.columns.schema("cycles").names
    assert "fast_tau_on" in names
    assert "slow_tau_on" in names
    assert len(names) == len(set(names))
