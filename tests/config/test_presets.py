"""Presets are read from their parsed copy only while it matches their YAML text."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dask_features.config import _presets, list_presets, load_config
from dask_features.config._presets import PRESETS, parse, preset_data


@pytest.mark.parametrize("name", list_presets())
def test_the_parsed_copy_is_current(name: str) -> None:
    """Fails after a preset edit: run ``python -m dask_features.config.presets``."""
    text = (PRESETS / f"{name}.yaml").read_text(encoding="utf-8")
    entry = _presets._parsed()[name]
    assert entry["digest"] == _presets._digest(text)
    assert json.dumps(entry["data"]) == json.dumps(parse(text, name))  # same values, same key order


def test_an_edited_preset_is_parsed_from_its_yaml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for p in PRESETS.glob("*.yaml"):
        (tmp_path / p.name).write_text(p.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "_parsed.json").write_text((PRESETS / "_parsed.json").read_text(encoding="utf-8"))
    edited = tmp_path / "v2_transfer_basic.yaml"
    edited.write_text(edited.read_text(encoding="utf-8").replace("name: gm_max_forward\n", "name: gm_fwd\n"))
    monkeypatch.setattr(_presets, "PRESETS", tmp_path)
    monkeypatch.setattr(_presets, "_PARSED", tmp_path / "_parsed.json")
    _presets._parsed.cache_clear()
    try:
        assert preset_data("v2_transfer_basic")["features"][0]["name"] == "gm_fwd"
        assert preset_data("v2_mixed") == parse((tmp_path / "v2_mixed.yaml").read_text(), "v2_mixed")
        # an unedited preset is served from the copy (a marker put there comes back), not its YAML
        copy = json.loads((tmp_path / "_parsed.json").read_text(encoding="utf-8"))
        copy["v2_mixed"]["data"]["description"] = "from the copy"
        (tmp_path / "_parsed.json").write_text(json.dumps(copy), encoding="utf-8")
        _presets._parsed.cache_clear()
        assert preset_data("v2_mixed")["description"] == "from the copy"
        (tmp_path / "_parsed.json").write_text("{damaged")
        _presets._parsed.cache_clear()
        assert preset_data("v2_mixed") == parse((tmp_path / "v2_mixed.yaml").read_text(), "v2_mixed")
    finally:
        _presets._parsed.cache_clear()


def test_each_call_gets_its_own_copy() -> None:
    first = preset_data("v2_mixed")
    first["features"].clear()
    assert preset_data("v2_mixed")["features"]


def test_a_preset_loads_without_pyyaml() -> None:
    code = (
        "import sys\n"
        "from dask_features.config import load_config\n"
        "cfg = load_config('v2_transfer_basic')\n"
        "assert 'yaml' not in sys.modules, 'yaml imported'\n"
        "print(cfg.hash)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == load_config("v2_transfer_basic").hash


def test_v2_transient_cycles_on_empty_steps_warns_nothing(tmp_path: Path) -> None:
    # A transient step without samples has no cycle peaks: its cycles are NaN with an error record,
    # and so are its mean and spread. NumPy's "Mean of empty slice" / "Degrees of freedom <= 0"
    # reached the user's console (and, with warnings as errors, cost the whole experiment's
    # cycle_mean / cycle_std).
    import warnings

    import numpy as np

    from dask_features import extract, read_features, synth

    path = synth.write_experiment(
        tmp_path / "data" / "empty-test_1.h5",
        n_transfer=0,
        n_transient=6,
        transient_samples=2000,
        seed=4,
        defects={"empty_steps": 0.3},
    )
    empty = synth.read_ground_truth(path)["transient"].query("empty_steps")["step_index"].tolist()
    assert empty
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = extract(path, "v2_transient_cycles", tmp_path / "out", scheduler="sync", progress=False)
    assert [str(w.message) for w in caught] == []
    assert result.ok
    steps = read_features(tmp_path / "out", "v2_transient_cycles").set_index("step_index")
    errors = result.errors
    assert sorted(errors["step_index"]) == empty
    assert set(errors["feature"]) == {"cycles"}
    cycles = steps.filter(regex=r"^cycles_\d+$").to_numpy()
    full = ~np.isin(steps.index, empty)
    np.testing.assert_array_equal(steps["cycle_mean"].to_numpy()[full], np.nanmean(cycles[full], axis=1))
    np.testing.assert_array_equal(steps["cycle_std"].to_numpy()[full], np.nanstd(cycles[full], axis=1))
    assert steps.loc[empty, ["cycle_mean", "cycle_std"]].isna().all().all()
