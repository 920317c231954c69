"""One published kNN group on disk: its name, its Zarr 3 layout, and its integrity checks.

An entry is a directory ``<root>/v1/<key>/`` holding one Zarr 3 group per computed ``k_max``, named
``k0021.zarr``. A group is written once under a temporary name and renamed into place, so it is
immutable once visible; its attributes record the conventions and checksums of both arrays.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from knn_store.errors import CorruptEntryError
from knn_store.store.keys import LAYOUT_VERSION

__all__ = [
    "CONVENTIONS",
    "EntryRef",
    "group_name",
    "list_groups",
    "read_group",
    "write_group",
]

#: Conventions every group follows; part of the entry key and recorded in the attributes.
CONVENTIONS: dict[str, Any] = {
    "self": "excluded-by-index",
    "order": "distance,index",
    "distances": "not-squared",
    "neighbors_dtype": "int32",
    "distances_dtype": "float32",
}

_GROUP_RE = re.compile(r"^k(\d{4,})\.zarr$")
_ROW_CHUNK = 65536  # keeps one chunk <= ~5.5 MB at k_max=21; matters only for very large n


@dataclass(frozen=True)
class EntryRef:
    """Small picklable reference to one published kNN group.

    Attributes
    ----------
    entry_dir : str
        Directory of the entry (``<root>/v1/<key>``); used to re-resolve if the group is superseded.
    group : str
        Path of the Zarr group holding ``neighbors`` and ``distances`` at ``k_max``.
    key : str
        Content key of the entry (features, metric, backend, conventions, layout).
    k_max : int
        Number of neighbours stored; any ``k <= k_max`` is served by slicing.
    n : int
        Number of rows (points).
    metric : str
        Distance used.
    """

    entry_dir: str
    group: str
    key: str
    k_max: int
    n: int
    metric: str

    @property
    def root(self) -> str:
        """Root of the store holding the entry (``entry_dir`` is ``<root>/v<layout>/<key>``)."""
        return self.entry_dir.rstrip("/").rsplit("/", 2)[0]


def group_name(k_max: int) -> str:
    """Directory name of the group computed at ``k_max``."""
    return f"k{k_max:04d}.zarr"


def list_groups(entry_dir: str | os.PathLike[str]) -> dict[int, Path]:
    """Published groups of an entry as ``{k_max: path}`` (temporary names are ignored)."""
    try:
        names = os.listdir(entry_dir)
    except FileNotFoundError:
        return {}
    out = {}
    for name in names:
        m = _GROUP_RE.match(name)
        if m:
            out[int(m.group(1))] = Path(entry_dir) / name
    return out


def _checksum(arr: np.ndarray) -> str:
    return hashlib.blake2b(memoryview(np.ascontiguousarray(arr)).cast("B"), digest_size=16).hexdigest()


def write_group(path: Path, neighbors: np.ndarray, distances: np.ndarray, attrs: dict[str, Any]) -> None:
    """Write a complete group at ``path`` (a fresh temporary directory, never a published one).

    ``complete=True`` is written last so that even a group copied half-way is recognisably incomplete.
    """
    import zarr
    from zarr.storage import LocalStore

    n, k = neighbors.shape
    chunks = (min(n, _ROW_CHUNK), k)
    g = zarr.create_group(store=LocalStore(path), attributes={"complete": False})
    # Raw bytes: neighbour ids barely compress (0.6-0.7x measured) and decompression slows reads 2-4x.
    g.create_array("neighbors", data=neighbors, chunks=chunks, compressors=None)
    g.create_array("distances", data=distances, chunks=chunks, compressors=None)
    g.attrs.update(
        {
            **attrs,
            "layout": LAYOUT_VERSION,
            "k_max": int(k),
            "n": int(n),
            "conventions": CONVENTIONS,
            "checksums": {"neighbors": _checksum(neighbors), "distances": _checksum(distances)},
            "complete": True,
        }
    )


def read_group(path: str | os.PathLike[str], *, verify: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read and check a published group.

    Parameters
    ----------
    path : path-like
        Group directory.
    verify : bool, default True
        Compare blake2b checksums of both arrays with the recorded ones (about 2 ms per MB). Without it a
        deleted chunk file would silently read back as fill values.

    Returns
    -------
    neighbors, distances : numpy.ndarray
        int32 and float32, shape (n, k_max).
    attrs : dict
        The group attributes.

    Raises
    ------
    FileNotFoundError
        The group does not exist (it may have been superseded or evicted).
    CorruptEntryError
        Anything else is wrong: incomplete marker, wrong layout, shapes, dtypes or checksums.
    """
    import zarr
    from zarr.storage import LocalStore

    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise FileNotFoundError(f"kNN group {path} does not exist")
    try:
        g = zarr.open_group(store=LocalStore(path, read_only=True), mode="r")
        attrs = dict(g.attrs)
        if attrs.get("complete") is not True:
            raise CorruptEntryError(f"kNN group {path} is not marked complete")
        if attrs.get("layout") != LAYOUT_VERSION:
            raise CorruptEntryError(
                f"kNN group {path} has layout {attrs.get('layout')!r}, expected {LAYOUT_VERSION}"
            )
        nb = np.asarray(g["neighbors"][...])
        ds = np.asarray(g["distances"][...])
    except CorruptEntryError:
        raise
    except Exception as exc:  # zarr raises a variety of types for truncated or missing keys
        raise CorruptEntryError(f"kNN group {path} is unreadable: {type(exc).__name__}: {exc}") from exc
    shape = (attrs.get("n"), attrs.get("k_max"))
    if nb.shape != shape or ds.shape != shape or nb.dtype != np.int32 or ds.dtype != np.float32:
        raise CorruptEntryError(
            f"kNN group {path} holds neighbors {nb.dtype}{nb.shape} and distances {ds.dtype}{ds.shape}, "
            f"expected int32/float32 {shape}"
        )
    if verify:
        sums = attrs.get("checksums", {})
        if sums.get("neighbors") != _checksum(nb) or sums.get("distances") != _checksum(ds):
            raise CorruptEntryError(f"kNN group {path} fails its checksum (truncated or modified chunk)")
    return nb, ds, attrs
