"""Small real datasets for the engine tests (HDF5 files written by the synth generator)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dask_features import synth

# Small but complete: 2 gate cycles per transient step, 41-point sweeps.
SMALL = {"n_steps": 24, "sweep_points": 41, "transient_samples": 400}


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three clean experiments (N and P devices, both writers)."""
    folder = tmp_path_factory.mktemp("dataset")
    synth.generate_dataset(folder, n_experiments=3, seed=11, **SMALL)
    return folder


@pytest.fixture
def defective(tmp_path: Path) -> Path:
    """One experiment with NaN samples, aborted sweeps and empty transient steps, next to a clean one."""
    bad = {"nan_samples": 0.2, "ragged": 0.2, "empty_steps": 0.2}
    for test_id, seed, defects in (("test_900", 5, bad), ("test_901", 6, None)):
        synth.write_experiment(
            tmp_path,
            n_transfer=SMALL["n_steps"],
            n_transient=SMALL["n_steps"],
            sweep_points=SMALL["sweep_points"],
            transient_samples=SMALL["transient_samples"],
            defects=defects,
            seed=seed,
            test_id=test_id,
        )
    return tmp_path
