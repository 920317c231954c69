"""Planning: how experiments become tasks, including files the tasks open themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

import dask_features as dfe
from dask_features.engine.identity import SourceIdentity
from dask_features.engine.plan import TARGET_TASK_SECONDS, FileJob, bundle_jobs, make_job
from dask_features.engine.writing import PlanFailure, Written, compute_and_write, open_job


def _file_job(path: Path, seconds: float, stem: str = "x") -> FileJob:
    return FileJob(str(path), stem, seconds, SourceIdentity.planned(path))


def test_files_opened_by_tasks_are_bundled_by_their_estimated_work(dataset: Path) -> None:
    path = next(dataset.glob("*.h5"))
    small = [_file_job(path, TARGET_TASK_SECONDS / 10, f"s{i}") for i in range(30)]
    big = _file_job(path, TARGET_TASK_SECONDS * 3, "big")
    bundles = list(bundle_jobs([*small[:3], big, *small[3:]]))
    assert [big] in bundles  # big enough for its own task
    assert sum(map(len, bundles)) == 31
    assert max(map(len, bundles)) > 1  # small files share tasks


def test_a_task_opens_checks_and_plans_its_file_as_the_client_would(dataset: Path, tmp_path: Path) -> None:
    path = sorted(dataset.glob("*.h5"))[0]
    config = dfe.load_config("v2_mixed")
    opened = open_job(_file_job(path, 0.0, "e"), config)
    assert not isinstance(opened, PlanFailure)
    job, found = opened
    assert found == ()
    assert job == make_job(dfe.open_experiment(path), config, "e", "auto", SourceIdentity.planned(path))
    folder = tmp_path / "out"
    [written] = compute_and_write([_file_job(path, 0.0, "e")], config, folder)
    assert isinstance(written, Written)
    assert written.ids["test_id"] == job.experiment.test_id
    assert written.steps_file.is_file()


def test_a_file_gone_before_its_task_is_reported_by_name(tmp_path: Path) -> None:
    missing = tmp_path / "gone.h5"
    dfe.synth.write_experiment(missing, n_transfer=2, n_transient=2, sweep_points=11, transient_samples=50)
    job = _file_job(missing, 0.0)
    missing.unlink()
    failure = open_job(job, dfe.load_config("v2_transfer_basic"))
    assert isinstance(failure, PlanFailure)
    assert failure.reason.startswith(str(missing))
    with pytest.raises(FileNotFoundError) as exc:
        dfe.open_experiment(missing)
    assert str(exc.value) in failure.reason
