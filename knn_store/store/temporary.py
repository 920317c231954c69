"""Temporary stores that a later process can recognise as orphaned and remove.

``KNNStore.temporary()`` removes its directory on exit, but a process killed with SIGKILL, by the OOM
killer or with ``os._exit`` never runs that code, and the directory (possibly gigabytes of kNN groups)
would stay in ``/tmp`` forever. So every temporary store holds an exclusive :func:`fcntl.flock` on an
owner file inside it for its whole lifetime::

    <dir>/knn_store_<id>/.knn_store_owner    {"pid", "start", "host", "boot", "created"}; flock held

The kernel releases a flock when the last descriptor of its open file closes, which also happens when
the owner dies by a signal. Hence "the lock can be taken" means "the owner is gone", whatever the age of
the directory, and "the lock is held" means "alive", however old. On a filesystem without flock support
the recorded pid and process start time (Linux) decide instead.

A store is created under a staging name (``.knn_store_new_<id>``), locked, and only then renamed to its
final name, so a ``knn_store_*`` directory with an owner file is never visible unlocked while its owner
lives.

The same owner file guards the staging directories in which :class:`~knn_store.KNNStore` writes new groups
(:mod:`knn_store.store.backends.local`), so a killed writer's half-written group is removed at the next ``ensure`` or
``prune`` instead of after a day, and the local directories of transfers to and from object stores
(:mod:`knn_store.store.backends.fsspec`), which are ordinary owned temporary directories.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import socket
import stat
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "OWNER",
    "claim_orphan",
    "cleanup_temporary",
    "hold_owner_lock",
    "owned_temporary_dir",
    "read_owner",
    "same_machine",
]

logger = logging.getLogger(__name__)

PREFIX = "knn_store_"
OWNER = ".knn_store_owner"
_STAGING = ".knn_store_new_"
_TRASH = ".knn_store_trash-"
#: A staging directory is locked within microseconds of its creation; one this old without a held lock
#: belongs to a process that died in between.
_STAGING_GRACE = 60.0


def _start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), to tell a reused pid from the owner."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may contain spaces and parentheses, so split after the last ')'.
    fields = text.rpartition(")")[2].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _owner_alive(owner: dict) -> bool:
    """Liveness from the recorded pid, for filesystems where flock is unsupported; errs on "alive"."""
    pid = owner.get("pid")
    if owner.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return True  # another machine (shared filesystem) or an unreadable record: cannot tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    start = owner.get("start")
    return start is None or _start_time(pid) in (None, start)


def _boot_id() -> str | None:
    """Identity of the running kernel (Linux): two machines that share a host name differ here."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def same_machine(owner: dict) -> bool:
    """Whether an owner record was written on this machine (since its last boot, where recorded).

    Only then do its flock and pid say anything: a lock taken on another NFS client may be invisible here.
    """
    boot = owner.get("boot")
    return owner.get("host") == socket.gethostname() and (boot is None or boot == _boot_id())


