"""A task that opens its own files leaves none open, whatever happens to each experiment."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import pytest

import dask_features as dfe
from dask_features.engine.identity import SourceIdentity
from dask_features.engine.plan import FileJob
from dask_features.engine.writing import PlanFailure, Written, compute_and_write, open_job

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")


def _open_count(path: Path) -> int:
    target = os.path.realpath(path)
    return sum(1 for fd in Path("/proc/self/fd").iterdir() if os.path.realpath(fd) == target)


def _job(path: Path, stem: str) -> FileJob:
    return FileJob(str(path), stem, 0.0, SourceIdentity.planned(path))


def _write(folder: Path, name: str, **kw: object) -> Path:
    return dfe.synth.write_experiment(
        folder / f"{name}.h5", sweep_points=21, transient_samples=200, seed=5, test_id=name, **kw
    )


def test_files_opened_by_a_task_are_closed_when_it_ends(tmp_path: Path) -> None:
    good = _write(tmp_path, "good", n_transfer=4, n_transient=4)
    no_transfer = _write(tmp_path, "no_transfer", n_transfer=0, n_transient=4)
    broken = _write(tmp_path, "broken", n_transfer=4, n_transient=4)
    with h5py.File(broken, "r+") as f:  # fails a check after the storage check opened its objects
        del f["transfer/step_info_table"]
        f["transfer/step_info_table"] = [1.0]
    config = dfe.load_config("v2_transfer_basic")
    jobs = [_job(p, p.stem) for p in (good, no_transfer, broken)]
    written, missing, failed = compute_and_write(jobs, config, tmp_path / "out")
    assert isinstance(written, Written)
    assert isinstance(missing, PlanFailure)
    assert "no transfer steps" in missing.reason
    assert isinstance(failed, PlanFailure)
    assert "1 rows but measurement_data has 4 steps" in failed.reason
    assert [_open_count(p) for p in (good, no_transfer, broken)] == [0, 0, 0]


@pytest.mark.parametrize("keep_open", [False, True])
def test_a_planned_job_holds_its_file_only_when_asked(tmp_path: Path, keep_open: bool) -> None:
    path = _write(tmp_path, "e", n_transfer=4, n_transient=0)
    opened = open_job(_job(path, "e"), dfe.load_config("v2_transfer_basic"), keep_open=keep_open)
    assert not isinstance(opened, PlanFailure)
    job, _ = opened
    assert _open_count(path) == int(keep_open)
    job.experiment.release()
    assert _open_count(path) == 0


@pytest.mark.parametrize("errors", ["none", "some"])
def test_written_records_survive_pickling(errors: str) -> None:
    import pickle

    import pyarrow as pa

    from dask_features.engine.tasks import NO_ERRORS
    from dask_features.engine.writing import Written

    table = (
        NO_ERRORS if errors == "none" else pa.table({"step": [3], "feature": ["gm_max"], "error": ["boom"]})
    )
    record = Written(Path("/out/a.parquet"), table, 0.25, 7, {"chip_id": "c"}, (UserWarning("w"),))
    back = pickle.loads(pickle.dumps(record))
    assert back.steps_file == record.steps_file
    assert isinstance(back.steps_file, Path)
    assert back.errors.equals(table)
    assert back.errors.schema.equals(table.schema)
    assert (back.compute_seconds, back.n_steps, back.ids) == (0.25, 7, {"chip_id": "c"})
    assert [str(w) for w in back.warnings] == ["w"]
