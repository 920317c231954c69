"""Several real processes race to create the same entry while others keep reading it."""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid
from pathlib import Path

import numpy as np

from knn_store import KNNStore, load

N_WRITERS = 4
N_READERS = 2


def _features() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(1500, 48)).astype(np.float32)


def _barrier(ready_dir: str, parties: int) -> None:
    """File-based barrier: spawned interpreters finish importing at different times."""
    Path(ready_dir, uuid.uuid4().hex).touch()
    deadline = time.time() + 60
    while len(os.listdir(ready_dir)) < parties and time.time() < deadline:
        time.sleep(0.005)


def _writer(root: str, ready_dir: str) -> str:
    x = _features()
    store = KNNStore(root, backend="numpy")
    _barrier(ready_dir, N_WRITERS + N_READERS)
    return store.ensure(x, 15).group


def _reader(root: str, ready_dir: str) -> tuple[int, list[str]]:
    """Poll lookup+load from before the race until 30 reads succeeded; each must be complete."""
    x = _features()
    store = KNNStore(root, backend="numpy")
    ok, errors = 0, []
    _barrier(ready_dir, N_WRITERS + N_READERS)
    deadline = time.time() + 60
    while time.time() < deadline and ok < 30:
        try:
            ref = store.lookup(x, 10)
            if ref is None:
                time.sleep(0.001)
                continue
            nb, ds = load(ref, 10)
            if nb.shape != (1500, 10) or not (np.diff(ds, axis=1) >= 0).all():
                errors.append(f"inconsistent read from {ref.group}")
            ok += 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    return ok, errors


def test_racing_writers_publish_one_entry_and_readers_never_fail(tmp_path: Path) -> None:
    root, ready = tmp_path / "store", tmp_path / "ready"
    ready.mkdir()
    ctx = multiprocessing.get_context("spawn")  # fork of a process running a dask client is unsafe
    with ctx.Pool(N_WRITERS + N_READERS) as pool:
        readers = [pool.apply_async(_reader, (str(root), str(ready))) for _ in range(N_READERS)]
        writers = [pool.apply_async(_writer, (str(root), str(ready))) for _ in range(N_WRITERS)]
        groups = {w.get(timeout=120) for w in writers}
        results = [r.get(timeout=120) for r in readers]
    assert len(groups) == 1
    [group] = groups
    entry = Path(group).parent
    assert sorted(os.listdir(entry)) == ["k0015.zarr", "last_access"]  # no temp dirs left behind
    assert [e for e in os.listdir(entry.parent) if e.startswith(".")] == []
    assert [ok for ok, _ in results] == [30] * N_READERS
    assert [e for _, errs in results for e in errs] == []
