"""Small real data and a runner for ``python -m dask_features`` subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dask_features import synth

#: Four tiny experiments: fast to extract, real files.
TINY = {"n_experiments": 4, "n_steps": 4, "sweep_points": 21, "transient_samples": 200}

#: An extractor that sleeps (so a run can be interrupted half way) registered by ``--import``.
PLUGIN = textwrap.dedent(
    """
    import os, time
    import dask_features as dfe

    @dfe.register("test.slow_len", source="transfer", cost=1e6)
    def slow_len(chunk):
        time.sleep(float(os.environ.get("SLOW_DELAY", "0")))
        return chunk.lengths.astype(float)
    """
)
SLOW_CONFIG = "name: slow\nfeatures:\n  - {name: n, extractor: test.slow_len}\n"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of four small experiment files (do not write into it)."""
    folder = tmp_path_factory.mktemp("tiny") / "data"
    synth.generate_dataset(folder, seed=3, **TINY)
    return folder


@pytest.fixture
def plugin(tmp_path: Path) -> tuple[Path, Path]:
    """``(plugin .py file, config YAML using its extractor)``."""
    module = tmp_path / "slowplug.py"
    module.write_text(PLUGIN)
    config = tmp_path / "slow.yaml"
    config.write_text(SLOW_CONFIG)
    return module, config


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: this checkout first on the path."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 240, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dask_features ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "dask_features", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=cli_env(**env),
        timeout=timeout,
        check=False,
    )
