"""Identity of a source file: size, times, inode and a content digest.

The engine records a file's stat signature when it plans the file (:meth:`SourceIdentity.planned`,
cheap: the client plans files serially) and, in the task that publishes the results, checks that
the signature did not move and hashes the file (:meth:`SourceIdentity.confirmed`): a file rewritten
while its chunks were read (a table mixing steps of two versions) is reported and not written, and
the digest recorded in the output is the one of the content that was read, computed in parallel on
the workers rather than on the client's serial path. Resume compares content: outputs are reused
only when the recorded digest matches, so a file replaced by another of the same size with its
mtime restored is recomputed. The digest is only computed when the cheap stat signature (which
includes the inode change time, which no user tool can restore) differs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from dask_features.errors import InvalidArgumentError

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
    digest : str or None
        Content digest (:func:`file_digest`); None while only planned (not yet hashed).
    """

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    digest: str | None = None

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> SourceIdentity:
        """Identity of ``path`` now (stat, digest, stat again until both stats agree)."""
        for _ in range(3):
            before = os.stat(path)
            digest = file_digest(path)
            if _signature(os.stat(path)) == _signature(before):
                break
        return cls(*_signature(before), digest)

    @classmethod
    def planned(cls, path: str | os.PathLike[str]) -> SourceIdentity:
        """Stat signature of ``path`` now, without its digest (see :meth:`confirmed`)."""
        return cls(*_signature(os.stat(path)))

    def confirmed(self, path: str | os.PathLike[str]) -> SourceIdentity | None:
        """This identity with its digest, or None when ``path`` changed since it was taken.

        A planned identity has no digest to compare content with, so any change of the stat
        signature counts as a change (even a bare ``touch``): never a false "unchanged".
        """
        if self.digest is not None:
            return self if self.unchanged(path) else None
        try:
            if _signature(os.stat(path)) != self._signature:
                return None
            digest = file_digest(path)
            if _signature(os.stat(path)) != self._signature:
                return None  # changed while it was hashed
        except OSError:
            return None
        return replace(self, digest=digest)

    def unchanged(self, path: str | os.PathLike[str]) -> bool:
        """True when ``path`` has the same content as when this identity was taken."""
        try:
            now = os.stat(path)
        except OSError:
            return False
        if _signature(now) == self._signature:
            return True
        return self.digest is not None and now.st_size == self.size and file_digest(path) == self.digest

    @property
    def _signature(self) -> tuple[int, int, int, int]:
        return (self.size, self.mtime_ns, self.ctime_ns, self.inode)

    def as_metadata(self) -> dict[str, Any]:
        """Fields for the output metadata (``source_size``, ``source_mtime_ns`` ...)."""
        if self.digest is None:
            raise InvalidArgumentError(
                "a planned identity has no digest yet: record SourceIdentity.confirmed(path)"
            )
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
