"""What runs inside Dask tasks: compute one chunk of steps, assemble one experiment.

:func:`run_chunk` reads its steps from the file itself (the graph carries only the experiment handle
and a step range), computes every step-level feature of that source on the chunk, and returns small
results. An extractor that raises on a chunk is re-run step by step, so one bad step costs only
that step (NaN and an error record). :func:`assemble` joins the chunks of an experiment, evaluates
the experiment-level derived features and returns Arrow tables ready to be written.

Neither function raises for bad data: failures come back as values (error records, or a
:class:`Failure` for an experiment that cannot be read at all), so one experiment never takes down
a batch and the local schedulers need no special error handling.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from dask_features._arrow import from_numpy, int64s, strings, to_numpy
from dask_features.config.columns import DERIVED_VECTOR, KEY_COLUMNS
from dask_features.config.schema import FeatureConfig, FeatureSpec
from dask_features.errors import ExtractorError, OutputShapeError
from dask_features.extractors.outputs import Value, list_array
from dask_features.io.chunks import Chunk
from dask_features.io.hdf5 import Experiment
from dask_features.io.sources import get_source

__all__ = [
    "ChunkResult",
    "ExperimentTables",
    "Failure",
    "assemble",
    "run_chunk",
    "run_experiment",
]

#: Columns of the errors table (after the identity columns).
ERROR_COLUMNS = KEY_COLUMNS["errors"]
#: One problem: step (None = the whole experiment), feature, message.
ErrorRecord = tuple[int | None, str, str]


@dataclass
class ChunkResult:
    """Step-level results of one chunk (small: one value per step and feature)."""

    source: str
    start: int
    stop: int
    values: dict[str, Value]
    errors: list[ErrorRecord] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Failure:
    """An experiment that produced no output, with the reason."""

    reason: str
    detail: str = ""


@dataclass
class ExperimentTables:
    """Everything written for one experiment."""

    steps: pa.Table
    cycles: pa.Table | None
    errors: pa.Table
    compute_seconds: float
    n_steps: int


# --- chunk level -----------------------------------------------------------------------------


def _validated(feature: FeatureSpec, value: Any, n: int) -> Value:
    out = feature.output
    assert out is not None
    try:
        return out.handler.validate(out, value, n)
    except OutputShapeError as exc:
        raise ExtractorError(feature.name, str(exc)) from None


def _message(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _compute_feature(feature: FeatureSpec, chunk: Chunk) -> tuple[Value, list[ErrorRecord]]:
    """One feature on one chunk; on failure, isolate the failing steps one by one."""
    assert feature.impl is not None
    out = feature.output
    assert out is not None
    n = chunk.n_steps
    before = len(chunk.issues)
    try:
        value = _validated(feature, feature.impl.func(chunk, **feature.params), n)
        return value, [(s, feature.name, m) for s, m in chunk.issues[before:]]
    except Exception as exc:  # an extractor bug or a step it cannot handle: find which steps
        if n == 1:
            return out.handler.empty(out, 1), [(int(chunk.step_index[0]), feature.name, _message(exc))]
    errors: list[ErrorRecord] = []
    parts: list[Value] = []
    for i in range(n):
        sub = chunk.take(np.array([i]))
        value, errs = _compute_feature(feature, sub)
        parts.append(value)
        errors.extend(errs)
    return out.handler.concat(out, parts), errors


def run_chunk(
    experiment: Experiment, config: FeatureConfig, source: str, start: int, stop: int
) -> ChunkResult:
    """Read steps ``[start, stop)`` of ``source`` and compute the config's step-level features on them.

    Runs inside a Dask task. Never raises for bad data: an unreadable range gives NaN for its steps
    with one error record per step, an extractor failure is isolated to the failing steps.
    """
    t0 = time.perf_counter()
    features = config.step_features(source)
    values: dict[str, Value] = {}
    errors: list[ErrorRecord] = []
    try:
        chunk = get_source(source).read(experiment, start, stop)
    except Exception as exc:
        msg = f"steps [{start}, {stop}) of {source} could not be read: {_message(exc)}"
        values = {f.name: f.output.handler.empty(f.output, stop - start) for f in features if f.output}
        errors = [(s, "*", msg) for s in range(start, stop)]
        return ChunkResult(source, start, stop, values, errors, time.perf_counter() - t0)
    for f in features:
        values[f.name], errs = _compute_feature(f, chunk)
        errors.extend(errs)
    return ChunkResult(source, start, stop, values, errors, time.perf_counter() - t0)


# --- experiment level ------------------------------------------------------------------------


def _to_rows(value: np.ndarray, n_rows: int) -> np.ndarray:
    """Pad (or keep) the first axis to ``n_rows`` with NaN."""
    if value.shape[0] == n_rows:
        return value
    pad = np.full((n_rows - value.shape[0], *value.shape[1:]), np.nan)
    return np.concatenate([value.astype(np.float64), pad])


def _derived(feature: FeatureSpec, inputs: list[np.ndarray], n_rows: int) -> tuple[np.ndarray, str | None]:
    """Evaluate a derived feature; NaN and the reason when it fails or gives the wrong shape."""
    assert feature.func is not None
    try:
        with np.errstate(all="ignore"):
            arr = np.asarray(feature.func(*inputs, **feature.params), dtype=np.float64)
    except Exception as exc:
        return np.full(n_rows, np.nan), _message(exc)
    if arr.ndim == 0:
        return np.full(n_rows, float(arr)), None
    if arr.ndim > 2 or arr.shape[0] != n_rows:
        return np.full(n_rows, np.nan), (
            f"returned shape {arr.shape}; a derived feature must give one value (or one vector) per step ({n_rows} steps)"
        )
    if n_rows and np.isnan(arr).all() and any(np.isfinite(i).any() for i in inputs):
        return arr, (
            "NaN for every step although its inputs are not (a mean/std over steps with NaN? use np.nanmean / np.nanstd)"
        )
    return arr, None


def _undefined_rows(value: np.ndarray, inputs: list[np.ndarray]) -> np.ndarray:
    """Rows where a derived value is ±inf, or NaN although every input of that row is finite (a
    division by zero, a log of a negative number): no value there, and the record says why."""
    n_rows = value.shape[0]
    rows = value.reshape(n_rows, -1)
    finite_inputs = np.ones(n_rows, dtype=bool)
    for x in inputs:
        finite_inputs &= np.isfinite(np.asarray(x, dtype=np.float64).reshape(n_rows, -1)).all(axis=1)
    return np.isinf(rows).any(axis=1) | (np.isnan(rows).any(axis=1) & finite_inputs)


def _short_sources(
    features: Mapping[str, Sequence[FeatureSpec]], have: Mapping[str, int], n_rows: int
) -> list[ErrorRecord]:
    """Error records for the steps a source does not have (e.g. a mixed config on a transfer-only file).

    ``features``: each source's step-level features; ``have``: each source's step count.
    """
    errors: list[ErrorRecord] = []
    for name, specs in features.items():
        errors.extend(
            (s, f.name, f"the file has only {have[name]} {name} steps: no {name} data for this step")
            for f in specs
            for s in range(have[name], n_rows)
        )
    return errors


def _joined(
    features: Mapping[str, Sequence[FeatureSpec]], results: Sequence[ChunkResult]
) -> dict[str, Value]:
    """Each step-level feature's value over the whole experiment, chunks joined in step order."""
    values: dict[str, Value] = {}
    for source, specs in features.items():
        parts = sorted((r for r in results if r.source == source), key=lambda r: r.start)
        for f in specs:
            assert f.output is not None
            values[f.name] = f.output.handler.concat(f.output, [p.values[f.name] for p in parts])
    return values


