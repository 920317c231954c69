"""Output kinds: what an extractor returns per step and how the engine stores it.

An extractor declares its result with :class:`Output` (``Output.scalar()``, ``Output.vector(width)``,
``Output.ragged({...})``). Each declaration names a kind, and the kind object (a subclass of
:class:`OutputKind` registered with :func:`output_kind`) answers everything the engine needs to
know: the empty value of failed steps, validation of a returned value, concatenation of chunks, the
Arrow columns it fills and in which table. Adding a kind is one class; nothing else switches on it.

Storage of the built-in kinds:

``scalar``
    ndarray (n,) -> one column named after the feature in the ``steps`` table.
``vector``
    ndarray (n, width) -> columns ``{feature}_0 .. {feature}_{width-1}``; with ``width=None`` (decided
    per experiment) one list column ``{feature}``, so every experiment's file has the same schema.
``ragged``
    :class:`Ragged` -> rows of the long-form ``cycles`` table, keyed by ``step_index, cycle``.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from dask_features._arrow import from_numpy
from dask_features.errors import OutputShapeError

__all__ = [
    "KINDS",
    "Column",
    "Output",
    "OutputKind",
    "Ragged",
    "Value",
    "list_column",
    "output_kind",
]


@dataclass(frozen=True)
class Output:
    """Declared shape and dtype of an extractor's result.

    Use the constructors :meth:`scalar`, :meth:`vector` and :meth:`ragged`.
    """

    kind: str
    dtype: str = "float64"
    width: int | None = None
    fields: tuple[tuple[str, str], ...] = ()

    @classmethod
    def scalar(cls, dtype: str = "float64") -> Output:
        """One value per step."""
        return cls("scalar", np.dtype(dtype).name)

    @classmethod
    def vector(cls, width: int | None, dtype: str = "float64") -> Output:
        """A fixed-length vector per step; ``width=None`` = decided per experiment, NaN-padded."""
        return cls("vector", np.dtype(dtype).name, width=width)

    @classmethod
    def ragged(cls, fields: Mapping[str, str]) -> Output:
        """A variable number of rows per step (e.g. one per cycle), each with named fields."""
        return cls("ragged", "float64", fields=tuple((k, np.dtype(v).name) for k, v in fields.items()))

    @property
    def handler(self) -> OutputKind:
        """The kind object that implements this declaration."""
        return KINDS[self.kind]


@dataclass(frozen=True)
class Ragged:
    """Ragged per-step results: ``counts[i]`` rows belong to step ``i``.

    Attributes
    ----------
    counts : ndarray of int64, shape (n,)
        Rows per step.
    fields : dict of str to ndarray, each of shape (counts.sum(),)
        Column values, steps in order, rows of one step contiguous.
    """

    counts: np.ndarray
    fields: dict[str, np.ndarray]

    @classmethod
    def concat(cls, parts: Sequence[Ragged]) -> Ragged:
        """Concatenate ragged results of consecutive chunks."""
        if not parts:
            return cls(np.zeros(0, np.int64), {})
        names = list(parts[0].fields)
        return cls(
            np.concatenate([p.counts for p in parts]).astype(np.int64),
            {k: np.concatenate([p.fields[k] for p in parts]) for k in names},
        )

    @classmethod
    def empty(cls, n_steps: int, output: Output) -> Ragged:
        """No rows for ``n_steps`` steps (used for steps that failed)."""
        return cls(np.zeros(n_steps, np.int64), {k: np.zeros(0, dt) for k, dt in output.fields})


#: A per-chunk (or per-experiment) value of one feature.
Value = np.ndarray | Ragged


@dataclass(frozen=True)
class Column:
    """A column a feature fills: its name, table and Arrow type.

    ``expands`` marks a list column that :func:`~dask_features.read_features` spreads into
    ``{name}_0, {name}_1, ...``; those names are reserved too. ``type`` is None for a derived
    feature, whose type (scalar or list) is decided by its result.
    """

    name: str
    table: str
    type: pa.DataType | None
    expands: bool = False


def list_column(name: str, dtype: str = "float64") -> Column:
    """A per-step vector of experiment-dependent length, stored as one list column."""
    return Column(name, "steps", pa.list_(pa.from_numpy_dtype(np.dtype(dtype))), expands=True)


class OutputKind(abc.ABC):
    """Behaviour of one output kind. Subclass, set :attr:`name`, decorate with :func:`output_kind`."""

    #: The ``Output.kind`` string this class implements.
    name: ClassVar[str]

    @abc.abstractmethod
    def empty(self, output: Output, n: int) -> Value:
        """The value of ``n`` steps that gave no result (NaN, or no rows)."""

    @abc.abstractmethod
    def validate(self, output: Output, value: Any, n: int) -> Value:
        """``value`` converted to the declared dtype; :class:`OutputShapeError` when it does not fit ``n`` steps."""

    @abc.abstractmethod
    def concat(self, output: Output, parts: Sequence[Value]) -> Value:
        """Values of consecutive chunks joined."""

    @abc.abstractmethod
    def stack(self, output: Output, values: Sequence[Any]) -> Value:
        """One value per step (``None`` for a failed step) from a single-step extractor, as a chunk value."""

    @abc.abstractmethod
    def columns(self, output: Output, feature: str) -> list[Column]:
        """The columns of feature ``feature`` (planned once per config, before any work)."""

    @abc.abstractmethod
    def arrays(self, output: Output, columns: Sequence[Column], value: Value, n_rows: int) -> list[pa.Array]:
        """Arrow arrays of ``columns`` for one experiment (``n_rows`` steps; shorter values are padded)."""


#: Kind name -> kind object.
KINDS: dict[str, OutputKind] = {}


def output_kind(cls: type[OutputKind]) -> type[OutputKind]:
    """Class decorator registering an :class:`OutputKind` under its ``name``."""
    KINDS[cls.name] = cls()
    return cls


def _pad_rows(value: np.ndarray, n_rows: int) -> np.ndarray:
    if value.shape[0] >= n_rows:
        return value[:n_rows]
    pad = np.full((n_rows - value.shape[0], *value.shape[1:]), np.nan)
    return np.concatenate([value.astype(np.result_type(value.dtype, np.float64)), pad])


def list_array(value: np.ndarray, type_: pa.DataType) -> pa.Array:
    """An (n, w) array as a list column of ``n`` rows of length ``w``."""
    n, width = value.shape
    flat = from_numpy(np.ascontiguousarray(value).reshape(-1), type_.value_type)
    return pa.ListArray.from_arrays(from_numpy(np.arange(n + 1, dtype=np.int32) * width), flat)


@output_kind
class ScalarKind(OutputKind):
    """One value per step."""

    name = "scalar"

    def empty(self, output: Output, n: int) -> Value:
        return np.full(n, np.nan, dtype=output.dtype)

    def validate(self, output: Output, value: Any, n: int) -> Value:
        arr = np.asarray(value, dtype=output.dtype)
        if arr.shape != (n,):
            raise OutputShapeError(f"returned shape {arr.shape}, expected ({n},) (one value per step)")
        return arr

    def concat(self, output: Output, parts: Sequence[Value]) -> Value:
        arrays = [np.asarray(p) for p in parts]
        return np.concatenate(arrays) if arrays else np.zeros(0, output.dtype)

    def stack(self, output: Output, values: Sequence[Any]) -> Value:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=output.dtype)

    def columns(self, output: Output, feature: str) -> list[Column]:
        return [Column(feature, "steps", pa.from_numpy_dtype(np.dtype(output.dtype)))]

    def arrays(self, output: Output, columns: Sequence[Column], value: Value, n_rows: int) -> list[pa.Array]:
        arr = _pad_rows(np.asarray(value), n_rows)
        return [from_numpy(arr, columns[0].type)]


@output_kind
class VectorKind(OutputKind):
    """A vector per step: fixed width (one column per element) or per-experiment width (a list column)."""

    name = "vector"

    def empty(self, output: Output, n: int) -> Value:
        return np.full((n, output.width or 0), np.nan, dtype=output.dtype)

    def validate(self, output: Output, value: Any, n: int) -> Value:
        arr = np.asarray(value, dtype=output.dtype)
        if arr.ndim != 2 or arr.shape[0] != n or (output.width is not None and arr.shape[1] != output.width):
            width = output.width if output.width is not None else "w"
            raise OutputShapeError(f"returned shape {arr.shape}, expected ({n}, {width})")
        return arr

    def concat(self, output: Output, parts: Sequence[Value]) -> Value:
        arrays = [np.asarray(p) for p in parts]
        width = max((a.shape[1] for a in arrays), default=output.width or 0)
        if not arrays:
            return np.zeros((0, width), output.dtype)
        return np.concatenate([_pad_width(a, width) for a in arrays])

    def stack(self, output: Output, values: Sequence[Any]) -> Value:
        width = output.width or max((len(np.atleast_1d(v)) for v in values if v is not None), default=0)
        res = np.full((len(values), width), np.nan, dtype=output.dtype)
        for i, v in enumerate(values):
            if v is not None:
                row = np.atleast_1d(np.asarray(v, dtype=output.dtype))[:width]
                res[i, : len(row)] = row
        return res

    def columns(self, output: Output, feature: str) -> list[Column]:
        if output.width is None:
            return [list_column(feature, output.dtype)]
        type_ = pa.from_numpy_dtype(np.dtype(output.dtype))
        return [Column(f"{feature}_{j}", "steps", type_) for j in range(output.width)]

    def arrays(self, output: Output, columns: Sequence[Column], value: Value, n_rows: int) -> list[pa.Array]:
        arr = _pad_rows(np.asarray(value), n_rows)
        if output.width is None:
            return [list_array(arr, columns[0].type)]
        return [from_numpy(arr[:, j], c.type) for j, c in enumerate(columns)]


def _pad_width(a: np.ndarray, width: int) -> np.ndarray:
    if a.shape[1] == width:
        return a
    pad = np.full((a.shape[0], width - a.shape[1]), np.nan, dtype=np.result_type(a.dtype, np.float64))
    return np.concatenate([a.astype(pad.dtype), pad], axis=1)


@output_kind
class RaggedKind(OutputKind):
    """Any number of rows per step (e.g. one per gate cycle), stored in the ``cycles`` table.

    A field named ``cycle`` is the extractor's own cycle number and becomes the table's key;
    otherwise rows are numbered within their step.
    """

    name = "ragged"

    def empty(self, output: Output, n: int) -> Value:
        return Ragged.empty(n, output)

    def validate(self, output: Output, value: Any, n: int) -> Value:
        if not isinstance(value, Ragged):
            raise OutputShapeError(f"declared ragged output but returned {type(value).__name__}")
        counts = np.asarray(value.counts, dtype=np.int64)
        if counts.shape != (n,):
            raise OutputShapeError(f"ragged counts have shape {counts.shape}, expected ({n},)")
        want = [k for k, _ in output.fields]
        if list(value.fields) != want:
            raise OutputShapeError(f"ragged fields {list(value.fields)} differ from declared {want}")
        total = int(counts.sum())
        fields = {}
        for k, dt in output.fields:
            arr = np.asarray(value.fields[k], dtype=dt)
            if arr.shape != (total,):
                raise OutputShapeError(f"ragged field {k!r} has shape {arr.shape}, expected ({total},)")
            fields[k] = arr
        return Ragged(counts, fields)

    def concat(self, output: Output, parts: Sequence[Value]) -> Value:
        ragged = [p for p in parts if isinstance(p, Ragged)]
        # No parts (a file without this source's steps): no rows, but the declared fields.
        return Ragged.concat(ragged) if ragged else Ragged.empty(0, output)

    def stack(self, output: Output, values: Sequence[Any]) -> Value:
        counts = np.zeros(len(values), np.int64)
        cols: dict[str, list[np.ndarray]] = {k: [] for k, _ in output.fields}
        for i, v in enumerate(values):
            if v is None:
                continue
            arrays = {k: np.atleast_1d(np.asarray(v[k], dtype=dt)) for k, dt in output.fields}
            counts[i] = len(next(iter(arrays.values()))) if arrays else 0
            for k in cols:
                cols[k].append(arrays[k])
        return Ragged(
            counts, {k: (np.concatenate(cols[k]) if cols[k] else np.zeros(0, dt)) for k, dt in output.fields}
        )

    def columns(self, output: Output, feature: str) -> list[Column]:
        # Names are provisional (the field names); the column plan prefixes clashing ones.
        return [
            Column(k, "cycles", pa.from_numpy_dtype(np.dtype(dt))) for k, dt in output.fields if k != "cycle"
        ]

    def arrays(self, output: Output, columns: Sequence[Column], value: Value, n_rows: int) -> list[pa.Array]:
        """``step_index``, ``cycle``, then the field columns (one row per cycle)."""
        assert isinstance(value, Ragged)
        counts = value.counts
        step = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        if "cycle" in value.fields:
            cycle = value.fields["cycle"].astype(np.int64)
        else:  # position within the step
            cycle = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(
                np.cumsum(counts) - counts, counts
            )
        fields = [k for k, _ in output.fields if k != "cycle"]
        return [
            from_numpy(step),
            from_numpy(cycle),
            *(from_numpy(value.fields[k], c.type) for k, c in zip(fields, columns, strict=True)),
        ]
