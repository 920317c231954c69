"""Entries on fsspec filesystems without atomic rename (object stores: ``s3://``, ``gs://``, ``memory://``).

Object stores cannot rename a directory, so publication uses immutable data plus a commit marker:

1. the group is written locally with Zarr, then uploaded to a writer-unique ``<key>/k0021-<uuid>.zarr/``;
2. the marker ``<key>/k0021.commit`` (one small JSON object naming that directory) is written last.

Readers only follow markers, and a single-object PUT is atomic, so a reader sees either no entry or a
complete one. Racing writers each upload their own data directory; the last marker wins and every marker
points at complete data (the losers' directories are garbage that ``prune`` removes after a day). Reads
download the group (a few MB) to a local temporary directory and verify its checksums. That directory, and
the one a group is written to before upload, is an owned temporary directory (:mod:`knn_store.store.temporary`):
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

from knn_store.errors import CorruptEntryError
from knn_store.store.backends.base import StorageBackend
from knn_store.store.entry import read_group, write_group
from knn_store.store.keys import LAYOUT_VERSION
from knn_store.store.temporary import cleanup_temporary, owned_temporary_dir

__all__ = ["FsspecBackend", "filesystem"]

logger = logging.getLogger(__name__)

_MARKER_RE = re.compile(r"^k(\d{4,})\.commit$")
_STALE_SECONDS = 86400.0


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path inside it (raises if the protocol is unusable)."""
    import fsspec

    return fsspec.core.url_to_fs(url)


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


class FsspecBackend(StorageBackend):
    """Entries on an fsspec filesystem without rename (object stores), published by commit markers.

    Parameters
    ----------
    root : str
        An fsspec URL (``s3://bucket/prefix``, ``gs://...``, ``memory://...``); credentials come from the
        environment or the fsspec configuration, never from the URL's users.
    """

    schemes = ("*",)  # any scheme not claimed by another backend

    def __init__(self, root: str) -> None:
        filesystem(root)  # fail now, not at the first write, if the protocol's package is missing
        self.root = root.rstrip("/")
        self._base = f"{self.root}/v{LAYOUT_VERSION}"

    def entry(self, key: str) -> str:
        return f"{self._base}/{key}"

    def entries(self) -> list[str]:
        fs, path = filesystem(self._base)
        try:
            names = [_name(p) for p in fs.ls(path, detail=False)]
        except FileNotFoundError:
            return []
        return [f"{self._base}/{n}" for n in names if not n.startswith(".")]

    def groups(self, entry: str) -> dict[int, str]:
        fs, path = filesystem(entry)
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
                out[int(m.group(1))] = f"{entry.rstrip('/')}/{marker['data']}"
        return out

    def read(self, group: str, *, verify: bool = True) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Download a committed group to a temporary directory and read it (see ``read_group``)."""
        fs, path = filesystem(group)
        # Removed on every exit path (a failed or interrupted download, a corrupt group); see the module notes.
        with owned_temporary_dir() as tmp:
            if not fs.exists(f"{path}/zarr.json"):
                raise FileNotFoundError(f"kNN group {group} does not exist")
            try:
                fs.get(path, str(tmp / "g"), recursive=True)
                return read_group(tmp / "g", verify=verify)
            except (CorruptEntryError, FileNotFoundError):
                # Deleted during the download (evicted or replaced): not found, never "corrupt".
                if not fs.exists(f"{path}/zarr.json"):
                    raise FileNotFoundError(f"kNN group {group} was removed while being read") from None
                raise

    def publish(
        self, entry: str, nb: np.ndarray, ds: np.ndarray, attrs: dict[str, Any], *, replace: bool = False
    ) -> None:
        """Upload a group under a writer-unique name, then commit it with its marker.

        With ``replace`` the data the marker pointed to before is deleted too (its readers re-resolve to the
        new group). Without it the previous data is left to :meth:`sweep` (a racing writer's readers may
        still be downloading it).
        """
        fs, path = filesystem(entry)
        k_max = nb.shape[1]
        data = f"k{k_max:04d}-{uuid.uuid4().hex}.zarr"
        previous = self.groups(entry).get(k_max) if replace else None
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

    def _discard(self, entry: str, k_max: int | None) -> None:
        """Uncommit (marker first, so readers stop finding it) and delete one group, or the whole entry."""
        fs, path = filesystem(entry)
        groups = self.groups(entry)
        for km in sorted(groups) if k_max is None else [k_max]:
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(f"{path}/k{km:04d}.commit")
            if km in groups:
                with contextlib.suppress(FileNotFoundError):
                    fs.rm(f"{path}/{_name(groups[km])}", recursive=True)
        if k_max is None:
            with contextlib.suppress(FileNotFoundError):
                fs.rm(path, recursive=True)

    def discard_group(self, entry: str, k_max: int) -> None:
        self._discard(entry, k_max)

    def discard_entry(self, entry: str) -> None:
        self._discard(entry, None)

    def touch(self, entry: str) -> None:
        """Record a use (rewrites a tiny object); skipped with read-only credentials."""
        fs, path = filesystem(entry)
        try:
            fs.pipe_file(f"{path}/last_access", str(time.time()).encode())
        except PermissionError as exc:  # reading a shared read-only cache must still work
            logger.debug("cannot record the use of kNN entry %s (%s)", entry, exc)

    def last_access(self, entry: str) -> float:
        fs, path = filesystem(entry)
        try:
            return float(fs.cat_file(f"{path}/last_access").decode())
        except (FileNotFoundError, ValueError):
            return 0.0

    def size(self, entry: str) -> int:
        fs, path = filesystem(entry)
        try:
            return int(fs.du(path))
        except FileNotFoundError:
            return 0

    def sweep(self, entry: str | None = None) -> None:
        """Delete uncommitted data directories (crashed or losing writers) older than a day.

        A store-wide sweep also removes the local transfer directories of processes killed mid-download or
        mid-upload.
        """
        for e in [entry] if entry is not None else self.entries():
            self._sweep_entry(e)
        if entry is None:
            try:
                cleanup_temporary()
            except OSError as exc:
                logger.warning("could not clean up orphaned kNN transfer directories: %s", exc)

    def _sweep_entry(self, entry: str) -> None:
        fs, path = filesystem(entry)
        committed = {_name(u) for u in self.groups(entry).values()}
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
