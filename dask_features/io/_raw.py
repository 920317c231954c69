"""Reading a hyperslab of a deflated float64 dataset from its stored chunks, without HDF5's decoder.

``dsid.read`` inflates each chunk with zlib and un-shuffles and copies it through HDF5's generic
machinery: for the files oect-infra writes (float64, gzip + shuffle + fletcher32, small chunks)
that is about twice what reading the file needs. :func:`read_into` gives the same bytes another
way: it finds the chunks the selection needs (one ``chunk_iter`` listing, or a lookup per chunk when
it needs few of many), reads their stored bytes with a few ``preadv`` calls on the file's
descriptor, checks them all in one compiled pass (the zlib header and HDF5's Fletcher-32,
:mod:`._raw_kernels`), inflates each with libdeflate (the ``deflate`` package, which checks each
stream's Adler-32) and un-shuffles and places them into the output in one more pass.

Nothing is trusted that HDF5 would check: a chunk that fails a check, inflates with an error or to
another size, an offset that does not point at what HDF5 reads (compared on one chunk per dataset
identifier), a short read, any error listing the chunks, all make :func:`read_into` return False,
and the caller reads with ``dsid.read``, which raises HDF5's own error for a damaged file. It also
returns False, before reading any data, for any dataset HDF5 would decode otherwise:

- not chunked, not little-endian IEEE float64, or of rank above 3;
- a filter pipeline other than ``[deflate]``, ``[shuffle(8), deflate]``, ``[deflate, fletcher32]``
  or ``[shuffle(8), deflate, fletcher32]`` (HDF5's stored order);
- a chunk the selection needs that is not allocated (HDF5 would give the fill value) or was stored
  with a filter skipped (non-zero filter mask);
- a file not opened read-only, or with a driver other than sec2 (no plain descriptor);
- a chunk of more than :data:`PIECE_BYTES` decoded bytes, a chunk stored larger than zlib makes
  one, overlapping stored chunks, or an index listing other chunks than the selection's;
- the ``deflate`` package not importable, no ``os.preadv``, or a big-endian machine.

A large selection is read in pieces of at most :data:`PIECE_BYTES` decoded bytes, so memory stays
bounded whatever its size.
"""

from __future__ import annotations

import os
import sys
import weakref
from typing import Any

import h5py
import numpy as np

from dask_features._buffers import pooled
from dask_features.io import _raw_kernels as kernels

__all__ = ["PIECE_BYTES", "read_into"]


def _import_libdeflate() -> Any:
    """The ``deflate`` module (libdeflate), or None: without it every read takes ``dsid.read``."""
    try:
        import deflate
    except ImportError:
        return None
    return deflate


_libdeflate = _import_libdeflate()

#: Decoded bytes of the chunks handled at once (stored bytes are fewer): bounds the memory of a read.
PIECE_BYTES = 8 << 20
#: Stored chunks further apart in the file than this are read by separate calls, not one span.
_GAP = 64 << 10
#: Most bytes between stored chunks a piece reads along with them (then: separate calls).
_GAPS_READ = 1 << 20
#: Whether this system has ``os.preadv`` (not every one Python runs on does).
_PREADV = hasattr(os, "preadv")
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


#: A chunk list: origins (chunks, rank), file offsets [B], stored sizes [B], filter masks.
_Chunks = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class _Plan:
    """How to read one dataset identifier's chunks (see :func:`_plan`). A plain class: a dataclass
    would add ~0.5 ms to the first read's import."""

    __slots__ = ("allocated", "checksummed", "chunk", "every", "fd", "offsets_checked", "shuffled")

    def __init__(self, fd: int, chunk: np.ndarray, shuffled: bool, checksummed: bool, allocated: int) -> None:
        self.fd = fd
        self.chunk = chunk  # chunk shape (rank,)
        self.shuffled = shuffled
        self.checksummed = checksummed
        self.allocated = allocated  # chunks stored
        #: All chunks, listed by chunk_iter once a read needed many of them.
        self.every: _Chunks | None = None
        #: Whether one chunk's listed offset was found to be the descriptor's.
        self.offsets_checked = False


#: The plan of the dataset identifier read last (a weak reference to it, and the plan), so reads
#: of several hyperslabs of one dataset (Vg and Id, time and current) look it up once.
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
    plan = _Plan(
        fd=fid.get_vfd_handle(),
        chunk=np.array(dcpl.get_chunk(), dtype=np.int64),
        shuffled=pipeline[0],
        checksummed=pipeline[1],
        allocated=dsid.get_num_chunks(),
    )
    _LAST = (weakref.ref(dsid), plan)
    return plan


