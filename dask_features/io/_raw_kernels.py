"""Compiled loops of the raw chunk reader (:mod:`._raw`): checking stored chunks, placing decoded ones.

:func:`first_bad_chunk` checks the stored bytes of many chunks in one call: the zlib header HDF5's
deflate filter writes and, when the pipeline ends with ``fletcher32``, the checksum in each chunk's
last 4 bytes. :func:`place` un-shuffles the decoded chunks and writes the part of each that the
selection covers into the output in one pass, so neither step costs Python per chunk.

HDF5's Fletcher-32 (``H5_checksum_fletcher32``) reads big-endian 16-bit words (an odd last byte is
the high byte of a word whose low byte is 0) and keeps two running sums, ``sum1`` of the words and
``sum2`` of the successive ``sum1``, folding each with ``x -> (x & 0xffff) + (x >> 16)`` every 360
words and twice at the end. A fold keeps ``x`` modulo 65535 and is 0 only for 0, and the final value
fits in 16 bits, so each sum ends as the true (unbounded) sum ``S`` reduced to ``1..65535``: 0 when
``S`` is 0, i.e. when every byte is 0, else ``(S - 1) % 65535 + 1`` (65535, not 0, for a non-zero
multiple). :func:`fletcher32` computes that closed form, block by block (:data:`_BLOCK`). The
stored checksum is ``(sum2 << 16) | sum1``, little-endian.
"""

from __future__ import annotations

import numpy as np

from dask_features._compiled import kernel

__all__ = ["first_bad_chunk", "place"]

#: Words per block of :func:`fletcher32`: a block's sums of w_j and j * w_j (w_j < 2**16) fit in
#: 32 bits (sum(j for j < 256) * 65535 < 2**32).
_BLOCK = 256
#: First byte of a zlib stream with a 32 KiB window (what zlib's ``compress2``, used by HDF5's
#: deflate filter, writes); a smaller window could make zlib reject a stream libdeflate accepts.
_ZLIB_CMF = 0x78
#: Flag bit of a zlib stream that needs a preset dictionary (HDF5 never sets one).
_ZLIB_FDICT = 0x20


@kernel()
def fletcher32(raw: np.ndarray, start: int, size: int) -> int:
    """HDF5's Fletcher-32 of bytes ``raw[start:start + size]`` (see the module docstring)."""
    words = size // 2
    s1 = np.int64(0)
    s2 = np.int64(0)
    seen = np.uint32(0)
    i = 0
    while i < words:
        # Per block of m words w_j: sum1 grows by a = sum(w_j) and sum2 by m * sum1 + sum((m - j) w_j)
        # = m * sum1 + m * a - c with c = sum(j w_j): two reductions, vectorised in 32-bit lanes.
        m = min(words - i, _BLOCK)
        block = raw[start + 2 * i : start + 2 * (i + m)]
        a = np.uint32(0)
        c = np.uint32(0)
        seen_here = np.uint32(0)
        for j in range(m):
            w = (np.uint32(block[2 * j]) << np.uint32(8)) | np.uint32(block[2 * j + 1])
            a += w
            c += np.uint32(j) * w
            seen_here |= w
        s2 = (s2 + m * s1 + m * np.int64(a) - np.int64(c)) % 65535
        s1 = (s1 + np.int64(a)) % 65535
        seen |= seen_here
        i += m
    if size % 2:
        w = np.uint32(raw[start + size - 1]) << np.uint32(8)
        seen |= w
        s1 += np.int64(w)
        s2 += s1
    if seen == 0:
        return 0
    return int((((s2 - 1) % 65535 + 1) << 16) | ((s1 - 1) % 65535 + 1))


@kernel("i8(u1[::1], i8[::1], i8[::1], b1)")
def first_bad_chunk(raw: np.ndarray, starts: np.ndarray, sizes: np.ndarray, checksum: bool) -> int:
    """Index of the first stored chunk ``raw[starts[k]:starts[k] + sizes[k]]`` that fails a check,
    -1 if none does.

    Each must begin with the zlib header HDF5 writes (32 KiB window, no dictionary); with
    ``checksum``, its last 4 bytes must be the little-endian :func:`fletcher32` of the others.
    """
    for k in range(starts.size):
        p = starts[k]
        n = sizes[k] - 4 if checksum else sizes[k]
        if n < 2 or raw[p] != _ZLIB_CMF or raw[p + 1] & _ZLIB_FDICT:
            return k
        if checksum:
            q = p + n
            stored = (
                np.int64(raw[q])
                | (np.int64(raw[q + 1]) << 8)
                | (np.int64(raw[q + 2]) << 16)
                | (np.int64(raw[q + 3]) << 24)
            )
            if fletcher32(raw, p, n) != stored:
                return k
    return -1


