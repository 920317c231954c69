"""Reading a hyperslab of a deflated float64 dataset from its stored chunks, without HDF5's decoder.

``dsid.read`` inflates each chunk with zlib and un-shuffles and copies it through HDF5's generic
machinery: for the files oect-infra writes (float64, gzip + shuffle + fletcher32, small chunks)
that is about twice what reading the file needs. :func:`read_into` gives the same bytes another
way: it lists the chunks once (``chunk_iter``), reads their stored bytes with a few ``preadv``
calls on the file's descriptor, checks them all in one compiled pass (the zlib header and HDF5's
Fletcher-32, :mod:`._raw_kernels`), inflates each with libdeflate (the ``deflate`` package, which
checks each stream's Adler-32) and un-shuffles and places them into the output in one more pass.

Nothing is trusted that HDF5 would check: a chunk that fails a check, inflates with an error or to
another size, an offset that does not point at what HDF5 reads (compared on one chunk per read), a
short read, all make :func:`read_into` return False, and the caller reads with ``dsid.read``, which
raises HDF5's own error for a damaged file. It also returns False, before reading anything, for any
dataset HDF5 would decode otherwise:

- not chunked, not little-endian IEEE float64, or of rank above 3;
- a filter pipeline other than ``[deflate]``, ``[shuffle(8), deflate]``, ``[deflate, fletcher32]``
  or ``[shuffle(8), deflate, fletcher32]`` (HDF5's stored order);
- a chunk the selection needs that is not allocated (HDF5 would give the fill value) or was stored
  with a filter skipped (non-zero filter mask);
- a file not opened read-only, or with a driver other than sec2 (no plain descriptor);
- a chunk of more than :data:`PIECE_BYTES` decoded bytes, or overlapping stored chunks;
- the ``deflate`` package not importable, or a big-endian machine.

A large selection is read in pieces of at most :data:`PIECE_BYTES` decoded bytes, so memory stays
bounded whatever its size.
"""

from __future__ import annotations

import os
import sys
import weakref
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from dask_features._buffers import pooled
from dask_features.io import _raw_kernels as kernels


def _import_libdeflate() -> Any:
    """The ``deflate`` module (libdeflate), or None: without it every read takes ``dsid.read``."""
    try:
        import deflate
    except ImportError:
        return None
    return deflate


_libdeflate = _import_libdeflate()

__all__ = ["PIECE_BYTES", "read_into"]

#: Decoded bytes of the chunks handled at once (stored bytes are fewer): bounds the memory of a read.
PIECE_BYTES = 8 << 20
#: Stored chunks further apart in the file than this are read by separate calls, not one span.
_GAP = 64 << 10
#: Granularity of the scratch memory of a read [B] (see :func:`_scratch`).
_SCRATCH_UNIT = 64 << 10

_SHUFFLE = h5py.h5z.FILTER_SHUFFLE
_DEFLATE = h5py.h5z.FILTER_DEFLATE
_FLETCHER32 = h5py.h5z.FILTER_FLETCHER32
#: Accepted pipelines, in HDF5's stored order -> (shuffled, checksummed).
_PIPELINES: dict[tuple[int, ...], tuple[bool, bool]] = {
    (_DEFLATE,): (False, False),
    (_SHUFFLE, _DEFLATE): (True, False),
    (_DEFLATE, _FLETCHER32): (False, True),
    (_SHUFFLE, _DEFLATE, _FLETCHER32): (True, True),
}


def _pipeline(dcpl: h5py.h5p.PropDCID) -> tuple[bool, bool] | None:
    """(shuffled, checksummed) of an accepted filter pipeline, None for any other."""
    ids = []
    for i in range(dcpl.get_nfilters()):
        code, _flags, values, _name = dcpl.get_filter(i)
        if code == _SHUFFLE and tuple(values) != (8,):
            return None
        ids.append(code)
    return _PIPELINES.get(tuple(ids))


@dataclass(frozen=True)
class _Plan:
    """How to read a dataset's chunks: what :func:`_plan` found once for one dataset identifier."""

    fd: int
    chunk: np.ndarray  # chunk shape (rank,)
    shuffled: bool
    checksummed: bool
    origins: np.ndarray  # (chunks, rank): first element of each allocated chunk
    offsets: np.ndarray  # file offset of each stored chunk [B]
    sizes: np.ndarray  # stored size of each chunk [B]
    masks: np.ndarray  # filter mask of each chunk (0: every filter applied)


