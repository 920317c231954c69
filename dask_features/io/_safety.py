"""What an experiment file may make us read: its own bytes only, and attributes of bounded size.

HDF5 can point outside the file it is stored in: an *external link* opens another file when the
link is followed, a *virtual dataset* maps regions of other files, and *external raw storage* keeps
a dataset's bytes in arbitrary files (a system file included). Following any of them lets a data
file turn bytes from elsewhere into feature values, so :func:`check_storage` refuses them before
anything in the file is read. Setting :data:`ALLOW_ENV` to a folder (``dask-features extract
--allow-external-in FOLDER``) accepts the targets that resolve inside that folder, and only those.

:func:`read_attributes` decodes root attributes one by one: undecodable bytes become U+FFFD and are
reported, an attribute that cannot be read is reported and skipped, and an attribute larger than
:data:`MAX_ATTRIBUTE_BYTES` is replaced by a short digest so it never reaches outputs or the catalog.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from typing import Any

import h5py
import numpy as np

from dask_features.errors import ExperimentFormatError
from dask_features.io._layout import VLEN_TEXT

__all__ = [
    "ALLOW_ENV",
    "MAX_ATTRIBUTE_BYTES",
    "READ_PATHS",
    "allowed_folder",
    "check_storage",
    "read_attributes",
]

#: Environment variable naming the one folder external targets may resolve into (unset: none).
ALLOW_ENV = "DASK_FEATURES_ALLOW_EXTERNAL_IN"
#: Largest attribute value kept as is [bytes of its text form]; larger ones become a digest.
MAX_ATTRIBUTE_BYTES = 64 * 1024


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


def _check_path(
    f: h5py.File, name: str, refuse: Callable[[str, str, str], None], kinds: dict[str, int | None]
) -> Any:
    """Walk ``name`` one link at a time with low-level calls, so no external link is ever followed.

    ``kinds`` caches each link's type (None: no such link) for the walks of one check: the read
    paths share their groups, so each group link is looked up once. Returns the object opened at
    the end of the walk, or None when the walk stopped before it (no such object, an external link,
    too many soft links).
    """
    parts = [p for p in name.split("/") if p]
    links = f.id.links
    i, hops = 1, 0
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
            return None
        if kind == h5py.h5l.TYPE_EXTERNAL:
            refuse(here, "an external link", str(f.get(here, getlink=True).filename))
            return None
        if kind == h5py.h5l.TYPE_SOFT:
            hops += 1
            if hops > _MAX_SOFT_LINKS:
                return None
            value = os.fsdecode(links.get_val(here.encode()))
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
    f: h5py.File, path: str, allow_in: str | None = None, names: tuple[str, ...] = READ_PATHS
) -> dict[str, Any]:
    """Refuse external links, virtual datasets and external raw storage (unless inside ``allow_in``).

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

    Returns
    -------
    dict
        Name -> low-level object (``h5py.h5d.DatasetID``, ``h5py.h5g.GroupID``...) of each of
        ``names`` that the check opened: the caller reads them without looking them up again.
        Names the check did not open (absent, behind an allowed external link) are left out.

    Raises
    ------
    ExperimentFormatError
        Naming the object, the kind of reference and the target.
    """
    allow_in = allowed_folder(allow_in) or None
    problems: list[str] = []

    def refuse(name: str, kind: str, target: str) -> None:
        if not all(_inside(c, allow_in) for c in _candidates(target, path)):
            problems.append(f"'{name}' is {kind} to {target!r}")

    kinds: dict[str, int | None] = {}
    opened = {name: _check_path(f, name, refuse, kinds) for name in names}
    if problems:
        where = f"inside {allow_in}" if allow_in else "outside the file"
        raise ExperimentFormatError(
            path,
            f"refused: reads data {where}: {'; '.join(dict.fromkeys(problems))}"
            + ("" if allow_in else f"; to allow targets inside one folder set {ALLOW_ENV}=FOLDER"),
        )
    return {name: obj for name, obj in opened.items() if obj is not None}


def _clean_text(value: str, report: Callable[[str], None]) -> str:
    """``value`` with lone surrogates (undecodable bytes h5py kept) replaced by U+FFFD."""
    if value.isascii():  # nearly every name and value: nothing to replace
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        report("undecodable bytes replaced by U+FFFD")
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


def _decode(value: Any, report: Callable[[str], None]) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            report("undecodable bytes replaced by U+FFFD")
            return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return _clean_text(value, report)
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SOU":
            return [_decode(v, report) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _size(value: Any) -> int:
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8"))
    if isinstance(value, list):
        return sum(_size(v) for v in value) + len(value)
    return 8


def _digest(value: Any) -> str:
    text = repr(value).encode("utf-8", "replace")
    return f"<omitted: {len(text)} bytes, sha256 {hashlib.sha256(text).hexdigest()[:16]}>"


_PLAIN_TYPES = (h5py.h5t.TypeStringID, h5py.h5t.TypeIntegerID, h5py.h5t.TypeFloatID, h5py.h5t.TypeEnumID)
#: Memory types of the scalar reads, built once per process: every h5py object costs a few
#: microseconds to register, and a file has a few dozen root attributes. Keyed by the character set
#: of a variable-length string, or by the ``str`` of a NumPy dtype that carries no metadata (the
#: only dtypes whose memory type that string determines).
_MEMORY_TYPES: dict[int | str, tuple[np.dtype[Any], h5py.h5t.TypeID]] = {}
#: What :func:`_scalar` answers for an attribute it leaves to h5py's generic read.
_GENERAL = object()


def _memory_type(tid: h5py.h5t.TypeID, vlen: bool) -> tuple[np.dtype[Any], h5py.h5t.TypeID]:
    """The NumPy dtype h5py reads an attribute of file type ``tid`` as, and its memory type."""
    if vlen:
        cset = tid.get_cset()
        found = _MEMORY_TYPES.get(cset)
        if found is None:
            dtype = VLEN_TEXT[cset]
            found = _MEMORY_TYPES[cset] = (dtype, h5py.h5t.py_create(dtype))
        return found
    dtype = tid.dtype
    if dtype.metadata is not None or dtype.kind not in "biufS":  # enums, tagged strings: not cached
        return dtype, h5py.h5t.py_create(dtype)
    found = _MEMORY_TYPES.get(dtype.str)
    if found is None:
        found = _MEMORY_TYPES[dtype.str] = (dtype, h5py.h5t.py_create(dtype))
    return found


def _scalar(oid: Any, key: bytes) -> Any:
    """Attribute ``key`` of object ``oid`` as ``attrs[key]`` gives it, when it is a scalar string,
    number or enum (nearly every root attribute), read with a few low-level calls; :data:`_GENERAL`
    for anything else. h5py's generic path costs ~3x as much (it rebuilds the NumPy dtype and memory
    type of every attribute). A variable-length string comes back as ``str``, as h5py gives it."""
    aid = h5py.h5a.open(oid, key)
    tid = aid.get_type()
    # The dataspace must be scalar: the read below writes as many elements as the attribute has.
    if not isinstance(tid, _PLAIN_TYPES) or aid.get_space().get_simple_extent_type() != h5py.h5s.SCALAR:
        return _GENERAL
    vlen = isinstance(tid, h5py.h5t.TypeStringID) and tid.is_variable_str()
    dtype, mtype = _memory_type(tid, vlen)
    out = np.zeros((), dtype=dtype)
    aid.read(out, mtype=mtype)
    value = out[()]
    if vlen and isinstance(value, bytes):  # h5py decodes variable-length strings so
        return value.decode("utf-8", "surrogateescape")
    return value


def _attribute(oid: Any, raw: bytes, general: Callable[[], Any]) -> Any:
    """Attribute ``raw`` of low-level object ``oid`` exactly as ``attrs[name]`` gives it (same dtype,
    same read, same decoding): :func:`_scalar` where it answers, else (or when it fails)
    ``general()``, h5py's own read, which reads it or raises what it raises."""
    try:
        value = _scalar(oid, raw)
    except Exception:
        value = _GENERAL
    return general() if value is _GENERAL else value


