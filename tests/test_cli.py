"""The console scripts, called in-process through ``main(argv)``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dask_features import read_features
from dask_features.cli import main


def test_help_exits_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "extract" in capsys.readouterr().out


def test_synth_extract_and_catalog(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, out, db = tmp_path / "data", tmp_path / "out", tmp_path / "cat.db"
    assert (
        main(["synth", str(data), "--experiments", "2", "--steps", "6", "--points", "21", "--samples", "400"])
        == 0
    )
    assert len(list(data.glob("*.h5"))) == 2
    assert main(["catalog", "scan", str(data), "--db", str(db)]) == 0
    code = main(
        [
            "extract",
            str(data),
            "-c",
            "v2_transfer_basic",
            "-o",
            str(out),
            "--scheduler",
            "sync",
            "--catalog",
            str(db),
        ]
    )
    assert code == 0
    assert "2 written" in capsys.readouterr().out
    assert len(read_features(out, "v2_transfer_basic")) == 12
    assert main(["catalog", "search", "--db", str(db), "--min-steps", "1"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2


def test_bad_config_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nfeatures:\n  - {name: a, extractor: transfer.nope}\n")
    assert (
        main(["extract", str(tmp_path), "-c", str(bad), "-o", str(tmp_path / "o"), "--scheduler", "sync"])
        == 1
    )
    assert "no extractor named 'transfer.nope'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["presets", "extractors"])
def test_listings(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command]) == 0
    assert capsys.readouterr().out.strip()


@pytest.mark.parametrize("script", ["dask-features", "knn-store"])
def test_console_scripts_installed(script: str) -> None:
    exe = Path(sys.executable).with_name(script)
    done = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout.lower()


def test_import_writes_and_prints_nothing(tmp_path: Path) -> None:
    code = "import dask_features, knn_store, dask_features.catalog"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr == ""
    assert list(tmp_path.iterdir()) == []
