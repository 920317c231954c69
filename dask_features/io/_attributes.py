"""Reading an experiment file's attributes safely: decoded, cleaned, and of bounded size.

:func:`read_attributes` decodes root attributes one by one: undecodable bytes become U+FFFD and are
reported, an attribute that cannot be read is reported and skipped, and an attribute larger than
:data:`MAX_ATTRIBUTE_BYTES` is replaced by a short digest so it never reaches outputs or the catalog.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any

import h5py
import numpy as np

from dask_features.io._layout import VLEN_TEXT

__all__ = ["MAX_ATTRIBUTE_BYTES", "read_attributes"]

#: Largest attribute value kept as is [bytes of its text form]; larger ones become a digest.
MAX_ATTRIBUTE_BYTES = 64 * 1024


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
