"""Shared fixtures: one real LocalCluster for the whole session (worker processes, not threads)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def dask_client() -> Iterator[object]:
    """A ``distributed.Client`` on a 2-worker, 1-thread-per-worker ``LocalCluster`` (processes).

    Started once per test session (start-up costs seconds here). Tests must not leave futures or
    published datasets behind.
    """
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            memory_limit="2GiB",
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
