"""Config loading (YAML, dict, presets), validation reporting every problem, layering and hashing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dask_features import ConfigError, list_presets, load_config

# A file as users have them for oect-infra: extra top-level keys, `input` as str, lambdas.
USER_YAML = """
version: v2
name: my_transfer
config_version: '1.0'
data_type: transfer
data_source: {experiment_type: transfer, load_mode: batch}
versioning: {auto_create: true, expand_multidim: true}
advanced: {caching: {enabled: true}}
features:
  - name: gm_fwd
    extractor: transfer.gm_max
    input: transfer
    params: {direction: forward, device_type: N}
    output_shape: [n_steps]
    unit: S
  - name: gm_rev
    extractor: transfer.gm_max
    input: transfer
    params: {direction: reverse}
  - name: gm_ratio
    func: "lambda a, b: a / b"
    input: [gm_fwd, gm_rev]
  - name: gm_ratio_z
    func: "lambda r: (r - r.mean()) / r.std()"
    input: gm_ratio
"""


def test_users_yaml_loads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "my_transfer.yaml"
    path.write_text(USER_YAML)
    cfg = load_config(path)
    assert cfg.name == "my_transfer"
    assert [f.name for f in cfg.features] == ["gm_fwd", "gm_rev", "gm_ratio", "gm_ratio_z"]
    assert cfg.sources == ("transfer",)
    assert [[f.name for f in layer] for layer in cfg.layers] == [
        [],
        ["gm_fwd", "gm_rev"],
        ["gm_ratio"],
        ["gm_ratio_z"],
    ]
    assert cfg["gm_rev"].params["device_type"] == "N"  # defaults resolved


def test_name_defaults_to_file_stem(tmp_path: Path) -> None:
    data = yaml.safe_load(USER_YAML)
    del data["name"]
    path = tmp_path / "stem_name.yml"
    path.write_text(yaml.safe_dump(data))
    assert load_config(path).name == "stem_name"


@pytest.mark.parametrize("name", ["v2_transfer_basic", "v2_transient_cycles", "v2_mixed", "transient_tau"])
def test_presets_resolve_from_any_directory(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert name in list_presets()
    cfg = load_config(name)
    assert cfg.name == name
    assert cfg.origin == f"preset:{name}"


def test_dict_config_accepts_callables() -> None:
    cfg = load_config(
        {
            "name": "d",
            "features": [
                {"name": "g", "extractor": "transfer.gm_max", "input": "transfer"},
                {"name": "g2", "func": lambda g: g * 2, "input": "g"},
            ],
        }
    )
    assert cfg["g2"].is_derived


def test_all_problems_reported_at_once() -> None:
    bad = {
        "name": "../escape",
        "features": [
            {"name": "a", "extractor": "transfer.gm_maks", "input": "transfer"},
            {
                "name": "b",
                "extractor": "transfer.gm_max",
                "input": "transfer",
                "params": {"direction": "sideways", "colour": 1},
            },
            {"name": "c", "func": "lambda x: x", "input": "nowhere"},
            {"name": "c", "func": "lambda x: x", "input": "b"},
            {"name": "d", "func": "lambda x: x.__class__", "input": "b"},
            {"name": "e", "func": "lambda x: x", "input": "f"},
            {"name": "f", "func": "lambda x: x", "input": "e"},
            {"name": "g", "extractor": "transfer.gm_max", "input": "transient"},
            {"name": "step_index", "func": "lambda x: x", "input": "b"},
            {"name": "h"},
        ],
    }
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    text = str(info.value)
    for needle in [
        "config name '../escape'",
        "did you mean 'transfer.gm_max'",
        "unknown parameter 'colour'",
        "'sideways'",
        "unknown input 'nowhere'",
        "duplicate feature name 'c'",
        "'__class__' is not allowed",
        "dependency cycle: e -> f -> e",
        "reads 'transfer', but input is ['transient']",
        "reserved",
        "exactly one of 'extractor' or 'func'",
    ]:
        assert needle in text, needle
    assert len(info.value.problems) >= 11


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("features: [}", "invalid YAML"),
        ("- just\n- a list", "top level must be a mapping"),
        ("name: x\nfeatures: []", "non-empty list"),
        ("name: x\nfeatures:\n  - !!python/object/apply:os.system ['echo pwned']", "invalid YAML"),
    ],
)
def test_malformed_yaml(tmp_path: Path, source: str, match: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(source)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_unknown_name_lists_presets() -> None:
    with pytest.raises(ConfigError, match="v2_transfer_basic"):
        load_config("no_such_preset")


def test_hash_is_content_based(tmp_path: Path) -> None:
    base = yaml.safe_load(USER_YAML)
    path = tmp_path / "a.yaml"
    path.write_text(USER_YAML)
    h = load_config(path).hash
    assert load_config(base).hash == h  # same content, other origin
    described = {
        **base,
        "description": "new words",
        "features": [{**f, "unit": "x"} for f in base["features"]],
    }
    assert load_config(described).hash == h  # documentation does not change values
    explicit_default = {
        **base,
        "features": [
            {**base["features"][1], "params": {"direction": "reverse", "device_type": "N"}},
            *base["features"][:1],
            *base["features"][2:],
        ],
    }
    assert load_config(explicit_default).hash != h  # order changed
    changed = {
        **base,
        "features": [{**base["features"][0], "params": {"direction": "reverse"}}, *base["features"][1:]],
    }
    assert load_config(changed).hash != h
    same_defaults = {
        **base,
        "features": [
            base["features"][0],
            {**base["features"][1], "params": {"direction": "reverse", "device_type": "N"}},
            *base["features"][2:],
        ],
    }
    assert load_config(same_defaults).hash == h  # spelling out a default is the same config


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("param", "params"),
        ("parms", "params"),
        ("extracter", "extractor"),
        ("inputs", "input"),
        ("unti", "unit"),
    ],
)
def test_misspelled_feature_key_is_a_problem(typo: str, meant: str) -> None:
    # A misspelled `params` would silently run the extractor with its defaults: a feature named
    # gm_rev computed on the forward sweep. Keys close to a known one are reported, not ignored.
    feature = {"name": "gm_rev", "extractor": "transfer.gm_max", "input": "transfer", "unit": "S"}
    value = feature.pop(meant, {"direction": "reverse"} if meant == "params" else "transfer")
    feature[typo] = value
    with pytest.raises(ConfigError) as info:
        load_config({"name": "k", "features": [feature]})
    assert f"unknown key {typo!r} (did you mean {meant!r}?)" in str(info.value)


def test_other_feature_keys_still_ignored() -> None:
    # oect-infra's keys (output_shape, description, unit) and unrelated extras stay accepted.
    cfg = load_config(
        {
            "name": "k",
            "features": [
                {
                    "name": "g",
                    "extractor": "transfer.gm_max",
                    "input": "transfer",
                    "output_shape": ["n_steps"],
                    "description": "x",
                    "unit": "S",
                    "comment": "lab notebook p. 12",
                }
            ],
        }
    )
    assert cfg["g"].unit == "S"


def test_lambda_with_more_parameters_than_inputs_is_a_problem() -> None:
    # Reported before any work starts, not as a NaN column with a TypeError per experiment.
    with pytest.raises(ConfigError, match=r"feature 'r'.*\['b'\].*1 input"):
        load_config(
            {
                "name": "k",
                "features": [
                    {"name": "g", "extractor": "transfer.gm_max", "input": "transfer"},
                    {"name": "r", "func": "lambda a, b: a / b", "input": "g"},
                ],
            }
        )
    # A default or a param supplies the extra parameter: fine.
    for item in (
        {"name": "r", "func": "lambda a, b=2: a / b", "input": "g"},
        {"name": "r", "func": "lambda a, b: a / b", "input": "g", "params": {"b": 2}},
    ):
        load_config(
            {
                "name": "k",
                "features": [{"name": "g", "extractor": "transfer.gm_max", "input": "transfer"}, item],
            }
        )


# Independent mistakes, one per feature or key: each must be reported by the first run, not one per
# fix-and-rerun. Problems that follow from another (an input naming an invalid feature) are not
# repeated.
MANY_MISTAKES = """
name: many
features:
  - {name: gm_fwd, extractor: transfer.gm_max, params: {direction: forward}}
  - {name: bogus, extractor: lab.nothing}
  - {name: ratio, func: "lambda a, b: a / b", input: [gm_fwd, bogus]}
  - {name: tau, extractor: transient.tau_on_off, params: {skip_samples: -1, min_r2: 5}}
  - {name: gm_rev, extractor: transfer.gm_max, parms: {direction: reverse}}
  - {name: gm_rev_x2, func: "lambda g: g * 2", input: gm_rev}
  - {name: a, func: "lambda x: x + 1", input: b}
  - {name: b, func: "lambda x: x * 2", input: a}
  - {name: robust, extractor: transfer.gm, input: 3, params: {windw: 11, order: x}}
  - {name: both, extractor: transfer.gm_max, func: "lambda x: x", params: [1]}
  - {name: bogus, extractor: transfer.absI_max}
  - {name: gm2, extractor: transfer.gm_max, params: {direction: both}}
  - {name: gm2_0, extractor: transfer.absI_max}
  - {name: z, func: "lambda x: x.__class__ + open('f')", input: [gm_fwd, gm2_0]}
