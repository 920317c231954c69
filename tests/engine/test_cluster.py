"""The LocalCluster dask-features starts: its settings reach the worker processes."""

from __future__ import annotations

import os

import pytest

from dask_features.engine.cluster import CLUSTER_SETTINGS, MALLOC_THRESHOLD, local_cluster


def _worker_state() -> tuple[dict[str, object], str | None]:
    import dask

    return {k: dask.config.get(k) for k in CLUSTER_SETTINGS}, os.environ.get("MALLOC_MMAP_THRESHOLD_")


@pytest.mark.cluster
def test_workers_run_with_the_cluster_settings(dask_client: object) -> None:
    states = dask_client.run(_worker_state)  # type: ignore[attr-defined]
    assert len(states) == 2
    for settings, mmap_threshold in states.values():
        assert settings == CLUSTER_SETTINGS
        assert mmap_threshold == str(MALLOC_THRESHOLD)
    profiles = dask_client.run(lambda dask_worker: len(dask_worker.profile_history))  # type: ignore[attr-defined]
    assert set(profiles.values()) == {0}  # the statistical profiler never ran


@pytest.mark.cluster
def test_a_restarted_worker_keeps_the_cluster_settings() -> None:
    """The nanny starts a worker again (memory limit, crash) with the cluster's settings, not
    distributed's defaults."""
    from distributed import Client

    with local_cluster(1, dashboard_address=None) as cluster, Client(cluster) as client:
        (before,) = client.run(os.getpid).items()
        client.restart_workers([before[0]])
        client.wait_for_workers(1, timeout=60)
        pids = client.run(os.getpid)
        states = client.run(_worker_state)
        pauses = client.run(lambda dask_worker: dask_worker.memory_manager.memory_pause_fraction)
    assert before[1] not in pids.values()  # a new process
    assert list(pauses.values()) == [False]
    for settings, mmap_threshold in states.values():
        assert settings == CLUSTER_SETTINGS
        assert mmap_threshold == str(MALLOC_THRESHOLD)
