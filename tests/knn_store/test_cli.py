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


def _grid(inputs: dict[str, Path], tmp_path: Path, *flags: str) -> tuple[int, Path]:
    out = tmp_path / "out"
    argv = ["grid-search", "--store", str(tmp_path / "s"), "--features", str(inputs["npy"])]
    argv += ["--labels", str(inputs["labels"]), "--k-min", "4", "--k-max", "5", "--density-range", "50,70"]
    return main([*argv, "--out", str(out), *flags]), out


@pytest.mark.parametrize(
    ("flags", "kwargs"),
    [
        (["--variant", "A"], {"dense_method": 0, "assign_model": 2, "l2_weights": {}}),
        (
            ["--variant", "A", "--param", "voting_k=7", "--l2-weights", "silhouette=1,separation=2"],
            {
                "dense_method": 0,
                "assign_model": 2,
                "voting_k": 7,
                "l2_weights": {"silhouette": 1, "separation": 2},
            },
        ),
        (
            ["--param", "co_mode=1", "--param", "co_manual=30.5", "--select-rule", "first"],
            {"co_mode": 1, "co_manual": 30.5, "select_rule": "first"},
        ),
        (
            ["--algorithm", "ours", "--variant", "A", "--no-loss", "--param", "relative=false"],
            {"algorithm": "ours", "loss": False, "relative": False},
        ),
    ],
    ids=["variant-A", "variant-A-overridden", "reference-params", "ours-no-loss"],
)
def test_clustering_options_run_what_the_python_call_runs(inputs, tmp_path: Path, flags, kwargs) -> None:
    from knn_store import grid_search

    code, out = _grid(inputs, tmp_path, *flags)
    assert code == 0
    got = pd.read_parquet(out / "results.parquet")
    x, lab = np.load(inputs["npy"]), np.load(inputs["labels"])
    want = grid_search(
        {"raw": x}, lab["labels"], lab["labeled_mask"], range(4, 6), [50, 70], progress=False, **kwargs
    )
    pd.testing.assert_frame_equal(got.drop(columns="seconds"), want.drop(columns="seconds"))
    best = pd.read_parquet(out / "best.parquet")
    assert best[["k", "density_percentile"]].values.tolist() == [
        [b["k"], b["density_percentile"]] for b in want.attrs["best"]
    ]
    if flags[:2] == ["--variant", "A"] and len(flags) == 2:
        assert (got.l2 == 0).all()  # their variant A has no L2 term; the default (B) has
    if "--no-loss" in flags:
        assert got.loss.isna().all()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--variant", "C"], "--variant must be one of ['A', 'B']"),
        (["--algorithm", "kmeans"], "algorithm"),
        (["--param", "bogus=1"], "bogus"),
        (["--param", "co_mode=1"], "co_manual"),
        (["--l2-weights", "dbcv=1"], "dbcv"),
    ],
)
def test_bad_clustering_options_fail_before_any_work(inputs, tmp_path: Path, capsys, flags, message) -> None:
    code, out = _grid(inputs, tmp_path, *flags)
    assert code == 1
    assert message in capsys.readouterr().err
    assert not list((tmp_path / "s").rglob("*.zarr"))  # no kNN computed
    assert not out.exists()


@pytest.mark.parametrize("flags", [["--param", "novalue"], ["--l2-weights", "silhouette"]])
def test_malformed_clustering_options_are_usage_errors(flags, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["grid-search", "--features", "x.npy", "--out", "o", *flags])
    assert exc.value.code == 2
    assert flags[0] in capsys.readouterr().err


@pytest.mark.parametrize(
    ("mask_file", "message"),
    [("missing.npy", "missing.npy does not exist"), ("garbage.npy", "cannot read garbage.npy")],
    ids=["missing", "unreadable"],
)
def test_bad_labeled_mask_file_is_one_error_line(inputs, tmp_path, capsys, monkeypatch, mask_file, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "garbage.npy").write_text("not an array")
    np.save(tmp_path / "y.npy", np.load(inputs["labels"])["labels"])
    argv = ["grid-search", "--store", str(tmp_path / "s"), "--features", str(inputs["npy"])]
    argv += ["--labels", "y.npy", "--labeled-mask", mask_file, "--out", str(tmp_path / "o")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_swapped_labels_and_mask_files_are_refused(inputs, tmp_path, capsys) -> None:
    z = np.load(inputs["labels"])
    np.save(tmp_path / "y.npy", z["labels"])
    np.save(tmp_path / "m.npy", z["labeled_mask"])
    argv = ["grid-search", "--store", str(tmp_path / "s"), "--features", str(inputs["npy"])]
    argv += ["--labels", str(tmp_path / "m.npy"), "--labeled-mask", str(tmp_path / "y.npy")]
    assert (
        main([*argv, "--k-min", "3", "--k-max", "3", "--density-range", "50", "--out", str(tmp_path / "o")])
        == 1
    )
    assert "labeled_mask" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("text", ["40:90:1e-9", "40:900:5", "90:40:5", "40,500", "0.4:0.9:0.05", "0.5,0.7"])
def test_density_range_out_of_bounds_or_too_long_is_a_usage_error(text, capsys) -> None:
    # 40:90:1e-9 used to allocate 373 GiB (MemoryError traceback); 1e-4 ran 500,001 percentiles per k.
    with pytest.raises(SystemExit) as exc:
        main(["grid-search", "--features", "x.npy", "--density-range", text, "--out", "o"])
    assert exc.value.code == 2
    assert "--density-range" in capsys.readouterr().err


def test_unwritable_out_fails_before_the_grid_runs(inputs, tmp_path: Path, capsys) -> None:
    (tmp_path / "file").write_text("")
    argv = ["grid-search", "--store", str(tmp_path / "s"), "--features", str(inputs["npy"])]
    argv += ["--labels", str(inputs["labels"]), "--out", str(tmp_path / "file" / "out")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "--out" in err
    assert "Traceback" not in err
    assert not list((tmp_path / "s").glob("v*/*"))  # nothing was computed


def test_a_store_that_cannot_be_created_is_one_error_line(inputs, tmp_path: Path, capsys) -> None:
    (tmp_path / "file").write_text("")
    assert main(["info", "--store", str(tmp_path / "file")]) == 1
    err = capsys.readouterr().err
    assert "knn-store: error:" in err
    assert str(tmp_path / "file") in err
    assert "Traceback" not in err


def test_the_default_grid_is_the_python_default_and_the_users_198_jobs() -> None:
    # --k-max defaulted to 21 *included* (19 x 11 = 209 jobs) while grid_search's default and the README
    # said the users' grid: k 3..20 (their --k_max 21 is exclusive) x percentiles 40..90.
    import inspect

    from knn_store.cli import _parser
    from knn_store.search import grid_search

    args = _parser().parse_args(["grid-search", "--features", "x.npy", "--out", "o"])
    ks, percentiles = range(args.k_min, args.k_max + 1), list(args.density_range)
    defaults = inspect.signature(grid_search).parameters
    assert list(ks) == list(defaults["ks"].default)
    assert percentiles == list(defaults["density_percentiles"].default)
    assert len(ks) * len(percentiles) == 198
