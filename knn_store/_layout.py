"""Where entries live: one small interface, a local-filesystem and an object-store implementation.

Both address an entry by a string (a path or a URL) and a group by its location string. The local layout
publishes with ``os.rename`` of a complete temporary directory; the remote one with a commit marker (see
:mod:`knn_store._remote`). Everything above this module is the same for both.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from knn_store import _remote
from knn_store._entry import group_name, list_groups, read_group, write_group
from knn_store._hashing import LAYOUT_VERSION
from knn_store.errors import InvalidParameterError, StoreFullError
from knn_store.loading import LAST_ACCESS, touch

__all__ = ["Layout", "LocalLayout", "RemoteLayout", "make_layout"]

_NAMESPACE = f"v{LAYOUT_VERSION}"
_STALE_TMP_SECONDS = 86400.0  # a .tmp-* this old belongs to a crashed writer
#: errno values meaning "no space for this write": disk full, quota exceeded, file-size limit (RLIMIT_FSIZE).
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _no_space(exc: BaseException) -> OSError | None:
    """The out-of-space ``OSError`` in ``exc`` or its causes (zarr may wrap what its I/O threads raise)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, OSError) and cur.errno in _NO_SPACE:
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


class Layout(Protocol):
    """Operations the store needs from a storage location."""

    root: str

    def entry(self, key: str) -> str: ...
    def entries(self) -> list[str]: ...
    def groups(self, entry: str) -> dict[int, str]: ...
    def read(self, group: str, *, verify: bool = True) -> tuple[np.ndarray, np.ndarray, dict]: ...
    def publish(self, entry: str, nb: np.ndarray, ds: np.ndarray, attrs: dict[str, Any]) -> None: ...
    def discard_group(self, entry: str, k_max: int) -> None: ...
    def discard_entry(self, entry: str) -> None: ...
    def touch(self, entry: str) -> None: ...
    def last_access(self, entry: str) -> float: ...
    def size(self, entry: str) -> int: ...
    def sweep(self) -> None: ...


