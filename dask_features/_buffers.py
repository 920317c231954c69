"""Reusable memory for a chunk's large arrays (read data, derivatives): no fresh allocation per chunk.

A chunk's arrays are a few hundred kB to a few MB each. Allocated fresh, every page of them costs a
page fault the first time it is written (glibc returns large blocks to the system when they are
freed, by default), about 1 ms for a 400 x 301 transfer chunk. :func:`pooled` hands out memory of
chunks whose arrays are gone instead: a block goes back to this process's pool only once its array,
and with it every view of it, has been freed, so an array the caller keeps (a chunk held by a
thread, a result built on its values) is never overwritten.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

__all__ = ["POOL_BYTES", "pooled"]

POOL_BYTES = 32 * 2**20
"""Most memory [B] this process keeps for reuse once its arrays are gone (a 400 x 301 transfer
chunk uses 2 blocks of 1 MB for its data and up to 3 more for derivatives, a transient chunk of
10^6 samples 2 blocks of 8 MB)."""

_pool: list[bytearray] = []
_pool_lock = threading.Lock()


def _give_back(memory: bytearray) -> None:
    with _pool_lock:
        _pool.append(memory)
        while sum(map(len, _pool)) > POOL_BYTES:
            _pool.pop(0)  # the oldest first: other chunk sizes


def pooled(shape: tuple[int, ...]) -> np.ndarray:
    """A C-contiguous, writable float64 array of ``shape`` (contents undefined).

    Its memory comes from the pool when a block of that size is free. The array is built on the
    block itself (its ``base`` is not an array), so any view of it keeps it alive, and the block
    returns to the pool only when the array and every view of it are gone. An array larger than
    :data:`POOL_BYTES` is allocated as usual.
    """
    nbytes = int(np.prod(shape, dtype=np.int64)) * 8
    if nbytes > POOL_BYTES:  # would evict every other block: not pooled
        return np.empty(shape)
    with _pool_lock:
        free = [i for i, m in enumerate(_pool) if len(m) == nbytes]
        memory = _pool.pop(free[-1]) if free else bytearray(nbytes)
    array = np.ndarray(shape, dtype=np.float64, buffer=memory)
    weakref.finalize(array, _give_back, memory).atexit = False
    return array
