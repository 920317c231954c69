"""Storage backends of the kNN store: an abstract interface and its local and fsspec implementations.

:func:`make_backend` is the one place that maps a store root (or any location inside a store) to a
backend; :class:`~knn_store.KNNStore` and :func:`~knn_store.load` both go through it.
"""

from __future__ import annotations

import os

from knn_store.errors import InvalidParameterError
from knn_store.store.backends.base import StorageBackend
from knn_store.store.backends.fsspec import FsspecBackend
from knn_store.store.backends.local import LocalBackend

__all__ = ["BACKENDS", "FsspecBackend", "LocalBackend", "StorageBackend", "make_backend"]

#: Backend class per URL scheme ("" for a plain path); any other scheme is served by fsspec.
BACKENDS: dict[str, type[StorageBackend]] = {s: LocalBackend for s in LocalBackend.schemes}
_FALLBACK: type[StorageBackend] = FsspecBackend


def make_backend(url: str | os.PathLike[str]) -> StorageBackend:
    """Return the storage backend for a store root.

    Parameters
    ----------
    url : str or path-like
        A local path, a ``file://`` URL, or any fsspec URL (``s3://bucket/prefix``, ``memory://x``).

    Returns
    -------
    StorageBackend
        :class:`LocalBackend` for paths and ``file://``; :class:`FsspecBackend` for every other scheme.

    Raises
    ------
    InvalidParameterError
        The location contains a NUL byte, or its scheme has no usable fsspec filesystem.
    """
    text = os.fspath(url)
    if "\x00" in text:
        raise InvalidParameterError(f"store root {text!r} contains a NUL byte")
    scheme, sep, _ = text.partition("://")
    cls = BACKENDS.get(scheme if sep else "", _FALLBACK)
    try:
        return cls(text)
    except (ImportError, ValueError) as exc:
        raise InvalidParameterError(f"store root {text!r}: no usable fsspec filesystem ({exc})") from exc