class LocalLayout:
    """Entries under a local directory, published by atomic directory rename."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self._base = root / _NAMESPACE

    def entry(self, key: str) -> str:
        return str(self._base / key)

    def entries(self) -> list[str]:
        try:
            return [str(p) for p in self._base.iterdir() if p.is_dir() and not p.name.startswith(".")]
        except FileNotFoundError:
            return []

    def groups(self, entry: str) -> dict[int, str]:
        return {k: str(p) for k, p in list_groups(entry).items()}

    def read(self, group: str, *, verify: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
        return read_group(group, verify=verify)

    def publish(self, entry: str, nb: np.ndarray, ds: np.ndarray, attrs: dict[str, Any]) -> None:
        """Write a group under a temporary name and rename it into place.

        Raises
        ------
        StoreFullError
            No space (disk full, quota, file-size limit); nothing was published, nothing is left behind.
        """
        tmp = Path(entry) / f".tmp-{uuid.uuid4().hex}.zarr"
        try:
            Path(entry).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            cause = _no_space(exc)
            if cause is not None:
                raise self._full(entry, nb, ds, cause) from exc
            raise
        try:
            write_group(tmp, nb, ds, attrs)
            # Renaming onto an existing non-empty directory fails: exactly one racing writer wins and
            # the others adopt its (identical by construction) group.
            os.rename(tmp, Path(entry) / group_name(nb.shape[1]))
        except BaseException as exc:
            # Whatever stopped the write (full disk, Ctrl-C, a zarr error), its half-written directory
            # must not wait a day for sweep(): on a full disk it holds exactly the space that is missing.
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, OSError) and exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                return
            # Leave no empty entry directory behind. rmdir fails harmlessly if it holds anything (groups,
            # last_access, a racing writer's .tmp-*); a racer that made it but not yet its .tmp-* is
            # unaffected because zarr creates missing parent directories.
            with contextlib.suppress(OSError):
                os.rmdir(entry)
            cause = _no_space(exc)
            if cause is not None:
                raise self._full(entry, nb, ds, cause) from exc
            raise

    def _full(self, entry: str, nb: np.ndarray, ds: np.ndarray, cause: OSError) -> StoreFullError:
        err = StoreFullError(
            f"kNN store {self.root}: no space to write entry {Path(entry).name} "
            f"(k_max={nb.shape[1]}, {nb.nbytes + ds.nbytes} bytes of arrays): "
            f"[{errno.errorcode.get(cause.errno or 0, cause.errno)}] {cause.strerror or cause}"
            + (f" writing {cause.filename}" if cause.filename else "")
            + "; the partial write was removed and nothing was published"
        )
        err.errno = cause.errno  # callers testing errno == ENOSPC keep working
        return err

    def _trash(self, path: Path) -> None:
        """Rename first so that no reader can open it by name any more, then delete."""
        self._base.mkdir(parents=True, exist_ok=True)
        trash = self._base / f".trash-{uuid.uuid4().hex}"
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def discard_group(self, entry: str, k_max: int) -> None:
        self._trash(Path(entry) / group_name(k_max))

    def discard_entry(self, entry: str) -> None:
        self._trash(Path(entry))

    def touch(self, entry: str) -> None:
        touch(entry)

    def last_access(self, entry: str) -> float:
        for p in (Path(entry) / LAST_ACCESS, Path(entry)):
            with contextlib.suppress(FileNotFoundError):
                return p.stat().st_mtime
        return 0.0

    def size(self, entry: str) -> int:
        total = 0
        for dirpath, _, files in os.walk(entry):
            for f in files:
                with contextlib.suppress(FileNotFoundError):
                    total += os.stat(os.path.join(dirpath, f)).st_size
        return total

    def sweep(self) -> None:
        now = time.time()
        for parent in [*self.entries(), str(self._base)]:
            with contextlib.suppress(FileNotFoundError):
                for p in Path(parent).iterdir():
                    stale = p.name.startswith(".trash-") or (
                        p.name.startswith(".tmp-") and now - p.stat().st_mtime > _STALE_TMP_SECONDS
                    )
                    if stale:
                        shutil.rmtree(p, ignore_errors=True)


class RemoteLayout:
    """Entries on an fsspec filesystem without rename, published by commit markers."""

    def __init__(self, url: str) -> None:
        self.root = url.rstrip("/")
        self._base = f"{self.root}/{_NAMESPACE}"

    def entry(self, key: str) -> str:
        return f"{self._base}/{key}"

    def entries(self) -> list[str]:
        return _remote.remote_entries(self._base)

    def groups(self, entry: str) -> dict[int, str]:
        return _remote.remote_groups(entry)

    def read(self, group: str, *, verify: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
        return _remote.remote_read(group, verify=verify)

    def publish(self, entry: str, nb: np.ndarray, ds: np.ndarray, attrs: dict[str, Any]) -> None:
        _remote.remote_publish(entry, nb, ds, attrs)

    def discard_group(self, entry: str, k_max: int) -> None:
        _remote.remote_discard(entry, k_max)

    def discard_entry(self, entry: str) -> None:
        _remote.remote_discard(entry)

    def touch(self, entry: str) -> None:
        _remote.remote_touch(entry)

    def last_access(self, entry: str) -> float:
        return _remote.remote_last_access(entry)

    def size(self, entry: str) -> int:
        return _remote.remote_bytes(entry)

    def sweep(self) -> None:
        for entry in self.entries():
            _remote.remote_sweep(entry)


def make_layout(root: str | os.PathLike[str]) -> LocalLayout | RemoteLayout:
    """Pick the layout for a store root: a local path, a ``file://`` URL, or any other fsspec URL."""
    text = os.fspath(root)
    if "\x00" in text:
        raise InvalidParameterError(f"store root {text!r} contains a NUL byte")
    if _remote.is_remote(text):
        try:
            _remote._fs(text)
        except (ImportError, ValueError) as exc:
            raise InvalidParameterError(f"store root {text!r}: no usable fsspec filesystem ({exc})") from exc
        return RemoteLayout(text)
    if "://" in text:
        text = text.partition("://")[2]
    return LocalLayout(Path(text).expanduser().absolute())
