"""The storage interface every kNN store location implements.

A *backend* knows where entries live and how to publish, read, list and delete them atomically; the
:class:`~knn_store.KNNStore` above it and :func:`~knn_store.load` are the same for every backend. Locations
are plain strings (a path or a URL), so that an :class:`~knn_store.EntryRef` holding them pickles in a
few hundred bytes and resolves in any process through :func:`~knn_store.store.backends.make_backend`.

Vocabulary
----------
root
    The store location given by the user (``/data/knn_cache``, ``s3://bucket/prefix``).
entry
    ``<root>/v<layout>/<key>``: everything cached for one content key (one feature matrix, metric,
    kNN backend and set of conventions).
group
    One published, immutable Zarr 3 group inside an entry holding ``neighbors`` and ``distances`` at one
    ``k_max`` (see :mod:`knn_store.store.entry`).

Guarantees every implementation must give
-----------------------------------------
* **Atomic publication.** A reader that finds a group finds it complete; racing writers of the same group
  leave exactly one published group, whichever wins.
* **No partial reads.** :meth:`StorageBackend.read` returns the whole verified group or raises
  ``FileNotFoundError`` (it is gone or was never there) or
  :class:`~knn_store.errors.CorruptEntryError` (it is there and broken); a group deleted concurrently is
  "not found", never "corrupt".
* **Best-effort use records.** :meth:`StorageBackend.touch` never fails a read because the location is
  read-only or full.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np

__all__ = ["StorageBackend"]


class StorageBackend(abc.ABC):
    """Abstract base class of kNN store locations (in the spirit of zarr-python's ``abc.store.Store``).

    Attributes
    ----------
    root : str
        The store root as a path or URL, normalised.
    schemes : tuple of str
        URL schemes handled by this class; used by :func:`~knn_store.store.backends.make_backend`.
    """

    schemes: ClassVar[tuple[str, ...]] = ()
    root: str

    @abc.abstractmethod
    def __init__(self, root: str) -> None:
        """Open the store at ``root`` (a path or URL).

        :func:`~knn_store.store.backends.make_backend` constructs every backend from its root alone, so no
        implementation may require another argument.

        Raises
        ------
        ImportError, ValueError
            The location's scheme has no usable filesystem (``make_backend`` reports it as an
            :class:`~knn_store.errors.InvalidParameterError`).
        """

    # -- naming --------------------------------------------------------------------------------------
    @abc.abstractmethod
    def entry(self, key: str) -> str:
        """Location of the entry for content ``key`` (it need not exist)."""

    @abc.abstractmethod
    def entries(self) -> list[str]:
        """Locations of every entry currently in the store (in no particular order)."""

    def stale_entries(self) -> list[str]:
        """Entries written by other layout versions: never served, removed by ``prune`` once unused."""
        return []

    @abc.abstractmethod
    def groups(self, entry: str) -> dict[int, str]:
        """Published groups of ``entry`` as ``{k_max: group location}``; empty if none or no entry."""

    # -- data ----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def read(self, group: str, *, verify: bool = True) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Read a published group.

        Parameters
        ----------
        group : str
            A location from :meth:`groups`.
        verify : bool, default True
            Check the recorded checksums of both arrays.

        Returns
        -------
        neighbors, distances : numpy.ndarray
            int32 and float32, shape ``(n, k_max)``.
        attrs : dict
            The group attributes.

        Raises
        ------
        FileNotFoundError
            The group does not exist (never published, superseded or evicted).
        CorruptEntryError
            The group exists but fails its checks.
        """

    @abc.abstractmethod
    def publish(
        self, entry: str, nb: np.ndarray, ds: np.ndarray, attrs: dict[str, Any], *, replace: bool = False
    ) -> None:
        """Publish a complete group of ``k_max = nb.shape[1]`` atomically.

        Parameters
        ----------
        entry : str
            Entry location (created if missing).
        nb, ds : numpy.ndarray
            Neighbours (int32) and distances (float32), shape ``(n, k_max)``.
        attrs : dict
            JSON-serialisable group attributes.
        replace : bool, default False
            Replace a published group of the same ``k_max``; otherwise an existing one wins and this
            write is dropped.

        Raises
        ------
        StoreFullError
            No space; nothing was published and nothing is left behind.
        """

    def cannot_write(self, entry: str) -> OSError | None:
        """Why this process cannot publish into ``entry``, if that shows without writing; else ``None``.

        Asked before a kNN is computed, so that a store this process cannot write refuses a request it
        does not hold at once, not after the computation. ``None`` (the default) means "not known":
        the write itself then tells.
        """
        return None

    @abc.abstractmethod
    def discard_group(self, entry: str, k_max: int) -> None:
        """Unpublish and delete one group; readers stop finding it before any byte is deleted."""

    @abc.abstractmethod
    def discard_entry(self, entry: str) -> None:
        """Unpublish and delete a whole entry, with the same ordering as :meth:`discard_group`."""

    # -- bookkeeping ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def touch(self, entry: str) -> None:
        """Record a use of ``entry`` now, for LRU eviction (best effort)."""

    @abc.abstractmethod
    def last_access(self, entry: str) -> float:
        """POSIX time (s) of the last recorded use, ``0.0`` if none is known."""

    @abc.abstractmethod
    def size(self, entry: str) -> int:
        """Bytes used by ``entry``."""

    @abc.abstractmethod
    def sweep(self, entry: str | None = None) -> None:
        """Remove leftovers of crashed writers and interrupted evictions, in one entry or everywhere."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root!r})"
