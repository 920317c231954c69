from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from knn_store.cli import main


@pytest.fixture
def inputs(digits_gcd, tmp_path: Path) -> dict[str, Path]:
    """The same 400 digits points written as .npy (+ .npz labels), Zarr and Parquet."""
    import zarr

    x, y, labeled = digits_gcd
    x, y, labeled = x[:400], y[:400], labeled[:400]
    paths = {"npy": tmp_path / "raw.npy", "labels": tmp_path / "labels.npz", "zarr": tmp_path / "zz.zarr"}
    np.save(paths["npy"], x)
    np.savez(paths["labels"], labels=y, labeled_mask=labeled)
    g = zarr.open_group(str(paths["zarr"]), mode="w")
    for name, arr in {"features": x, "labels": y, "labeled_mask": labeled}.items():
        g.create_array(name, data=arr)
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])]).assign(label=y, labeled=labeled)
    paths["parquet"] = tmp_path / "pq.parquet"
    df.to_parquet(paths["parquet"])
    return paths


def test_grid_search_info_prune_clear(inputs, tmp_path: Path, capsys) -> None:
    store, out = str(tmp_path / "store"), tmp_path / "out"
    args = [
        "grid-search",
        "--store",
        store,
        "--features",
        str(inputs["npy"]),
        "--labels",
        str(inputs["labels"]),
    ]
    args += ["--features", str(inputs["zarr"]), "--features", f"pq={inputs['parquet']}"]
    args += ["--k-min", "3", "--k-max", "6", "--density-range", "50:70:10", "--out", str(out)]
    assert main(args) == 0
    table = pd.read_parquet(out / "results.parquet")
    assert sorted(table.feature_set.unique()) == ["pq", "raw", "zz"]
    assert len(table) == 3 * 4 * 3
    assert sorted(table.density_percentile.unique()) == [50.0, 60.0, 70.0]
    # Same matrix in three formats: one entry, identical scores.
    by_set = [
        g.drop(columns=["feature_set", "seconds"]).reset_index(drop=True)
        for _, g in table.groupby("feature_set")
    ]
    pd.testing.assert_frame_equal(by_set[0], by_set[1])
    capsys.readouterr()

    assert main(["info", "--store", store, "--json"]) == 0
    [entry] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert entry["k_max"] == [6]
    assert entry["n"] == 400
    assert main(["prune", "--store", store, "--max-bytes", "0", "--grace", "1h"]) == 0
    assert "pruned 0 entries" in capsys.readouterr().out
    assert main(["prune", "--store", store, "--max-bytes", "0", "--grace", "0"]) == 0
    assert "pruned 1 entries" in capsys.readouterr().out
    assert main(["clear", "--store", store]) == 0
    assert "removed 0 entries" in capsys.readouterr().out


def test_clear_knn_cache_recomputes(inputs, tmp_path: Path, caplog) -> None:
    import logging

    base = ["grid-search", "--store", str(tmp_path / "s"), "--features", str(inputs["zarr"])]
    base += ["--k-min", "3", "--k-max", "4", "--density-range", "60", "--out", str(tmp_path / "o")]
    with caplog.at_level(logging.INFO, logger="knn_store.store"):
        assert main(base) == 0
        assert main(base) == 0
        assert main([*base, "--clear-knn-cache"]) == 0
    assert sum(r.getMessage().startswith("computed kNN") for r in caplog.records) == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--features", "missing.npy"], "does not exist"),
        (["--features", "../x=raw.npy"], "not allowed"),
        (["--features", "raw.npy"], "needs labels"),
    ],
    ids=["missing-file", "bad-name", "no-labels"],
)
def test_bad_input_exits_with_a_message(inputs, tmp_path: Path, capsys, monkeypatch, extra, message) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["grid-search", "--store", str(tmp_path / "s"), *extra, "--out", str(tmp_path / "o")]
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_bad_density_range_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["grid-search", "--features", "x.npy", "--density-range", "40:90:0", "--out", "o"])
    assert exc.value.code == 2
    assert "density-range" in capsys.readouterr().err