#: The plan of the dataset identifier read last (a weak reference to it, and the plan), so reads
#: of several hyperslabs of one dataset (Vg and Id, time and current) list its chunks once.
_LAST: tuple[weakref.ref[h5py.h5d.DatasetID], _Plan] | None = None


def _plan(dsid: h5py.h5d.DatasetID) -> _Plan | None:
    """The dataset's :class:`_Plan`, None when it is not read this way (see the module docstring)."""
    global _LAST
    last = _LAST
    if last is not None and last[0]() is dsid:
        return last[1]
    dcpl = dsid.get_create_plist()
    if dcpl.get_layout() != h5py.h5d.CHUNKED or not dsid.get_type().equal(h5py.h5t.IEEE_F64LE):
        return None
    pipeline = _pipeline(dcpl)
    if pipeline is None:
        return None
    fid = h5py.h5i.get_file_id(dsid)
    # Read-only: no chunk modified in HDF5's cache and not yet on disk. sec2: a plain descriptor.
    if fid.get_intent() != h5py.h5f.ACC_RDONLY or fid.get_access_plist().get_driver() != h5py.h5fd.SEC2:
        return None
    found: list[Any] = []
    dsid.chunk_iter(found.append)
    if not found:
        return None
    plan = _Plan(
        fd=fid.get_vfd_handle(),
        chunk=np.array(dcpl.get_chunk(), dtype=np.int64),
        shuffled=pipeline[0],
        checksummed=pipeline[1],
        origins=np.array([s.chunk_offset for s in found], dtype=np.int64),
        offsets=np.array([s.byte_offset for s in found], dtype=np.int64),
        sizes=np.array([s.size for s in found], dtype=np.int64),
        masks=np.array([s.filter_mask for s in found], dtype=np.int64),
    )
    # The listed offsets must be the descriptor's (a user block would shift them): one chunk shows it.
    if not _first_chunk_matches(dsid, plan.fd, plan.origins[0], int(plan.offsets[0]), int(plan.sizes[0])):
        return None
    _LAST = (weakref.ref(dsid), plan)
    return plan


def _as_rank3(values: tuple[int, ...] | np.ndarray, pad: int) -> np.ndarray:
    """``values`` (last axis of rank < 3) padded in front with ``pad`` to 3 entries."""
    a = np.asarray(values, dtype=np.int64)
    extra = 3 - a.shape[-1]
    widths = [(0, 0)] * (a.ndim - 1) + [(extra, 0)]
    return np.pad(a, widths, constant_values=pad) if extra else a


