"""Atomic file publication that concurrent writers cannot break.

Every file is written to a hidden temporary name in its final folder and renamed into place, so a
reader never sees half a file. The temporary name carries its writer's *owner token* (host, process
id and process start time): a writer removes a leftover temporary only when its owner is provably
dead (same host, and no process with that id and start time exists). Two extractions writing into
one folder therefore never delete each other's files in flight, while the leftovers of a killed run
are still cleaned up.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import uuid
from collections.abc import Callable
from functools import cache
from pathlib import Path

from dask_features.errors import OutputError

__all__ = ["owner_alive", "owner_token", "publish", "remove_dead_temporaries", "sweep_dead_temporaries"]

_TMP_SUFFIX = ".tmp"


@cache
def _host() -> str:
    return hashlib.blake2b(socket.gethostname().encode(), digest_size=3).hexdigest()


def _start_time(pid: int) -> str | None:
    """Start time of process ``pid`` in clock ticks since boot (Linux), None when unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its closing ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


#: This process's owner token, with the pid it was made for (a forked child makes its own).
_OWN_TOKEN: tuple[int, str] | None = None


def owner_token() -> str:
    """``<host>-<pid>-<start time>`` of this process (the start time tells a reused pid apart)."""
    global _OWN_TOKEN
    pid = os.getpid()
    if _OWN_TOKEN is None or _OWN_TOKEN[0] != pid:  # read /proc once per process, not per file
        _OWN_TOKEN = (pid, f"{_host()}-{pid}-{_start_time(pid) or 0}")
    return _OWN_TOKEN[1]


def owner_alive(token: str) -> bool:
    """False only when the owner of ``token`` is certainly gone (same host, pid dead or reused)."""
    try:
        host, pid_text, start = token.split("-")
        pid = int(pid_text)
    except ValueError:
        return True  # not ours to judge
    if host != _host():
        return True  # another machine sharing the folder: never remove its files
    if not os.path.exists("/proc/self/stat"):  # no /proc: only the pid can be checked
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True
    now = _start_time(pid)
    return now is not None and (start == "0" or now == start)


def _parse_tmp(path: Path, final: str) -> str | None:
    """The owner token of temporary file ``path`` of ``final``, or None when it is not one."""
    prefix = f".{final}."
    name = path.name
    if not (name.startswith(prefix) and name.endswith(_TMP_SUFFIX)):
        return None
    middle = name[len(prefix) : -len(_TMP_SUFFIX)]
    return middle.rsplit(".", 1)[0] if "." in middle else None


#: Folders whose temporaries this process listed last: folder -> (temporary names, publishes left
#: before the folder is listed again). At most :data:`_MAX_LISTINGS` folders are remembered.
_LISTINGS: dict[str, tuple[tuple[str, ...], int]] = {}
_MAX_LISTINGS = 64


def _temporary_names(folder: Path) -> tuple[str, ...]:
    """Names of the temporaries in ``folder``, listed again after as many publishes as it had entries.

    Listing the folder on every publish made a run quadratic: an output folder holds a file per
    experiment, so with 10,000 of them each publish spent ~11 ms listing it. Listing it once per as
    many publishes as it holds entries costs O(1) per publish. A temporary left by a writer that
    died after the listing is removed by a later listing, or by the sweep of the next run
    (:func:`sweep_dead_temporaries`); it is hidden and never read, so it only waits.
    """
    key = os.fspath(folder)
    names, left = _LISTINGS.pop(key, ((), 0))
    if left <= 0:
        try:
            with os.scandir(folder) as entries:
                listed = [e.name for e in entries]
        except OSError:
            return ()
        names = tuple(n for n in listed if n.startswith(".") and n.endswith(_TMP_SUFFIX))
        left = len(listed)
    if len(_LISTINGS) >= _MAX_LISTINGS:
        _LISTINGS.clear()
    _LISTINGS[key] = (names, left - 1)
    return names


def remove_dead_temporaries(path: Path) -> int:
    """Remove temporaries of ``path`` whose writer is dead; return how many were removed.

    The folder's temporaries come from :func:`_temporary_names` (a listing amortised over the
    folder's publishes).
    """
    removed = 0
    prefix = f".{path.name}."
    for name in _temporary_names(path.parent):
        if not name.startswith(prefix):
            continue
        tmp = path.parent / name
        token = _parse_tmp(tmp, path.name)
        if token is not None and not owner_alive(token):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed += 1
    return removed


def sweep_dead_temporaries(folder: Path) -> int:
    """Remove every temporary below ``folder`` whose writer is dead (leftovers of killed runs)."""
    removed = 0
    for tmp in folder.rglob(f".*{_TMP_SUFFIX}") if folder.is_dir() else ():
        final = tmp.name[1:].split(".parquet.", 1)[0] + ".parquet"
        token = _parse_tmp(tmp, final)
        if token is not None and not owner_alive(token):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed += 1
    return removed


def publish(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` atomically: ``write(tmp)`` to a temporary of this writer, then rename it.

    Raises
    ------
    OutputError
        The folder cannot be created or the write failed (disk full, read-only); no partial file
        is left behind.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {path.parent}: {exc}") from exc
    remove_dead_temporaries(path)
    tmp = path.with_name(f".{path.name}.{owner_token()}.{uuid.uuid4().hex[:8]}{_TMP_SUFFIX}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(f"cannot write {path}: {exc}") from exc
