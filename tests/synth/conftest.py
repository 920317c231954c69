"""Small synthetic files shared by the synth tests (few steps, short sweeps and traces)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dask_features.synth import write_experiment

SMALL: dict[str, Any] = {"n_transfer": 6, "n_transient": 6, "sweep_points": 61, "transient_samples": 400}


@pytest.fixture
def make_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a small experiment into ``tmp_path``; keyword arguments override `SMALL`."""
    counter = iter(range(1000))

    def make(**kwargs: Any) -> Path:
        options = {**SMALL, **kwargs}
        return write_experiment(tmp_path / f"exp{next(counter)}.h5", **options)

    return make
