"""Entries on fsspec filesystems without atomic rename (object stores: ``s3://``, ``gs://``, ``memory://``).

Object stores cannot rename a directory, so publication uses immutable data plus a commit marker:

1. the group is written locally with Zarr, then uploaded to a writer-unique ``<key>/k0021-<uuid>.zarr/``;
2. the marker ``<key>/k0021.commit`` (one small JSON object naming that directory) is written last.

Readers only follow markers, and a single-object PUT is atomic, so a reader sees either no entry or a
complete one. Racing writers each upload their own data directory; the last marker wins and every marker
points at complete data (the losers' directories are garbage that ``prune`` removes after a day). Reads
download the group (a few MB) to a local temporary directory and verify its checksums. That directory, and
the one a group is written to before upload, is an owned temporary directory (:mod:`knn_store._temporary`):
it is removed when the transfer ends, however it ends, and if the process is killed mid-transfer,
:func:`knn_store.cleanup_temporary` (run by ``prune`` of a remote store) recognises it as orphaned.
Credentials come from the environment / fsspec configuration: references never carry secrets.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import re
import time
import uuid
from typing import Any

import numpy as np

from knn_store._entry import read_group, write_group
from knn_store._temporary import owned_temporary_dir

__all__ = [
    "is_remote",
    "remote_bytes",
    "remote_discard",
    "remote_entries",
    "remote_groups",
    "remote_last_access",
    "remote_publish",
    "remote_read",
    "remote_sweep",
    "remote_touch",
]

logger = logging.getLogger(__name__)

_MARKER_RE = re.compile(r"^k(\d{4,})\.commit$")
_STALE_SECONDS = 86400.0


def is_remote(url: str) -> bool:
    """True for URLs that need the marker protocol (any scheme except ``file``/``local``)."""
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme not in ("file", "local")


def _fs(url: str) -> tuple[Any, str]:
    import fsspec

    return fsspec.core.url_to_fs(url)


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def remote_groups(entry_url: str) -> dict[int, str]:
    """``{k_max: data_url}`` of every committed group of an entry."""
    fs, path = _fs(entry_url)
    try:
        names = [_name(p) for p in fs.ls(path, detail=False)]
    except FileNotFoundError:
        return {}
    out = {}
    for name in names:
        m = _MARKER_RE.match(name)
        if m:
            try:
                marker = json.loads(fs.cat_file(f"{path}/{name}"))
            except (FileNotFoundError, ValueError):
                continue  # deleted or (impossibly) half-written marker: not committed
            out[int(m.group(1))] = f"{entry_url.rstrip('/')}/{marker['data']}"
    return out


def remote_read(data_url: str, *, verify: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """Download a committed group to a temporary directory and read it (see ``read_group``)."""
    fs, path = _fs(data_url)
    # Removed on every exit path (a failed or interrupted download, a corrupt group); see the module notes.
    with owned_temporary_dir() as tmp:
        if not fs.exists(f"{path}/zarr.json"):
            raise FileNotFoundError(f"kNN group {data_url} does not exist")
        fs.get(path, str(tmp / "g"), recursive=True)
        return read_group(tmp / "g", verify=verify)


def remote_publish(
    entry_url: str, nb: np.ndarray, ds: np.ndarray, attrs: dict[str, Any], *, replace: bool = False
) -> str:
    """Upload a group under a writer-unique name, then commit it with its marker; returns the data URL.

    Parameters
    ----------
    replace : bool, default False
        Also delete the data the marker pointed to before (``refresh``); its readers re-resolve to the new
        group. Without it the previous data is left to :func:`remote_sweep` (a racing writer's readers may
        still be downloading it).
    """
    fs, path = _fs(entry_url)
    k_max = nb.shape[1]
    data = f"k{k_max:04d}-{uuid.uuid4().hex}.zarr"
    previous = remote_groups(entry_url).get(k_max) if replace else None
    with owned_temporary_dir() as tmp:
        try:
            write_group(tmp / "g", nb, ds, attrs)
            fs.put(str(tmp / "g"), f"{path}/{data}", recursive=True)
        except BaseException:
            # Uncommitted, so invisible to readers; delete it now rather than leave it to a sweep a day later.
            with contextlib.suppress(Exception):
                fs.rm(f"{path}/{data}", recursive=True)
            raise
    marker = {"data": data, "committed": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
    fs.pipe_file(f"{path}/k{k_max:04d}.commit", json.dumps(marker).encode())  # the commit point
    if previous is not None and _name(previous) != data:
        with contextlib.suppress(FileNotFoundError):
            fs.rm(f"{path}/{_name(previous)}", recursive=True)
    return f"{entry_url.rstrip('/')}/{data}"


def remote_discard(entry_url: str, k_max: int | None = None) -> None:
    """Uncommit (marker first, so readers stop finding it) and delete one group, or the whole entry."""
    fs, path = _fs(entry_url)
    groups = remote_groups(entry_url)
    for km in sorted(groups) if k_max is None else [k_max]:
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(f"{path}/k{km:04d}.commit")
        if km in groups:
            with contextlib.suppress(FileNotFoundError):
                fs.rm(f"{path}/{_name(groups[km])}", recursive=True)
    if k_max is None:
        with contextlib.suppress(FileNotFoundError):
            fs.rm(path, recursive=True)


def remote_entries(base_url: str) -> list[str]:
    """Entry URLs under ``<root>/v1``."""
    fs, path = _fs(base_url)
    try:
        names = [_name(p) for p in fs.ls(path, detail=False)]
    except FileNotFoundError:
        return []
    return [f"{base_url.rstrip('/')}/{n}" for n in names if not n.startswith(".")]


def remote_touch(entry_url: str) -> None:
    """Record a use (rewrites a tiny object); best effort, skipped with read-only credentials."""
    fs, path = _fs(entry_url)
    try:
        fs.pipe_file(f"{path}/last_access", str(time.time()).encode())
    except PermissionError as exc:  # reading a shared read-only cache must still work
        logger.debug("cannot record the use of kNN entry %s (%s)", entry_url, exc)


def remote_last_access(entry_url: str) -> float:
    """POSIX time of the last recorded use (0 if never)."""
    fs, path = _fs(entry_url)
    try:
        return float(fs.cat_file(f"{path}/last_access").decode())
    except (FileNotFoundError, ValueError):
        return 0.0


def remote_bytes(entry_url: str) -> int:
    """Total size of the objects of an entry (bytes)."""
    fs, path = _fs(entry_url)
    try:
        return int(fs.du(path))
    except FileNotFoundError:
        return 0


def remote_sweep(entry_url: str) -> None:
    """Delete uncommitted data directories (crashed or losing writers) older than a day."""
    fs, path = _fs(entry_url)
    committed = {_name(u) for u in remote_groups(entry_url).values()}
    now = _dt.datetime.now(_dt.UTC)
    try:
        names = [_name(p) for p in fs.ls(path, detail=False)]
    except FileNotFoundError:
        return
    for name in names:
        if not name.endswith(".zarr") or name in committed:
            continue
        with contextlib.suppress(FileNotFoundError, NotImplementedError):
            modified = fs.modified(f"{path}/{name}/zarr.json")
            if (now - modified.astimezone(_dt.UTC)).total_seconds() > _STALE_SECONDS:
                fs.rm(f"{path}/{name}", recursive=True)
