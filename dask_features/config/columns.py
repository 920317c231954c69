"""The output columns of a config, planned once before any work starts.

Every feature claims its columns through its output kind (:mod:`dask_features.extractors.outputs`);
the plan adds the identity and key columns of each table and rejects any clash (a scalar ``c_0``
next to a 2-vector ``c``, a feature named like an identity column, two ragged fields landing on one
name) with a :class:`~dask_features.errors.ConfigError`, so no column is ever overwritten.

Tables (all experiments of a config share one schema per table)::

    steps   chip_id, device_id, test_id, experiment, step_index, <features>
    cycles  chip_id, device_id, test_id, experiment, step_index, cycle, <ragged fields>
    errors  chip_id, device_id, test_id, experiment, step_index, feature, message
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from dask_features.extractors.outputs import Column

if TYPE_CHECKING:
    from dask_features.config.spec import FeatureSpec

__all__ = ["IDENTITY_COLUMNS", "KEY_COLUMNS", "TABLES", "ColumnPlan", "plan_columns"]

#: Output tables, in writing order (``steps`` last: it marks an experiment complete).
TABLES = ("steps", "cycles", "errors")
#: Columns naming the experiment, first in every row of every table.
IDENTITY_COLUMNS = ("chip_id", "device_id", "test_id", "experiment")
#: Key columns of each table, after the identity columns.
KEY_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "steps": ("step_index",),
    "cycles": ("step_index", "cycle"),
    "errors": ("step_index", "feature", "message"),
}
#: Columns :func:`~dask_features.read_features` adds from the file metadata.
READ_COLUMNS = ("source_file",)
_KEY_TYPES = {"step_index": pa.int64(), "cycle": pa.int64(), "feature": pa.string(), "message": pa.string()}
#: Derived features are evaluated per experiment; a 2-D result is stored as a list column.
DERIVED_SCALAR = pa.float64()
DERIVED_VECTOR = pa.list_(pa.float64())


@dataclass(frozen=True)
class ColumnPlan:
    """Columns of every feature, checked for clashes.

    Attributes
    ----------
    columns : dict
        Feature name -> its columns, in config order (``steps`` or ``cycles`` table).
    """

    columns: Mapping[str, tuple[Column, ...]]

    def base_fields(self, table: str) -> list[pa.Field]:
        """Identity and key fields of ``table``."""
        ids = [pa.field(c, pa.string()) for c in IDENTITY_COLUMNS]
        return ids + [pa.field(c, _KEY_TYPES[c]) for c in KEY_COLUMNS[table]]

    def schema(self, table: str, derived: Mapping[str, pa.DataType] | None = None) -> pa.Schema:
        """Arrow schema of ``table``; ``derived`` gives the type of derived features decided at run time."""
        fields = self.base_fields(table)
        for name, columns in self.columns.items():
            for col in columns:
                if col.table == table:
                    type_ = col.type if col.type is not None else (derived or {}).get(name, DERIVED_SCALAR)
                    fields.append(pa.field(col.name, type_))
        return pa.schema(fields)


def _expanded(name: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(name)}_\d+")


def plan_columns(features: Sequence[FeatureSpec]) -> tuple[ColumnPlan, list[str]]:
    """Plan the columns of ``features``.

    Returns
    -------
    plan : ColumnPlan
    problems : list of str
        One line per clash (empty when the plan is usable).
    """
    problems: list[str] = []
    columns: dict[str, tuple[Column, ...]] = {}
    ragged: list[tuple[str, Column]] = []
    for f in features:
        if f.is_derived:
            # Scalar or list: decided by the data, the name is the same (schema() fills the type).
            columns[f.name] = (Column(f.name, "steps", None, expands=True),)
            continue
        output = f.output
        assert output is not None
        cols = output.handler.columns(output, f.name)
        columns[f.name] = tuple(cols)
        ragged.extend((f.name, c) for c in cols if c.table == "cycles")
    columns.update(_prefix_clashing_fields(ragged, columns))
    for table in TABLES:
        owners: dict[str, str] = {c: "an identity column" for c in (*IDENTITY_COLUMNS, *READ_COLUMNS)}
        owners.update({c: "a key column" for c in KEY_COLUMNS[table]})
        claimed = [(name, c) for name, cols in columns.items() for c in cols if c.table == table]
        for feature, col in claimed:
            if col.name in owners:
                problems.append(
                    f"feature {feature!r}: column {col.name!r} of the {table} table is already "
                    f"{owners[col.name]}; rename the feature"
                )
            else:
                owners[col.name] = f"a column of feature {feature!r}"
        problems.extend(_expansion_clashes(claimed, owners, table))
    return ColumnPlan(columns), problems


def _prefix_clashing_fields(
    ragged: Iterable[tuple[str, Column]], columns: Mapping[str, tuple[Column, ...]]
) -> dict[str, tuple[Column, ...]]:
    """Ragged fields keep their name unless it clashes; then they become ``{feature}_{field}``."""
    ragged = list(ragged)
    names = [c.name for _, c in ragged]
    taken = {*IDENTITY_COLUMNS, *READ_COLUMNS, *KEY_COLUMNS["cycles"]}
    renamed: dict[str, list[Column]] = {}
    for feature, col in ragged:
        clash = names.count(col.name) > 1 or col.name in taken
        new = Column(f"{feature}_{col.name}", col.table, col.type) if clash else col
        renamed.setdefault(feature, []).append(new)
    return {
        f: tuple(c for c in columns[f] if c.table != "cycles") + tuple(cols) for f, cols in renamed.items()
    }


def _expansion_clashes(claimed: list[tuple[str, Column]], owners: Mapping[str, str], table: str) -> list[str]:
    """List columns are read back as ``{name}_0, {name}_1, ...``: no other column may look like that."""
    problems: list[str] = []
    for feature, col in claimed:
        if not col.expands:
            continue
        pattern = _expanded(col.name)
        problems.extend(
            f"feature {feature!r}: its per-step vectors are read back as columns {col.name}_0, "
            f"{col.name}_1, ... of the {table} table, and column {other!r} is already {owner}; rename one"
            for other, owner in owners.items()
            if pattern.fullmatch(other)
        )
    return problems
