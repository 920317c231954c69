"""``ensure(..., refresh=True)`` replaces an entry only once the new group is complete.

The store and its files are real; only the kNN computation or the group writer is made to fail, standing in
for a backend error, a full disk or a crash at that point. A killed refreshing process and a refresh that
runs out of space for real are in ``tests/reliability/test_knn_faults.py``.
"""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import numpy as np
import pytest
import zarr

import knn_store.store.backends.local
import knn_store.store.cache
import knn_store.store.entry
from knn_store import EntryRef, KNNStore, load
from knn_store.neighbors import exact_knn, prepare_features
from knn_store.store.memo import clear_memo


def _snapshot(ref: EntryRef) -> tuple[np.ndarray, np.ndarray, bytes]:
    """Arrays (read fresh from disk) and group metadata of a published entry."""
    clear_memo()
    nb, ds = (a.copy() for a in load(ref, ref.k_max))
    return nb, ds, (Path(ref.group) / "zarr.json").read_bytes()


def _files(ref: EntryRef) -> list[str]:
    """Everything in the entry directory: groups, last_access, leftovers of failed writes."""
    return sorted(p.name for p in Path(ref.entry_dir).iterdir())


def _fail_compute(*args: object, **kwargs: object) -> None:
    raise RuntimeError("kNN backend crashed")


def _fail_after_write(path: Path, *args: object) -> None:
    # The real writer, then a failure before the rename: a complete group that must not be published.
    knn_store.store.entry.write_group(path, *args)
    raise OSError(errno.EIO, "I/O error while flushing")


def _fail_mid_write(path: Path, nb: np.ndarray, ds: np.ndarray, attrs: dict) -> None:
    # Half a group on disk (one array, not marked complete), as a crash or a full disk leaves it.
    g = zarr.create_group(store=str(path), attributes={"complete": False})
    g.create_array("neighbors", data=nb)
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    ("target", "fault", "error"),
    [
        (knn_store.store.cache, _fail_compute, RuntimeError),
        (knn_store.store.backends.local, _fail_mid_write, OSError),
        (knn_store.store.backends.local, _fail_after_write, OSError),
    ],
    ids=["compute-fails", "write-fails-midway", "rename-never-happens"],
)
def test_failed_refresh_keeps_the_old_entry(
    tmp_path: Path,
    features: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
    target: object,
    fault: object,
    error: type[Exception],
) -> None:
    store = KNNStore(tmp_path, backend="numpy")
    ref = store.ensure(features, 8)
    before = _snapshot(ref)
    files = _files(ref)
    name = "knn" if fault is _fail_compute else "write_group"
    monkeypatch.setattr(target, name, fault)

    with pytest.raises(error):
        store.ensure(features, 8, refresh=True)

    assert _files(ref) == files  # the old group is there and nothing half-written was left beside it
    assert store.lookup(features, 8) == ref
    after = _snapshot(ref)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    assert after[2] == before[2]


def test_failed_refresh_keeps_a_larger_group(
    tmp_path: Path, features: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = KNNStore(tmp_path, backend="numpy")
    ref = store.ensure(features, 12)
    monkeypatch.setattr(knn_store.store.cache, "knn", _fail_compute)
    with pytest.raises(RuntimeError, match="crashed"):
        store.ensure(features, 5, refresh=True)  # old code dropped every group before computing
    assert store.lookup(features, 5) == ref
    assert load(ref, 12)[0].shape == (300, 12)


@pytest.mark.parametrize("exchange", ["renameat2", "no-exchange"])
def test_refresh_replaces_the_group_in_place(
    tmp_path: Path, features: np.ndarray, monkeypatch: pytest.MonkeyPatch, exchange: str
) -> None:
    if exchange == "no-exchange":  # e.g. NFS, or a C library without renameat2: move aside, then rename

        def unsupported(a: Path, b: Path) -> None:
            raise OSError(errno.EINVAL, "Invalid argument")

        monkeypatch.setattr(knn_store.store.backends.local, "_exchange", unsupported)
    store = KNNStore(tmp_path, backend="numpy")
    old = store.ensure(features, 8, source={"run": 1})
    larger = store.ensure(features + 1, 12)  # another entry: must not be affected
    new = store.ensure(features, 8, refresh=True, source={"run": 2})

    assert new == old  # same key and group path: references handed out before stay valid
    assert dict(zarr.open_group(new.group, mode="r").attrs)["source"] == {"run": 2}
    assert _files(new) == ["k0008.zarr", "last_access"]
    clear_memo()
    nb, ds = load(old, 8)
    direct = exact_knn(prepare_features(features, "euclidean"), 8, backend="numpy")
    np.testing.assert_array_equal(nb, direct[0])
    np.testing.assert_array_equal(ds, direct[1])
    assert store.lookup(features + 1, 12) == larger


def test_refresh_at_a_smaller_k_replaces_larger_groups(tmp_path: Path, features: np.ndarray) -> None:
    store = KNNStore(tmp_path, backend="numpy")
    store.ensure(features, 12)
    ref = store.ensure(features, 5, refresh=True)
    assert _files(ref) == ["k0005.zarr", "last_access"]
    assert store.lookup(features, 6) is None


def test_readers_never_miss_the_entry_while_it_is_refreshed(tmp_path: Path, features: np.ndarray) -> None:
    store = KNNStore(tmp_path, backend="numpy")
    ref = store.ensure(features, 8)
    expected = _snapshot(ref)[:2]
    stop = threading.Event()
    problems: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                found = store.lookup(features, 8)  # reads and verifies the group
                if found != ref:
                    problems.append(f"lookup returned {found}")
                    continue
                nb, ds, _ = knn_store.store.entry.read_group(found.group)
            except Exception as exc:
                problems.append(f"{type(exc).__name__}: {exc}")
                continue
            if not (np.array_equal(nb, expected[0]) and np.array_equal(ds, expected[1])):
                problems.append("read arrays differ from the entry's")
            reads += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(8):
            store.ensure(features, 8, refresh=True)
    finally:
        stop.set()
        thread.join()
    assert problems == []
    assert reads > 0
