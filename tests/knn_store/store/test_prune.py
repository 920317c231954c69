"""prune against real concurrent readers, and against use records from the future."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from knn_store import EntryNotFoundError, KNNStore, load
from knn_store.store.backends.local import LAST_ACCESS
from knn_store.store.memo import clear_memo

READ_SECONDS = 4.0


def _features(seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(1200, 24)).astype(np.float32)


def _reader(ref: object, sync: str) -> tuple[int, int, list[str]]:
    """Load the entry over and over (never from the memo) while another process prunes it."""
    ok, missing, errors = 0, 0, []
    load(ref, 10)  # type: ignore[arg-type]  # imports and first read done before the race starts
    Path(sync, f"ready-{os.getpid()}").touch()
    go = Path(sync, "go")
    deadline = time.time() + 120
    while not go.exists() and time.time() < deadline:
        time.sleep(0.001)
    stop = time.time() + READ_SECONDS
    while time.time() < stop:
        clear_memo()
        try:
            nb, ds = load(ref, 10)  # type: ignore[arg-type]
        except EntryNotFoundError:
            missing += 1
            continue
        except Exception as exc:  # anything else (CorruptEntryError...) is the bug
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        if nb.shape != (1200, 10) or (nb < 0).any() or not (np.diff(ds, axis=1) >= 0).all():
            errors.append("inconsistent data")
        ok += 1
    return ok, missing, errors


def test_readers_get_the_entry_or_not_found_never_corruption(tmp_path: Path) -> None:
    x = _features()
    store = KNNStore(tmp_path, grace=0)
    ref = store.ensure(x, 15)
    sync = tmp_path / "sync"
    sync.mkdir()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = [pool.apply_async(_reader, (ref, str(sync))) for _ in range(2)]
        deadline = time.time() + 120  # spawned interpreters import slowly on a busy machine
        while len(os.listdir(sync)) < 2 and time.time() < deadline:
            time.sleep(0.01)
        (sync / "go").touch()
        stop = time.time() + READ_SECONDS
        cycles = 0
        while time.time() < stop:
            store.prune(max_bytes=0, grace=0)  # evict everything, in use or not
            store.ensure(x, 15)  # and put it back (same key, same group path)
            cycles += 1
        outcomes = [r.get(timeout=120) for r in results]
    assert cycles >= 2
    assert [e for _, _, errs in outcomes for e in errs] == []
    assert sum(ok + missing for ok, missing, _ in outcomes) > 5


def _set_mtime_elsewhere(path: Path, when: float) -> None:
    """Another process records a use with its own (skewed) clock."""
    code = "import os, sys; t = float(sys.argv[2]); os.utime(sys.argv[1], (t, t))"
    subprocess.run([sys.executable, "-c", code, str(path), repr(when)], check=True, timeout=60)


def test_a_use_recorded_in_the_future_counts_as_now(tmp_path: Path) -> None:
    store = KNNStore(tmp_path)
    future = Path(store.ensure(_features(1), 5).entry_dir)
    old = Path(store.ensure(_features(2), 5).entry_dir)
    now = time.time()
    _set_mtime_elsewhere(future / LAST_ACCESS, now + 30 * 86400)
    _set_mtime_elsewhere(old / LAST_ACCESS, now - 10 * 86400)
    one_entry = max(store._backend.size(str(e)) for e in (future, old))
    # Not too old for max_age (it is "now"), and more recent than `old` for the size limit.
    assert store.prune(max_age="1d", grace=0) == [old.name]
    assert future.exists()
    assert store.prune(max_bytes=one_entry, grace=0) == []
    # ... but it is not shielded forever: max_bytes=0 evicts it like any entry used now.
    assert store.prune(max_bytes=0, grace=0) == [future.name]
    assert not future.exists()
    assert os.listdir(tmp_path / future.parent.name) == []
