"""What an experiment file may make us read: its own bytes only.

HDF5 can point outside the file it is stored in: an *external link* opens another file when the
link is followed, a *virtual dataset* maps regions of other files, and *external raw storage* keeps
a dataset's bytes in arbitrary files (a system file included). Following any of them lets a data
file turn bytes from elsewhere into feature values, so :func:`check_storage` refuses them before
anything in the file is read. Setting :data:`ALLOW_ENV` to a folder (``dask-features extract
--allow-external-in FOLDER``) accepts the targets that resolve inside that folder, and only those.

The file's attributes are read (cleaned, of bounded size) by :mod:`dask_features.io._attributes`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection
from typing import Any

import h5py

from dask_features.errors import ExperimentFormatError, MissingGroupError

__all__ = [
    "ALLOW_ENV",
    "OPTIONAL_PATHS",
    "READ_PATHS",
    "TRANSIENT_PATHS",
    "allowed_folder",
    "check_storage",
]

#: Environment variable naming the one folder external targets may resolve into (unset: none).
ALLOW_ENV = "DASK_FEATURES_ALLOW_EXTERNAL_IN"


def _inside(target: str, folder: str | None) -> bool:
    if folder is None:
        return False
    root = os.path.realpath(folder)
    return os.path.commonpath([os.path.realpath(target), root]) == root


def _candidates(name: str, path: str) -> list[str]:
    """Where HDF5 may look for a relative external name: next to the file, or in the working directory."""
    if os.path.isabs(name):
        return [name]
    return [os.path.join(os.path.dirname(path), name), os.path.join(os.getcwd(), name)]


#: What the package reads from an experiment file. Only these are checked: a link elsewhere in the
#: file is never followed, and walking every object of a file would cost ~10 ms per open.
READ_PATHS = (
    "transfer/measurement_data",
    "transfer/step_info_table",
    "transient/measurement_data",
    "transient/step_info_table",
    "raw/workflow",
)
#: Of :data:`READ_PATHS`, those a file may lack: a soft link to them that cannot be followed is a
#: problem of the file (the object is not read), not a failure of it.
OPTIONAL_PATHS = frozenset({"raw/workflow"})
#: Of :data:`READ_PATHS`, the transient data: optional to a reader of the transfer data only (the
#: opener passes them as ``optional`` and reports the transient data unavailable).
TRANSIENT_PATHS = frozenset({"transient/measurement_data", "transient/step_info_table"})
#: Most soft links the walk to one object follows (HDF5 itself follows up to 16, unchecked beyond
#: this: a longer chain is refused).
_MAX_SOFT_LINKS = 8


def _targets(dsid: Any) -> list[tuple[str, str]]:
    """``(kind, file name)`` of every file other than its own that a dataset reads from."""
    dcpl = dsid.get_create_plist()
    targets = [
        ("external raw storage", os.fsdecode(dcpl.get_external(i)[0]))
        for i in range(dcpl.get_external_count())
    ]
    if dcpl.get_layout() == h5py.h5d.VIRTUAL:
        names = (os.fsdecode(dcpl.get_virtual_filename(i)) for i in range(dcpl.get_virtual_count()))
        targets += [("virtual dataset source", n) for n in names if n != "."]
    return targets


def _exists(links: Any, key: bytes) -> bool:
    """Whether link ``key`` exists; False when a name on its way is not a group (e.g. a file whose
    ``transfer`` is a dataset), for which HDF5 raises a bare RuntimeError that names no file."""
    try:
        return bool(links.exists(key))
    except RuntimeError:
        return False


def _follow_external(f: h5py.File, path: str, here: str) -> None:
    """Raise MissingGroupError when the external link ``here`` (its target allowed) cannot be
    followed: no such file, no such object in it, not HDF5. HDF5 would answer later with a bare
    KeyError, or a lookup below it with "missing dataset", naming neither the link nor its target."""
    name, obj = (os.fsdecode(v) for v in f.id.links.get_val(here.encode()))
    try:
        h5py.h5o.open(f.id, here.encode())  # opens the target file (inside the allowed folder)
    except (KeyError, OSError, RuntimeError) as exc:
        if not any(os.path.exists(c) for c in _candidates(name, path)):
            why = "points at nothing (no such file)"
        else:  # HDF5's reason is the last parenthesis of its message
            text = str(exc.args[0]) if exc.args else str(exc)
            found = re.search(r"\(([^()]*)\)\s*$", text)
            why = f"cannot be followed ({found.group(1) if found else text})"
        raise MissingGroupError(path, f"external link '{here}' -> '{name}:{obj}' {why}") from None


def _dangling(path: str, followed: list[tuple[str, str, int]], i: int, n: int) -> None:
    """Raise MissingGroupError when component ``i`` (of ``n``), found absent, lies in the target of
    a soft link followed: innermost first, a link's target is all but the ``tail`` components that
    came after it."""
    for link, value, tail in reversed(followed):
        if i <= n - tail:
            raise MissingGroupError(path, f"soft link '{link}' -> '{value}' points at nothing")


def _check_path(
    f: h5py.File,
    path: str,
    name: str,
    refuse: Callable[[str, str, str], bool],
    kinds: dict[str, int | None],
) -> Any:
    """Walk ``name`` one link at a time with low-level calls, so no external link is ever followed.

    ``kinds`` caches each link's type (None: no such link) for the walks of one check: the read
    paths share their groups, so each group link is looked up once. Returns the object opened at
    the end of the walk, or None when the walk stopped before it (no such object, an external link).
    Raises MissingGroupError for a soft link that points at nothing or an external link (allowed)
    that cannot be followed, ExperimentFormatError for
    soft links that loop or more than :data:`_MAX_SOFT_LINKS` of them (``path`` names the file):
    HDF5 would answer these with a bare KeyError or RuntimeError naming neither the file nor the
    link, and a chain longer than the walk follows would be read unchecked.
    """
    parts = [p for p in name.split("/") if p]
    links = f.id.links
    i = 1
    followed: list[tuple[str, str, int]] = []  # (link, its value, components after it)
    seen: set[tuple[int, tuple[str, ...]]] = set()  # states of the walk at a soft link
    while i <= len(parts):
        here = "/".join(parts[:i])
        if here not in kinds:
            key = here.encode()
            try:  # one call where the link exists (nearly always)
                kinds[here] = links.get_info(key).type
            except Exception:  # absent, or an error: answered (or raised) as by exists, then get_info
                kinds[here] = links.get_info(key).type if _exists(links, key) else None
        kind = kinds[here]
        if kind is None:
            _dangling(path, followed, i, len(parts))
            return None
        if kind == h5py.h5l.TYPE_EXTERNAL:
            if not refuse(here, "an external link", str(f.get(here, getlink=True).filename)):
                _follow_external(f, path, here)  # allowed: HDF5 follows it when it is read
            return None
        if kind == h5py.h5l.TYPE_SOFT:
            # The walk from here depends only on this state: meeting it again, it never ends.
            state = (i, tuple(parts))
            if state in seen:
                raise ExperimentFormatError(path, f"soft links loop at '{here}'")
            seen.add(state)
            if len(followed) == _MAX_SOFT_LINKS:
                first, target, _ = followed[0]
                raise ExperimentFormatError(
                    path,
                    f"soft link '{first}' -> '{target}' leads through more than {_MAX_SOFT_LINKS} soft links",
                )
            value = os.fsdecode(links.get_val(here.encode()))
            followed.append((here, value, len(parts) - i))
            base = [] if value.startswith("/") else parts[: i - 1]
            parts = base + [p for p in value.split("/") if p] + parts[i:]
            i = len(base) + 1
            continue
        i += 1
    obj = h5py.h5o.open(f.id, "/".join(parts).encode())
    if isinstance(obj, h5py.h5d.DatasetID):
        for what, target in _targets(obj):
            refuse(name, f"a dataset with {what}", target)
    return obj


def allowed_folder(allow_in: str | None = None) -> str:
    """The folder external data may resolve into: ``allow_in``, or this process's :data:`ALLOW_ENV`
    when it is None; ``""`` for none."""
    return (os.environ.get(ALLOW_ENV, "") if allow_in is None else allow_in) or ""


def check_storage(
    f: h5py.File,
    path: str,
    allow_in: str | None = None,
    names: tuple[str, ...] = READ_PATHS,
    *,
    skipped: dict[str, ExperimentFormatError] | None = None,
    optional: Collection[str] = OPTIONAL_PATHS,
) -> dict[str, Any]:
    """Refuse external links, virtual datasets and external raw storage (unless inside ``allow_in``),
    and soft links that cannot be followed.

    Parameters
    ----------
    f : h5py.File
        The open file; nothing in it has been read yet.
    path : str
        Its path (names the file in the error; relative targets resolve against its folder).
    allow_in : str, optional
        A folder whose files may be targets; ``""`` for none. Default: the :data:`ALLOW_ENV`
        environment variable, else no external target at all.
    names : tuple of str, default :data:`READ_PATHS`
        The objects that will be read.
    skipped : dict, optional
        Filled with name -> error (naming the file and the link) for each of ``optional`` left
        out because a link on its way cannot be followed; without it they are left out silently.
    optional : collection of str, default :data:`OPTIONAL_PATHS`
        The names a broken link only leaves out (e.g. also :data:`TRANSIENT_PATHS` for a reader
        of the transfer data); a broken link to any other name is an error.

    Returns
    -------
    dict
        Name -> low-level object (``h5py.h5d.DatasetID``, ``h5py.h5g.GroupID``...) of each of
        ``names`` that the check opened: the caller reads them without looking them up again.
        Names the check did not open (absent, behind an allowed external link, behind a broken
        soft link) are left out.

    Raises
    ------
    ExperimentFormatError
        Naming the object, the kind of reference and the target; or soft links that loop or
        that chain more than :data:`_MAX_SOFT_LINKS` deep, naming the link.
    MissingGroupError
        A soft link where a required object should be points at nothing, or an external link
        (allowed) there cannot be followed (naming the link and its target).
    """
    allow_in = allowed_folder(allow_in) or None
    problems: list[str] = []

    def refuse(name: str, kind: str, target: str) -> bool:
        if all(_inside(c, allow_in) for c in _candidates(target, path)):
            return False
        problems.append(f"'{name}' is {kind} to {target!r}")
        return True

    kinds: dict[str, int | None] = {}
    opened: dict[str, Any] = {}
    broken: dict[str, ExperimentFormatError] = {}
    for name in names:
        try:
            opened[name] = _check_path(f, path, name, refuse, kinds)
        except ExperimentFormatError as exc:  # a link that cannot be followed
            broken[name] = exc
    if problems:
        where = f"outside {allow_in}" if allow_in else "outside the file"
        raise ExperimentFormatError(
            path,
            f"refused: reads data {where}: {'; '.join(dict.fromkeys(problems))}"
            + ("" if allow_in else f"; to allow targets inside one folder set {ALLOW_ENV}=FOLDER"),
        )
    fatal = [exc for name, exc in broken.items() if name not in optional]
    if fatal:  # the objects of one group share its broken link: each problem said once
        raise type(fatal[0])(path, "; ".join(dict.fromkeys(exc.problem for exc in fatal)))
    if skipped is not None:
        skipped.update(broken)
    return {name: obj for name, obj in opened.items() if obj is not None}
