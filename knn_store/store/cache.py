"""The persistent, content-addressed kNN store (:class:`KNNStore`).

Where and how entries are published is the business of a storage backend
(:mod:`knn_store.store.backends`): a local directory published by atomic rename, or an object store
published by commit markers. Keys are built in :mod:`knn_store.store.keys`, the group format is
:mod:`knn_store.store.entry`, the kNN itself comes from :mod:`knn_store.neighbors`.
``refresh=True`` computes first and then replaces the old group in one step, so a failed recompute leaves
the old entry as it was.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from knn_store._numbers import is_integer
from knn_store.errors import CorruptEntryError, InvalidParameterError, ReadOnlyStoreError, StoreFullError
from knn_store.neighbors import backend_id, is_exact, key_backend, knn, prepare_features, resolve_backend
from knn_store.store.backends import LocalBackend, make_backend
from knn_store.store.entry import CONVENTIONS, EntryRef
from knn_store.store.keys import entry_key, feature_digest
from knn_store.store.memo import load
from knn_store.store.temporary import cleanup_temporary, owned_temporary_dir
from knn_store.store.units import parse_bytes, parse_seconds

__all__ = ["EntryInfo", "KNNStore"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EntryInfo:
    """One row of :meth:`KNNStore.info`.

    Attributes
    ----------
    key : str
        Content key (directory name).
    path : str
        Entry directory.
    k_max : tuple of int
        ``k_max`` of every published group (normally one).
    n, d : int
        Points and feature dimensions.
    metric, backend : str
        As recorded in the group attributes.
    bytes : int
        Disk usage of the entry directory (bytes).
    created : str
        ISO 8601 UTC time the newest group was published.
    last_access : float
        POSIX time of the last recorded use (seconds).
    """

    key: str
    path: str
    k_max: tuple[int, ...]
    n: int
    d: int
    metric: str
    backend: str
    bytes: int
    created: str
    last_access: float


#: errno values of a write refused to this process: read-only mount, another user's cache.
_REFUSED = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})

#: Bytes per (point, neighbour) a computation holds: int32 neighbours and float32 distances, about
#: three times over (the result, the candidates being merged and the float64 re-scoring).
BYTES_PER_NEIGHBOUR = 24


def _check_memory(n: int, k_max: int) -> None:
    """Refuse a kNN whose arrays alone would take more than half the memory available now: a k_max
    near n (a typo, or a grid written as range(n)) would otherwise swap the machine for hours."""
    import psutil

    need = n * k_max * BYTES_PER_NEIGHBOUR
    available = psutil.virtual_memory().available
    if need > available // 2:
        raise InvalidParameterError(
            f"k_max={k_max} on {n:,} points needs about {need / 2**30:.1f} GiB for the neighbour and "
            f"distance arrays, more than half the {available / 2**30:.1f} GiB available: use a smaller "
            "k_max (the largest k of the grid) or fewer points"
        )


class KNNStore:
    """Content-addressed cache of exact kNN results, shared by processes on one filesystem.

    Parameters
    ----------
    root : str or path-like
        Directory (created if missing), a ``file://`` URL, or an fsspec URL of an object store
        (``s3://bucket/prefix``; credentials from the environment, published with commit markers).
    backend : str, default "auto"
        Default kNN backend for :meth:`ensure`. ``"auto"``, ``"numpy"``, ``"sklearn"`` and ``"faiss"`` all
        publish the exact float64 answer (same key); ``"hnswlib"``, ``"pynndescent"`` and ``"faiss-hnsw"``
        are approximate, used only when named, and keyed apart.
    n_threads : int, optional
        BLAS thread limit while computing a kNN; ``None`` keeps the process default.
    grace : float or str, default 3600
        Seconds (or e.g. ``"1h"``) during which a used entry is never pruned.

    Examples
    --------
    >>> store = KNNStore("/data/knn_cache")  # doctest: +SKIP
    >>> ref = store.ensure(features, k_max=21)  # doctest: +SKIP
    >>> nb, ds = knn_store.load(ref, 10)  # doctest: +SKIP
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        backend: str = "auto",
        n_threads: int | None = None,
        grace: float | str = 3600.0,
    ) -> None:
        self._backend = make_backend(root)
        self.root: Path | str = (
            Path(self._backend.root) if isinstance(self._backend, LocalBackend) else self._backend.root
        )
        self.backend = backend
        self.n_threads = n_threads
        self.grace = parse_seconds(grace)

    def __repr__(self) -> str:
        return f"KNNStore({str(self.root)!r}, backend={self.backend!r})"

    @classmethod
    @contextlib.contextmanager
    def temporary(
        cls,
        *,
        dir: str | os.PathLike[str] | None = None,
        cleanup_orphans: bool = True,
        **kwargs: Any,
    ) -> Iterator[KNNStore]:
        """A store in a fresh temporary directory that is removed on exit, also after an exception.

        A process killed before it can remove the directory (SIGKILL, OOM killer, ``os._exit``) leaves it
        behind; the directory records its owner (a ``flock`` held for the store's lifetime, plus pid and
        start time), so :func:`knn_store.cleanup_temporary` can tell such orphans from live stores. It runs
        for ``dir`` every time a temporary store starts.

        Parameters
        ----------
        dir : path-like, optional
            Parent directory (e.g. ``/dev/shm`` for speed); default is the system temporary directory.
        cleanup_orphans : bool, default True
            First remove temporary stores in ``dir`` whose owning process is gone (never a live one).
        **kwargs
            Passed to :class:`KNNStore`.
        """
        if cleanup_orphans:
            try:
                cleanup_temporary(dir)
            except OSError as exc:  # housekeeping must never keep a job from starting
                where = "the system temporary directory" if dir is None else dir
                logger.warning("could not clean up orphaned temporary kNN stores in %s: %s", where, exc)
        with owned_temporary_dir(dir) as path:
            yield cls(path, **kwargs)

    # -- keys --------------------------------------------------------------------------------------------
    def key(self, features: object, metric: str = "euclidean", *, backend: str | None = None) -> str:
        """Content key of ``features`` under ``metric`` and ``backend`` (hashes the matrix once)."""
        return self._prepare(features, metric, backend)[1]

    def _prepare(self, features: object, metric: str, backend: str | None) -> tuple[np.ndarray, str, str]:
        x = prepare_features(features, metric)
        concrete = resolve_backend(backend or self.backend)
        key = entry_key(
            feature_digest(x), metric=metric, backend=key_backend(concrete), conventions=CONVENTIONS
        )
        return x, key, concrete

    # -- public API --------------------------------------------------------------------------------------
    def lookup(
        self, features: object, k: int, metric: str = "euclidean", *, backend: str | None = None
    ) -> EntryRef | None:
        """Reference to a published group that can serve ``k``, or ``None``; never computes."""
        _, key, _ = self._prepare(features, metric, backend)
        return self._lookup_key(key, k, metric)

    def _lookup_key(self, key: str, k: int, metric: str) -> EntryRef | None:
        entry = self._backend.entry(key)
        suspect: set[str] = set()
        for _ in range(8):  # a concurrent supersede/evict can only make us list again a few times
            fits = [(km, g) for km, g in self._backend.groups(entry).items() if km >= k]
            if not fits:
                return None
            k_max, group = min(fits)
            try:
                _, _, attrs = self._backend.read(group)
            except FileNotFoundError:
                if group in suspect:
                    # Listed again yet still unreadable: a group directory without its metadata (half
                    # deleted or half copied), which would also block publishing a new one under its name.
                    logger.warning("discarding kNN group %s: it has no metadata (zarr.json)", group)
                    self._backend.discard_group(entry, k_max)
                    continue
                suspect.add(group)
                continue  # superseded between listing and reading: list again
            except CorruptEntryError as exc:
                if group not in suspect:
                    # A refresh may have swapped the group mid-read; discard only what fails twice.
                    suspect.add(group)
                    continue
                logger.warning("discarding corrupt kNN group %s: %s", group, exc)
                self._backend.discard_group(entry, k_max)
                continue
            self._backend.touch(entry)
            return EntryRef(entry, group, key, k_max, int(attrs["n"]), metric)
        return None

    def ensure(
        self,
        features: object,
        k_max: int,
        metric: str = "euclidean",
        *,
        backend: str | None = None,
        refresh: bool = False,
        source: Mapping[str, Any] | None = None,
        client: Any = None,
    ) -> EntryRef:
        """Make sure an entry for ``features`` serving ``k_max`` exists; compute it only if missing.

        Parameters
        ----------
        features : array_like, shape (n, d)
            The exact matrix to index; hashed once here (about 2 ms per MB).
        k_max : int
            Largest k that will be requested (``1 <= k_max <= n - 1``).
        metric : {"euclidean", "cosine"}, default "euclidean"
        backend : str, optional
            Overrides the store default.
        refresh : bool, default False
            Recompute even if a valid group exists. The new group replaces the old one(s) only once it is
            complete; if the computation or the write fails, the old entry is left as it was.
        source : mapping, optional
            JSON-serialisable provenance (model id, epoch...) recorded in the group attributes.
        client : distributed.Client, optional
            Compute a missing exact kNN blockwise on this Dask cluster (query blocks x reference blocks,
            top-k merge); the result is bit-identical to the local computation, so it shares the key.

        Returns
        -------
        EntryRef
            Picklable reference; pass it to :func:`knn_store.load` in any process.
        """
        x, key, concrete = self._prepare(features, metric, backend)
        n = x.shape[0]
        if not is_integer(k_max) or not 1 <= k_max <= n - 1:
            raise InvalidParameterError(
                f"k_max (the largest k asked for) must be an integer in [1, n - 1] = [1, {n - 1}], "
                f"got {k_max!r}"
            )
        k_max = int(k_max)
        entry = self._backend.entry(key)
        try:
            # A killed writer's staging directory goes now, not at a prune a day later (one listdir if none).
            self._backend.sweep(entry)
        except OSError as exc:  # housekeeping must never keep a job from running
            logger.warning("could not clean up staging directories in %s: %s", entry, exc)
        if not refresh:
            ref = self._lookup_key(key, k_max, metric)
            if ref is not None:
                logger.debug("kNN cache hit %s (k_max=%d >= %d)", ref.group, ref.k_max, k_max)
                return ref
        # A store this process cannot write serves what it holds; a miss is refused before computing.
        refused = self._backend.cannot_write(entry)
        if refused is not None:
            raise self._read_only(entry, k_max, metric, concrete, refresh, refused)
        _check_memory(n, k_max)
        t0 = time.perf_counter()
        if client is not None and is_exact(concrete):
            from knn_store.distributed import distributed_knn

            nb, ds = distributed_knn(x, k_max, metric=metric, client=client)
            computed_by = f"{backend_id(concrete)} on dask.distributed"
        else:
            nb, ds = knn(x, k_max, metric=metric, backend=concrete, n_threads=self.n_threads)
            computed_by = backend_id(concrete)
        attrs = {
            "key": key,
            "d": int(x.shape[1]),
            "metric": metric,
            "backend": computed_by,
            "exact": is_exact(concrete),
            "features_dtype": str(x.dtype),
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "compute_seconds": round(time.perf_counter() - t0, 3),
            "source": dict(source or {}),
        }
        try:
            ref = self._publish(entry, key, metric, nb, ds, attrs, replace=refresh)
        except StoreFullError:
            raise
        except OSError as exc:
            if not isinstance(exc, PermissionError) and exc.errno not in _REFUSED:
                raise
            raise self._read_only(entry, k_max, metric, concrete, refresh, exc) from exc
        logger.info(
            "computed kNN n=%d k_max=%d in %.2f s -> %s", n, k_max, attrs["compute_seconds"], ref.group
        )
        return ref

    def _read_only(
        self, entry: str, k_max: int, metric: str, concrete: str, refresh: bool, cause: OSError
    ) -> ReadOnlyStoreError:
        """The error of a request that needs a write this process may not make, naming what is missing."""
        kind = f"metric {metric!r}, " + (
            "exact" if is_exact(concrete) else f"approximate backend {backend_id(concrete)!r}"
        )
        try:
            held = sorted(self._backend.groups(entry))
        except OSError:
            held = []
        if refresh:
            need = f"refresh=True needs to write a new kNN of these features (k_max={k_max}, {kind}). Use"
        elif held:
            need = (
                f"it holds k_max <= {held[-1]} of these features ({kind}), not the k_max={k_max} asked "
                f"for. Ask for k <= {held[-1]}, or use"
            )
        else:
            need = f"it holds no kNN of these features with {kind} (k_max={k_max} asked for). Use"
        code = errno.errorcode.get(cause.errno or 0, cause.errno)
        where = f" at {cause.filename}" if cause.filename else ""
        err = ReadOnlyStoreError(
            f"kNN store {self.root} cannot be written by this process ([{code}] "
            f"{cause.strerror or cause}{where}): {need} a store this process can write (another "
            "root; KNNStore.temporary() for one removed afterwards)"
        )
        err.errno = cause.errno or errno.EACCES  # callers testing errno keep working
        return err

    def _publish(
        self,
        entry: str,
        key: str,
        metric: str,
        nb: np.ndarray,
        ds: np.ndarray,
        attrs: dict[str, Any],
        attempts: int = 3,
        *,
        replace: bool = False,
    ) -> EntryRef:
        k_max = nb.shape[1]
        self._backend.publish(entry, nb, ds, attrs, replace=replace)
        self._backend.touch(entry)
        # Groups with a smaller k_max are now redundant (prefix property); readers re-resolve on miss. A
        # refresh replaces larger ones too, but only now that its own group is in place.
        for km in self._backend.groups(entry):
            if km < k_max or (replace and km != k_max):
                self._backend.discard_group(entry, km)
        ref = self._lookup_key(key, k_max, metric)
        if ref is not None:
            return ref
        if attempts <= 1:
            raise CorruptEntryError(
                f"kNN entry {entry} (k_max={k_max}) vanished or failed verification after publishing"
            )
        # The winner's group was evicted or corrupt in between: publish our own.
        return self._publish(entry, key, metric, nb, ds, attrs, attempts - 1, replace=replace)

    def knn(
        self, features: object, k: int, metric: str = "euclidean", *, k_max: int | None = None, **kwargs: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`ensure` at ``max(k, k_max)`` then :func:`knn_store.load` at ``k``.

        Returns
        -------
        neighbors : numpy.ndarray, int32, shape (n, k)
        distances : numpy.ndarray, float32, shape (n, k)
        """
        # Named here: ensure() would call a bad k "k_max", and skip a k_max of 0 as not given.
        for name, value in (("k", k), ("k_max", k_max)):
            if (value is not None or name == "k") and not (is_integer(value) and value >= 1):
                raise InvalidParameterError(f"{name} must be an integer >= 1, got {value!r}")
        ref = self.ensure(features, max(k, k_max or k), metric, **kwargs)
        return load(ref, k)

    def info(self) -> list[EntryInfo]:
        """List published entries with sizes and metadata, most recently used first."""
        rows = []
        for entry in self._backend.entries():
            groups = self._backend.groups(entry)
            if not groups:
                continue
            try:
                _, _, attrs = self._backend.read(groups[max(groups)], verify=False)
            except (FileNotFoundError, CorruptEntryError):
                continue
            rows.append(
                EntryInfo(
                    key=entry.rstrip("/").rsplit("/", 1)[-1],
                    path=entry,
                    k_max=tuple(sorted(groups)),
                    n=int(attrs.get("n", -1)),
                    d=int(attrs.get("d", -1)),
                    metric=str(attrs.get("metric", "")),
                    backend=str(attrs.get("backend", "")),
                    bytes=self._backend.size(entry),
                    created=str(attrs.get("created", "")),
                    last_access=self._backend.last_access(entry),
                )
            )
        return sorted(rows, key=lambda r: -r.last_access)

    def prune(
        self,
        max_bytes: int | str | None = None,
        max_age: float | str | None = None,
        *,
        grace: float | str | None = None,
    ) -> list[str]:
        """Evict least recently used entries.

        Parameters
        ----------
        max_bytes : int or str, optional
            Keep the store at or below this size (bytes, or e.g. ``"20GB"``), evicting oldest use first.
        max_age : float or str, optional
            Evict entries unused for longer than this (seconds, or e.g. ``"30d"``).
        grace : float or str, optional
            Never evict an entry used within this many seconds; default is the store's ``grace``.

        Returns
        -------
        list of str
            Keys of evicted entries, including entries of other layout versions (never served) once
            unused for ``grace``. Staging directories of crashed writers are removed as well: at once
            if the writer ran on this machine, else once they are a day old.
        """
        limit = None if max_bytes is None else parse_bytes(max_bytes)
        age = None if max_age is None else parse_seconds(max_age)
        keep_for = self.grace if grace is None else parse_seconds(grace)
        now = time.time()
        self._backend.sweep()
        # A use recorded in the future (clock skew between NFS clients, a restored backup) counts as
        # "now": it neither shields an entry from eviction forever nor jumps the LRU queue.
        entries = sorted(
            ((min(self._backend.last_access(e), now), e) for e in self._backend.entries()), key=lambda t: t[0]
        )
        sizes = {e: self._backend.size(e) for _, e in entries}
        total = sum(sizes.values())
        evicted = []
        for used, entry in entries:
            if now - used < keep_for:
                continue
            too_old = age is not None and now - used > age
            too_big = limit is not None and total > limit
            if too_old or too_big:
                self._backend.discard_entry(entry)
                total -= sizes[entry]
                evicted.append(entry.rstrip("/").rsplit("/", 1)[-1])
                logger.info("pruned kNN entry %s (%d bytes)", entry, sizes[entry])
        for entry in self._backend.stale_entries():
            # Written by another layout version (e.g. before exact-by-construction): never served.
            if now - min(self._backend.last_access(entry), now) >= keep_for:
                self._backend.discard_entry(entry)
                evicted.append(entry.rstrip("/").rsplit("/", 1)[-1])
                logger.info("pruned kNN entry %s of another layout version", entry)
        return evicted

    def clear(self) -> int:
        """Remove every entry; returns how many were removed. Do not call while jobs use the store."""
        entries = self._backend.entries()
        for entry in entries:
            self._backend.discard_entry(entry)
        return len(entries)
