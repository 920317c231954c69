"""Planning: how experiments become tasks, including files the tasks open themselves."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import h5py
import pyarrow.parquet as pq
import pytest

import dask_features as dfe
from dask_features.engine.identity import SourceIdentity
from dask_features.engine.plan import (
    CLIENT_SECONDS_PER_TASK,
    CLIENT_SHARE,
    MAX_BUNDLE,
    TARGET_TASK_SECONDS,
    FileJob,
    bundle_jobs,
    bundle_size_cap,
    distributed_task_seconds,
    make_job,
)
from dask_features.engine.tasks import run_chunk
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


@pytest.mark.parametrize(
    ("n_items", "n_workers", "most"),
    [(8, 2, 1), (7, 2, 1), (64, 2, 8), (64, 1, 16), (10**6, 2, MAX_BUNDLE), (3, 0, 1)],
)
def test_runs_make_several_bundles_per_worker(dataset: Path, n_items: int, n_workers: int, most: int) -> None:
    assert bundle_size_cap(n_items, n_workers) == most
    path = next(dataset.glob("*.h5"))
    tiny = [_file_job(path, 0.0, f"t{i}") for i in range(min(n_items, 100))]
    bundles = list(bundle_jobs(tiny, most=most))
    assert [len(b) for b in bundles[:-1]] == [most] * (len(bundles) - 1)  # work never reaches the goal
    assert sum(map(len, bundles)) == len(tiny)


@pytest.mark.parametrize(
    ("workers", "expected"),
    [(2, TARGET_TASK_SECONDS), (200, 200 * CLIENT_SECONDS_PER_TASK / CLIENT_SHARE)],
)
def test_distributed_tasks_grow_with_the_cluster_so_the_client_keeps_up(
    dataset: Path, workers: int, expected: float
) -> None:
    # One task per 0.2 s file sends 200 workers' client 1,000 tasks a second: more than it can follow.
    target = distributed_task_seconds(workers)
    assert target == pytest.approx(expected)
    path = next(dataset.glob("*.h5"))
    files = [_file_job(path, 0.2, f"f{i}") for i in range(10_000)]
    sizes = [len(b) for b in bundle_jobs(files, target, bundle_size_cap(len(files), workers))]
    assert sum(sizes) == len(files)
    if workers == 2:
        assert set(sizes) == {1}  # each file fills a task
    else:
        assert max(sizes) == 10_000 // (4 * workers)  # capped: every worker still gets 4 tasks
        assert len(sizes) >= 4 * workers


def test_a_bundle_publishes_each_experiment_and_keeps_the_others_when_one_fails(
    dataset: Path, tmp_path: Path
) -> None:
    first, second = sorted(dataset.glob("*.h5"))[:2]
    gone = tmp_path / "gone.h5"
    shutil.copy(first, gone)
    jobs = [_file_job(first, 0.1, "a"), _file_job(gone, 0.1, "gone"), _file_job(second, 0.1, "b")]
    assert list(bundle_jobs(jobs, target=1.0)) == [jobs]  # one task for the three
    gone.unlink()
    config = dfe.load_config("v2_transfer_basic")
    a, failure, b = compute_and_write(jobs, config, tmp_path / "out")
    assert isinstance(failure, PlanFailure)
    assert failure.reason.startswith(str(gone))
    for written, path in ((a, first), (b, second)):
        assert isinstance(written, Written)
        assert written.ids["test_id"] == dfe.open_experiment(path).test_id
        assert written.steps_file.is_file()


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


# --- a broken transient index stops only what reads transient data ----------------------------


def _broken_index(path: Path) -> None:
    with h5py.File(path, "r+") as f:
        table = f["transient/step_info_table"][:]
        table["end_data_index"][-1] += 1000
        f["transient/step_info_table"][...] = table


@pytest.fixture
def broken_index(tmp_path: Path) -> Path:
    """``a`` and ``c``: one experiment with its last transient step past the data; ``b``: intact."""
    folder = tmp_path / "in"
    folder.mkdir()
    good = dfe.synth.write_experiment(
        folder / "b-test_2.h5", n_transfer=6, n_transient=6, sweep_points=41, transient_samples=400, seed=4
    )
    for name in ("a-test_1.h5", "c-test_3.h5"):
        shutil.copy(good, folder / name)
        _broken_index(folder / name)
    return folder


@pytest.mark.parametrize("chunk_steps", ["auto", 2])  # files opened by their tasks / by the client
@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_a_broken_transient_index_stops_only_configs_reading_transient_data(
    broken_index: Path, tmp_path: Path, chunk_steps: int | str, scheduler: str
) -> None:
    bad = [str(broken_index / n) for n in ("a-test_1.h5", "c-test_3.h5")]
    out = tmp_path / "out"
    res = dfe.extract(broken_index, "v2_transfer_basic", out, scheduler=scheduler, chunk_steps=chunk_steps)
    assert not res.failed
    assert len(res.successful) == 3
    reference = pq.read_table(res.successful[str(broken_index / "b-test_2.h5")])
    keep = [c for c in reference.column_names if c not in ("experiment", "test_id")]
    for path in bad:  # the transfer sweeps are intact: same values as the intact copy
        assert pq.read_table(res.successful[path]).select(keep).equals(reference.select(keep))
    for config in ("v2_mixed", "transient_tau"):
        res = dfe.extract(broken_index, config, out, scheduler=scheduler, chunk_steps=chunk_steps)
        assert sorted(res.failed) == bad, res.summary()
        for path in bad:
            assert res.failed[path].startswith(path)
            assert "transient step 5 has sample range [2000, 3400) outside the data" in res.failed[path]


def test_a_chunk_task_refuses_a_broken_transient_index_before_computing(broken_index: Path) -> None:
    path = broken_index / "a-test_1.h5"
    handle = dfe.open_experiment(path, sources=("transfer",))  # as planned for a transfer config
    config = dfe.load_config("transient_tau")
    # in this process and in a worker's (the handle pickled)
    for exp in (handle, pickle.loads(pickle.dumps(handle))):
        result = run_chunk(exp, config, "transient", 0, 2)
        # the read failed (one record per step, for every feature): nothing was computed
        assert [e[:2] for e in result.errors] == [(0, "*"), (1, "*")]
        assert all("IndexTableError" in e[2] and "transient step 5" in e[2] for e in result.errors)