"""


def test_every_independent_problem_of_a_config_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(MANY_MISTAKES)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    z = "in \"lambda x: x.__class__ + open('f')\""
    assert problems == [
        "feature 'bogus': no extractor named 'lab.nothing'",
        "feature 'tau': transient.tau_on_off: skip_samples must be a non-negative integer, got -1",
        "feature 'tau': transient.tau_on_off: min_r2 must be a number <= 1, got 5",
        "feature 'gm_rev': unknown key 'parms' (did you mean 'params'?)",
        "feature 'robust': 'input' must be a name or a list of names, got 3",
        "feature 'robust': unknown parameter 'windw' for extractor 'transfer.gm' (accepted: device_type, "
        "direction, max_rel_se, max_se_vg, order, peak_order, peak_window, value, window)",
        "feature 'robust': transfer.gm: window must be an integer or 'auto' and order an integer, got 'auto', 'x'",
        "feature 'both': give exactly one of 'extractor' or 'func'",
        "feature 'both': 'params' must be a mapping, got list",
        f"feature 'z': attribute '__class__' is not allowed (at column 11) {z}",
        f"feature 'z': only allowed NumPy functions, array methods and builtins may be called (at column 25) {z}",
        "feature 'z': the lambda takes 1 parameter(s) ['x'] but the feature has 2 input(s); inputs are passed positionally",
        "duplicate feature name 'bogus'",
        "dependency cycle: a -> b -> a",
        "feature 'gm2_0': column 'gm2_0' of the steps table is already a column of feature 'gm2'; rename the feature",
    ]
    # The message lists them one per line, under one heading naming the file.
    assert str(info.value).splitlines() == [
        f"invalid feature config {str(path.resolve())!r} ({len(problems)} problem(s)):",
        *(f"  - {p}" for p in problems),
    ]