def read_owner(owner_file: Path) -> dict | None:
    """The record in an owner file, or ``None`` if it is missing, unreadable or not yet written."""
    try:
        fd = os.open(owner_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        record = json.loads(os.read(fd, 4096) or b"null")
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    return record if isinstance(record, dict) else None


def claim_orphan(owner_file: Path) -> int | None:
    """Take the owner's lock if its owner is gone; return the locked descriptor, else ``None``.

    The caller deletes the store while holding the descriptor, so that no second cleaner can claim it.
    """
    try:
        fd = os.open(owner_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None  # vanished (owner exited normally), a symlink, or not readable by us: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None  # the owner (this or another process) holds it: alive
    except OSError:
        # No flock on this filesystem (e.g. some NFS setups): fall back to the recorded pid.
        try:
            record = json.loads(os.read(fd, 4096) or b"{}")
        except ValueError:
            record = {}
        if not isinstance(record, dict) or _owner_alive(record):
            os.close(fd)
            return None
        return fd
    # We may have locked an owner file that its owner unlinked while exiting normally; only a lock on the
    # file still at that path proves anything.
    try:
        same = os.fstat(fd).st_ino == os.stat(owner_file, follow_symlinks=False).st_ino
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        return None
    return fd


def _remove(path: Path, parent: Path) -> bool:
    """Rename out of the way first (no one can open it by name any more), then delete."""
    trash = parent / f"{_TRASH}{uuid.uuid4().hex}"
    try:
        os.rename(path, trash)
    except OSError as exc:
        logger.debug("cannot remove orphaned temporary kNN store %s: %s", path, exc)
        return False
    shutil.rmtree(trash, ignore_errors=True)
    return True


def cleanup_temporary(dir: str | os.PathLike[str] | None = None, *, min_age: float = 0.0) -> list[str]:
    """Remove temporary kNN stores whose owning process is gone (killed, crashed, ``os._exit``).

    ``KNNStore.temporary()`` calls this for its parent directory every time it starts, so orphans do not
    accumulate; call it yourself (or ``knn-store prune --temporary``) to reclaim space at once.

    Parameters
    ----------
    dir : path-like, optional
        Directory holding the temporary stores (the ``dir`` given to ``KNNStore.temporary``); default is
        the system temporary directory.
    min_age : float, default 0
        Additionally keep stores whose directory was modified less than this many seconds ago. Not needed
        for safety: a store whose owner is alive is never removed, whatever its age.

    Returns
    -------
    list of str
        Paths of the removed stores.

    Notes
    -----
    Only directories named ``knn_store_*`` that hold an owner file (``.knn_store_owner``, written by
    ``KNNStore.temporary``), belong to the current user and whose owner lock can be taken are removed.
    Directories of older versions without an owner file are left alone, as their owner cannot be told.
    """
    parent = Path(dir) if dir is not None else Path(tempfile.gettempdir())
    removed: list[str] = []
    try:
        names = os.listdir(parent)
    except FileNotFoundError:
        return removed
    now = time.time()
    for name in names:
        path = parent / name
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            continue  # symlinks, files and other users' directories are not ours to judge
        age = now - st.st_mtime
        if name.startswith(_TRASH):
            shutil.rmtree(path, ignore_errors=True)  # a cleaner died while deleting a confirmed orphan
            continue
        staging = name.startswith(_STAGING)
        if not (staging or name.startswith(PREFIX)) or age < min_age:
            continue
        if staging and age < max(min_age, _STAGING_GRACE):
            continue  # its creator may not have taken the lock yet
        owner_file = path / OWNER
        fd = None
        if owner_file.exists():
            fd = claim_orphan(owner_file)
            if fd is None:
                continue  # owner alive (or the file vanished: it is exiting normally)
        elif not staging:
            continue  # not made by KNNStore.temporary (or by an older version): owner unknown
        try:
            if _remove(path, parent):
                removed.append(str(path))
                logger.info("removed orphaned temporary kNN store %s", path)
        finally:
            if fd is not None:
                os.close(fd)
    return removed


def _owner_record() -> bytes:
    pid = os.getpid()
    record = {
        "pid": pid,
        "start": _start_time(pid),
        "host": socket.gethostname(),
        "boot": _boot_id(),
        "created": time.time(),
    }
    return json.dumps(record).encode()


def hold_owner_lock(directory: Path, mode: int = 0o600) -> int:
    """Create ``directory/.knn_store_owner``, flock it and record this process in it.

    Parameters
    ----------
    directory : Path
        An existing directory this process just created (the owner file must not exist yet).
    mode : int, default 0o600
        Permissions of the owner file; readable by others lets them detect the orphan too.

    Returns
    -------
    int
        The descriptor holding the lock: keep it open for as long as the directory is in use, delete the
        directory, then close it. :func:`claim_orphan` succeeds once the owner is gone.
    """
    fd = os.open(directory / OWNER, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                raise  # a cleaner got here first; callers keep cleaners away until the record exists
            logger.debug("no flock on %s (%s); orphans will be detected by pid", directory, exc)
        # Written after locking: a cleaner that finds a record knows the lock was taken first.
        os.write(fd, _owner_record())
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def owned_temporary_dir(dir: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A fresh ``knn_store_*`` directory, locked by this process until exit, then removed.

    Parameters
    ----------
    dir : path-like, optional
        Parent directory; default is the system temporary directory.

    Yields
    ------
    Path
        The directory; if this process dies without cleaning up, :func:`cleanup_temporary` removes it.
    """
    parent = Path(dir) if dir is not None else Path(tempfile.gettempdir())
    staging = Path(tempfile.mkdtemp(prefix=_STAGING, dir=parent))
    fd = -1
    try:
        fd = hold_owner_lock(staging)  # cleaners leave a staging name alone for a minute, so never contended
        final = parent / (PREFIX + staging.name[len(_STAGING) :])
        if final.exists():  # mkdtemp guaranteed a unique staging name only
            final = parent / f"{PREFIX}{uuid.uuid4().hex}"
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if fd >= 0:
            os.close(fd)
        raise
    try:
        yield final
    finally:
        # Delete while still holding the lock: a cleaner that opened the owner file meanwhile finds it
        # unlinked once it gets the lock, and leaves the path alone.
        shutil.rmtree(final, ignore_errors=True)
        os.close(fd)
