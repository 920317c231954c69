"""Reading from a cache this process cannot write to: recording the use (LRU clock) is skipped, reads work;
a kNN the cache does not hold is a ``ReadOnlyStoreError`` naming the store and what is missing.

Three ways to make the store read-only, each skipped where it cannot work: a tmpfs remounted read-only
(root, where mounting is permitted: a real ``EROFS``), a directory without write permission (not as root,
whom permissions do not stop: a real ``EACCES``), and, everywhere, the OS calls that record the use raising
``PermissionError`` as they do for a cache owned by another user.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from knn_store import KNNStore, load
from knn_store.neighbors import exact_knn, prepare_features
from knn_store.store.backends.local import LAST_ACCESS
from knn_store.store.memo import clear_memo
from tests._mounts import tmpfs


def _can_write(directory: Path) -> bool:
    probe = directory / ".probe"
    try:
        probe.touch()
    except OSError:
        return False
    probe.unlink()
    return True


@pytest.fixture
def mount_point(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs (root only; skipped where mounting is not permitted), unmounted afterwards."""
    with tmpfs(tmp_path / "mnt", "4m") as mnt:
        yield mnt


#: Makes a store read-only: ``(root, entry directory, request, monkeypatch)``.
MakeReadOnly = Callable[[Path, Path, pytest.FixtureRequest, pytest.MonkeyPatch], None]


def _remount_read_only(
    root: Path, entry: Path, request: pytest.FixtureRequest, _: pytest.MonkeyPatch
) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)


def _chmod_read_only(root: Path, entry: Path, request: pytest.FixtureRequest, _: pytest.MonkeyPatch) -> None:
    # Its owner may still set a file's times, so only a missing last_access shows the failure here.
    (entry / LAST_ACCESS).unlink()
    entry.chmod(0o555)
    request.addfinalizer(lambda: entry.chmod(0o755))
    if _can_write(entry):
        pytest.skip("directory permissions do not stop this user (root)")


def _refuse_os_calls(
    root: Path, entry: Path, _: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The OS boundary as it behaves for a cache owned by another user: updating or creating the file fails.
    real_utime, real_open = os.utime, os.open

    def utime(path: os.PathLike[str] | str, *args: object, **kwargs: object) -> None:
        if Path(path).name == LAST_ACCESS:
            raise PermissionError(errno.EPERM, "Operation not permitted", str(path))
        real_utime(path, *args, **kwargs)

    def open_(path: os.PathLike[str] | str, flags: int, *args: object, **kwargs: object) -> int:
        if Path(path).name == LAST_ACCESS and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "utime", utime)
    monkeypatch.setattr(os, "open", open_)


@pytest.mark.parametrize(
    "make_read_only",
    [_remount_read_only, _chmod_read_only, _refuse_os_calls],
    ids=["read-only-mount", "read-only-directory", "permission-denied"],
)
def test_load_from_a_read_only_store(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    features: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    make_read_only: MakeReadOnly,
) -> None:
    root = request.getfixturevalue("mount_point") if make_read_only is _remount_read_only else tmp_path
    store = KNNStore(root, backend="numpy")
    ref = store.ensure(features, 6)
    entry = Path(ref.entry_dir)
    make_read_only(root, entry, request, monkeypatch)
    marker = entry / LAST_ACCESS
    stamp = marker.stat().st_mtime_ns if marker.exists() else None
    clear_memo()  # forget that this process recorded a use: the next load tries again

    with caplog.at_level(logging.DEBUG, logger="knn_store.store.backends.local"):
        nb, ds = load(ref, 6)
        load(ref, 3)
    skipped = [r for r in caplog.records if r.getMessage().startswith("cannot record the use")]
    assert len(skipped) == 1  # logged at debug level, and not retried on every load
    direct = exact_knn(prepare_features(features, "euclidean"), 6, backend="numpy")
    np.testing.assert_array_equal(nb, direct[0])
    np.testing.assert_array_equal(ds, direct[1])
    assert store.lookup(features, 4) == ref
    assert store.ensure(features, 5) == ref  # a hit needs no write either
    assert (marker.stat().st_mtime_ns if marker.exists() else None) == stamp  # nothing was written