def assemble(
    experiment: Experiment, config: FeatureConfig, results: Sequence[ChunkResult]
) -> ExperimentTables:
    """Join chunk results, evaluate derived features in dependency order, build the output tables.

    The tables hold the key and feature columns; the writer adds the identity columns.
    """
    t0 = time.perf_counter()
    errors: list[ErrorRecord] = [e for r in results for e in r.errors]
    # step_features filters the config's features at every call: each source's list taken once here.
    features = {source: config.step_features(source) for source in config.sources}
    have = {source: get_source(source).n_steps(experiment) for source in features}
    values = _joined(features, results)
    n_rows = max(have.values(), default=0)
    errors.extend(_short_sources(features, have, n_rows))
    per_step = {k: _to_rows(v, n_rows) for k, v in values.items() if isinstance(v, np.ndarray)}
    for f in config.derived_features:  # topological order: inputs are always ready
        inputs = [per_step[i] for i in f.inputs]
        value, problem = _derived(f, inputs, n_rows)
        if problem is not None:
            errors.append((None, f.name, problem))
        elif n_rows:
            undefined = _undefined_rows(value, inputs)
            if undefined.any():
                value = value.copy()
                value[np.isinf(value)] = np.nan
                errors.extend(
                    (
                        int(s),
                        f.name,
                        "not defined here: ±inf, or NaN from finite inputs (a division by zero?)",
                    )
                    for s in np.flatnonzero(undefined)
                )
        per_step[f.name] = value
    steps: dict[str, pa.Array] = {"step_index": from_numpy(np.arange(n_rows, dtype=np.int64))}
    cycle_tables: list[pa.Table] = []
    for f in config.features:  # column order = config order
        columns = config.columns.columns[f.name]
        if f.is_derived:
            value = per_step[f.name]
            if value.ndim == 1:  # NaN stays a value here, unlike in the other columns (as written so far)
                steps[f.name] = from_numpy(value, nan_as_null=False)
            else:
                steps[f.name] = list_array(value, DERIVED_VECTOR)
            continue
        out = f.output
        assert out is not None
        arrays = out.handler.arrays(out, columns, values[f.name], n_rows)
        if columns and columns[0].table == "cycles":
            names = [*KEY_COLUMNS["cycles"], *(c.name for c in columns)]
            cycle_tables.append(pa.table(arrays, names=names))
        else:
            steps.update(zip((c.name for c in columns), arrays, strict=True))
    err_table = _error_table(errors) if errors else NO_ERRORS
    compute_seconds = sum(r.seconds for r in results) + time.perf_counter() - t0
    return ExperimentTables(pa.table(steps), _merge_cycles(cycle_tables), err_table, compute_seconds, n_rows)


