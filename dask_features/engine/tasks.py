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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from dask_features.config.schema import FeatureConfig, FeatureSpec
from dask_features.errors import ExtractorError
from dask_features.extractors import Output, Ragged
from dask_features.io.hdf5 import Experiment

__all__ = [
    "ChunkResult",
    "ExperimentTables",
    "Failure",
    "assemble",
    "run_bundle",
    "run_chunk",
    "run_experiment",
]

#: Columns of the errors table.
ERROR_COLUMNS = ("step_index", "feature", "message")


@dataclass
class ChunkResult:
    """Step-level results of one chunk (small: one value per step and feature)."""

    source: str
    start: int
    stop: int
    values: dict[str, np.ndarray | Ragged]
    errors: list[tuple[int | None, str, str]] = field(default_factory=list)
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


def _empty(output: Output, n: int) -> np.ndarray | Ragged:
    if output.kind == "ragged":
        return Ragged.empty(n, output)
    if output.kind == "vector":
        return np.full((n, output.width or 0), np.nan)
    return np.full(n, np.nan)


def _validated(feature: FeatureSpec, value: Any, n: int) -> np.ndarray | Ragged:
    out = feature.output
    assert out is not None
    if out.kind == "ragged":
        if not isinstance(value, Ragged):
            raise ExtractorError(feature.name, f"declared ragged output but returned {type(value).__name__}")
        counts = np.asarray(value.counts, dtype=np.int64)
        if counts.shape != (n,):
            raise ExtractorError(feature.name, f"ragged counts have shape {counts.shape}, expected ({n},)")
        want = [k for k, _ in out.fields]
        if list(value.fields) != want:
            raise ExtractorError(
                feature.name, f"ragged fields {list(value.fields)} differ from declared {want}"
            )
        total = int(counts.sum())
        fields = {}
        for k, dt in out.fields:
            arr = np.asarray(value.fields[k], dtype=dt)
            if arr.shape != (total,):
                raise ExtractorError(
                    feature.name, f"ragged field {k!r} has shape {arr.shape}, expected ({total},)"
                )
            fields[k] = arr
        return Ragged(counts, fields)
    arr = np.asarray(value, dtype=out.dtype)
    if out.kind == "scalar":
        if arr.shape != (n,):
            raise ExtractorError(
                feature.name, f"returned shape {arr.shape}, expected ({n},) (one value per step)"
            )
        return arr
    if arr.ndim != 2 or arr.shape[0] != n or (out.width is not None and arr.shape[1] != out.width):
        width = out.width if out.width is not None else "w"
        raise ExtractorError(feature.name, f"returned shape {arr.shape}, expected ({n}, {width})")
    return arr


def _stitch(output: Output, parts: list[np.ndarray | Ragged]) -> np.ndarray | Ragged:
    if output.kind == "ragged":
        return Ragged.concat([p for p in parts if isinstance(p, Ragged)])
    arrays = [np.asarray(p) for p in parts]
    if output.kind == "scalar":
        return np.concatenate(arrays) if arrays else np.zeros(0)
    width = max((a.shape[1] for a in arrays), default=output.width or 0)
    return np.concatenate([_pad_width(a, width) for a in arrays]) if arrays else np.zeros((0, width))


def _pad_width(a: np.ndarray, width: int) -> np.ndarray:
    if a.shape[1] == width:
        return a
    pad = np.full((a.shape[0], width - a.shape[1]), np.nan, dtype=np.result_type(a.dtype, np.float64))
    return np.concatenate([a.astype(pad.dtype), pad], axis=1)


