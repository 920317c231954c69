"""The local-filesystem storage backend: entries in a directory, published by atomic directory rename.

Layout under the root::

    v<layout>/<key>/k0021.zarr/   published Zarr 3 group (immutable), neighbors + distances at k_max=21
    v<layout>/<key>/.tmp-<uuid>/  a write in progress (never read): group.zarr + the writer's locked owner file
    v<layout>/<key>/last_access   its mtime is the last use, for LRU pruning
    v<layout>/.trash-<uuid>       an eviction in progress

Publishing is ``write to .tmp-* -> mark complete -> os.rename``. Renaming a directory onto an existing
non-empty one fails, so of several racing writers exactly one wins and the others adopt its group.
A replacing write exchanges the new group with the old one in one step (``renameat2``) where the
filesystem can. A killed writer's ``.tmp-*`` is removed by the next ``sweep`` of that entry (its owner lock
is free); one from another machine after a day.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import logging
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from knn_store.errors import StoreFullError
from knn_store.store.backends.base import StorageBackend
from knn_store.store.entry import group_name, list_groups, read_group, write_group
from knn_store.store.keys import LAYOUT_VERSION
from knn_store.store.temporary import OWNER, claim_orphan, hold_owner_lock, read_owner, same_machine

__all__ = ["LAST_ACCESS", "LocalBackend", "touch"]

logger = logging.getLogger(__name__)

_NAMESPACE = f"v{LAYOUT_VERSION}"
_OTHER_LAYOUT = re.compile(r"^v\d+$")
_STAGING = ".tmp-"  # a group being written: <entry>/.tmp-<uuid>/{.knn_store_owner, group.zarr}
_STALE_TMP_SECONDS = 86400.0  # a .tmp-* of unknown owner this old belongs to a crashed writer
#: errno values meaning "no space for this write": disk full, quota exceeded, file-size limit (RLIMIT_FSIZE).
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

LAST_ACCESS = "last_access"
#: errno values meaning "we cannot write here (now)": read-only mount, another user's cache, full disk.
#: Recording a use is then skipped; any other error (EIO...) is real and raised.
_CANNOT_RECORD = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT})


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


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100
#: errno values of renameat2(RENAME_EXCHANGE) meaning "not possible here", not "failed".
_NO_EXCHANGE = frozenset({errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP})


@functools.cache
def _renameat2() -> Any:
    """The C library's ``renameat2`` (glibc >= 2.28), or ``None``."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _exchange(a: Path, b: Path) -> None:
    """Atomically swap two existing paths (Linux ``renameat2(RENAME_EXCHANGE)``).

    Raises
    ------
    OSError
        ``ENOSYS``/``EINVAL``/``ENOTSUP`` where the C library or the filesystem cannot exchange; any other
        error of the call (``ENOENT`` if either path is missing).
    """
    renameat2 = _renameat2()
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available", str(a))
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(a), None, str(b))


def _install(group: Path, final: Path, *, replace: bool) -> None:
    """Rename a complete ``group`` to ``final``; with ``replace``, the previous group ends up at ``group``.

    Renaming a directory onto an existing non-empty one fails, so without ``replace`` exactly one racing
    writer wins and the others adopt its (identical by construction) group.
    """
    for _ in range(8):  # a concurrent discard of ``final`` can only make us switch strategy a few times
        try:
            os.rename(group, final)
            return
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            if not replace:
                return
        try:
            # Readers resolve ``final`` to the old group or the new one, never to nothing.
            _exchange(group, final)
            return
        except FileNotFoundError:
            continue  # ``final`` was discarded meanwhile: a plain rename will do
        except OSError as exc:
            if exc.errno not in _NO_EXCHANGE:
                raise
        # No exchange here: move the old group aside, then rename. Readers that look in between find no
        # group and re-resolve (load) or recompute (ensure); none reads a partial one.
        aside = group.with_name("previous.zarr")  # in the staging directory, which the caller deletes
        try:
            os.rename(final, aside)
        except FileNotFoundError:
            continue
        try:
            os.rename(group, final)
            return
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                return  # a racing writer published a fresh group in the gap: it replaces the old one too
            with contextlib.suppress(OSError):
                os.rename(aside, final)  # put the old group back rather than leave the name empty
            raise
    raise OSError(errno.EAGAIN, "kNN group keeps changing under a replacing write", str(final))


def touch(entry_dir: str | os.PathLike[str]) -> None:
    """Record a use of an entry for LRU eviction (a file's mtime; atime is unreliable on noatime mounts).

    Best effort: on a read-only filesystem or a cache shared read-only with this user, the use is simply
    not recorded (pruning is then the owner's business), and reads go on.
    """
    marker = Path(entry_dir) / LAST_ACCESS
    try:
        try:
            os.utime(marker)
        except FileNotFoundError:
            marker.touch()  # first use; raises FileNotFoundError again if the entry itself is gone
    except FileNotFoundError:
        pass  # entry evicted meanwhile: nothing to keep alive
    except OSError as exc:
        if exc.errno not in _CANNOT_RECORD:
            raise
        logger.debug("cannot record the use of kNN entry %s (%s); continuing read-only", entry_dir, exc)


def _sweep_staging(path: Path, now: float) -> None:
    """Remove one writer's staging directory if its owner is gone (see :meth:`LocalBackend.sweep`)."""
    owner_file = path / OWNER
    record = read_owner(owner_file)
    if record is not None and same_machine(record):
        fd = claim_orphan(owner_file)
        if fd is None:
            return  # the writer is alive (or has just finished and is deleting it)
        try:
            shutil.rmtree(path, ignore_errors=True)  # still locked: no second sweeper can claim it
        finally:
            os.close(fd)
        if not path.exists():  # a read-only cache keeps it, silently
            logger.info("removed staging directory %s of a dead writer (pid %s)", path, record.get("pid"))
        return
    # Another machine (its lock may not be visible here), an older version, or a writer that has not yet
    # written its record: only age can tell.
    with contextlib.suppress(FileNotFoundError):
        if now - path.stat().st_mtime > _STALE_TMP_SECONDS:
            shutil.rmtree(path, ignore_errors=True)


