"""Object-store roots (commit-marker protocol), exercised on fsspec's in-process ``memory://`` filesystem."""

from __future__ import annotations

import errno
import os
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from knn_store import CorruptEntryError, KNNStore, cleanup_temporary, load
from knn_store.neighbors import exact_knn, prepare_features
from knn_store.store.memo import clear_memo


@pytest.fixture
def url() -> Iterator[str]:
    root = f"memory://knn-tests/{uuid.uuid4().hex}"
    yield root
    fs, path = fsspec.core.url_to_fs(root)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def test_remote_round_trip_and_slicing(url: str, features: np.ndarray) -> None:
    store = KNNStore(url, backend="numpy")
    ref = store.ensure(features, 12)
    assert ref.group.startswith("memory://")
    prepared = prepare_features(features, "euclidean")
    for k in (1, 5, 12):
        nb, ds = load(ref, k)
        direct = exact_knn(prepared, k)
        np.testing.assert_array_equal(nb, direct[0])
        np.testing.assert_array_equal(ds, direct[1])
    assert store.ensure(features, 7) == ref
    [info] = store.info()
    assert info.k_max == (12,)
    assert info.bytes > 0


def test_remote_supersede_prune_clear(url: str, features: np.ndarray) -> None:
    store = KNNStore(url)
    small = store.ensure(features, 4)
    big = store.ensure(features, 9)
    assert big.group != small.group
    clear_memo()
    np.testing.assert_array_equal(load(small, 4)[0], load(big, 4)[0])  # re-resolved to the larger group
    assert store.prune(max_bytes=0, grace=3600) == []
    assert store.prune(max_bytes=0, grace=0) == [big.key]
    assert store.info() == []
    store.ensure(features + 1, 3)
    assert store.clear() == 1


def test_remote_corrupt_group_is_recomputed(url: str, features: np.ndarray) -> None:
    store = KNNStore(url)
    ref = store.ensure(features, 6)
    fs, path = fsspec.core.url_to_fs(ref.group)
    chunk = f"{path}/neighbors/c/0/0"
    fs.pipe_file(chunk, fs.cat_file(chunk)[:50])
    clear_memo()
    with pytest.raises(CorruptEntryError):
        load(ref, 6)
    ref2 = store.ensure(features, 6)
    assert ref2.group != ref.group  # a fresh writer-unique data directory
    clear_memo()
    assert load(ref2, 6)[0].shape == (300, 6)


def test_remote_racing_writers_commit_one_group(url: str, features: np.ndarray) -> None:
    store = KNNStore(url)
    with ThreadPoolExecutor(4) as pool:
        refs = list(pool.map(lambda _: store.ensure(features, 8), range(4)))
    assert len(store._backend.groups(refs[0].entry_dir)) == 1
    final = store.ensure(features, 8)
    clear_memo()
    nb, ds = load(final, 8)
    assert nb.shape == ds.shape == (300, 8)


# -- local temporary directories of transfers --------------------------------------------------------------
@pytest.fixture
def local_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private system temporary directory, so that a leftover transfer directory is visible."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def _fail_on_call(
    monkeypatch: pytest.MonkeyPatch, method: str, call: int, local_tmp: Path, seen: list[list[str]]
) -> None:
    """Make ``MemoryFileSystem.<method>`` (one file of a transfer) raise on its ``call``-th use.

    Before failing it records the temporary directories that exist, and checks that a cleaner run at that
    moment takes the live transfer directory for what it is.
    """
    real = getattr(MemoryFileSystem, method)
    calls = 0

    def flaky(self: MemoryFileSystem, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == call:
            seen.append(sorted(os.listdir(local_tmp)))
            assert cleanup_temporary(local_tmp) == []  # its owner (this process) is alive
            raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MemoryFileSystem, method, flaky)


def _uncommitted(url: str) -> list[str]:
    fs, path = fsspec.core.url_to_fs(url)
    return [p for p in fs.find(path, withdirs=True) if p.endswith(".zarr")] if fs.exists(path) else []


def test_failed_upload_leaves_no_temporary_directory(
    url: str, features: np.ndarray, local_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []
    _fail_on_call(monkeypatch, "put_file", 2, local_tmp, seen)  # after the first file went up
    store = KNNStore(url, backend="numpy")
    with pytest.raises(ConnectionResetError):
        store.ensure(features, 5)
    assert len(seen) == 1
    assert len(seen[0]) == 1  # the transfer directory existed while the upload ran...
    assert seen[0][0].startswith("knn_store_")
    assert os.listdir(local_tmp) == []  # ...and is gone after the failure
    assert _uncommitted(url) == []  # as is the half-uploaded remote copy
    assert store.lookup(features, 5) is None
    monkeypatch.undo()
    assert load(store.ensure(features, 5), 5)[0].shape == (300, 5)
    assert os.listdir(local_tmp) == []


def test_failed_download_leaves_no_temporary_directory(
    url: str, features: np.ndarray, local_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = KNNStore(url, backend="numpy")
    ref = store.ensure(features, 5)
    clear_memo()
    assert os.listdir(local_tmp) == []
    seen: list[list[str]] = []
    _fail_on_call(monkeypatch, "get_file", 2, local_tmp, seen)
    with pytest.raises(ConnectionResetError):
        load(ref, 5)
    assert [len(s) for s in seen] == [1]
    assert os.listdir(local_tmp) == []


def test_corrupt_download_leaves_no_temporary_directory(
    url: str, features: np.ndarray, local_tmp: Path
) -> None:
    ref = KNNStore(url).ensure(features, 6)
    fs, path = fsspec.core.url_to_fs(ref.group)
    fs.rm_file(f"{path}/distances/c/0/0")
    clear_memo()
    with pytest.raises(CorruptEntryError, match="checksum"):
        load(ref, 6)
    assert os.listdir(local_tmp) == []


def test_refresh_replaces_the_remote_group_and_deletes_the_old_data(url: str, features: np.ndarray) -> None:
    store = KNNStore(url, backend="numpy")
    old = store.ensure(features, 6)
    new = store.ensure(features, 6, refresh=True)
    assert new.group != old.group  # object stores: a new writer-unique data directory behind the marker
    assert _uncommitted(url) == [fsspec.core.url_to_fs(new.group)[1]]
    clear_memo()
    np.testing.assert_array_equal(load(old, 6)[0], load(new, 6)[0])  # the old reference re-resolves
