"""Output names of experiments: safe in URLs and on every OS, unique and stable.

An experiment's output name (its *key*, also the ``experiment`` column of every row) is its path
below the data folder without the suffix, each component reduced to letters, digits and ``. _ + -``.
``#``, ``?``, ``%`` and ``:`` never appear, nor a leading ``.`` or ``_`` (dataset readers skip
those files) (``file://.../chip#1.parquet`` would be read as
``.../chip`` plus a URL fragment), nor names Windows reserves (``CON``, ``NUL``, ``COM1`` ...). A
component that had to change gets a short hash of the original relative path, so two files can never
share a name (``a b.h5`` and ``a_b.h5``) and the name does not depend on which other files are
extracted with it. The mapping back to the source file is in each output file's metadata.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re

__all__ = ["experiment_stem", "output_stems", "safe_component", "unique_stem"]

logger = logging.getLogger(__name__)

# Letters and digits of any script are kept (\w is Unicode-aware): replacing every non-ASCII character
# by "_" made "芯片-1.h5" and "晶片-1.h5" the same output file.
_UNSAFE = re.compile(r"[^\w.+-]+")
#: Longest file-name component [bytes, UTF-8]: leaves room for ".parquet" and the temporary-name affixes
#: within the 255-byte limit of common file systems.
_MAX_COMPONENT_BYTES = 180
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
)


def safe_component(part: str) -> str:
    """One path component made safe: no separators, URL syntax, reserved device names, or a leading
    ``.`` or ``_`` (Parquet dataset readers skip such files as hidden or metadata)."""
    cleaned = _UNSAFE.sub("_", part).lstrip("._").rstrip(".") or "x"
    if cleaned.split(".")[0].upper() in _WINDOWS_RESERVED:
        cleaned = f"x_{cleaned}"
    # Cut by bytes, not characters: 200 CJK characters are 600 bytes, too long for a file name.
    return cleaned.encode()[:_MAX_COMPONENT_BYTES].decode("utf-8", errors="ignore").rstrip(".") or "x"


def _relative(path: str, root: str | None) -> str:
    rel = os.path.relpath(path, root) if root else os.path.basename(path)
    return os.path.basename(path) if rel.startswith("..") else rel


def experiment_stem(path: str, root: str | None) -> str:
    """Output name of an experiment file: its path below ``root`` without the suffix, made safe.

    Every component is sanitised (no ``..``, no absolute paths, no NUL or separators), so a name
    can never escape the output folder. When sanitising changed anything, a hash of the original
    relative path is appended, which keeps names unique and independent of the other inputs.
    """
    rel = _relative(path, root)
    stem = os.path.splitext(rel)[0]
    # A plain split, not PurePosixPath's parser: the client names every file of a run (~2x faster).
    parts = [p for p in stem.replace(os.sep, "/").split("/") if p not in ("", ".", "..")]
    safe = [safe_component(p) for p in parts] or ["x"]
    name = "/".join(safe)
    return name if safe == parts else _suffixed(name, rel)


def _suffixed(stem: str, rel: str) -> str:
    return f"{stem}--{hashlib.blake2b(rel.encode(), digest_size=4).hexdigest()}"


def unique_stem(stem: str, path: str, root: str | None) -> str:
    """``stem`` made unique for ``path`` (for names that differ only in letter case)."""
    return _suffixed(stem, _relative(path, root))


def output_stems(paths: list[str], root: str | None) -> dict[str, str]:
    """Source path -> output name for one run, unique even on case-insensitive file systems.

    Parameters
    ----------
    paths : list of str
        The experiment files of the run, in order.
    root : str or None
        The data folder they were found in (names are relative to it), or None.
    """
    stems: dict[str, str] = {}
    taken: dict[str, str] = {}
    for path in paths:
        stem = experiment_stem(path, root)
        if stem.casefold() in taken:
            first, stem = taken[stem.casefold()], unique_stem(stem, path, root)
            logger.warning("%s and %s map to one output name; the second is written as %r", first, path, stem)
        taken[stem.casefold()] = path
        stems[path] = stem
    return stems
