"""Opening an experiment file: every check once, then a picklable :class:`Experiment` handle.

:func:`open_experiment` refuses what cannot be read safely or correctly (not HDF5, cut short,
external data, unknown ``format_version``, missing groups, datasets of the wrong shape, step
tables that disagree with the data) and returns the handle that Dask tasks receive to read chunks
of steps (:mod:`dask_features.io.hdf5`).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Collection
from stat import S_ISREG
from typing import Any

import h5py

from dask_features.errors import (
    DaskFeaturesWarning,
    ExperimentFormatError,
    ExperimentNotFoundError,
    FormatVersionError,
    MissingGroupError,
    NotHDF5Error,
    TruncatedFileError,
)
from dask_features.io import _layout as layout
from dask_features.io._attributes import read_attributes
from dask_features.io._safety import OPTIONAL_PATHS, TRANSIENT_PATHS, allowed_folder, check_storage
from dask_features.io.hdf5 import Experiment, remember_checked
from dask_features.io.workflow import WorkflowError, parse_workflow

__all__ = ["SUPPORTED_FORMATS", "StepBoundaryWarning", "inspect_experiment", "open_experiment"]

logger = logging.getLogger(__name__)

#: ``format_version`` values written by oect-infra's serial and parallel converters.
SUPPORTED_FORMATS = ("2.0_direct_new_storage", "2.0_new_storage")


class StepBoundaryWarning(DaskFeaturesWarning):
    """The transient index columns are missing: step boundaries were inferred (from `original_time`
    restarts) or, failing that, split equally."""


def open_experiment(
    path: str | os.PathLike[str],
    *,
    allow_external_in: str | None = None,
    sources: Collection[str] | None = None,
) -> Experiment:
    """Check an experiment file and return a picklable handle on it.

    Parameters
    ----------
    path : str or path-like
        Raw experiment file in the oect-infra layout.
    allow_external_in : str, optional
        The one folder external data may resolve into (see
        :func:`~dask_features.io._safety.check_storage`); ``""`` for none. Default: the
        ``DASK_FEATURES_ALLOW_EXTERNAL_IN`` environment variable of this process.
    sources : collection of str, optional
        The data the caller will read (``"transfer"``, ``"transient"``); default: all. Without
        ``"transient"`` the transient step ranges are checked only before the handle first reads
        transient data, so a broken transient index does not stop reading the transfer sweeps.
        Transient data behind a link that cannot be followed (a soft link that points at nothing or
        loops, an allowed external link to a missing file or object) fail the file only when
        ``sources`` names ``"transient"``; otherwise the handle reports them unavailable
        (:attr:`~dask_features.io.hdf5.Experiment.transient_unavailable`, a problem of the file, no
        transient steps) and its transient reads raise ``MissingGroupError`` naming the link.

    Returns
    -------
    Experiment

    Warns
    -----
    StepBoundaryWarning
        The transient step table has no index columns (boundaries inferred).

    Raises
    ------
    ExperimentNotFoundError
        (a ``FileNotFoundError``) The path does not exist.
    NotHDF5Error
        The file is not HDF5.
    TruncatedFileError
        The file is cut short or damaged.
    FormatVersionError
        ``format_version`` is missing or not one of :data:`SUPPORTED_FORMATS`.
    MissingGroupError
        Neither ``transfer/`` nor ``transient/`` data, a group without its datasets, or a link where
        one should be that points at nothing (behind the transient data: only when ``sources``
        names ``"transient"`` or the file has no transfer data).
    ExperimentFormatError
        A dataset has the wrong shape or dtype, or soft links on the way to it loop or chain more
        than 8 deep (behind the optional ``raw/workflow``: a problem of the file, not an error;
        behind the transient data: as a link that points at nothing).
    IndexTableError
        A step table disagrees with the data it indexes.
    """
    experiment, found = inspect_experiment(path, allow_external_in=allow_external_in, sources=sources)
    for warning in found:
        warnings.warn(warning, stacklevel=2)
    return experiment


def inspect_experiment(
    path: str | os.PathLike[str],
    *,
    allow_external_in: str | None = None,
    sources: Collection[str] | None = None,
    keep_open: bool = False,
) -> tuple[Experiment, tuple[Warning, ...]]:
    """:func:`open_experiment` (same checks, same errors) with its warnings returned, not emitted.

    For a task that opens a file on a worker: its client emits the warnings where the user sees them.
    ``keep_open=True``: the handle keeps the file it checked open for its first read (see
    :meth:`~dask_features.io.hdf5.Experiment.lend`); the caller must then call
    :meth:`~dask_features.io.hdf5.Experiment.release` when its task ends.
    """
    path = os.path.abspath(os.fspath(path))
    try:
        stat = os.stat(path)
    except (OSError, ValueError):  # what os.path.exists answers False for, with one stat
        raise ExperimentNotFoundError(f"{path}: no such experiment file") from None
    if stat.st_size == 0 or not S_ISREG(stat.st_mode):  # what is_hdf5 refuses without opening it
        raise NotHDF5Error(path, "not an HDF5 file (no HDF5 signature)")
    try:
        f = layout.open_file(path)
    except OSError as exc:
        # Asked only of a file that does not open: one that opens has the signature is_hdf5 looks for.
        if not h5py.is_hdf5(path):
            raise NotHDF5Error(path, "not an HDF5 file (no HDF5 signature)") from None
        raise layout.classify_open_error(path, exc) from None
    allowed = allowed_folder(allow_external_in)
    lent = False
    try:
        # Nothing outside this file may be read: refuse external data. The objects it opens are read
        # below, not looked up again; optional ones behind a broken soft link are skipped.
        skipped: dict[str, ExperimentFormatError] = {}
        objects: dict[str, Any] | None = check_storage(
            f, path, allowed, skipped=skipped, optional=OPTIONAL_PATHS | TRANSIENT_PATHS
        )
        # Transient data behind a broken link: a reader that needs them fails as before, the others
        # read the file without them.
        unreadable = [skipped[n] for n in sorted(TRANSIENT_PATHS) if n in skipped]
        if unreadable and sources is not None and "transient" in sources:
            raise unreadable[0]
        unavailable = "; ".join(dict.fromkeys(exc.problem for exc in unreadable)) or None
        try:
            attrs, problems = read_attributes(f, path)
        except OSError as exc:
            raise TruncatedFileError(path, f"cannot read root attributes ({exc})") from None
        version = attrs.get("format_version")
        if version is None:
            raise FormatVersionError(
                path, f"no 'format_version' attribute (expected one of {list(SUPPORTED_FORMATS)})"
            )
        if str(version) not in SUPPORTED_FORMATS:
            raise FormatVersionError(
                path, f"unsupported format_version {version!r} (expected one of {list(SUPPORTED_FORMATS)})"
            )
        if not layout.contains(f, "transfer", objects):
            if unreadable:  # nothing else to read
                raise unreadable[0]
            if not layout.contains(f, "transient", objects):
                raise MissingGroupError(path, "neither a 'transfer' nor a 'transient' group")
        n_transfer, max_points = layout.check_transfer(f, path, objects)
        index = sources is None or "transient" in sources
        if unavailable is None:
            n_transient, total, has_index, inferred = layout.check_transient(
                f, path, index=index, objects=objects
            )
        else:  # none of them can be read: no steps, and why
            n_transient, total, has_index, inferred = 0, 0, False, None
            problems.append(f"{path}: {unavailable}; transient data unavailable")
            logger.warning("%s", problems[-1])
        workflow_tree = None
        if "raw/workflow" in skipped:  # optional, as an unparsable one: the file's data is still read
            problems.append(str(skipped["raw/workflow"]))
            logger.warning("%s; workflow ignored", skipped["raw/workflow"])
        elif layout.contains(f, "raw/workflow", objects):
            try:
                workflow_tree = parse_workflow(layout.stored_value(f, "raw/workflow", objects))
            except WorkflowError as exc:
                problems.append(str(exc))
                logger.warning("%s: %s; workflow ignored", path, exc)
        found = _boundary_warnings(path, n_transient, has_index, inferred)
        problems.extend(str(w) for w in found)
        experiment = Experiment(
            path=path,
            format_version=str(version),
            chip_id=layout.text(attrs, "chip_id"),
            device_id=layout.text(attrs, "device_number") or layout.text(attrs, "device_id"),
            test_id=layout.text(attrs, "test_id"),
            description=layout.text(attrs, "description"),
            status=layout.optional_text(attrs, "status"),
            created_at=layout.optional_text(attrs, "created_at"),
            completed_at=layout.optional_text(attrs, "completed_at"),
            device_type=layout.device_type(attrs.get("device_type")),
            n_transfer_steps=n_transfer,
            n_transient_steps=n_transient,
            transfer_max_points=max_points,
            transient_total_points=total,
            has_transient_index=has_index,
            attrs=attrs,
            workflow_tree=workflow_tree,
            file_size=int(stat.st_size),
            file_mtime_ns=int(stat.st_mtime_ns),
            problems=tuple(problems),
            external_in=allowed,
            transient_index_checked=index or not has_index,
            transient_unavailable=unavailable,
            _inferred_offsets=None if inferred is None else inferred[0],
        )
        remember_checked(path, stat, allowed)
        if keep_open:
            experiment.lend(f, objects or {})
            lent = True
    finally:
        if not lent:
            objects = None  # released before the file closes (see layout.close_file)
            layout.close_file(f)
    return experiment, tuple(found)


def _boundary_warnings(
    path: str, n_transient: int, has_index: bool, inferred: tuple[tuple[int, ...], bool] | None
) -> tuple[StepBoundaryWarning, ...]:
    """The warning (also a problem of the file) that transient step boundaries were not read."""
    if not n_transient or has_index:
        return ()
    how = "inferred from original_time resets" if inferred is not None and inferred[1] else "split equally"
    msg = (
        f"{path}: transient step table has no start_data_index/end_data_index columns "
        f"(file written before oect-infra 1.0.10); step boundaries {how}"
        + ("" if how.startswith("inferred") else ", which is wrong if steps differ in length")
    )
    return (StepBoundaryWarning(msg),)
