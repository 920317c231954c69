"""A fresh interpreter extracting v2_transfer_basic loads only what that work needs.

pandas, SciPy, numba, Dask and distributed each cost a fresh process a hundred milliseconds or
more to import, PyYAML tens; none is needed to read HDF5, compute transfer features and write
Parquet with a shipped preset.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dask_features import synth

UNWANTED = ("pandas", "scipy", "numba", "dask", "distributed", "yaml")

RUN = """
import json, sys
import dask_features as dfe
res = dfe.extract(sys.argv[1], sys.argv[2], sys.argv[3], progress=False)
assert res.ok and res.n_errors == 0, res.summary()
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Top-level modules loaded by a fresh process that ran one extract (default scheduler)."""
    tmp = tmp_path_factory.mktemp("startup")
    path = synth.write_experiment(tmp, n_transfer=3, n_transient=0, sweep_points=41, seed=2)
    out = subprocess.run(
        [sys.executable, "-c", RUN, str(path), "v2_transfer_basic", str(tmp / "out")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (tmp / "out" / "v2_transfer_basic" / "steps").is_dir()
    return set(json.loads(out.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", UNWANTED)
def test_transfer_extract_does_not_import(loaded: set[str], module: str) -> None:
    assert module not in loaded
