"""One published kNN group on disk: its name, its Zarr 3 layout, and its integrity checks.

An entry is a directory ``<root>/v<layout>/<key>/`` holding one Zarr 3 group per computed ``k_max``, named
``k0021.zarr``. A group is written once under a temporary name and renamed into place, so it is
immutable once visible; its attributes record the conventions and checksums of both arrays.

Any Zarr 3 reader opens a group: ``zarr.open_group``, ``dask.array.from_zarr(group_path, component=
"distances")`` and ``xarray.open_zarr(group_path)`` (dimensions ``point`` x ``neighbor``). Arrays are
chunked by blocks of rows holding all ``k_max`` columns, about 1 MB each, so one k-slice of one row block is
one small read.
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
    "distances": "euclidean: not squared; cosine: |u - v|^2 / 2 = 1 - cos on float64 unit rows",
    "reference": "float64 brute force, sum((v_j - v_i)^2) in NumPy pairwise order",
    "rounding": "float64 distance rounded once to float32",
    "neighbors_dtype": "int32",
    "distances_dtype": "float32",
}

_DIMS = ("point", "neighbor")
#: Units of the stored distances per metric (CF-style ``units`` attribute).
_UNITS = {"euclidean": "same as the features", "cosine": "1"}
_GROUP_RE = re.compile(r"^k(\d{4,})\.zarr$")
_CHUNK_BYTES = 1 << 20  # one chunk of a row block: a k-slice of it is a ~1 MB read at most


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
    # .data is memoryview(array); numpy declares the buffer protocol for Python >= 3.12 only (mypy: 3.11).
    return hashlib.blake2b(np.ascontiguousarray(arr).data.cast("B"), digest_size=16).hexdigest()


def write_group(path: Path, neighbors: np.ndarray, distances: np.ndarray, attrs: dict[str, Any]) -> None:
    """Write a complete group at ``path`` (a fresh temporary directory, never a published one).

    ``complete=True`` is written last so that even a group copied half-way is recognisably incomplete.
    """
    import zarr
    from zarr.storage import LocalStore

    n, k = neighbors.shape
    chunks = (max(1, min(n, _CHUNK_BYTES // (4 * k))), k)
    g = zarr.create_group(store=LocalStore(path), attributes={"complete": False})
    metric = attrs.get("metric", "euclidean")
    # Raw bytes: neighbour ids barely compress (0.6-0.7x measured) and decompression slows reads 2-4x.
    # dimension_names make the group an xarray Dataset; fill values are never valid data (xarray masks
    # them), so no neighbour id 0 can turn into NaN.
    for name, data, fill, extra in (
        ("neighbors", neighbors, -1, {"long_name": "row index of the j-th nearest other point"}),
        ("distances", distances, float("nan"), {"long_name": f"{metric} distance", "units": _UNITS[metric]}),
    ):
        arr = g.create_array(
            name, data=data, chunks=chunks, compressors=None, fill_value=fill, dimension_names=_DIMS
        )
        arr.attrs.update(extra)
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
        The group does not exist, or was removed (superseded or evicted) while it was being read.
    CorruptEntryError
        Anything else is wrong: incomplete marker, wrong layout, shapes, dtypes or checksums.
    """
    path = Path(path)
    for attempt in range(2):
        try:
            return _read_checked(path, verify)
        except CorruptEntryError:
            # Eviction renames a group (or its entry) away before deleting anything, so a group that is
            # gone by now was pruned under our feet: "not found", never "corrupt". A group still there may
            # have been swapped by a refresh mid-read (old and new chunks mixed): one more read tells.
            if not (path / "zarr.json").is_file():
                raise FileNotFoundError(f"kNN group {path} was removed while being read") from None
            if attempt:
                raise
    raise AssertionError("unreachable")


def _read_checked(path: Path, verify: bool) -> tuple[np.ndarray, np.ndarray, dict]:
    import zarr
    from zarr.storage import LocalStore

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
        data = []
        for name in ("neighbors", "distances"):
            node = g[name]
            if not isinstance(node, zarr.Array):
                raise CorruptEntryError(f"kNN group {path}: {name} is a {type(node).__name__}, not an array")
            data.append(np.asarray(node[...]))
        nb, ds = data
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
        sums = attrs.get("checksums")
        if not isinstance(sums, dict):
            raise CorruptEntryError(f"kNN group {path} has no checksums record (checksums={sums!r})")
        if sums.get("neighbors") != _checksum(nb) or sums.get("distances") != _checksum(ds):
            raise CorruptEntryError(f"kNN group {path} fails its checksum (truncated or modified chunk)")
    return nb, ds, attrs