def _error_table(errors: Sequence[ErrorRecord]) -> pa.Table:
    """The errors table (after the identity columns) of ``errors``."""
    return pa.table(
        [int64s([e[0] for e in errors]), strings([e[1] for e in errors]), strings([e[2] for e in errors])],
        names=list(ERROR_COLUMNS),
    )


#: The errors table of an experiment without problems (nearly every one): Arrow tables are
#: immutable, so one is shared instead of building three empty columns per experiment.
NO_ERRORS = _error_table([])


def _merge_cycles(tables: list[pa.Table]) -> pa.Table | None:
    """One cycles table from each ragged feature's rows (outer join on step and cycle, sorted by them).

    Rows of a key that a feature has no row for are null in its columns. Keys are unique within
    each feature's table (a cycle has one row per feature); the key columns come first, then each
    table's other columns in order.
    """
    if not tables:
        return None
    if len(tables) == 1:
        return tables[0]
    keys = list(KEY_COLUMNS["cycles"])
    for table in tables:
        for key in keys:
            column = table.column(key)
            if column.null_count or column.type != pa.int64():  # not what the built-in kinds write
                return _merge_cycles_pandas(tables)
    step = np.concatenate([to_numpy(t.column(keys[0])) for t in tables])
    cycle = np.concatenate([to_numpy(t.column(keys[1])) for t in tables])
    order = np.lexsort((cycle, step))
    step, cycle = step[order], cycle[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (step[1:] != step[:-1]) | (cycle[1:] != cycle[:-1])
    row_of = np.empty(len(order), dtype=np.int64)  # each input row's row in the merged table
    row_of[order] = np.cumsum(first) - 1
    n = int(first.sum())
    columns = {keys[0]: from_numpy(step[first]), keys[1]: from_numpy(cycle[first])}
    start = 0
    for table in tables:
        rows = row_of[start : start + table.num_rows]
        start += table.num_rows
        has = np.zeros(n, dtype=bool)
        has[rows] = True
        if np.count_nonzero(has) != len(rows):  # a key repeated within this table
            return _merge_cycles_pandas(tables)
        take = np.zeros(n, dtype=np.int64)  # merged row -> this table's row; null where it has none
        take[rows] = np.arange(table.num_rows)
        indices = from_numpy(np.where(has, take, np.nan), pa.int64())
        columns.update({c: table.column(c).take(indices) for c in table.column_names if c not in keys})
    return pa.table(columns)


def _merge_cycles_pandas(tables: list[pa.Table]) -> pa.Table:
    """The pandas outer merge behind :func:`_merge_cycles`, for what it does not handle itself.

    Keys repeated within a feature's rows (one output row per pair), or keys that are not non-null
    int64 (a user's output kind).
    """
    keys = list(KEY_COLUMNS["cycles"])
    merged = tables[0].to_pandas()
    for other in tables[1:]:
        merged = merged.merge(other.to_pandas(), on=keys, how="outer", sort=True)
    # Integer fields of rows only another feature has become NaN in pandas: back to nullable Arrow ints.
    types = {f.name: f.type for t in tables for f in t.schema}
    return pa.table(
        {c: pa.array(merged[c].to_numpy(), type=types[c], from_pandas=True) for c in merged.columns}
    )


def run_experiment(
    experiment: Experiment, config: FeatureConfig, chunks: Sequence[tuple[str, int, int]]
) -> ExperimentTables | Failure:
    """``mode="experiment"``: every chunk of one experiment in one task, then :func:`assemble`."""
    results = [run_chunk(experiment, config, s, a, b) for s, a, b in chunks]
    return safe_assemble(experiment, config, results)


def safe_assemble(
    experiment: Experiment, config: FeatureConfig, results: Sequence[ChunkResult]
) -> ExperimentTables | Failure:
    """:func:`assemble`, with an unexpected error turned into a :class:`Failure` value."""
    try:
        return assemble(experiment, config, results)
    except Exception as exc:
        return Failure(f"assembling results failed: {_message(exc)}", traceback.format_exc())
