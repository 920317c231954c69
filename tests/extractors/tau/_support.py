"""Shared construction of one-step transient chunks for the tau tests."""

from __future__ import annotations

import numpy as np

from dask_features.io.chunks import TransientChunk


def one_step_chunk(
    t: np.ndarray, y: np.ndarray, *, period: float, dt: float, duty: float = np.nan
) -> TransientChunk:
    """A chunk holding one transient step with the given workflow period [s], timeStep [s] and duty."""
    return TransientChunk(
        step_index=np.zeros(1, np.int64),
        time=t,
        current=y,
        offsets=np.array([0, t.size]),
        period=np.array([period]),
        time_step=np.array([dt]),
        duty=np.array([duty]),
    )
