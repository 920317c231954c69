"""Reading from a cache this process cannot write to: recording the use (LRU clock) is skipped, reads work.

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
