"""The shipped presets: YAML files in ``presets/``, read from their parsed copy when it is current.

Parsing YAML means importing PyYAML (tens of milliseconds in a fresh process) and walking the
document twice (see :mod:`dask_features.config._yaml`). ``presets/_parsed.json`` holds each preset's
parsed content with the digest of the YAML text it came from; a preset whose text no longer
matches its digest is parsed from YAML as before, so an edited preset is never read stale.
``python -m dask_features.config.presets`` rewrites the copy (a test checks it is current).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dask_features.config._yaml import load_yaml
from dask_features.errors import ConfigError

__all__ = ["PRESETS", "list_presets", "preset_data", "write_parsed"]

#: The presets folder, inside the installed package.
PRESETS = Path(__file__).with_name("presets")
_PARSED = PRESETS / "_parsed.json"


def list_presets() -> list[str]:
    """Names of the configs shipped with the package."""
    return sorted(p.name.removesuffix(".yaml") for p in PRESETS.iterdir() if p.name.endswith(".yaml"))


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@functools.cache
def _parsed() -> dict[str, Any]:
    try:
        return json.loads(_PARSED.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or damaged: every preset is parsed from its YAML


def parse(text: str, origin: str) -> Mapping[str, Any]:
    """A config document's top-level mapping (bounded YAML loader)."""
    data = load_yaml(text, origin)
    if not isinstance(data, Mapping):
        raise ConfigError([f"top level must be a mapping, got {type(data).__name__}"], source=origin)
    return data


def preset_data(name: str) -> Mapping[str, Any]:
    """The parsed content of preset ``name`` (one of :func:`list_presets`)."""
    text = (PRESETS / f"{name}.yaml").read_text(encoding="utf-8")
    entry = _parsed().get(name)
    if isinstance(entry, dict) and entry.get("digest") == _digest(text):
        return copy.deepcopy(entry["data"])  # a caller may change its copy
    return parse(text, name)


def write_parsed() -> Path:
    """Rewrite ``presets/_parsed.json`` from the YAML files; returns its path."""
    parsed = {}
    for name in list_presets():
        text = (PRESETS / f"{name}.yaml").read_text(encoding="utf-8")
        parsed[name] = {"digest": _digest(text), "data": parse(text, name)}
    # Key order kept as written: it is the order of params in the output files' metadata.
    _PARSED.write_text(json.dumps(parsed, indent=1) + "\n", encoding="utf-8")
    _parsed.cache_clear()
    return _PARSED