def test_other_errors_still_raise(
    tmp_path: Path, features: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only "read-only for us" is tolerated; an I/O error is not silently swallowed.
    ref = KNNStore(tmp_path, backend="numpy").ensure(features, 4)
    clear_memo()

    def utime(path: os.PathLike[str] | str, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, "Input/output error", str(path))

    monkeypatch.setattr(os, "utime", utime)
    with pytest.raises(OSError, match="Input/output error"):
        load(ref, 4)


def _chmod_tree_read_only(root: Path, request: pytest.FixtureRequest) -> None:
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    for p in folders:
        p.chmod(0o555)
    request.addfinalizer(lambda: [p.chmod(0o755) for p in folders])
    if _can_write(root):
        pytest.skip("directory permissions do not stop this user (root); the read-only mount case runs")


@pytest.mark.parametrize("how", ["read-only-mount", "read-only-directory"])
def test_a_miss_on_a_read_only_store_is_a_clear_error_and_hits_still_work(
    request: pytest.FixtureRequest, tmp_path: Path, features: np.ndarray, how: str
) -> None:
    # ensure() promises an EntryRef to a published group, which a store this process cannot write
    # cannot give: a request the store does not hold is ReadOnlyStoreError (a KnnStoreError and a
    # PermissionError) naming the store and what is missing, raised before the kNN is computed, not
    # an OSError of the staging directory after it.
    from knn_store import KnnStoreError, ReadOnlyStoreError

    root = request.getfixturevalue("mount_point") if how == "read-only-mount" else tmp_path / "store"
    store = KNNStore(root, backend="numpy")
    ref = store.ensure(features, 6)
    if how == "read-only-mount":
        subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
    else:
        _chmod_tree_read_only(root, request)
    clear_memo()

    misses = {
        "k_max=10": lambda: store.knn(features, 10),
        "metric 'cosine'": lambda: store.ensure(features, 4, metric="cosine"),
        "refresh=True": lambda: store.ensure(features, 4, refresh=True),
    }
    for missing, call in misses.items():
        with pytest.raises(ReadOnlyStoreError) as caught:
            call()
        text = str(caught.value)
        assert isinstance(caught.value, KnnStoreError)
        assert isinstance(caught.value, PermissionError)
        assert f"kNN store {root} " in text, text
        assert missing in text, text
        assert caught.value.errno in (errno.EROFS, errno.EACCES)
    with pytest.raises(ReadOnlyStoreError, match=r"it holds k_max <= 6 of these features"):
        store.ensure(features, 10)
    new = KNNStore(root / "not-yet", backend="numpy")  # nothing is created until the first publish
    with pytest.raises(ReadOnlyStoreError, match=f"kNN store {root / 'not-yet'} "):
        new.knn(features, 3)

    # Hits are served as before.
    nb, ds = store.knn(features, 4)
    direct = exact_knn(prepare_features(features, "euclidean"), 4, backend="numpy")
    np.testing.assert_array_equal(nb, direct[0])
    np.testing.assert_array_equal(ds, direct[1])
    assert store.ensure(features, 6) == ref
    assert store.lookup(features, 10) is None


def test_a_write_refused_after_the_check_is_the_same_error(
    tmp_path: Path, features: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where the check cannot tell (an NFS server squashing root, object-store credentials), the
    # refused write itself is reported the same way.
    from knn_store import ReadOnlyStoreError
    from knn_store.store.backends.local import LocalBackend

    store = KNNStore(tmp_path, backend="numpy")
    store.ensure(features, 3)
    monkeypatch.setattr(LocalBackend, "cannot_write", lambda self, entry: None)
    real_mkdir = Path.mkdir

    def mkdir(self: Path, *args: object, **kwargs: object) -> None:
        if self.name.startswith(".tmp-"):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(ReadOnlyStoreError, match=f"kNN store {tmp_path} .*k_max=5") as caught:
        store.ensure(features, 5)
    assert caught.value.errno == errno.EACCES
