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
