"""Deferred built-in families: known from the start, imported on first lookup, listed in full."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dask_features.extractors import BUILTIN, REGISTRY, Registry, list_extractors


def _fresh(code: str) -> object:
    """The JSON printed by ``code`` run in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("module", BUILTIN)
def test_each_module_registers_its_declared_names(module: str) -> None:
    code = (
        "import importlib, json\n"
        "from dask_features.extractors import REGISTRY\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted(dict.keys(REGISTRY))))"
    )
    assert set(BUILTIN[module]) <= set(_fresh(code))  # type: ignore[arg-type]


def test_a_lookup_imports_only_its_family() -> None:
    code = (
        "import json, sys\n"
        "from dask_features.extractors import REGISTRY, get_extractor\n"
        "assert 'transfer.Ion' in REGISTRY\n"
        "spec = get_extractor('transfer.gm_max')\n"
        "print(json.dumps([spec.name, sorted(m for m in sys.modules if m.startswith('dask_features.extractors.'))]))"
    )
    name, loaded = _fresh(code)  # type: ignore[misc]
    assert name == "transfer.gm_max"
    assert "dask_features.extractors.transfer" in loaded
    assert not {"dask_features.extractors.transient", "dask_features.extractors.transfer_robust"} & set(
        loaded
    )


def test_listing_loads_every_family_and_nothing_else() -> None:
    code = (
        "import json\n"
        "from dask_features.extractors import list_extractors\n"
        "print(json.dumps(list_extractors()))"
    )
    assert _fresh(code) == sorted(n for names in BUILTIN.values() for n in names)
    assert set(list_extractors()) >= {n for names in BUILTIN.values() for n in names}


def test_overriding_a_deferred_built_in_needs_replace() -> None:
    code = (
        "import json\n"
        "from dask_features.errors import RegistrationError\n"
        "from dask_features.extractors import REGISTRY, register\n"
        "def ion(chunk): return None\n"
        "try:\n"
        "    register('transfer.Ion', source='transfer')(ion)\n"
        "except RegistrationError as exc:\n"
        "    refused = str(exc)\n"
        "register('transfer.Ion', source='transfer', replace=True)(ion)\n"
        "print(json.dumps([refused, REGISTRY['transfer.Ion'].func.__qualname__]))\n"
    )
    refused, now = _fresh(code)  # type: ignore[misc]
    assert "already registered" in refused
    assert now == "ion"


def test_unknown_names() -> None:
    reg = Registry()
    reg.defer(["transfer.not_there"], "dask_features.extractors.transfer")
    assert "transfer.not_there" in reg  # until its module is imported
    assert reg.get("transfer.not_there") is None
    assert "transfer.not_there" not in reg
    with pytest.raises(KeyError):
        reg["transfer.nothing"]
    assert REGISTRY.get("transfer.nothing", 1) == 1


@pytest.mark.parametrize(
    ("name", "params", "problems"),
    [
        (
            "transient.tau_on_off",
            {"skip_samples": -1, "min_r2": 5, "period": 0},
            [
                "period must be 'auto' or a positive finite number, got 0",
                "skip_samples must be a non-negative integer, got -1",
                "min_r2 must be a number <= 1, got 5",
            ],
        ),
        (
            "transient.cycles",
            {"n_cycles": 0, "min_distance": 0},
            [
                "n_cycles must be 'auto' or a positive integer, got 0",
                "min_distance must be a positive integer (samples), got 0",
            ],
        ),
        (
            "transfer.Ion",
            {"window": 10, "direction": "raw", "vg": 0.3},
            [
                "need order >= 1 and window 'auto' or odd in [order + 2, 101]; got window=10, order=3",
                "vg needs direction 'forward' or 'reverse' (a double sweep passes each Vg twice)",
            ],
        ),
    ],
    ids=["tau", "cycles", "fit-and-vg"],
)
def test_every_parameter_problem_of_an_extractor_is_reported(
    name: str, params: dict[str, object], problems: list[str]
) -> None:
    import pickle

    from dask_features.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError) as info:
        REGISTRY[name].resolve_params(params)
    assert info.value.problems == [f"{name}: {p}" for p in problems]
    assert str(info.value) == "; ".join(info.value.problems)  # as one line, as before
    assert pickle.loads(pickle.dumps(info.value)).problems == info.value.problems


def test_unknown_parameters_and_the_extractors_own_check_are_reported_together() -> None:
    from dask_features.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError) as info:
        REGISTRY["transfer.gm"].resolve_params({"windw": 11, "order": 0})
    assert [p.split(" (")[0] for p in info.value.problems] == [
        "unknown parameter 'windw' for extractor 'transfer.gm'",
        "transfer.gm: need order >= 1 and window 'auto' or odd in [order + 2, 101]; got window='auto', order=0",
    ]
    # A value outside its choices may be what the check would trip over: the check waits for it.
    with pytest.raises(InvalidParameterError) as info:
        REGISTRY["transfer.gm"].resolve_params({"direction": "sideways", "order": 0})
    assert len(info.value.problems) == 1
