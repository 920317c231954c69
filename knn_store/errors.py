"""Exception hierarchy of :mod:`knn_store`.

Every exception derives from :class:`KnnStoreError` and also from the built-in it specialises, so callers
can catch either (``except KnnStoreError`` or ``except ValueError``).
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "CorruptEntryError",
    "EntryNotFoundError",
    "InvalidFeaturesError",
    "InvalidLabelsError",
    "InvalidNameError",
    "InvalidParameterError",
    "KnnStoreError",
    "ReadOnlyStoreError",
    "StoreFullError",
]


class KnnStoreError(Exception):
    """Root of all errors raised by :mod:`knn_store`."""


class InvalidFeaturesError(KnnStoreError, ValueError):
    """The feature matrix cannot be used (wrong rank, too few rows, non-finite values...)."""


class InvalidParameterError(KnnStoreError, ValueError):
    """A parameter (k, metric, backend, percentile, size) is out of range or unknown."""


class InvalidLabelsError(InvalidParameterError):
    """``labels`` / ``labeled_mask`` cannot be used: wrong shape or dtype, or too few labelled classes."""


class InvalidNameError(KnnStoreError, ValueError):
    """A name that would become part of a path is unsafe (``..``, separators, absolute, NUL)."""


class EntryNotFoundError(KnnStoreError, FileNotFoundError):
    """No published entry can serve the request (missing, evicted, or k larger than any k_max)."""


class CorruptEntryError(KnnStoreError, OSError):
    """A published entry is unreadable or inconsistent with its recorded metadata."""


class StoreFullError(KnnStoreError, OSError):
    """No space to write an entry: disk full (ENOSPC), quota exceeded (EDQUOT) or file too large (EFBIG).

    ``errno`` is that of the underlying error. Nothing was published and the partial write was removed,
    so the same ``ensure`` succeeds once space is available.
    """


class ReadOnlyStoreError(KnnStoreError, PermissionError):
    """The store cannot be written by this process and the request needs a write.

    A read-only mount, another user's cache or read-only credentials serve every kNN they hold; a
    request they do not hold (a larger k, another metric or backend, ``refresh=True``) cannot be
    published, and :meth:`~knn_store.KNNStore.ensure` returns references to published entries only.
    ``errno`` is that of the refusal (``EROFS``, ``EACCES``, ``EPERM``). Raised before the kNN is
    computed where the store can tell, else when its write is refused; nothing is left behind.
    """


class BackendUnavailableError(KnnStoreError, ImportError):
    """The requested kNN backend needs a package that is not installed."""