@kernel("void(u1[::1], i8[:, ::1], i8[::1], i8[::1], f8[:, :, ::1], b1)")
def place(
    decoded: np.ndarray,
    origins: np.ndarray,
    chunk: np.ndarray,
    start: np.ndarray,
    out: np.ndarray,
    shuffled: bool,
) -> None:
    """Write the part of each decoded chunk inside the selection into ``out``.

    Parameters
    ----------
    decoded : ndarray of uint8
        The chunks' decoded bytes one after the other, each ``chunk.prod() * 8`` bytes: float64
        elements in C order of the chunk, byte-shuffled when ``shuffled`` (byte ``b`` of element
        ``e`` of a chunk of ``n`` elements at ``b * n + e``; HDF5's shuffle filter).
    origins : ndarray of int64, shape (chunks, 3)
        Dataset coordinates of each chunk's first element.
    chunk, start : ndarray of int64, shape (3,)
        Chunk shape; dataset coordinates of ``out[0, 0, 0]``.
    out : ndarray of float64, shape (n0, n1, n2)
        The selection, little-endian (the bytes are placed as stored).
    """
    c0, c1, c2 = chunk[0], chunk[1], chunk[2]
    n = c0 * c1 * c2
    n0, n1, n2 = out.shape
    dst = out.reshape(-1).view(np.uint64)
    for k in range(origins.shape[0]):
        base = k * n * 8
        o0, o1, o2 = origins[k, 0], origins[k, 1], origins[k, 2]
        lo0, hi0 = max(o0, start[0]), min(o0 + c0, start[0] + n0)
        lo1, hi1 = max(o1, start[1]), min(o1 + c1, start[1] + n1)
        lo2, hi2 = max(o2, start[2]), min(o2 + c2, start[2] + n2)
        run = hi2 - lo2
        for i0 in range(lo0, hi0):
            for i1 in range(lo1, hi1):
                e = ((i0 - o0) * c1 + (i1 - o1)) * c2 + (lo2 - o2)
                d = ((i0 - start[0]) * n1 + (i1 - start[1])) * n2 + (lo2 - start[2])
                if shuffled:
                    _unshuffle_run(decoded, base + e, n, dst[d : d + run])
                else:
                    _copy_run(decoded[base + 8 * e : base + 8 * (e + run)], dst[d : d + run])


@kernel()
def _unshuffle_run(decoded: np.ndarray, e: int, n: int, dst: np.ndarray) -> None:
    """``dst[j]`` = the element whose byte ``b`` is ``decoded[e + j + b * n]``: a run of a shuffled
    chunk of ``n`` elements (``e``: where its first element's lowest byte is).

    One contiguous slice per byte plane: the loop reads eight streams and vectorises."""
    run = dst.size
    p0, p1 = decoded[e : e + run], decoded[e + n : e + n + run]
    p2, p3 = decoded[e + 2 * n : e + 2 * n + run], decoded[e + 3 * n : e + 3 * n + run]
    p4, p5 = decoded[e + 4 * n : e + 4 * n + run], decoded[e + 5 * n : e + 5 * n + run]
    p6, p7 = decoded[e + 6 * n : e + 6 * n + run], decoded[e + 7 * n : e + 7 * n + run]
    for j in range(run):
        dst[j] = (
            np.uint64(p0[j])
            | (np.uint64(p1[j]) << np.uint64(8))
            | (np.uint64(p2[j]) << np.uint64(16))
            | (np.uint64(p3[j]) << np.uint64(24))
            | (np.uint64(p4[j]) << np.uint64(32))
            | (np.uint64(p5[j]) << np.uint64(40))
            | (np.uint64(p6[j]) << np.uint64(48))
            | (np.uint64(p7[j]) << np.uint64(56))
        )


@kernel()
def _copy_run(src: np.ndarray, dst: np.ndarray) -> None:
    """``dst[j]`` = the little-endian 64-bit word of bytes ``src[8 j:8 j + 8]``."""
    for j in range(dst.size):
        v = np.uint64(0)
        for b in range(8):
            v |= np.uint64(src[8 * j + b]) << np.uint64(8 * b)
        dst[j] = v