class LocalBackend(StorageBackend):
    """Entries under a local (or network-mounted POSIX) directory, published by atomic directory rename.

    Parameters
    ----------
    root : str or path-like
        Store directory; a ``file://`` URL is accepted. Nothing is created until the first publish.
    """

    schemes = ("", "file", "local")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        text = os.fspath(root)
        if "://" in text:
            text = text.partition("://")[2]
        path = Path(text).expanduser().absolute()
        self.root = str(path)
        self._base = path / _NAMESPACE

    def entry(self, key: str) -> str:
        return str(self._base / key)

    def entries(self) -> list[str]:
        try:
            return [str(p) for p in self._base.iterdir() if p.is_dir() and not p.name.startswith(".")]
        except FileNotFoundError:
            return []

    def stale_entries(self) -> list[str]:
        root = Path(self.root)
        try:
            spaces = [p for p in root.iterdir() if _OTHER_LAYOUT.match(p.name) and p != self._base]
        except (FileNotFoundError, NotADirectoryError):
            return []
        out = []
        for space in spaces:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                out += [str(p) for p in space.iterdir() if p.is_dir() and not p.name.startswith(".")]
        return out

    def groups(self, entry: str) -> dict[int, str]:
        return {k: str(p) for k, p in list_groups(entry).items()}

    def read(self, group: str, *, verify: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
        return read_group(group, verify=verify)

    def publish(
        self, entry: str, nb: np.ndarray, ds: np.ndarray, attrs: dict[str, Any], *, replace: bool = False
    ) -> None:
        """Write a group in a staging directory and rename it into place.

        The staging directory ``.tmp-<uuid>/`` holds the group and an owner file locked for the whole
        write (see :mod:`knn_store.store.temporary`), so that :meth:`sweep` can remove it at once if this
        process dies, and never while it lives.

        Parameters
        ----------
        entry : str
            Entry directory (created if missing).
        nb, ds : numpy.ndarray
            Neighbours and distances at ``k_max = nb.shape[1]``.
        attrs : dict
            Group attributes (see :func:`knn_store.store.entry.write_group`).
        replace : bool, default False
            Replace a published group of the same ``k_max`` (atomically where the filesystem can exchange
            two names). Otherwise an existing group wins and this one is dropped.

        Raises
        ------
        StoreFullError
            No space (disk full, quota, file-size limit); nothing was published, nothing is left behind.
        """
        try:
            Path(entry).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            cause = _no_space(exc)
            if cause is not None:
                raise self._full(entry, nb, ds, cause) from exc
            raise
        staging = Path(entry) / f"{_STAGING}{uuid.uuid4().hex}"
        fd = -1
        try:
            try:
                # parents=True: a losing racer may have just removed the (then empty) entry directory.
                staging.mkdir(parents=True)
                fd = hold_owner_lock(staging, 0o644)  # readable: other users' sweeps can tell it is orphaned
                group = staging / "group.zarr"
                write_group(group, nb, ds, attrs)
                _install(group, Path(entry) / group_name(nb.shape[1]), replace=replace)
            finally:
                # Whatever stopped the write (full disk, Ctrl-C, a zarr error), its half-written directory
                # must not wait for sweep(): on a full disk it holds exactly the space that is missing.
                # Deleted while still locked, so no sweep can mistake it for an orphan meanwhile.
                shutil.rmtree(staging, ignore_errors=True)
                if fd >= 0:
                    os.close(fd)
        except BaseException as exc:
            # Leave no empty entry directory behind. rmdir fails harmlessly if it holds anything (groups,
            # last_access, a racing writer's .tmp-*).
            with contextlib.suppress(OSError):
                os.rmdir(entry)
            cause = _no_space(exc)
            if cause is not None:
                raise self._full(entry, nb, ds, cause) from exc
            raise

    def cannot_write(self, entry: str) -> OSError | None:
        """``EROFS`` or ``EACCES`` where the entry, or the nearest folder of it that exists, is not
        writable by this process (a read-only mount, another user's cache); ``None`` otherwise."""
        path = Path(entry)
        while not path.exists() and path.parent != path:  # nothing is created before the first publish
            path = path.parent
        effective = {"effective_ids": True} if os.access in os.supports_effective_ids else {}
        if os.access(path, os.W_OK | os.X_OK, **effective):
            return None
        try:
            code = errno.EROFS if os.statvfs(path).f_flag & os.ST_RDONLY else errno.EACCES
        except OSError:
            code = errno.EACCES
        return OSError(code, os.strerror(code), str(path))

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

    def sweep(self, entry: str | None = None) -> None:
        """Remove leftovers of crashed writers and evictions, in one entry or in the whole store.

        A staging directory is removed as soon as its owner is provably gone: its record names this
        machine and its lock can be taken (or, without flock, its pid is dead). Staging directories of
        other machines, or without a readable record, are removed only when older than a day.
        """
        now = time.time()
        parents = [entry] if entry is not None else [*self.entries(), str(self._base)]
        for parent in parents:
            with contextlib.suppress(FileNotFoundError):
                for p in Path(parent).iterdir():
                    if p.name.startswith(".trash-"):
                        shutil.rmtree(p, ignore_errors=True)
                    elif p.name.startswith(_STAGING):
                        _sweep_staging(p, now)
