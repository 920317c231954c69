"""Shared helpers of the reliability tests: small real experiment files and their clean outputs."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import dask_features as dfe
from dask_features import synth

#: Small but complete experiments: 8 steps of each kind, 41-point sweeps, 2 gate periods per step.
SMALL: dict[str, Any] = {"n_transfer": 8, "n_transient": 8, "sweep_points": 41, "transient_samples": 400}
#: File name of the clean experiment every bad-input folder also holds.
GOOD_NAME = "chip-1-good-test_1.h5"


def write_small(path: Path, **overrides: Any) -> Path:
    """Write one small synthetic experiment.

    Parameters
    ----------
    path : Path
        File (or folder) to write; see :func:`dask_features.synth.write_experiment`.
    **overrides
        Arguments of ``write_experiment`` that differ from :data:`SMALL` and seed 2.

    Returns
    -------
    Path
        The file written.
    """
    return synth.write_experiment(path, **{**SMALL, "seed": 2, **overrides})


def edit_h5(path: Path, edit: Callable[[h5py.File], None]) -> Path:
    """Open ``path`` for writing, apply ``edit`` to it and return the path (the "direct HDF5 edit")."""
    with h5py.File(path, "a") as f:
        edit(f)
    return path


def replace_dataset(f: h5py.File, name: str, data: np.ndarray) -> None:
    """Replace dataset ``name`` with ``data`` (other shape or dtype than the original)."""
    del f[name]
    f.create_dataset(name, data=data)


def steps_frame(path: Path) -> pd.DataFrame:
    """The values of one ``steps`` Parquet file (its metadata and output name dropped)."""
    return pq.read_table(path).to_pandas().drop(columns="experiment")


def extract_one(source: Path, config: Any, out: Path) -> pd.DataFrame:
    """Extract one file with the sync scheduler and return its steps table.

    Parameters
    ----------
    source : Path
        Experiment file.
    config : Any
        Anything :func:`dask_features.extract` accepts as a config.
    out : Path
        Output folder (must be fresh: a reference run of its own).
    """
    result = dfe.extract(source, config, out, scheduler="sync", progress=False)
    assert result.ok, result.summary()
    assert len(result.successful) == 1
    return steps_frame(next(iter(result.successful.values())))


@pytest.fixture(scope="session")
def good_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One clean N-type experiment (serial writer), written once per session."""
    return write_small(tmp_path_factory.mktemp("good") / GOOD_NAME, seed=1, test_id="test_1")


@pytest.fixture(scope="session")
def clean_steps(good_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[Any], pd.DataFrame]:
    """``clean_steps(config)``: the good experiment's steps table from a run on its own (memoised)."""
    cache: dict[str, pd.DataFrame] = {}
    base = tmp_path_factory.mktemp("clean")

    def get(config: Any) -> pd.DataFrame:
        cfg = dfe.load_config(config)
        if cfg.hash not in cache:
            cache[cfg.hash] = extract_one(good_file, cfg, base / cfg.hash)
        return cache[cfg.hash]

    return get


def copy_good(good_file: Path, folder: Path) -> Path:
    """Copy the good experiment into ``folder`` (keeping its mtime) and return the copy."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(good_file, folder / GOOD_NAME))
