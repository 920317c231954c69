"""Transient traces: ``transient/measurement_data`` (3, total_points), steps delimited by the step table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dask_features.io.sources._base import Source, register_source

if TYPE_CHECKING:
    from dask_features.io.chunks import TransientChunk
    from dask_features.io.hdf5 import Experiment

__all__ = ["TransientSource"]


class TransientSource(Source):
    """Drain current over time under a pulsed gate, one trace per step: ``(time, current)``."""

    name = "transient"

    def n_steps(self, experiment: Experiment) -> int:
        return experiment.n_transient_steps

    def points_per_step(self, experiment: Experiment) -> float:
        n = max(experiment.n_transient_steps, 1)
        return 2.0 * max(experiment.transient_total_points / n, 1.0)  # time and current

    def read(self, experiment: Experiment, start: int, stop: int) -> TransientChunk:
        return experiment.read_transient(start, stop)

    def unavailable(self, experiment: Experiment) -> str | None:
        why = experiment.transient_unavailable
        return None if why is None else f"{experiment.path}: {why}"

    def describe(self, experiment: Experiment) -> str:
        return (
            f"{experiment.n_transient_steps} transient traces ({experiment.transient_total_points} samples)"
        )


TRANSIENT = register_source(TransientSource())
