"""Load test: 1,000 small experiments through a LocalCluster with memory limits.

Not run by default (``slow``). Run it with::

    .venv/bin/pytest -m slow tests/reliability/test_load.py

It extracts 100 and then 1,000 copies of one small experiment on a 2-worker LocalCluster
(1 GiB per worker) and checks that the run completes, every output file is present and readable,
and the client's peak memory does not grow with the number of experiments (results are streamed to
disk, not collected).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import pytest

import dask_features as dfe
from tests._cluster import local_client
from tests.reliability.conftest import write_small

N_LARGE = 1000
N_SMALL = 100
CONFIG = "v2_mixed"


class PeakRSS:
    """Sample this process' resident memory in a background thread; ``peak`` is the largest [bytes]."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _copies(source: Path, folder: Path, n: int) -> list[Path]:
    """``n`` copies of ``source`` in ``folder`` (distinct files, the same data)."""
    folder.mkdir(parents=True)
    return [Path(shutil.copyfile(source, folder / f"chip-{i:04d}-load-test_{i:04d}.h5")) for i in range(n)]


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """A 2-worker LocalCluster with a memory limit per worker."""
    with local_client(memory_limit="1GiB") as client:
        yield client


def _run(data: Path, out: Path, client: Any, n: int) -> tuple[dfe.ExtractionResult, int]:
    with PeakRSS() as rss:
        result = dfe.extract(data, CONFIG, out, client=client, progress=False)
    assert result.ok, result.summary()
    assert len(result.successful) == n
    steps = sorted((out / CONFIG / "steps").glob("*.parquet"))
    assert len(steps) == n  # every file present...
    for path in steps:  # ...and complete
        assert pq.read_metadata(path).num_rows == 8
    assert not list(out.rglob("*.tmp"))
    return result, rss.peak


@pytest.mark.slow
@pytest.mark.cluster
def test_thousand_experiments_stream_with_flat_memory(tmp_path: Path, client: Any) -> None:
    one = write_small(tmp_path / "one.h5", seed=1)
    small_result, small_peak = _run(
        _copies(one, tmp_path / "d100", N_SMALL)[0].parent, tmp_path / "o100", client, N_SMALL
    )
    large_result, large_peak = _run(
        _copies(one, tmp_path / "d1000", N_LARGE)[0].parent, tmp_path / "o1000", client, N_LARGE
    )
    frame = dfe.read_features(tmp_path / "o1000", CONFIG)
    assert len(frame) == 8 * N_LARGE
    assert frame["test_id"].nunique() == 1  # copies: same ids, one output per file all the same
    ratio = large_peak / small_peak
    workers = client.run(lambda: psutil.Process().memory_info().rss)
    print(
        f"\n{N_SMALL}: {small_result.total_seconds:.1f} s, client peak {small_peak / 2**20:.0f} MiB; "
        f"{N_LARGE}: {large_result.total_seconds:.1f} s, client peak {large_peak / 2**20:.0f} MiB; "
        f"ratio {ratio:.2f}; workers now {[round(v / 2**20) for v in workers.values()]} MiB"
    )
    assert ratio < 1.5
    assert all(v < 2**30 for v in workers.values())  # under the memory limit
