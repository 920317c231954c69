"""Reading a chunk's samples straight into arrays of its own, with +-inf replaced by NaN.

The general way (``h5py.Dataset`` slicing, then :func:`~dask_features.io._layout.finite_or_nan`
on each row) allocates the block read, then copies each strided row out of it into another fresh
array. When the file stores native float64 (what oect-infra writes), HDF5 can instead write the
stored bytes directly into the final arrays: Vg and Id of a transfer chunk each into an ``(n, m)``
array of :func:`~dask_features._buffers.pooled` memory, a transient row into a flat one. The
values are the same bytes either way; +-inf is then replaced by NaN in place, as
:func:`~dask_features.io._layout.finite_or_nan` does on its copy. Where the storage allows (gzip,
with or without shuffle and fletcher32: what oect-infra writes), the bytes come from the stored
chunks decoded by :mod:`dask_features.io._raw` rather than by HDF5, the same bytes faster; any
other storage, and any chunk failing a check, is read by HDF5.

Each function returns None when the dataset is not one it reads this way (another stored type, an
unexpected shape, a range outside the data): the caller then takes the general way, which keeps its
errors and conversions.
"""

from __future__ import annotations

import h5py
import numpy as np

from dask_features._buffers import pooled

__all__ = ["RAW_CHUNKS", "inf_to_nan", "preload", "samples_row", "transfer_rows"]

#: Whether reads try the raw chunk reader (:func:`dask_features.io._raw.read_into`) first; False
#: leaves every read to HDF5 (for comparisons; the values are the same either way).
RAW_CHUNKS = True


def inf_to_nan(values: np.ndarray) -> np.ndarray:
    """``values`` (float64, owned by the caller) with +-inf replaced by NaN in place."""
    inf = np.isinf(values)
    if inf.any():
        values[inf] = np.nan
    return values


def _native_double(dsid: h5py.h5d.DatasetID) -> bool:
    """Whether the dataset stores native float64: read with no conversion, byte for byte."""
    return bool(dsid.get_type().equal(h5py.h5t.NATIVE_DOUBLE))


def preload() -> None:
    """Import the raw chunk reader (libdeflate, its kernels) now instead of at the first read."""
    if RAW_CHUNKS:
        from dask_features.io import _raw  # noqa: F401


def _read(dsid: h5py.h5d.DatasetID, out: np.ndarray, start: tuple[int, ...]) -> None:
    """Fill ``out`` from the hyperslab of its shape at ``start`` (same rank as the dataset): from
    the stored chunks (:mod:`._raw`) when :data:`RAW_CHUNKS` and that reader can, else by HDF5."""
    if RAW_CHUNKS:
        from dask_features.io import _raw  # its kernels and libdeflate load on the first read only

        if _raw.read_into(dsid, out, start):
            return
    fspace = dsid.get_space()
    fspace.select_hyperslab(start, out.shape)
    dsid.read(h5py.h5s.create_simple(out.shape), fspace, out, mtype=h5py.h5t.NATIVE_DOUBLE)


def transfer_rows(dsid: h5py.h5d.DatasetID, start: int, stop: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Vg and Id [as stored] of steps ``[start, stop)`` of ``transfer/measurement_data``.

    Returns
    -------
    (vg, id) : tuple of ndarray of float64, shape (stop - start, max_points), or None
        Contiguous pooled arrays, +-inf replaced by NaN; None: read it the general way (see the
        module docstring).
    """
    shape = dsid.shape
    if len(shape) != 3 or shape[1] != 2 or not 0 <= start < stop <= shape[0] or shape[2] == 0:
        return None
    if not _native_double(dsid):
        return None
    n, m = stop - start, shape[2]
    vg, cur = pooled((n, m)), pooled((n, m))
    dcpl = dsid.get_create_plist()
    if dcpl.get_layout() == h5py.h5d.CHUNKED and dcpl.get_chunk()[1] == 1:
        # Vg and Id live in chunks of their own: each read decompresses only its own chunks.
        _read(dsid, vg.reshape(n, 1, m), (start, 0, 0))
        _read(dsid, cur.reshape(n, 1, m), (start, 1, 0))
    else:
        # A chunk holds both rows: one read, or each chunk would be decompressed twice.
        block = pooled((n, 2, m))
        _read(dsid, block, (start, 0, 0))
        np.copyto(vg, block[:, 0, :])
        np.copyto(cur, block[:, 1, :])
    return inf_to_nan(vg), inf_to_nan(cur)


def samples_row(dsid: h5py.h5d.DatasetID, row: int, lo: int, hi: int) -> np.ndarray | None:
    """Samples ``[lo, hi)`` of row ``row`` of a ``(rows, total_points)`` dataset.

    Returns
    -------
    ndarray of float64, shape (hi - lo,), or None
        A contiguous pooled array, +-inf replaced by NaN; None: read it the general way (see the
        module docstring).
    """
    shape = dsid.shape
    if len(shape) != 2 or not 0 <= row < shape[0] or not 0 <= lo < hi <= shape[1]:
        return None
    if not _native_double(dsid):
        return None
    out = pooled((hi - lo,))
    _read(dsid, out.reshape(1, hi - lo), (row, lo))
    return inf_to_nan(out)
