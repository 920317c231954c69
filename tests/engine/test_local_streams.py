"""Local thread/process pools (no Dask graph), tasks publishing their own files, batched catalog records."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import dask_features as dfe
from dask_features.engine import run, streams
from dask_features.engine.plan import make_job


def _steps(out: Path, config: str) -> pd.DataFrame:
    frame = dfe.read_features(out, config)
    return frame.sort_values(["test_id", "step_index"]).reset_index(drop=True)


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_chunked_pools_agree_with_sync(dataset: Path, tmp_path: Path, scheduler: str) -> None:
    ref = dfe.extract(dataset, "v2_mixed", tmp_path / "sync", scheduler="sync", progress=False)
    res = dfe.extract(
        dataset,
        "v2_mixed",
        tmp_path / scheduler,
        scheduler=scheduler,
        workers=2,
        chunk_steps=5,
        progress=False,
    )
    assert ref.ok, ref.summary()
    assert res.ok, res.summary()
    assert len(res.successful) == 3
    pd.testing.assert_frame_equal(
        _steps(tmp_path / scheduler, "v2_mixed"), _steps(tmp_path / "sync", "v2_mixed")
    )


def test_a_failing_chunk_fails_only_its_experiment_once(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = sorted(dataset.glob("*.h5"))[1]
    real = streams.run_chunk

    def flaky(experiment: dfe.Experiment, config: object, source: str, start: int, stop: int) -> object:
        if experiment.path == str(victim) and start > 0:
            raise MemoryError("simulated")
        return real(experiment, config, source, start, stop)  # type: ignore[arg-type]

    monkeypatch.setattr(streams, "run_chunk", flaky)
    res = dfe.extract(
        dataset, "v2_transfer_basic", tmp_path, scheduler="threads", chunk_steps=4, progress=False
    )
    assert list(res.failed) == [str(victim)]
    assert "MemoryError: simulated" in res.failed[str(victim)]
    assert len(res.successful) == 2
    assert not list((tmp_path / "v2_transfer_basic").rglob(f"*{victim.stem}*"))  # nothing of it published


def test_catalog_records_every_experiment_in_batches(dataset: Path, tmp_path: Path) -> None:
    catalog = dfe.Catalog(tmp_path / "catalog.db")
    catalog.scan(dataset)
    res = dfe.extract(dataset, "v2_transfer_basic", tmp_path / "out", catalog=catalog, progress=False)
    assert res.ok
    records = catalog.extractions(config_hash=res.config_hash)
    assert sorted(records.path) == sorted(res.successful)
    assert set(records.status) == {"success"}
    assert [Path(p) for p in sorted(records.output_path)] == sorted(res.successful.values())


def test_a_local_run_imports_neither_dask_nor_distributed(dataset: Path, tmp_path: Path) -> None:
    # A fresh process: in this one a session cluster may be the default client.
    code = (
        "import sys, dask_features as d\n"
        f"res = d.extract({str(dataset)!r}, 'v2_mixed', {str(tmp_path)!r}, progress=False)\n"
        "assert res.ok\n"
        "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))\n"
        "print(res.summary().splitlines()[-1])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    modules, summary = out.strip().splitlines()
    assert modules == "[]"
    assert summary.startswith("scheduler: threads (~")  # which ran, and why


@pytest.mark.parametrize(
    ("n_items", "workers", "expected"),
    [
        (3, 2, "threads"),
        (10**6, 2, "processes"),
        (10**6, 1, "threads"),
        # Small files, but many: opening and writing each one is GIL-bound work of its own.
        (math.ceil(streams.PROCESSES_SECONDS / streams.FILE_SECONDS), 2, "processes"),
    ],
)
def test_local_scheduler_follows_the_estimated_gil_bound_work(
    dataset: Path, n_items: int, workers: int, expected: str
) -> None:
    cfg = dfe.load_config("v2_transfer_basic")
    job = make_job(dfe.open_experiment(sorted(dataset.glob("*.h5"))[0]), cfg, "x", "auto")
    choice = streams.choose_local_scheduler(job, cfg, n_items, workers)
    assert choice.scheduler == expected
    assert "reading and file handling" in choice.why or "one core" in choice.why
    assert not choice.caller_runs or expected == "processes"


def test_short_process_runs_compute_in_this_process_too(dataset: Path) -> None:
    cfg = dfe.load_config("v2_transfer_basic")
    job = make_job(dfe.open_experiment(sorted(dataset.glob("*.h5"))[0]), cfg, "x", "auto")
    # The fewest inputs that make processes worth it: a short run, which this process joins.
    n = next(
        n for n in range(2, 10_000) if streams.choose_local_scheduler(job, cfg, n, 2).scheduler == "processes"
    )
    short = streams.choose_local_scheduler(job, cfg, n, 2)
    assert short.caller_runs
    assert short.why.endswith("this one included")
    long = streams.choose_local_scheduler(job, cfg, 10**6, 2)
    assert long.scheduler == "processes"
    assert not long.caller_runs


@pytest.mark.parametrize(
    ("mode", "chunk_steps", "n_items", "expected"),
    [
        ("step", "auto", 8, "experiment"),  # 4 files per worker: whole-file tasks
        ("step", "auto", 7, "step"),  # too few files: chunks spread one file over both workers
        ("step", 5, 100, "step"),  # explicit chunking is honoured
        ("experiment", "auto", 1, "experiment"),
    ],
)
def test_chunk_tasks_only_when_files_do_not_fill_the_workers(
    tmp_path: Path, mode: str, chunk_steps: int | str, n_items: int, expected: str
) -> None:
    cfg = dfe.load_config("v2_transfer_basic")
    settings = run._Settings(cfg, tmp_path, None, mode, chunk_steps, force=False)
    assert run._split_mode(settings, n_items, n_workers=2) == expected
