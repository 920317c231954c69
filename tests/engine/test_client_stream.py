"""The distributed stream: batched submission and fetching on a real cluster, failures kept per bundle."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dask_features.config.schema import load_config
from dask_features.engine.client_stream import _values, cluster_window, refill_size, stream_distributed
from dask_features.engine.identity import SourceIdentity
from dask_features.engine.plan import FileJob
from dask_features.engine.tasks import Failure


def _slow_square(x: int) -> int:
    time.sleep(0.05)
    return x * x


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is broken")
    return x


def _wait_all(futures: list[Any]) -> None:
    from distributed import wait

    wait(futures)


@pytest.fixture
def client(dask_client: Any) -> Iterator[Any]:
    """The session's cluster; the futures a test made must be released after it (other tests
    check the cluster holds none, and a stream must not keep results alive)."""
    yield dask_client
    deadline = time.monotonic() + 30
    while dask_client.futures and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not dask_client.futures


def test_values_fetches_finished_results_together_and_keeps_failures_apart(client: Any) -> None:
    futures = client.map(_fail_on_three, range(6), pure=False)
    _wait_all(futures)
    values = _values(client, futures)
    assert values[:3] == [0, 1, 2]
    assert values[4:] == [4, 5]
    assert isinstance(values[3], Failure)
    assert "ValueError: three is broken" in values[3].reason


def test_values_of_a_cancelled_future_is_a_failure(client: Any) -> None:
    done = client.submit(_slow_square, 2, pure=False)
    _wait_all([done])
    cancelled = client.submit(_slow_square, 3, pure=False)
    cancelled.cancel()
    values = _values(client, [done, cancelled])
    assert values[0] == 4
    assert isinstance(values[1], Failure)


CONFIG = load_config("v2_transfer_basic")


def _file_jobs(dataset: Path, copies: int = 1) -> list[FileJob]:
    """A whole-file job per file of ``dataset`` (``copies`` of each, under distinct output names)."""
    return [
        FileJob(str(p), f"{p.stem}-{i}", 0.01, SourceIdentity.planned(str(p)), "auto", "")
        for i in range(copies)
        for p in sorted(dataset.glob("*.h5"))
    ]


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("window", [1, 3, 50])
def test_stream_returns_every_bundle_once_whatever_the_window(
    client: Any, dataset: Path, tmp_path: Path, window: int
) -> None:
    jobs = _file_jobs(dataset)
    bundles = [jobs[:1], jobs[1:]]  # one bundle of one experiment, one of two
    outcomes = list(stream_distributed(client, iter(bundles), CONFIG, _folder(tmp_path), "step", window, 0))
    assert sorted(job.stem for job, _, _ in outcomes) == sorted(job.stem for job in jobs)
    assert all(type(value).__name__ == "Written" for _, value, _ in outcomes)


class _CountingClient:
    """The real client, recording how many bundles each ``Client.map`` call submits."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.batches: list[int] = []

    def map(self, *args: Any, **kwargs: Any) -> Any:
        self.batches.append(len(args[1]))
        return self._client.map(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.mark.parametrize("window", [4, 8])
def test_window_is_topped_up_in_batches_of_a_quarter(
    client: Any, dataset: Path, tmp_path: Path, window: int
) -> None:
    bundles = [[job] for job in _file_jobs(dataset, copies=5)]
    counting = _CountingClient(client)
    folder = _folder(tmp_path)
    stream = stream_distributed(counting, iter(bundles), CONFIG, folder, "experiment", window, 0, workers=2)
    outcomes = list(stream)
    assert len(outcomes) == len(bundles)
    assert counting.batches[0] == window
    assert sum(counting.batches) == len(bundles)
    refills = counting.batches[1:-1]  # the last one may be what was left
    assert all(n >= refill_size(window, 2) for n in refills), counting.batches


@pytest.mark.parametrize(
    ("window", "workers", "refill"),
    [(8, 2, 2), (800, 200, 200), (400, 200, 100), (4, 4, 1), (3, 8, 1), (1, 1, 1)],
)
def test_refills_leave_every_worker_a_bundle(window: int, workers: int, refill: int) -> None:
    assert refill_size(window, workers) == refill


def test_whole_file_tasks_get_a_deeper_window_than_chunked_ones() -> None:
    assert cluster_window(1, "step") == cluster_window(1, "experiment") == 4
    assert cluster_window(200, "step") == 400
    assert cluster_window(200, "experiment") == 800
