"""One config version per output folder; older versions kept apart.

``<out_dir>/<config name>/`` holds the outputs of exactly one version (content hash) of a config,
named in its ``_config.json``. An extraction with a changed config of the same name first moves
the folder to ``<out_dir>/_versions/<config name>/<old hash>/`` (and brings its own version back
from there if it ran before), so readers never see two versions mixed and nothing is deleted.

Writers hold a shared lock on ``<out_dir>/.<config name>.lock`` for the whole run; switching the
version needs the exclusive lock, so an extraction never moves a folder another extraction is
writing into (it fails at once with :class:`~dask_features.errors.OutputBusyError` instead). Locks
are ``flock`` locks (released by the OS when a process dies); without ``fcntl`` (Windows) there is
no locking.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from dask_features._version import __version__
from dask_features.config.schema import FeatureConfig
from dask_features.engine.files import publish, sweep_dead_temporaries
from dask_features.engine.names import safe_component
from dask_features.errors import OutputBusyError, OutputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["ARCHIVE", "VERSION_FILE", "claim_version", "folder_hash", "folder_name", "version_folders"]

#: errno values of a folder that cannot be written (read-only mount, no permission).
_READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
#: Marker naming the config version a folder holds.
VERSION_FILE = "_config.json"
#: Folder (under ``out_dir``) of the older versions.
ARCHIVE = "_versions"
#: How long an extraction waits for another to finish switching versions [s].
LOCK_WAIT = 10.0


def folder_name(config_name: str) -> str:
    """The folder of a config name: never a path of its own (``..``, ``/x``), whatever the caller passes."""
    return safe_component(config_name)


def folder_hash(folder: Path) -> str | None:
    """The config hash ``folder`` holds, None when it has no (readable) marker."""
    try:
        return str(json.loads((folder / VERSION_FILE).read_text(encoding="utf-8"))["config_hash"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def version_folders(out_dir: str | os.PathLike[str], name: str) -> dict[str, Path]:
    """Config hash -> folder of every version of config ``name`` under ``out_dir`` (current first)."""
    found: dict[str, Path] = {}
    name = folder_name(name)
    current = Path(out_dir) / name
    if (h := folder_hash(current)) is not None:
        found[h] = current
    archive = Path(out_dir) / ARCHIVE / name
    for folder in sorted(archive.iterdir()) if archive.is_dir() else ():
        if (h := folder_hash(folder)) is not None:
            found.setdefault(h, folder)
    return found


def _has_outputs(folder: Path) -> bool:
    return folder.is_dir() and any(folder.rglob("*.parquet"))


def _rmtree(path: Path) -> None:
    """Remove ``path`` and everything below it, ignoring errors."""
    # shutil is imported here, not with the module: it loads bz2, lzma and fnmatch (~15 ms of
    # every first call), and a tree is removed only when an output version is switched.
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _merge_into(src: Path, dst: Path) -> None:
    """Move every file of ``src`` into ``dst`` (newer files win), then remove ``src``."""
    for path in sorted(src.rglob("*")):
        if path.is_file():
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    _rmtree(src)


def _switch(out_dir: Path, config: FeatureConfig) -> None:
    """Archive the folder's current version and bring in (or start) ``config``'s version."""
    current = out_dir / folder_name(config.name)
    archive = out_dir / ARCHIVE / folder_name(config.name)
    if current.exists():
        old = folder_hash(current)
        label = old or f"unversioned-{datetime.now(UTC):%Y%m%dT%H%M%S}"
        if old is not None or _has_outputs(current):
            target = archive / label
            if target.exists():
                _merge_into(current, target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(current, target)
    previous = archive / config.hash
    if folder_hash(previous) == config.hash:
        _rmtree(current)  # only an empty skeleton can be left here
        os.replace(previous, current)
        return
    current.mkdir(parents=True, exist_ok=True)
    marker = {
        "config_name": config.name,
        "config_hash": config.hash,
        "origin": config.origin,
        "features": [f.canonical() for f in config.features],
        "package_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    text = json.dumps(marker, indent=1)

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    publish(current / VERSION_FILE, write)


def _lock(handle: IO[Any], mode: int, *, wait: bool) -> bool:
    if fcntl is None:
        return True
    try:
        fcntl.flock(handle.fileno(), mode | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def claim_version(out_dir: str | os.PathLike[str], config: FeatureConfig) -> Iterator[Path]:
    """Make ``<out_dir>/<config.name>`` hold ``config``'s version and keep it so while inside.

    Yields
    ------
    Path
        The config's output folder.

    Raises
    ------
    OutputBusyError
        Another extraction is writing a different version of this config into ``out_dir``.
    OutputError
        The folder cannot be prepared.
    """
    out = Path(out_dir)
    folder = out / folder_name(config.name)
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(out / f".{folder_name(config.name)}.lock", "a+")  # noqa: SIM115  held for the whole run
    except OSError as exc:
        if exc.errno in _READ_ONLY and folder_hash(folder) == config.hash:
            # A complete folder on a read-only mount can still be checked and read; a write, if one
            # turns out to be needed, fails with its own OutputError naming the folder.
            yield folder
            return
        raise OutputError(f"cannot create the lock file in {out}: {exc}") from exc
    shared = fcntl.LOCK_SH if fcntl else 0
    exclusive = fcntl.LOCK_EX if fcntl else 0
    deadline = time.monotonic() + LOCK_WAIT
    try:
        while True:
            _lock(handle, shared, wait=True)  # exclusive holders only switch versions: short
            if folder_hash(folder) == config.hash:
                break
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            if _lock(handle, exclusive, wait=False):
                try:
                    if folder_hash(folder) != config.hash:
                        _switch(out, config)
                except OSError as exc:
                    raise OutputError(f"cannot prepare output folder {folder}: {exc}") from exc
                continue  # downgrade to shared and check again
            if time.monotonic() > deadline:
                raise OutputBusyError(
                    f"{folder} is in use by another extraction with a different version of config "
                    f"{config.name!r} ({folder_hash(folder)}; this one is {config.hash}); wait for it "
                    "to finish, rename the config or use another output folder"
                )
            time.sleep(0.05)
        sweep_dead_temporaries(folder)
        yield folder
    finally:
        handle.close()
