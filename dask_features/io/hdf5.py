"""The handle on a raw experiment HDF5 file written by oect-infra (``2.0_*new_storage``).

:func:`~dask_features.io.opening.open_experiment` checks a file once and returns an
:class:`Experiment`: a small, picklable handle (path + metadata; an open ``h5py`` file only while
lent, never pickled) that Dask tasks receive and use to read exactly the hyperslab of steps they
need with :meth:`Experiment.read_transfer` and :meth:`Experiment.read_transient`. Files are opened
inside those calls and closed at once, so the handle can cross process boundaries and no task holds
a file open; the one exception, a task that opens and checks a file itself, lends that open file to
its first read (:meth:`Experiment.lend`) and closes it when its experiment is done.

Layout (see the project's oect-infra reference, section 1)::

    /                       attrs: format_version, chip_id, device_number, test_id, ...
    raw/json, raw/workflow  scalar strings (optional)
    transfer/measurement_data   float64 (n_steps, 2, max_points): [:, 0] Vg, [:, 1] Id, NaN-padded
    transfer/step_info_table    compound, one row per step
    transient/measurement_data  float64 (3, total_points): continuous_time, original_time, drain_current
    transient/step_info_table   compound, one row per step, [start_data_index, end_data_index)
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from dask_features.errors import MissingGroupError, StepRangeError
from dask_features.io import _layout as layout
from dask_features.io import _read
from dask_features.io._safety import OPTIONAL_PATHS, TRANSIENT_PATHS, allowed_folder, check_storage
from dask_features.io.chunks import ChunkMeta, TransferChunk, TransientChunk
from dask_features.io.workflow import (
    WorkflowStep,
    expand_workflow,
    timing_from_ms,
    transient_timing,
)

if TYPE_CHECKING:
    import pandas as pd  # imported where a table is built: opening and reading files never need it

__all__ = ["Experiment", "remember_checked"]

logger = logging.getLogger(__name__)

#: Files whose storage this process has checked: (path, mtime [ns], size [B], inode, allowed folder).
_CHECKED: set[tuple[str, int, int, int, str]] = set()
#: Files whose transient index this process has checked: (path, mtime [ns], size [B], inode).
_INDEX_CHECKED: set[tuple[str, int, int, int]] = set()

_TIMING_COLUMNS = ("param_topTime", "param_bottomTime", "param_timeStep")
#: Where :meth:`Experiment.lend` keeps the lent file: an instance attribute that is no dataclass
#: field, so it is neither pickled, compared nor hashed.
_LENT = "_lent_file"


@dataclass(frozen=True)
class Experiment:
    """Handle on one experiment file: metadata only, safe to pickle into Dask tasks.

    Create it with :func:`open_experiment`. Attribute values are decoded to Python types whatever
    the writer used (bytes or str attributes, numeric ids).

    Attributes
    ----------
    path : str
        Absolute path of the HDF5 file.
    format_version : str
        ``"2.0_direct_new_storage"`` (serial writer) or ``"2.0_new_storage"`` (parallel writer).
    chip_id, device_id, test_id, description : str
        Identifiers (``device_id`` is the file's ``device_number``); ``""`` when absent.
    status, created_at, completed_at : str or None
        Run status and ISO 8601 timestamps as recorded.
    device_type : {"N", "P"} or None
        Device polarity from the ``device_type`` attribute, None when not recorded.
    n_transfer_steps, n_transient_steps : int
        Number of steps of each kind.
    transfer_max_points : int
        Padded length of a transfer sweep.
    transient_total_points : int
        Samples of all transient steps together.
    has_transient_index : bool
        Whether the transient step table has ``start_data_index``/``end_data_index``.
    attrs : dict
        All root attributes, decoded.
    workflow_tree : list or None
        The parsed ``raw/workflow`` JSON (loops not expanded); see :attr:`workflow`.
    file_size : int
        File size [bytes] when opened.
    file_mtime_ns : int
        Modification time [ns since the epoch] when opened.
    problems : tuple of str
        Non-fatal findings (e.g. an invalid workflow); the data stay readable.
    external_in : str or None
        The folder external data was allowed to resolve into when the file was checked (``""``:
        none; ``None``: the reading process's ``DASK_FEATURES_ALLOW_EXTERNAL_IN``); a process that
        receives the handle checks the file again against it before reading.
    transient_index_checked : bool
        Whether the transient step ranges were checked against the data when the file was opened
        (skipped when the opener reads no transient data); if not, they are checked before the
        first transient read.
    transient_unavailable : str or None
        Why the transient data cannot be read (a link to them that cannot be followed, naming the
        link and its target), None when they can (or the file has none). The handle then has no
        transient steps, the reason is among :attr:`problems`, and its transient reads raise
        ``MissingGroupError``.
    """

    path: str
    format_version: str
    chip_id: str
    device_id: str
    test_id: str
    description: str
    status: str | None
    created_at: str | None
    completed_at: str | None
    device_type: str | None
    n_transfer_steps: int
    n_transient_steps: int
    transfer_max_points: int
    transient_total_points: int
    has_transient_index: bool
    attrs: dict[str, Any] = field(repr=False)
    workflow_tree: list[dict[str, Any]] | None = field(default=None, repr=False)
    file_size: int = 0
    file_mtime_ns: int = 0
    problems: tuple[str, ...] = ()
    external_in: str | None = field(default=None, repr=False)
    transient_index_checked: bool = field(default=False, repr=False, compare=False)
    transient_unavailable: str | None = None
    # Step boundaries inferred for files without index columns (None when the table has them).
    _inferred_offsets: tuple[int, ...] | None = field(default=None, repr=False)

    def __hash__(self) -> int:
        return hash((self.path, self.file_mtime_ns, self.file_size))

    def __getstate__(self) -> dict[str, Any]:
        # Drop cached_property values (e.g. the expanded workflow) so the pickled handle stays small.
        return {f: self.__dict__[f] for f in self.__dataclass_fields__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # --- metadata -----------------------------------------------------------------------------

    @functools.cached_property
    def workflow(self) -> tuple[WorkflowStep, ...] | None:
        """The executed steps with loops expanded, or None when the file has no usable workflow."""
        if self.workflow_tree is None:
            return None
        return tuple(expand_workflow(self.workflow_tree))

    @property
    def name(self) -> str:
        """Short label for messages and progress: the file name."""
        return os.path.basename(self.path)

    def transfer_table(self, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        """The transfer ``step_info_table`` rows ``[start, stop)``, strings decoded to ``str``."""
        return self._table("transfer", start, stop)

    def transient_table(self, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        """The transient ``step_info_table`` rows ``[start, stop)``, strings decoded to ``str``."""
        return self._table("transient", start, stop)

    def _table(self, group: str, start: int, stop: int | None) -> pd.DataFrame:
        if group == "transient":
            self._check_transient()
        with self._open() as f:
            ds = layout.dataset(f, self.path, f"{group}/step_info_table")
            rows = ds[start:stop]
        return layout.decode_table(rows)

    # --- chunk reads --------------------------------------------------------------------------

    def lend(self, f: h5py.File, objects: Mapping[str, Any]) -> None:
        """Keep ``f``, the file this handle was checked on, open for the first read in this process.

        The opener checked ``f`` just before (its storage included) and opened ``objects`` in it
        (what :func:`~dask_features.io._safety.check_storage` returns): the first read uses them
        instead of opening and looking up the file again, and closes ``f`` when done. Never pickled
        (a handle sent elsewhere opens the file itself); :meth:`release` closes ``f`` if no read
        took it.
        """
        self.__dict__[_LENT] = (f, objects)

    def release(self) -> None:
        """Close the file lent by :meth:`lend`, if no read has taken it yet."""
        lent = self.__dict__.pop(_LENT, None)
        if lent is not None:
            f = lent[0]
            lent = None  # its objects released before the file closes (see layout.close_file)
            layout.close_file(f)

    def _take(self, *, transient: bool = False) -> tuple[h5py.File, layout.Opened]:
        """:meth:`_open`, or the file lent by :meth:`lend` and the objects opened in it (taken:
        the caller closes it)."""
        lent = self.__dict__.pop(_LENT, None)
        if lent is not None:
            f, objects = lent
            if f.id.valid and (not transient or self.transient_index_checked):
                return f, objects
            lent = objects = None  # released before the file closes (see layout.close_file)
            layout.close_file(f)  # closed meanwhile, or transient ranges unchecked: open and check
        return self._open(transient=transient), None

    def _open(self, *, transient: bool = False) -> h5py.File:
        """The file, open for reading, its storage checked; ``transient=True``: also its transient
        step ranges, when they were not checked at opening (once per process and file version)."""
        try:
            st = os.stat(self.path)
            f = layout.open_file(self.path)
        except OSError as exc:
            raise layout.classify_open_error(self.path, exc) from None
        allowed = allowed_folder(self.external_in)
        key = (self.path, st.st_mtime_ns, st.st_size, st.st_ino)
        try:
            if (*key, allowed) not in _CHECKED:
                # A handle pickled to another process (a worker reading a chunk), or a file replaced
                # since it was checked: refuse external data again before anything is read. Transient
                # data behind a broken link stop only transient reads (the check is then not
                # remembered, so a transient read checks again and names the link).
                skipped: dict[str, Any] = {}
                optional = OPTIONAL_PATHS if transient else OPTIONAL_PATHS | TRANSIENT_PATHS
                check_storage(f, self.path, allowed, skipped=skipped, optional=optional)
                if not skipped.keys() & TRANSIENT_PATHS:
                    _CHECKED.add((*key, allowed))
            if transient and not self.transient_index_checked and key not in _INDEX_CHECKED:
                # Opened for transfer data only: no sample range is used before it is checked.
                layout.check_transient(f, self.path)
                _INDEX_CHECKED.add(key)
        except BaseException:
            f.close()
            raise
        return f

    def _check_transient(self) -> None:
        """Raise MissingGroupError, naming the link, when the transient data cannot be read."""
        if self.transient_unavailable is not None:
            raise MissingGroupError(self.path, self.transient_unavailable)

    def _check_range(self, kind: str, start: int, stop: int, n: int) -> None:
        if not 0 <= start <= stop <= n:
            raise StepRangeError(f"{self.path}: {kind} steps [{start}, {stop}) outside [0, {n})")

    def _meta(self) -> ChunkMeta:
        return ChunkMeta(path=self.path, test_id=self.test_id, device_type=self.device_type, attrs=self.attrs)

    def read_transfer(self, start: int, stop: int) -> TransferChunk:
        """Read transfer steps ``[start, stop)``: only that hyperslab is read from disk.

        Returns
        -------
        TransferChunk
            ``vg`` [V] and ``id`` [A] of shape (stop - start, max_points), NaN-padded, with per-step
            valid ``lengths``. The arrays are the chunk's own (float64, C-contiguous, writable):
            their memory is reused by a later read only once they and every view of them are gone.
        """
        self._check_range("transfer", start, stop, self.n_transfer_steps)
        f, objects = self._take()
        try:
            dsid = layout.dataset_id(f, self.path, "transfer/measurement_data", objects)
            objects = None
            rows = _read.transfer_rows(dsid, start, stop)
            if rows is None:  # another stored type or shape: h5py converts, finite_or_nan copies
                data = h5py.Dataset(dsid)[start:stop]
                rows = layout.finite_or_nan(data[:, 0, :]), layout.finite_or_nan(data[:, 1, :])
            dsid = None  # released before the file closes (see layout.close_file)
        finally:
            objects = None
            layout.close_file(f)
        vg, cur = rows
        return TransferChunk(
            step_index=np.arange(start, stop, dtype=np.int64),
            vg=vg,
            id=cur,
            lengths=_lengths(vg, cur),
            meta=self._meta(),
        )

    def transient_bounds(self, start: int, stop: int) -> np.ndarray:
        """Sample ranges of transient steps ``[start, stop)`` as an (n, 2) array of [begin, end)."""
        self._check_transient()
        self._check_range("transient", start, stop, self.n_transient_steps)
        with self._open(transient=True) as f:
            return self._bounds(layout.dataset(f, self.path, "transient/step_info_table"), start, stop)

    def _bounds(self, table: h5py.Dataset, start: int, stop: int) -> np.ndarray:
        """:meth:`transient_bounds`: the ones inferred when the file was opened, else read from
        ``table``, the step table of a file opened with ``transient=True`` (looked up once by
        :meth:`read_transient` for these and its timing columns)."""
        if self._inferred_offsets is not None:
            off = np.asarray(self._inferred_offsets[start : stop + 1], dtype=np.int64)
            return np.column_stack([off[:-1], off[1:]])
        rows = table.fields(list(layout.INDEX_COLUMNS))[start:stop]
        return np.column_stack([rows[c].astype(np.int64) for c in layout.INDEX_COLUMNS]).reshape(-1, 2)

    def read_transient(self, start: int, stop: int) -> TransientChunk:
        """Read transient steps ``[start, stop)``: only their table rows and sample range are read.

        Returns
        -------
        TransientChunk
            Flat ``time`` [s] (``continuous_time``) and ``current`` [A] with CSR ``offsets``, plus
            per-step ``period`` [s], ``time_step`` [s] and ``duty`` from the step parameters, or from
            the workflow when the table has none (NaN when neither says).
        """
        self._check_transient()
        self._check_range("transient", start, stop, self.n_transient_steps)
        n = stop - start
        # One opening for the bounds and the samples: they come from the same version of the file.
        f, objects = self._take(transient=True)
        try:
            bounds, timing, lo, t, y = self._transient_samples(f, objects, start, stop)
        finally:
            objects = None  # released before the file closes (see layout.close_file)
            layout.close_file(f)
        lengths = bounds[:, 1] - bounds[:, 0]
        contiguous = n == 0 or bool(np.all(bounds[1:, 0] == bounds[:-1, 1]))
        if not contiguous:  # steps listed out of file order: gather them in table order
            idx = np.concatenate([np.arange(a, b) for a, b in bounds - lo]) if n else np.zeros(0, np.int64)
            t, y = t[idx], y[idx]
        period, time_step, duty = self._transient_timing(start, stop, timing)
        return TransientChunk(
            step_index=np.arange(start, stop, dtype=np.int64),
            time=t,  # float64, contiguous, +-inf replaced by NaN: by either read above
            current=y,
            offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            period=period,
            time_step=time_step,
            duty=duty,
            meta=self._meta(),
        )

    def _transient_samples(
        self, f: h5py.File, objects: layout.Opened, start: int, stop: int
    ) -> tuple[np.ndarray, np.ndarray | None, int, np.ndarray, np.ndarray]:
        """:meth:`read_transient` in the open file ``f``: the steps' sample ranges, their timing
        columns (None without any), the first sample read, and the time and current samples read
        from it. Its h5py objects are released on return, before ``f`` closes."""
        table = h5py.Dataset(layout.dataset_id(f, self.path, "transient/step_info_table", objects))
        bounds = self._bounds(table, start, stop)
        timing_cols = [c for c in _TIMING_COLUMNS if c in (table.dtype.names or ())]
        timing = table.fields(timing_cols)[start:stop] if timing_cols else None
        if not (stop > start and bounds.size):
            return bounds, timing, 0, np.zeros(0), np.zeros(0)
        lo, hi = int(bounds[:, 0].min()), int(bounds[:, 1].max())
        lo = min(lo, hi)
        dsid = layout.dataset_id(f, self.path, "transient/measurement_data", objects)
        # Rows 0 and 2 only: row 1 (original_time) is never used, and files chunk by row,
        # so skipping it saves a third of the decompression.
        t, y = _read.samples_row(dsid, 0, lo, hi), _read.samples_row(dsid, 2, lo, hi)
        if t is None or y is None:  # another stored type or shape: h5py converts, then a copy
            ds = h5py.Dataset(dsid)
            rows = (ds[0, lo:hi], ds[2, lo:hi]) if hi > lo else (np.zeros(0), np.zeros(0))
            t, y = layout.finite_or_nan(rows[0]), layout.finite_or_nan(rows[1])
        return bounds, timing, lo, t, y

    def _transient_timing(
        self, start: int, stop: int, timing: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = stop - start
        out = np.full((3, n), np.nan)
        if timing is not None and timing.dtype.names:
            cols = {c: layout.as_float(timing[c]) for c in timing.dtype.names}
            nan = np.full(n, np.nan)
            out[:] = timing_from_ms(*(cols.get(c, nan) for c in _TIMING_COLUMNS))
        missing = np.isnan(out[0]) | np.isnan(out[1])
        if missing.any() and self.workflow is not None:
            transients = [s for s in self.workflow if s.type == "transient"]
            for i in np.flatnonzero(missing):
                if start + i < len(transients):
                    fallback = transient_timing(transients[start + i].params)
                    out[:, i] = np.where(np.isnan(out[:, i]), fallback, out[:, i])
        return out[0], out[1], out[2]


def _lengths(vg: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """Valid points per step: up to the last column where Vg or Id is finite (0 when none is)."""
    n, m = vg.shape
    if m and (np.isfinite(vg[:, -1]) | np.isfinite(cur[:, -1])).all():
        return np.full(n, m, dtype=np.int64)  # no trailing padding: no (n, m) mask needed
    valid = np.isfinite(vg) | np.isfinite(cur)
    return np.where(valid.any(axis=1), m - np.argmax(valid[:, ::-1], axis=1), 0).astype(np.int64)


def remember_checked(path: str, stat: os.stat_result, allowed: str) -> None:
    """Record that the opener checked the storage of ``path`` (as ``stat`` describes it) against
    the folder ``allowed``: this process's handles on it then read without checking again."""
    _CHECKED.add((path, stat.st_mtime_ns, stat.st_size, stat.st_ino, allowed))
