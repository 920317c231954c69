"""Transfer sweeps: ``transfer/measurement_data`` (n_steps, 2, max_points), NaN-padded."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dask_features.io.sources._base import Source, register_source

if TYPE_CHECKING:
    from dask_features.io.chunks import TransferChunk
    from dask_features.io.hdf5 import Experiment

__all__ = ["TransferSource"]


class TransferSource(Source):
    """Gate-voltage sweeps, one per step: ``(vg, id)`` pairs."""

    name = "transfer"

    def n_steps(self, experiment: Experiment) -> int:
        return experiment.n_transfer_steps

    def points_per_step(self, experiment: Experiment) -> float:
        return 2.0 * max(experiment.transfer_max_points, 1)  # Vg and Id

    def read(self, experiment: Experiment, start: int, stop: int) -> TransferChunk:
        return experiment.read_transfer(start, stop)

    def describe(self, experiment: Experiment) -> str:
        return (
            f"{experiment.n_transfer_steps} transfer sweeps of up to {experiment.transfer_max_points} points"
        )

    def step_arrays(self, chunk: Any, i: int) -> tuple[np.ndarray, np.ndarray]:
        # Single-step extractors get clean sweeps: NaN points inside a sweep are dropped.
        x, y = chunk.step(i)
        keep = np.isfinite(x) & np.isfinite(y)
        return x[keep], y[keep]


TRANSFER = register_source(TransferSource())
