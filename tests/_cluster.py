"""A real LocalCluster for tests, configured like the ones dask-features starts itself."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def local_client(n_workers: int = 2, memory_limit: str = "2GiB") -> Iterator[Any]:
    """A ``distributed.Client`` on ``dask_features.local_cluster`` (worker processes, 1 thread each)."""
    from distributed import Client

    import dask_features as dfe

    with (
        dfe.local_cluster(n_workers, dashboard_address=None, memory_limit=memory_limit) as cluster,
        Client(cluster) as client,
    ):
        yield client
