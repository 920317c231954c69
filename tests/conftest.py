"""Shared fixtures: one real LocalCluster for the whole session (worker processes, not threads), off-screen figures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests._cluster import local_client


@pytest.fixture(scope="session")
def dask_client() -> Iterator[object]:
    """A ``distributed.Client`` on a 2-worker, 1-thread-per-worker ``LocalCluster`` (processes).

    Started once per test session (start-up costs seconds here). Tests must not leave futures or
    published datasets behind.
    """
    with local_client() as client:
        yield client


@pytest.fixture
def agg_figures() -> Iterator[None]:
    """Draw with matplotlib's off-screen Agg backend and close every figure the test opened."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield
    plt.close("all")
