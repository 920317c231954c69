"""Catalog on real files: scanning, searching, extraction records, moving the folder."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dask_features.catalog import SCHEMA_VERSION, Catalog
from dask_features.io import open_experiment
from dask_features.synth import generate_dataset, write_experiment

SMALL = {"sweep_points": 11, "transient_samples": 50}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """``tmp_path/data`` with four experiments (N/P x serial/parallel) and one broken file."""
    data = tmp_path / "data"
    generate_dataset(data / "batch1", n_experiments=4, n_steps=3, **SMALL)
    (data / "junk-test_9.h5").write_bytes(b"not hdf5")
    return data


@pytest.fixture
def catalog(folder: Path) -> Iterator[Catalog]:
    with Catalog(folder / "catalog.db") as cat:
        cat.scan(folder)
        yield cat


def test_scan_reports_and_records_failures(folder: Path) -> None:
    with Catalog(folder / "catalog.db") as cat:
        first = cat.scan(folder)
        assert len(first.added) == 4
        assert list(first.failed) == [str(folder / "junk-test_9.h5")]
        assert "HDF5" in first.failed[str(folder / "junk-test_9.h5")]
        assert len(cat) == 4
        bad = cat.unreadable()
        assert bad["path"].tolist() == [str(folder / "junk-test_9.h5")]
        assert bad["error"].tolist() == ["NotHDF5Error"]

        second = cat.scan(folder)
        assert (second.added, second.updated, second.failed, second.removed) == ([], [], {}, [])
        assert len(second.unchanged) == 5

        changed = cat.search(device_id="1")[0].path
        write_experiment(changed, n_transfer=5, n_transient=5, seed=99, device_number="1", **SMALL)
        os.remove(folder / "junk-test_9.h5")
        third = cat.scan(folder)
        assert third.updated == [changed]
        assert third.removed == [str(folder / "junk-test_9.h5")]
        assert cat.unreadable().empty
        assert cat.search(device_id="1")[0].n_transfer_steps == 5

        full = cat.scan(folder, incremental=False)
        assert len(full.updated) == 4


def test_search_filters(catalog: Catalog) -> None:
    assert len(catalog.search()) == 4
    assert {e.device_type for e in catalog.search(device_type="P")} == {"P"}
    assert len(catalog.search(device_type="N-type")) == 2
    assert [e.device_id for e in catalog.search(device_id=["2", "3"])] == ["2", "3"]
    assert len(catalog.search(chip_id="#20250804008", status="completed", has_transient=True)) == 4
    assert catalog.search(has_transient=False) == []
    assert len(catalog.search(min_steps=6)) == 4
    assert catalog.search(min_steps=7) == []
    assert len(catalog.search(text="STABILITY")) == 4
    assert len(catalog.search(text="test_1754300000001")) == 1
    assert len(catalog.search(limit=2, order_by="created_at")) == 2
    # Values are bound, never interpolated: quotes and LIKE wildcards are just characters.
    assert catalog.search(chip_id="x' OR '1'='1") == []
    assert catalog.search(text="%") == []
    with pytest.raises(ValueError):
        catalog.search(order_by="path; DROP TABLE experiments")


def test_search_rebuilds_experiment_without_reopening(catalog: Catalog) -> None:
    for exp in catalog.search():
        assert exp == open_experiment(exp.path)
        assert exp.workflow is not None
        assert {s.type for s in exp.workflow} == {"transfer", "transient"}


def test_a_file_whose_transient_data_are_behind_a_dangling_link_is_indexed_for_its_transfer_data(
    tmp_path: Path,
) -> None:
    # It was recorded unreadable, so a catalog search never offered its transfer sweeps; its
    # handle says why the transient data are unavailable, and an extraction that needs them fails
    # it with that reason (not "no transient steps").
    import h5py

    import dask_features as dfe

    data = tmp_path / "data"
    good = write_experiment(data / "good-test_1.h5", n_transfer=3, n_transient=3, seed=1, **SMALL)
    linked = write_experiment(data / "linked-test_2.h5", n_transfer=3, n_transient=3, seed=2, **SMALL)
    with h5py.File(linked, "r+") as f:
        del f["transient"]
        f["transient"] = h5py.SoftLink("/nowhere")
    problem = "soft link 'transient' -> '/nowhere' points at nothing"
    with Catalog(tmp_path / "catalog.db") as cat:
        report = cat.scan(data)
        assert (report.failed, len(report.added)) == ({}, 2)
        assert cat.unreadable().empty
        (exp,) = cat.search(test_id=open_experiment(linked).test_id)
        assert exp == open_experiment(linked)
        assert exp.transient_unavailable == problem
        assert exp.problems == (f"{linked}: {problem}; transient data unavailable",)
        assert [e.path for e in cat.search(has_transient=True)] == [str(good)]
        handles = cat.search()
    out = tmp_path / "out"
    transfer = dfe.extract(handles, "v2_transfer_basic", out, scheduler="sync", progress=False)
    assert (transfer.failed, len(transfer.successful)) == ({}, 2)
    for config in ("transient_tau", "v2_mixed"):
        needs = dfe.extract(handles, config, out, scheduler="sync", progress=False)
        assert needs.failed == {str(linked): f"{linked}: {problem}"}
        assert list(needs.successful) == [str(good)]


def test_extraction_records(catalog: Catalog, folder: Path) -> None:
    first, second, *_ = catalog.search()
    out = folder / "features" / "a.parquet"
    catalog.record_extraction(first, "v2_basic", "h1", out, "success", seconds=1.5)
    catalog.record_extraction(second.path, "v2_basic", "h1", None, "failed", message="boom")
    catalog.record_extraction(first, "v2_other", "h2", None, "partial")
    table = catalog.extractions(config_hash="h1")
    assert table["status"].tolist() == ["success", "failed"]
    assert table["output_path"].tolist() == [str(out), None]
    assert not table["stale"].any()
    assert len(catalog.extractions(status="partial")) == 1
    missing = catalog.missing_features("h1")
    assert first not in missing
    assert second in missing
    assert len(missing) == 3
    assert len(catalog.missing_features("never")) == 4
    # Re-recording replaces; a changed source file makes the success stale.
    catalog.record_extraction(second, "v2_basic", "h1", None, "success")
    assert len(catalog.extractions(config_hash="h1", status="success")) == 2
    write_experiment(first.path, n_transfer=2, n_transient=2, seed=5, **SMALL)
    catalog.scan(folder)
    assert catalog.extractions(config_hash="h1")["stale"].tolist() == [True, False]
    assert [e.path for e in catalog.missing_features("h1")] != []
    assert first.path in [e.path for e in catalog.missing_features("h1")]
    with pytest.raises(ValueError):
        catalog.record_extraction(second, "v2_basic", "h1", None, "done")  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        catalog.record_extraction(folder / "nope.h5", "v2_basic", "h1", None, "success")


def test_removed_files_drop_their_records(catalog: Catalog, folder: Path) -> None:
    exp = catalog.search(device_id="4")[0]
    catalog.record_extraction(exp, "c", "h", None, "success")
    os.remove(exp.path)
    report = catalog.scan(folder)
    assert report.removed == [exp.path]
    assert catalog.extractions().empty
    # A scan of a sub-folder leaves entries elsewhere alone.
    assert catalog.scan(folder / "batch1").removed == []
    assert len(catalog) == 3


def test_duplicate_test_ids_keep_both(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        write_experiment(tmp_path / name, test_id="test_7", n_transfer=1, n_transient=1, **SMALL)
    with Catalog(tmp_path / "cat.db") as cat:
        report = cat.scan(tmp_path)
        assert len(report.added) == 2
        assert list(report.duplicate_test_ids) == ["test_7"]
        assert len(cat.search(test_id="test_7")) == 2


def test_moving_the_folder_keeps_catalog_valid(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Catalog(folder / "catalog.db") as cat:
        cat.scan(folder)
        cat.record_extraction(cat.search()[0], "c", "h", folder / "out" / "f.parquet", "success")
    moved = shutil.move(folder, tmp_path / "moved")
    monkeypatch.chdir(tmp_path.parent)  # the working directory plays no role
    with Catalog(Path(moved) / "catalog.db") as cat:
        paths = [e.path for e in cat.search()]
        assert all(p.startswith(str(moved)) and os.path.exists(p) for p in paths)
        assert cat.extractions()["output_path"].tolist() == [str(Path(moved) / "out" / "f.parquet")]
        monkeypatch.chdir(moved)
        report = cat.scan(".")  # relative to the working directory, as in a shell
        assert len(report.unchanged) == 5
        assert report.removed == []


def test_schema_version_wal_and_read_only(catalog: Catalog, folder: Path) -> None:
    db = folder / "catalog.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with Catalog(db, read_only=True) as reader:
        assert len(reader.search()) == 4
        with pytest.raises(PermissionError):
            reader.scan(folder)
    with pytest.raises(FileNotFoundError):
        Catalog(folder / "missing.db", read_only=True)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        Catalog(db)


def test_import_writes_nothing(tmp_path: Path) -> None:
    # A fresh interpreter: importing must not create databases, logs or folders in the CWD.
    subprocess.run([sys.executable, "-c", "import dask_features.catalog"], cwd=tmp_path, check=True)
    assert list(tmp_path.iterdir()) == []
