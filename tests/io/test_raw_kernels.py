"""The raw reader's compiled checks: HDF5's Fletcher-32, bit for bit, and the zlib header check."""

from __future__ import annotations

import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from dask_features.io import _raw_kernels as kernels


def _hdf5_fletcher32(data: bytes) -> int:
    """``H5_checksum_fletcher32`` as HDF5 writes it: 16-bit big-endian words, both sums folded
    every 360 words and twice at the end, an odd last byte the high byte of a last word."""
    sum1 = sum2 = 0
    words = len(data) // 2
    i = 0
    while words:
        block = min(words, 360)
        words -= block
        for _ in range(block):
            sum1 += (data[i] << 8) | data[i + 1]
            sum2 += sum1
            i += 2
        sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
        sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    if len(data) % 2:
        sum1 += data[i] << 8
        sum2 += sum1
        sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
        sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    sum1 = (sum1 & 0xFFFF) + (sum1 >> 16)
    sum2 = (sum2 & 0xFFFF) + (sum2 >> 16)
    return (sum2 << 16) | sum1


def _bytes(kind: str, n: int) -> bytes:
    rng = np.random.default_rng(n)
    if kind == "random":
        return rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    if kind == "zeros":
        return bytes(n)
    if kind == "ones":  # every word 0xffff: each sum a non-zero multiple of 65535
        return b"\xff" * n
    if kind == "zero-tail":  # one non-zero byte, then zeros
        return b"\x01" + bytes(n - 1) if n else b""
    raise AssertionError(kind)


SIZES = [0, 1, 2, 3, 719, 720, 721, 722, 4097, 131_071, 131_072, 300_001]


def _checked(data: bytes, checksum: int) -> int:
    """:func:`first_bad_chunk` of one stored chunk: a zlib header, ``data``, then ``checksum``."""
    stored = b"\x78\x9c" + data
    raw = np.frombuffer(b"pad" + stored + checksum.to_bytes(4, "little"), dtype=np.uint8).copy()
    return kernels.first_bad_chunk(raw, np.array([3]), np.array([len(stored) + 4]), True)


@pytest.mark.parametrize("kind", ["random", "zeros", "ones", "zero-tail"])
@pytest.mark.parametrize("n", SIZES)
def test_fletcher32_is_hdf5s_definition(kind: str, n: int) -> None:
    data = _bytes(kind, n)
    expected = _hdf5_fletcher32(b"\x78\x9c" + data)
    assert _checked(data, expected) == -1
    assert _checked(data, expected ^ 1) == 0
    assert _checked(data, expected ^ 0x10000) == 0


@pytest.mark.parametrize("kind", ["random", "zeros", "ones"])
@pytest.mark.parametrize("n", [1, 7, 8, 721, 5000])
def test_the_definition_is_what_hdf5_stores(kind: str, n: int, tmp_path: Path) -> None:
    """HDF5 appends the checksum little-endian to each chunk (fletcher32 alone: the chunk is the data)."""
    with h5py.File(tmp_path / "f.h5", "w") as f:
        ds = f.create_dataset(
            "d", data=np.frombuffer(_bytes(kind, n), np.uint8), chunks=(n,), fletcher32=True
        )
        _mask, stored = ds.id.read_direct_chunk((0,))
    assert len(stored) == n + 4
    assert _hdf5_fletcher32(stored[:n]) == int.from_bytes(stored[n:], "little")


def _stored(chunks: list[bytes], checksum: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = [zlib.compress(c, 4) for c in chunks]
    if checksum:
        parts = [p + _hdf5_fletcher32(p).to_bytes(4, "little") for p in parts]
    raw = np.frombuffer(b"".join(parts), dtype=np.uint8).copy()
    sizes = np.array([len(p) for p in parts], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return raw, starts, sizes


@pytest.mark.parametrize("checksum", [True, False])
def test_first_bad_chunk(checksum: bool) -> None:
    chunks = [_bytes("random", 800), bytes(800), _bytes("ones", 801)]
    raw, starts, sizes = _stored(chunks, checksum)
    assert kernels.first_bad_chunk(raw, starts, sizes, checksum) == -1
    damaged = raw.copy()
    damaged[starts[1] + sizes[1] // 2] ^= 0x10
    assert kernels.first_bad_chunk(damaged, starts, sizes, checksum) == (1 if checksum else -1)
    damaged = raw.copy()
    damaged[starts[2]] = 0x58  # a zlib header with an 8 KiB window
    assert kernels.first_bad_chunk(damaged, starts, sizes, checksum) == 2
    damaged = raw.copy()
    damaged[starts[0] + 1] |= 0x20  # preset dictionary
    assert kernels.first_bad_chunk(damaged, starts, sizes, checksum) == 0
