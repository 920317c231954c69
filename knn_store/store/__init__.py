"""The kNN store: content keys, the Zarr entry format, the per-process memo and the storage backends.

Modules
-------
cache
    :class:`KNNStore` (``ensure``, ``lookup``, ``info``, ``prune``, ``clear``, ``temporary``).
keys
    Content digests of feature matrices and entry keys.
entry
    :class:`EntryRef` and the on-disk format of one published group.
memo
    :func:`load`: read a published group in any process, memoised per process.
temporary
    Owned temporary directories that later processes can recognise as orphaned.
backends
    :class:`~knn_store.store.backends.StorageBackend` and its local and fsspec implementations, chosen by
    :func:`~knn_store.store.backends.make_backend`.
units
    Human-readable sizes and durations for ``prune``.

Only :class:`EntryRef` is imported eagerly; the rest loads on first use, so a worker that only calls
``load`` does not import scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from knn_store.store.entry import EntryRef

if TYPE_CHECKING:
    from knn_store.store.backends import make_backend
    from knn_store.store.cache import EntryInfo, KNNStore
    from knn_store.store.memo import clear_memo, load
    from knn_store.store.temporary import cleanup_temporary

_LAZY = {
    "EntryInfo": "knn_store.store.cache",
    "KNNStore": "knn_store.store.cache",
    "clear_memo": "knn_store.store.memo",
    "load": "knn_store.store.memo",
    "cleanup_temporary": "knn_store.store.temporary",
    "make_backend": "knn_store.store.backends",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'knn_store.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = ["EntryInfo", "EntryRef", "KNNStore", "cleanup_temporary", "clear_memo", "load", "make_backend"]
