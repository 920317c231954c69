"""A new data source and a new output kind each take one class; the engine needs no change."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

import dask_features as dfe
from dask_features.extractors import REGISTRY as GLOBAL_REGISTRY
from dask_features.extractors import Registry, register
from dask_features.extractors.outputs import Column, Output, OutputKind, Value, output_kind
from dask_features.io import Experiment, Source, TransferChunk, register_source


class ReverseSweeps(Source):
    """Transfer sweeps read back to front (a stand-in for a new measurement group)."""

    name = "test_reverse_sweeps"

    def n_steps(self, experiment: Experiment) -> int:
        return experiment.n_transfer_steps

    def points_per_step(self, experiment: Experiment) -> float:
        return 2.0 * experiment.transfer_max_points

    def read(self, experiment: Experiment, start: int, stop: int) -> TransferChunk:
        chunk = experiment.read_transfer(start, stop)
        for i, n in enumerate(chunk.lengths):
            chunk.vg[i, :n] = chunk.vg[i, :n][::-1].copy()
            chunk.id[i, :n] = chunk.id[i, :n][::-1].copy()
        return chunk

    def describe(self, experiment: Experiment) -> str:
        return f"{experiment.n_transfer_steps} reversed sweeps"


@output_kind
class FlagKind(OutputKind):
    """A yes/no per step, stored as a boolean column."""

    name = "test_flag"

    def empty(self, output: Output, n: int) -> Value:
        return np.zeros(n, dtype=bool)

    def validate(self, output: Output, value: Any, n: int) -> Value:
        return np.asarray(value, dtype=bool).reshape(n)

    def concat(self, output: Output, parts: Sequence[Value]) -> Value:
        return np.concatenate([np.asarray(p) for p in parts])

    def stack(self, output: Output, values: Sequence[Any]) -> Value:
        return np.array([bool(v) for v in values])

    def columns(self, output: Output, feature: str) -> list[Column]:
        return [Column(feature, "steps", pa.bool_())]

    def arrays(self, output: Output, columns: Sequence[Column], value: Value, n_rows: int) -> list[pa.Array]:
        return [pa.array(np.asarray(value)[:n_rows], type=pa.bool_())]


register_source(ReverseSweeps())
REGISTRY = Registry()
REGISTRY.update(GLOBAL_REGISTRY)


@register("test.first_vg", source="test_reverse_sweeps", per_step=True, registry=REGISTRY)
def first_vg(vg: np.ndarray, id: np.ndarray) -> float:
    """The first gate voltage of the (reversed) sweep."""
    return float(vg[0])


@register("test.rising", source="transfer", output=Output("test_flag"), registry=REGISTRY)
def rising(chunk: TransferChunk) -> np.ndarray:
    """Whether the sweep ends above where it starts."""
    last = chunk.vg[np.arange(chunk.n_steps), chunk.lengths - 1]
    return last > chunk.vg[:, 0]


def test_new_source_and_kind_run_end_to_end(dataset: Path, tmp_path: Path) -> None:
    config = dfe.load_config(
        {
            "name": "extended",
            "features": [
                {"name": "vg_end", "extractor": "test.first_vg", "input": "test_reverse_sweeps"},
                {"name": "up", "extractor": "test.rising"},
            ],
        },
        registry=REGISTRY,
    )
    assert config.sources == ("transfer", "test_reverse_sweeps")
    res = dfe.extract(dataset, config, tmp_path, scheduler="sync", progress=False, chunk_steps=7)
    assert res.ok, res.summary()
    frame = dfe.read_features(tmp_path, config)
    assert frame["up"].dtype == bool
    for source, rows in frame.groupby("source_file"):
        chunk = dfe.open_experiment(source).read_transfer(0, len(rows))
        last = chunk.vg[np.arange(chunk.n_steps), chunk.lengths - 1]
        np.testing.assert_array_equal(rows.sort_values("step_index")["vg_end"], last)
        np.testing.assert_array_equal(rows.sort_values("step_index")["up"], last > chunk.vg[:, 0])
