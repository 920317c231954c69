"""Identity of a source file: size, times, inode and a content digest.

The engine records a file's identity when it plans the file and compares it again before writing
the results: a file rewritten while its chunks were read (a table mixing steps of two versions) is
reported and not written. Resume compares content: outputs are reused only when the recorded digest
matches, so a file replaced by another of the same size with its mtime restored is recomputed. The
digest is only computed when the cheap stat signature (which includes the inode change time, which
no user tool can restore) differs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["SourceIdentity", "file_digest", "same_content"]

_BLOCK = 1 << 20


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-1 of the file's bytes (change detection, not security; hashed at disk speed)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.sha1(usedforsecurity=False)).hexdigest()


@dataclass(frozen=True)
class SourceIdentity:
    """What a source file was when it was read.

    Attributes
    ----------
    size : int
        Bytes.
    mtime_ns, ctime_ns : int
        Modification and inode change times [ns since the epoch].
    inode : int
        Inode (file id) number.
    digest : str
        Content digest (:func:`file_digest`).
    """

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    digest: str

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> SourceIdentity:
        """Identity of ``path`` now (stat, digest, stat again until both stats agree)."""
        for _ in range(3):
            before = os.stat(path)
            digest = file_digest(path)
            if _signature(os.stat(path)) == _signature(before):
                break
        return cls(before.st_size, before.st_mtime_ns, before.st_ctime_ns, before.st_ino, digest)

    def unchanged(self, path: str | os.PathLike[str]) -> bool:
        """True when ``path`` has the same content as when this identity was taken."""
        try:
            now = os.stat(path)
        except OSError:
            return False
        if _signature(now) == (self.size, self.mtime_ns, self.ctime_ns, self.inode):
            return True
        return now.st_size == self.size and file_digest(path) == self.digest

    def as_metadata(self) -> dict[str, Any]:
        """Fields for the output metadata (``source_size``, ``source_mtime_ns`` ...)."""
        return {f"source_{k}": v for k, v in asdict(self).items()}

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> SourceIdentity | None:
        """The identity recorded in output metadata, or None when it has none (older outputs)."""
        try:
            return cls(**{k: meta[f"source_{k}"] for k in cls.__dataclass_fields__})
        except KeyError:
            return None


def _signature(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def same_content(recorded: Mapping[str, Any], path: str | os.PathLike[str]) -> bool:
    """True when output metadata ``recorded`` describes the current content of ``path``."""
    identity = SourceIdentity.from_metadata(recorded)
    return identity is not None and identity.unchanged(path)
