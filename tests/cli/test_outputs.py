"""Output folders as users meet them: read-only mounts, misspelled names and folders."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import dask_features as dfe
from dask_features.cli import main
from dask_features.engine.output import read_metadata
from dask_features.errors import OutputNotFoundError
from tests._mounts import tmpfs


def test_complete_output_on_a_read_only_mount(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with tmpfs(tmp_path / "mnt", "8m") as mnt:
        out = mnt / "features"
        args = ["extract", str(tiny_data), "-c", "v2_transfer_basic", "-o", str(out), "--scheduler", "sync"]
        assert main(args) == 0
        capsys.readouterr()
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        assert main(args) == 0  # nothing to write: fine
        assert "0 written, 4 skipped (up to date), 0 failed" in capsys.readouterr().out
        assert len(dfe.read_features(out, "v2_transfer_basic")) == 16
        assert main([*args, "--force"]) == 1  # something to write: one clear error, before any work
        err = capsys.readouterr().err
        assert err.strip() == f"error: output folder {out} is not writable"


def test_read_features_names_what_is_missing(tiny_data: Path, tmp_path: Path) -> None:
    dfe.extract(tiny_data, "v2_transfer_basic", tmp_path / "out", scheduler="sync", progress=False)
    with pytest.raises(OutputNotFoundError, match="did you mean 'v2_transfer_basic'"):
        dfe.read_features(tmp_path / "out", "v2_transfer_basc")
    with pytest.raises(OutputNotFoundError, match="no such output folder"):
        dfe.read_features(tmp_path / "outt", "v2_transfer_basic")
    with pytest.raises(FileNotFoundError):  # also a built-in FileNotFoundError
        dfe.read_features(tmp_path / "out", "v2_mixed")
    assert dfe.read_features(tmp_path / "out", "v2_transfer_basic", table="errors").empty  # no errors: empty


def test_progress_after_a_resume_counts_only_work_to_do(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tqdm import tqdm

    out = tmp_path / "out"
    dfe.extract(tiny_data, "v2_transfer_basic", out, scheduler="sync", progress=False)
    removed = sorted((out / "v2_transfer_basic" / "steps").glob("*.parquet"))[:2]
    sizes = [read_metadata(p)["source_size"] for p in removed]
    for path in removed:
        path.unlink()
    dfe.extract(tiny_data, "v2_transfer_basic", out, scheduler="sync", progress=True)
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    # The bar measures work in bytes of the files still to extract: the 2 up-to-date experiments are
    # not counted as instant work (which would make the ETA wrong), and a large file weighs more.
    work = tqdm.format_sizeof(sum(sizes), divisor=1024)
    assert f"{work}/{work}" in bar
    assert "2 experiment(s)" in bar
