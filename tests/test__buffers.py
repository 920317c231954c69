"""Pooled chunk memory: reused only once its array and every view of it are gone, bounded."""

from __future__ import annotations

import numpy as np
import pytest

from dask_features import _buffers


@pytest.fixture(autouse=True)
def empty_pool() -> None:
    _buffers._pool.clear()


def test_memory_returns_only_when_every_view_is_gone() -> None:
    a = _buffers.pooled((4, 5))
    assert a.shape == (4, 5)
    assert a.dtype == np.float64
    assert a.flags.c_contiguous
    assert a.flags.writeable
    view = a.reshape(2, 10)[1]
    del a
    assert not _buffers._pool  # the view still uses it
    b = _buffers.pooled((4, 5))
    b[...] = 1.0
    view[...] = 2.0
    assert (b == 1.0).all()  # a different block
    del view
    assert len(_buffers._pool) == 1
    del b
    assert len(_buffers._pool) == 2


def test_a_freed_block_of_the_same_size_is_reused() -> None:
    a = _buffers.pooled((3, 7))
    memory = a.base
    del a
    b = _buffers.pooled((7, 3))
    assert b.base is memory
    c = _buffers.pooled((3, 8))
    assert c.base is not memory


def test_the_pool_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_buffers, "POOL_BYTES", 1000)
    arrays = [_buffers.pooled((50,)) for _ in range(4)]  # 400 B each
    del arrays
    assert sum(map(len, _buffers._pool)) <= 1000
    big = _buffers.pooled((200,))  # larger than the pool: allocated as usual
    assert not isinstance(big.base, bytearray)
    del big
    assert all(len(m) == 400 for m in _buffers._pool)
