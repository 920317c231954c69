"""Several real processes race to create the same entry while others keep reading it."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import numpy as np

from knn_store import KNNStore, load

N_WRITERS = 4
N_READERS = 2


def _features() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(1500, 48)).astype(np.float32)


def _writer(root: str, start: float) -> str:
    x = _features()
    time.sleep(max(0.0, start - time.time()))
    return KNNStore(root, backend="numpy").ensure(x, 15).group


def _reader(root: str, start: float, stop: float) -> tuple[int, list[str]]:
    """Poll lookup+load from before the race until 30 reads succeeded; each must be complete."""
    x = _features()
    store = KNNStore(root, backend="numpy")
    ok, errors = 0, []
    time.sleep(max(0.0, start - time.time()))
    while time.time() < stop and ok < 30:
        try:
            ref = store.lookup(x, 10)
            if ref is None:
                continue
            nb, ds = load(ref, 10)
            if nb.shape != (1500, 10) or not (np.diff(ds, axis=1) >= 0).all():
                errors.append(f"inconsistent read from {ref.group}")
            ok += 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    return ok, errors


def test_racing_writers_publish_one_entry_and_readers_never_fail(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")  # fork of a process running a dask client is unsafe
    with ctx.Pool(N_WRITERS + N_READERS) as pool:
        # Give every spawned interpreter time to import before the common start instant.
        start = time.time() + 6.0
        readers = [pool.apply_async(_reader, (str(tmp_path), start - 0.5, start + 90.0)) for _ in range(N_READERS)]
        writers = [pool.apply_async(_writer, (str(tmp_path), start)) for _ in range(N_WRITERS)]
        groups = {w.get(timeout=120) for w in writers}
        results = [r.get(timeout=120) for r in readers]
    assert len(groups) == 1
    [group] = groups
    entry = Path(group).parent
    assert sorted(os.listdir(entry)) == ["k0015.zarr", "last_access"]  # no temp dirs left behind
    assert [e for e in os.listdir(entry.parent) if e.startswith(".")] == []
    assert sum(ok for ok, _ in results) > 0
    assert [e for _, errs in results for e in errs] == []