def _h5py_read(obj: Any, manager: h5py.AttributeManager | None, name: str | bytes) -> Any:
    """``attrs[name]`` of ``obj`` by h5py's generic read (its ``attrs`` made only when needed)."""
    return (obj.attrs if manager is None else manager)[name]


def _raw_names(oid: Any) -> list[bytes]:
    """The attribute names of low-level object ``oid``, as stored, in the order h5py lists them
    (creation order when the file tracks it, else by name), with one low-level iteration."""
    order = oid.get_create_plist().get_attr_creation_order()
    index = h5py.h5.INDEX_CRT_ORDER if order & h5py.h5p.CRT_ORDER_TRACKED else h5py.h5.INDEX_NAME
    raw: list[bytes] = []
    h5py.h5a.iterate(oid, raw.append, index_type=index)  # append returns None: iteration goes on
    return raw


def _h5py_name(raw: bytes) -> str | bytes:
    """The name as h5py gives it: decoded from UTF-8 when it can be, else the bytes."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def read_attributes(
    obj: h5py.File | h5py.Group | h5py.AttributeManager, path: str
) -> tuple[dict[str, Any], list[str]]:
    """Decode the attributes of ``obj`` safely.

    Parameters
    ----------
    obj : h5py.File, h5py.Group or h5py.AttributeManager
        The open file (its root attributes), a group, or their ``attrs``.
    path : str
        The file (for the problem lines).

    Returns
    -------
    values : dict
        Attribute name -> decoded value (``str``, number, bool or list); oversized values replaced
        by ``"<omitted: N bytes, sha256 ...>"``.
    problems : list of str
        One line per attribute that was cleaned, replaced or skipped.
    """
    manager = obj if isinstance(obj, h5py.AttributeManager) else None
    if manager is not None:
        oid = manager._id
    elif isinstance(obj, h5py.File):  # its root group, as ``f.attrs`` uses (not the file's own id)
        oid = h5py.h5g.open(obj.id, b"/")
    else:
        oid = obj.id
    values: dict[str, Any] = {}
    problems: list[str] = []
    for raw in _raw_names(oid):
        name = _h5py_name(raw)
        if type(name) is str and name.isascii():  # nearly every name: nothing to decode or report
            key: str = name
            key_notes: list[str] = []
        else:  # h5py gives a name that is not UTF-8 as bytes: decoded and reported as values are
            key_notes = []
            key = _decode(name, key_notes.append)
        notes: list[str] = []
        try:
            value = _attribute(oid, raw, functools.partial(_h5py_read, obj, manager, name))
            if type(value) is str and value.isascii():  # nearly every value: already decoded
                size = len(value)
            else:
                value = _decode(value, notes.append)
                size = _size(value)
        except Exception as exc:  # an unreadable attribute is this attribute's problem only
            problems.append(f"{path}: attribute {key!r} cannot be read ({type(exc).__name__}); skipped")
            continue
        if size > MAX_ATTRIBUTE_BYTES:
            value = _digest(value)
            notes.append(f"larger than {MAX_ATTRIBUTE_BYTES} bytes, replaced by a digest")
        if key_notes or notes:
            problems.extend(f"{path}: attribute {key!r}: {n}" for n in dict.fromkeys(key_notes + notes))
        values[key] = value
    return values, problems
