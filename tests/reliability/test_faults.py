"""Injected faults on a real LocalCluster: a worker process killed mid-run, the whole run killed.

Neither may lose or corrupt a result silently: every experiment ends up written (tasks are
rescheduled or retried) or reported as failed by name, every visible Parquet file is complete, and
the values equal those of an undisturbed run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import dask_features as dfe
from dask_features import synth
from dask_features.engine import files
from dask_features.engine.output import read_metadata
from dask_features.extractors import REGISTRY as GLOBAL_REGISTRY
from dask_features.extractors import Registry, register
from dask_features.io.chunks import TransferChunk
from tests._cluster import local_client

N_EXPERIMENTS = 8
N_STEPS = 8
#: Seconds one task sleeps on a worker: long enough to kill a worker while tasks are in flight.
TASK_SECONDS = 0.6

# Workers unpickle the extractor by reference: they import this module (spawned workers inherit
# the test process' sys.path, which holds the repository root).
# A private registry (the shipped extractors plus this one) keeps the package-wide one untouched.
REGISTRY = Registry()
REGISTRY.update(GLOBAL_REGISTRY)


@register("test.slow_length", source="transfer", cost=1e6, registry=REGISTRY)
def slow_length(chunk: TransferChunk) -> np.ndarray:
    """Valid points per sweep, slowly on a worker (instantly elsewhere, so reference runs are fast)."""
    try:
        from distributed import get_worker

        get_worker()
        time.sleep(TASK_SECONDS)
    except ValueError:  # not on a worker
        pass
    return chunk.lengths.astype(float)


CONFIG = dfe.load_config(
    {
        "name": "slow",
        "features": [
            {"name": "n", "extractor": "test.slow_length"},
            {"name": "gm", "extractor": "transfer.gm_max"},
            {"name": "tau", "extractor": "transient.tau_on_off"},
        ],
    },
    registry=REGISTRY,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight small experiments."""
    folder = tmp_path_factory.mktemp("faults-data")
    synth.generate_dataset(
        folder, n_experiments=N_EXPERIMENTS, n_steps=N_STEPS, sweep_points=41, transient_samples=400, seed=9
    )
    return folder


@pytest.fixture(scope="module")
def reference(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    """Steps tables of an undisturbed run (sync scheduler), by source file name."""
    out = tmp_path_factory.mktemp("faults-ref")
    result = dfe.extract(data, CONFIG, out, scheduler="sync", progress=False)
    assert result.ok
    return {Path(src).name: pq.read_table(p).to_pandas() for src, p in result.successful.items()}


@pytest.fixture
def own_cluster() -> Iterator[Any]:
    """A dedicated 2-worker cluster (the session cluster's workers must not be killed)."""
    with local_client(memory_limit="1GiB") as client:
        yield client


def assert_outputs_complete(
    out: Path,
    result: dfe.ExtractionResult | None,
    reference: dict[str, pd.DataFrame],
    *,
    killed: bool = False,
) -> None:
    """Every experiment written or reported; every visible file complete and equal to the reference.

    Parameters
    ----------
    out : Path
        Output folder of the run.
    result : ExtractionResult or None
        The run's result; None when the run was killed (then only the files are checked).
    reference : dict
        Steps tables of an undisturbed run, by source file name.
    killed : bool, default False
        The writers were just killed: a file being written then stays as a hidden temporary of a
        dead writer (what the next run sweeps away), never as a visible file.
    """
    steps = sorted((out / CONFIG.name / "steps").glob("*.parquet"))
    for tmp in out.rglob("*.tmp"):
        assert killed, f"temporary left by a run that was not killed: {tmp}"
        final = tmp.name[1:].split(".parquet.", 1)[0] + ".parquet"
        token = files._parse_tmp(tmp, final)
        assert token is not None, f"not a writer's temporary: {tmp}"
        assert not files.owner_alive(token), f"temporary of a live writer: {tmp}"
    for path in steps:  # readable, complete, and the right values
        table = pq.read_table(path)
        assert table.num_rows == N_STEPS
        meta = read_metadata(path)
        assert meta["config_hash"] == CONFIG.hash
        pd.testing.assert_frame_equal(table.to_pandas(), reference[Path(meta["source_file"]).name])
    if result is not None:
        assert len(result.successful) + len(result.failed) == N_EXPERIMENTS, result.summary()
        assert sorted(result.successful.values()) == steps  # failed experiments have no file
        for source, reason in result.failed.items():
            assert source in reason  # reported by name


@pytest.mark.cluster
def test_worker_killed_mid_run(
    data: Path, tmp_path: Path, own_cluster: Any, reference: dict[str, pd.DataFrame]
) -> None:
    client = own_cluster
    pids = client.run(os.getpid)
    out = tmp_path / "out"
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = dfe.extract(data, CONFIG, out, client=client, chunk_steps=N_STEPS, progress=False)
        except BaseException as exc:  # reported by the main thread
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    steps = out / CONFIG.name / "steps"
    while time.monotonic() < deadline and not (steps.exists() and any(steps.glob("*.parquet"))):
        time.sleep(0.02)
    victim = sorted(pids.values())[0]
    os.kill(victim, signal.SIGKILL)  # a worker dies with tasks in flight (and results in memory)
    thread.join(timeout=120)
    assert not thread.is_alive(), "extract hung after a worker was killed"
    assert "error" not in box, box.get("error")
    result = box["result"]
    written_before_kill = len(result.successful) >= 1
    assert written_before_kill
    assert_outputs_complete(out, result, reference)
    # The nanny restarts the worker and the scheduler reschedules its tasks: nothing is lost.
    assert result.ok, result.summary()
    assert victim not in client.run(os.getpid).values()  # the kill really happened


# The whole run (client process, scheduler, nannies and workers) is killed with SIGKILL.
SCRIPT = textwrap.dedent(
    """
    import sys
    import dask_features as dfe
    from tests.reliability.test_faults import CONFIG, N_STEPS

    if __name__ == "__main__":
        scheduler = sys.argv[3]
        result = dfe.extract(sys.argv[1], CONFIG, sys.argv[2], scheduler=scheduler, workers=2,
                             chunk_steps=N_STEPS, max_in_flight=2, progress=False)
        print(result.summary())
    """
)


def _run(script: Path, data: Path, out: Path, scheduler: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, str(script), str(data), str(out), scheduler],
        text=True,
        stdout=subprocess.PIPE,
        env=env,
        start_new_session=True,  # its own process group: the kill reaches the cluster's processes too
    )


@pytest.mark.cluster
def test_whole_run_killed_then_resumed(
    data: Path, tmp_path: Path, reference: dict[str, pd.DataFrame]
) -> None:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out"
    proc = _run(script, data, out, "distributed")
    steps = out / CONFIG.name / "steps"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(list(steps.glob("*.parquet"))) < 2:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _group_gone(proc.pid), "processes of the killed run survived"
    written = sorted(steps.glob("*.parquet"))
    assert 2 <= len(written) < N_EXPERIMENTS, "the run must be killed half way for this test to mean anything"
    assert_outputs_complete(out, None, reference, killed=True)

    rerun = _run(script, data, out, "sync")
    stdout, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0
    assert (
        f"{N_EXPERIMENTS - len(written)} written, {len(written)} skipped" in stdout
    )  # only the missing ones
    assert_outputs_complete(out, None, reference)
    assert len(list(steps.glob("*.parquet"))) == N_EXPERIMENTS


def _group_gone(pgid: int, timeout: float = 10.0) -> bool:
    """True once no process of group ``pgid`` is left (killed children are reaped by init)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False