def _chunks(dsid: h5py.h5d.DatasetID, plan: _Plan, lo: np.ndarray, hi: np.ndarray) -> _Chunks | None:
    """The chunks the selection ``[lo, hi)`` touches, each once; None if one of them is not
    allocated (HDF5 gives the fill value) or the index lists something else.

    A read that needs most chunks lists them all with one ``chunk_iter`` (kept in the plan for the
    next read); one that needs a few (a slice of a large file) looks each up by its coordinates.
    """
    chunk = plan.chunk
    first, stop = lo // chunk, -(-hi // chunk)
    needed = int(np.prod(stop - first))
    if plan.every is None and 4 * needed < plan.allocated:
        cells = [tuple(((first + cell) * chunk).tolist()) for cell in np.ndindex(*(stop - first).tolist())]
        found = [dsid.get_chunk_info_by_coord(cell) for cell in cells]
        if any(
            info.byte_offset is None or info.chunk_offset != cell
            for info, cell in zip(found, cells, strict=True)
        ):
            return None
        return _listed(found)
    if plan.every is None:
        listed: list[Any] = []
        dsid.chunk_iter(listed.append)
        plan.every = _listed(listed)
    origins, offsets, sizes, masks = plan.every
    hit = np.all((origins < hi) & (origins + chunk > lo), axis=1)
    # Exactly the needed cells of the chunk grid, each once (every element of the selection is
    # then written), whatever a damaged index may list.
    if np.count_nonzero(hit) != needed or np.any(origins[hit] % chunk):
        return None
    cells = np.ravel_multi_index(tuple((origins[hit] // chunk - first).T), tuple((stop - first).tolist()))
    if not np.array_equal(np.sort(cells), np.arange(needed)):  # (np.unique imports numpy.ma: 20 ms)
        return None
    return origins[hit], offsets[hit], sizes[hit], masks[hit]


def _listed(found: list[Any]) -> _Chunks:
    """:data:`_Chunks` of h5py's ``StoreInfo`` records."""
    return (
        np.array([s.chunk_offset for s in found], dtype=np.int64),
        np.array([s.byte_offset for s in found], dtype=np.int64),
        np.array([s.size for s in found], dtype=np.int64),
        np.array([s.filter_mask for s in found], dtype=np.int64),
    )


def _as_rank3(values: tuple[int, ...] | np.ndarray, pad: int) -> np.ndarray:
    """``values`` (last axis of rank < 3) padded in front with ``pad`` to 3 entries."""
    a = np.asarray(values, dtype=np.int64)
    extra = 3 - a.shape[-1]
    widths = [(0, 0)] * (a.ndim - 1) + [(extra, 0)]
    return np.pad(a, widths, constant_values=pad) if extra else a


def read_into(dsid: h5py.h5d.DatasetID, out: np.ndarray, start: tuple[int, ...]) -> bool:
    """Fill ``out`` (native float64, C-contiguous, writable) from the hyperslab of its shape at
    ``start``, as ``dsid.read`` would, byte for byte.

    Returns
    -------
    bool
        True when done; False when this dataset, file or selection is not read this way or a
        check failed (see the module docstring): ``out`` may then be partly written, and the
        caller reads it with ``dsid.read``.
    """
    shape = dsid.shape
    rank = len(shape)
    if _libdeflate is None or not _PREADV or sys.byteorder != "little" or not 1 <= rank <= 3 or out.size == 0:
        return False
    flags = out.flags
    if (
        out.dtype != np.float64
        or out.ndim != rank
        or not (flags.c_contiguous and flags.writeable and flags.aligned)
    ):
        return False
    lo = np.array(start, dtype=np.int64)
    hi = lo + np.array(out.shape, dtype=np.int64)
    if lo.shape != (rank,) or np.any(lo < 0) or np.any(hi > np.array(shape)):
        return False
    try:
        plan = _plan(dsid)
        chunks = None if plan is None else _chunks(dsid, plan, lo, hi)
    except Exception:  # e.g. a damaged chunk index: dsid.read raises HDF5's own error
        return False
    if plan is None or chunks is None or np.any(chunks[3]):  # a filter skipped: HDF5 knows how
        return False
    order = np.argsort(chunks[1], kind="stable")
    origins, offsets, sizes = chunks[0][order], chunks[1][order], chunks[2][order]
    chunk = plan.chunk
    decoded = int(np.prod(chunk)) * 8
    per_piece = PIECE_BYTES // decoded
    # Overlapping chunks, or a chunk stored larger than zlib can make it: not what HDF5 wrote.
    if (
        per_piece == 0
        or np.any(offsets[1:] < offsets[:-1] + sizes[:-1])
        or np.any(sizes > _stored_bound(decoded))
    ):
        return False
    if not plan.offsets_checked:
        # The listed offsets must be the descriptor's (a user block would shift them): one chunk shows it.
        if not _first_chunk_matches(dsid, plan.fd, origins[0], int(offsets[0]), int(sizes[0])):
            return False
        plan.offsets_checked = True
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


def _stored_bound(decoded: int) -> int:
    """Most bytes zlib makes of ``decoded`` bytes (its ``compressBound``, with room to spare), plus
    the 4-byte checksum: a larger stored chunk is declined, so a damaged index never makes a read
    allocate more than its selection needs."""
    return decoded + (decoded >> 10) + 64


def _first_chunk_matches(
    dsid: h5py.h5d.DatasetID, fd: int, origin: np.ndarray, offset: int, size: int
) -> bool:
    """Whether the stored bytes at ``offset`` in the file are what HDF5 reads as the chunk at
    ``origin``: the listed offsets are the descriptor's (no user block shifts them)."""
    try:
        mask, stored = dsid.read_direct_chunk(tuple(int(x) for x in origin))
        return mask == 0 and len(stored) == size and os.pread(fd, size, offset) == stored
    except Exception:  # HDF5 cannot read it: dsid.read raises HDF5's own error
        return False


def _read_stored(fd: int, offsets: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The stored bytes of chunks sorted by file offset, read in runs of nearby chunks.

    Returns
    -------
    (raw, at) : ndarray of uint8 and ndarray of int64, or None
        The bytes read and where each chunk starts in them; None after a short read or an error.
    """
    ends = offsets + sizes
    gaps = offsets[1:] - ends[:-1]
    near = gaps <= _GAP
    near &= np.cumsum(np.where(near, gaps, 0)) <= _GAPS_READ  # bytes read in vain stay bounded
    breaks = np.flatnonzero(~near) + 1
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