def _message(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _compute_feature(
    feature: FeatureSpec, chunk: Any
) -> tuple[np.ndarray | Ragged, list[tuple[int | None, str, str]]]:
    """One feature on one chunk; on failure, isolate the failing steps one by one."""
    assert feature.impl is not None
    assert feature.output is not None
    n = chunk.n_steps
    before = len(chunk.issues)
    try:
        value = _validated(feature, feature.impl.func(chunk, **feature.params), n)
        return value, [(s, feature.name, m) for s, m in chunk.issues[before:]]
    except Exception as exc:  # an extractor bug or a step it cannot handle: find which steps
        if n == 1:
            return _empty(feature.output, 1), [(int(chunk.step_index[0]), feature.name, _message(exc))]
    errors: list[tuple[int | None, str, str]] = []
    parts: list[np.ndarray | Ragged] = []
    for i in range(n):
        sub = chunk.take(np.array([i]))
        value, errs = _compute_feature(feature, sub)
        parts.append(value)
        errors.extend(errs)
    return _stitch(feature.output, parts), errors


def run_chunk(
    experiment: Experiment, config: FeatureConfig, source: str, start: int, stop: int
) -> ChunkResult:
    """Read steps ``[start, stop)`` of ``source`` and compute the config's step-level features on them.

    Runs inside a Dask task. Never raises for bad data: an unreadable range gives NaN for its steps
    with one error record per step, an extractor failure is isolated to the failing steps.
    """
    t0 = time.perf_counter()
    n = stop - start
    features = config.step_features(source)
    try:
        chunk = (
            experiment.read_transfer(start, stop)
            if source == "transfer"
            else experiment.read_transient(start, stop)
        )
    except Exception as exc:
        msg = f"steps [{start}, {stop}) of {source} could not be read: {_message(exc)}"
        values = {f.name: _empty(f.output, n) for f in features if f.output is not None}
        errors = [(s, "*", msg) for s in range(start, stop)]
        return ChunkResult(source, start, stop, values, errors, time.perf_counter() - t0)
    values: dict[str, np.ndarray | Ragged] = {}
    errors = []
    for f in features:
        values[f.name], errs = _compute_feature(f, chunk)
        errors.extend(errs)
    return ChunkResult(source, start, stop, values, errors, time.perf_counter() - t0)


# --- experiment level ------------------------------------------------------------------------


def _ragged_columns(config: FeatureConfig) -> dict[tuple[str, str], str]:
    """Column names of ragged fields: the field name, prefixed with the feature only on a clash.

    A field named ``cycle`` is the extractor's own cycle number and becomes the table's key.
    """
    fields = [
        (f.name, k)
        for f in config.step_features()
        if f.output and f.output.kind == "ragged"
        for k, _ in f.output.fields
        if k != "cycle"
    ]
    names = [k for _, k in fields]
    return {(f, k): (k if names.count(k) == 1 and k != "step_index" else f"{f}_{k}") for f, k in fields}


def _to_rows(value: np.ndarray, n_rows: int) -> np.ndarray:
    """Pad (or keep) the first axis to ``n_rows`` with NaN."""
    if value.shape[0] == n_rows:
        return value
    pad = np.full((n_rows - value.shape[0], *value.shape[1:]), np.nan)
    return np.concatenate([value.astype(np.float64), pad])


def _derived(
    feature: FeatureSpec, inputs: list[np.ndarray], n_rows: int
) -> tuple[np.ndarray | None, str | None]:
    try:
        with np.errstate(all="ignore"):
            result = feature.func(*inputs, **feature.params)  # type: ignore[misc]
        arr = np.asarray(result, dtype=np.float64)
    except Exception as exc:
        return None, _message(exc)
    if arr.ndim == 0:
        return np.full(n_rows, float(arr)), None
    if arr.ndim > 2 or arr.shape[0] != n_rows:
        return (
            None,
            f"returned shape {arr.shape}; a derived feature must give one value (or one vector) per step ({n_rows} steps)",
        )
    return arr, None


def assemble(
    experiment: Experiment, config: FeatureConfig, results: Sequence[ChunkResult]
) -> ExperimentTables:
    """Join chunk results, evaluate derived features, build the output tables."""
    t0 = time.perf_counter()
    compute_seconds = sum(r.seconds for r in results)
    errors: list[tuple[int | None, str, str]] = [e for r in results for e in r.errors]
    per_feature: dict[str, np.ndarray | Ragged] = {}
    for source in config.sources:
        parts = sorted((r for r in results if r.source == source), key=lambda r: r.start)
        for f in config.step_features(source):
            assert f.output is not None
            per_feature[f.name] = _stitch(f.output, [p.values[f.name] for p in parts])
    counts = {"transfer": experiment.n_transfer_steps, "transient": experiment.n_transient_steps}
    n_rows = max((counts[s] for s in config.sources), default=0)
    for source in config.sources:  # e.g. a mixed config on a file without transient data
        if counts[source] < n_rows:
            steps = range(counts[source], n_rows)
            errors.extend(
                (
                    s,
                    f.name,
                    f"the file has only {counts[source]} {source} steps: no {source} data for this step",
                )
                for f in config.step_features(source)
                for s in steps
            )

    arrays: dict[str, np.ndarray] = {}  # per-step values, first axis n_rows
    columns: dict[str, np.ndarray] = {"step_index": np.arange(n_rows, dtype=np.int64)}
    ragged_names = _ragged_columns(config)
    cycle_frames: list[pd.DataFrame] = []
    for f in config.features:
        if f.is_derived:
            missing = [i for i in f.inputs if i not in arrays]
            if missing:
                errors.append((None, f.name, f"inputs {missing} are not available"))
                continue
            inputs = [arrays[i] for i in f.inputs]
            value, problem = _derived(f, inputs, n_rows)
            if problem is not None or value is None:
                errors.append((None, f.name, problem or "no value"))
                value = np.full(n_rows, np.nan)
            elif n_rows and np.isnan(value).all() and any(np.isfinite(i).any() for i in inputs):
                errors.append(
                    (
                        None,
                        f.name,
                        "NaN for every step although its inputs are not (a mean/std over steps with NaN? use np.nanmean / np.nanstd)",
                    )
                )
        else:
            value = per_feature[f.name]  # type: ignore[assignment]
            if isinstance(value, Ragged):
                cycle_frames.append(_cycle_frame(f, value, ragged_names))
                continue
            value = _to_rows(np.asarray(value), n_rows)
        arrays[f.name] = value
        if value.ndim == 1:
            columns[f.name] = value
        else:
            for j in range(value.shape[1]):
                columns[f"{f.name}_{j}"] = value[:, j]

    steps = pa.table({k: pa.array(v) for k, v in columns.items()})
    cycles = _merge_cycles(cycle_frames)
    types = (pa.int64(), pa.string(), pa.string())
    err_table = pa.table(
        {
            name: pa.array([e[i] for e in errors], type=t)
            for i, (name, t) in enumerate(zip(ERROR_COLUMNS, types, strict=True))
        }
    )
    return ExperimentTables(steps, cycles, err_table, compute_seconds + time.perf_counter() - t0, n_rows)


def _cycle_frame(feature: FeatureSpec, value: Ragged, names: dict[tuple[str, str], str]) -> pd.DataFrame:
    counts = value.counts
    step = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    if "cycle" in value.fields:
        cycle = value.fields["cycle"].astype(np.int64)
    else:  # position within the step
        cycle = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    frame = pd.DataFrame({"step_index": step, "cycle": cycle})
    for k, arr in value.fields.items():
        if k != "cycle":
            frame[names[(feature.name, k)]] = arr
    return frame


def _merge_cycles(frames: list[pd.DataFrame]) -> pa.Table | None:
    if not frames:
        return None
    merged = frames[0]
    for other in frames[1:]:
        merged = merged.merge(other, on=["step_index", "cycle"], how="outer", sort=True)
    return pa.Table.from_pandas(merged, preserve_index=False)


def run_experiment(
    experiment: Experiment, config: FeatureConfig, chunks: Sequence[tuple[str, int, int]]
) -> ExperimentTables | Failure:
    """``mode="experiment"``: every chunk of one experiment in one task, then :func:`assemble`."""
    results = [run_chunk(experiment, config, s, a, b) for s, a, b in chunks]
    return safe_assemble(experiment, config, results)


def run_bundle(
    experiments: Sequence[Experiment], config: FeatureConfig, chunks: Sequence[Sequence[tuple[str, int, int]]]
) -> list[ExperimentTables | Failure]:
    """Several small experiments in one task (each as in :func:`run_experiment`)."""
    return [run_experiment(e, config, c) for e, c in zip(experiments, chunks, strict=True)]


def safe_assemble(
    experiment: Experiment, config: FeatureConfig, results: Sequence[ChunkResult]
) -> ExperimentTables | Failure:
    """:func:`assemble`, with an unexpected error turned into a :class:`Failure` value."""
    try:
        return assemble(experiment, config, results)
    except Exception as exc:
        return Failure(f"assembling results failed: {_message(exc)}", traceback.format_exc())