def read_into(dsid: h5py.h5d.DatasetID, out: np.ndarray, start: tuple[int, ...]) -> bool:
    """Fill ``out`` (float64, C-contiguous) from the hyperslab of its shape at ``start``, as
    ``dsid.read`` would, byte for byte.

    Returns
    -------
    bool
        True when done; False when this dataset, file or selection is not read this way or a
        check failed (see the module docstring): ``out`` may then be partly written, and the
        caller reads it with ``dsid.read``.
    """
    shape = dsid.shape
    rank = len(shape)
    if _libdeflate is None or sys.byteorder != "little" or not 1 <= rank <= 3 or out.size == 0:
        return False
    if out.dtype != np.float64 or not out.flags.c_contiguous or out.ndim != rank:
        return False
    lo = np.array(start, dtype=np.int64)
    hi = lo + np.array(out.shape, dtype=np.int64)
    if lo.shape != (rank,) or np.any(lo < 0) or np.any(hi > np.array(shape)):
        return False
    plan = _plan(dsid)
    if plan is None:
        return False
    chunk = plan.chunk
    hit = np.all((plan.origins < hi) & (plan.origins + chunk > lo), axis=1)
    # Every chunk of the grid the selection touches must be allocated (else: the fill value).
    expected = np.prod(-(-hi // chunk) - lo // chunk)
    if np.count_nonzero(hit) != expected or np.any(plan.masks[hit]):
        return False
    offsets = plan.offsets[hit]
    order = np.argsort(offsets, kind="stable")
    origins, offsets, sizes = plan.origins[hit][order], offsets[order], plan.sizes[hit][order]
    if np.any(offsets[1:] < offsets[:-1] + sizes[:-1]):
        return False
    decoded = int(np.prod(chunk)) * 8
    per_piece = PIECE_BYTES // decoded
    if per_piece == 0:
        return False
    out3 = out.reshape(_as_rank3(out.shape, 1).tolist())
    chunk3, lo3, origins3 = _as_rank3(chunk, 1), _as_rank3(lo, 0), _as_rank3(origins, 0)
    trailer = 4 if plan.checksummed else 0
    for a in range(0, len(offsets), per_piece):
        b = a + per_piece
        stored = _read_stored(plan.fd, offsets[a:b], sizes[a:b])
        if stored is None or kernels.first_bad_chunk(*stored, sizes[a:b], plan.checksummed) >= 0:
            return False
        parts = _inflate(*stored, sizes[a:b] - trailer, decoded)
        if parts is None:
            return False
        kernels.place(parts, np.ascontiguousarray(origins3[a:b]), chunk3, lo3, out3, plan.shuffled)
    return True


def _first_chunk_matches(
    dsid: h5py.h5d.DatasetID, fd: int, origin: np.ndarray, offset: int, size: int
) -> bool:
    """Whether the stored bytes at ``offset`` in the file are what HDF5 reads as the chunk at
    ``origin``: the listed offsets are the descriptor's (no user block shifts them)."""
    try:
        mask, stored = dsid.read_direct_chunk(tuple(int(x) for x in origin))
        return mask == 0 and len(stored) == size and os.pread(fd, size, offset) == stored
    except (OSError, ValueError):
        return False


def _read_stored(fd: int, offsets: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The stored bytes of chunks sorted by file offset, read in runs of nearby chunks.

    Returns
    -------
    (raw, at) : ndarray of uint8 and ndarray of int64, or None
        The bytes read and where each chunk starts in them; None after a short read or an error.
    """
    ends = offsets + sizes
    breaks = np.flatnonzero(offsets[1:] - ends[:-1] > _GAP) + 1
    first = np.concatenate([[0], breaks])
    last = np.concatenate([breaks, [len(offsets)]]) - 1
    span = ends[last] - offsets[first]
    base = np.concatenate([[0], np.cumsum(span)[:-1]])
    raw = _scratch(int(span.sum()))
    view = memoryview(raw.data)
    for f, s, b in zip(first.tolist(), span.tolist(), base.tolist(), strict=True):
        try:
            if os.preadv(fd, [view[b : b + s]], int(offsets[f])) != s:
                return None
        except OSError:
            return None
    at = np.repeat(base - offsets[first], last - first + 1) + offsets
    return raw, at


def _inflate(raw: np.ndarray, at: np.ndarray, lengths: np.ndarray, decoded: int) -> np.ndarray | None:
    """The zlib streams ``raw[at[k]:at[k] + lengths[k]]`` inflated one after the other (uint8), or
    None if one fails (libdeflate checks its Adler-32) or is not ``decoded`` bytes long."""
    source = memoryview(raw.data)
    out = _scratch(decoded * len(at))
    target = memoryview(out.data)
    inflate = _libdeflate.zlib_decompress
    try:
        for k, (p, n) in enumerate(zip(at.tolist(), lengths.tolist(), strict=True)):
            # A stream inflating to fewer bytes makes the sizes differ: ValueError.
            target[k * decoded : (k + 1) * decoded] = inflate(source[p : p + n], decoded)
    except (_libdeflate.DeflateError, ValueError):
        return None
    return out


def _scratch(nbytes: int) -> np.ndarray:
    """``nbytes`` of pooled memory (:func:`~dask_features._buffers.pooled`) as uint8: read into
    with no page faults. Sizes are rounded up to 64 kB, so reads of similar size share blocks."""
    blocks = -(-nbytes // _SCRATCH_UNIT) * (_SCRATCH_UNIT // 8)
    return pooled((blocks,)).view(np.uint8)[:nbytes]
