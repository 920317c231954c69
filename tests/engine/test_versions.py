"""One config version per output folder; older versions kept apart, never mixed (issue case 3)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

import dask_features as dfe
from dask_features.engine import versions

V1 = {"name": "evolving", "features": [{"name": "gm", "extractor": "transfer.gm_max"}]}
V2 = {"name": "evolving", "features": [{"name": "imax", "extractor": "transfer.absI_max"}]}


@pytest.fixture
def data(dataset: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    shutil.copytree(dataset, folder)
    return folder


def test_changed_config_never_mixes_with_the_old_outputs(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert dfe.extract(data, V1, out, scheduler="sync", progress=False).ok
    # The changed config reaches only one experiment (the others failed or were not rerun).
    first = sorted(data.glob("*.h5"))[0]
    assert dfe.extract(first, V2, out, scheduler="sync", progress=False).ok

    with pytest.warns(dfe.IncompleteOutputWarning, match="2 experiment"):
        new = dfe.read_features(out, V2)
    assert "gm" not in new.columns  # old columns used to come back, as thousands of NaN
    assert new["imax"].notna().all()
    assert new["experiment"].nunique() == 1
    assert len(new.attrs["missing"]) == 2
    # A plain reader of the folder sees one version only.
    plain = pd.read_parquet(out / "evolving" / "steps")
    assert "gm" not in plain.columns
    assert len(plain) == len(new)
    # The old version is kept apart and still readable by its config.
    old = dfe.read_features(out, V1)  # complete: no warning
    with pytest.warns(dfe.IncompleteOutputWarning):
        # Against the data folder, the new version lacks two experiments.
        assert len(dfe.read_features(out, V2, data=data).attrs["missing"]) == 2
    assert dfe.read_features(out, V1, data=data).attrs["missing"] == []
    assert "imax" not in old.columns
    assert old["experiment"].nunique() == 3
    assert old["gm"].notna().all()


def test_switching_back_reuses_the_kept_version(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    dfe.extract(data, V1, out, scheduler="sync", progress=False)
    dfe.extract(data, V2, out, scheduler="sync", progress=False)
    again = dfe.extract(data, V1, out, scheduler="sync", progress=False)
    assert (len(again.successful), len(again.skipped)) == (0, 3)  # brought back, not recomputed
    assert set(versions.version_folders(out, "evolving")) == {
        dfe.load_config(V1).hash,
        dfe.load_config(V2).hash,
    }
    assert "gm" in dfe.read_features(out, "evolving").columns  # a bare name: the current version


def test_another_version_in_progress_is_refused(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    monkeypatch.setattr(versions, "LOCK_WAIT", 0.3)
    with versions.claim_version(out, dfe.load_config(V1)):  # as if another extraction were running
        with pytest.raises(dfe.errors.OutputBusyError, match="another extraction"):
            dfe.extract(data, V2, out, scheduler="sync", progress=False)
        # The same version may write alongside.
        assert dfe.extract(data, V1, out, scheduler="sync", progress=False).ok


def test_outputs_of_the_old_layout_are_moved_aside(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    legacy = out / "evolving" / "steps"
    legacy.mkdir(parents=True)
    pd.DataFrame({"step_index": [0, 1], "old_feature": [1.0, 2.0]}).to_parquet(legacy / "old.parquet")
    assert dfe.extract(data, V1, out, scheduler="sync", progress=False).ok
    frame = dfe.read_features(out, V1)
    assert "old_feature" not in frame.columns
    assert frame["experiment"].nunique() == 3
    (kept,) = (out / versions.ARCHIVE / "evolving").iterdir()
    assert kept.name.startswith("unversioned-")
    assert (kept / "steps" / "old.parquet").exists()
