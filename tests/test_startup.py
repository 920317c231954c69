"""A fresh interpreter extracting a shipped preset loads only what that work needs.

pandas, SciPy, numba, Dask and distributed each cost a fresh process a hundred milliseconds or
more to import, PyYAML tens; none is needed to read HDF5, compute the features of any shipped
preset and write Parquet (numba only while the compiled kernels are built).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dask_features import _compiled, list_presets, synth

UNWANTED = ("pandas", "scipy", "numba", "dask", "distributed", "yaml")

#: Preset -> the experiment it runs on, and whether it calls compiled kernels.
PRESETS = {
    "v2_transfer_basic": ({"n_transfer": 3, "n_transient": 0, "sweep_points": 41}, False),
    "v2_transient_cycles": ({"n_transfer": 0, "n_transient": 3, "transient_samples": 2000}, True),
    "transient_tau": ({"n_transfer": 0, "n_transient": 3, "transient_samples": 2000}, True),
    "transfer_robust": ({"n_transfer": 3, "n_transient": 0, "sweep_points": 41}, True),
    "v2_mixed": ({"n_transfer": 3, "n_transient": 3, "sweep_points": 41, "transient_samples": 2000}, True),
}
#: Presets whose features flag some steps of the generated data (NaN + error record): every other
#: preset must extract it without a single error record.
FLAGS_STEPS = {"transfer_robust"}

RUN = """
import json, sys
import dask_features as dfe
res = dfe.extract(sys.argv[1], sys.argv[2], sys.argv[3], progress=False)
assert res.ok and (res.n_errors == 0 or sys.argv[4] == "flags"), res.summary()
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.fixture(scope="module", params=sorted(PRESETS))
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, set[str]]:
    """A preset, and the top-level modules a fresh process loaded to extract it (default scheduler)."""
    preset = request.param
    tmp = tmp_path_factory.mktemp("startup")
    path = synth.write_experiment(tmp, seed=2, **PRESETS[preset][0])
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            RUN,
            str(path),
            preset,
            str(tmp / "out"),
            "flags" if preset in FLAGS_STEPS else "",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (tmp / "out" / preset / "steps").is_dir()
    return preset, set(json.loads(out.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", UNWANTED)
def test_extract_does_not_import(loaded: tuple[str, set[str]], module: str) -> None:
    preset, modules = loaded
    if module == "numba" and PRESETS[preset][1] and _compiled.find() is None:
        pytest.skip("the compiled kernels are not built (python -m dask_features.warmup): numba's JIT runs")
    assert module not in modules


def test_every_shipped_preset_is_checked() -> None:
    """A preset added later must get its experiment here, not go unchecked."""
    assert sorted(PRESETS) == sorted(list_presets())
