"""Bounded YAML loading: a config file can neither hang the loader nor flood memory or messages.

PyYAML's safe loader already refuses tags that build Python objects, but on its own it

* expands aliases without limit when the result is walked (a 600-byte "billion laughs" file
  becomes hundreds of millions of nodes as soon as the config is hashed or printed),
* recurses once per nesting level (5,000 nested ``[`` end in ``RecursionError``),
* reads any size, with the pure-Python scanner when ``yaml.safe_load`` is used (2 MB: ~30 s).

:func:`load_yaml` checks the size first, then streams the parser's events (no recursion, no
objects built) to measure the nesting depth and the size the document has once every alias is
expanded, and only then builds the objects with the C safe loader when libyaml is available.
Every failure is a :class:`~dask_features.errors.ConfigError` with a one-line message.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from dask_features.errors import ConfigError

__all__ = ["MAX_DEPTH", "MAX_NODES", "MAX_YAML_BYTES", "load_yaml", "read_yaml_text"]

#: Largest config file read [bytes]; the biggest shipped preset is a few kB, and checking plus
#: loading 256 kB takes about a second.
MAX_YAML_BYTES = 256 * 1024
#: Nodes the document may have with every alias expanded.
MAX_NODES = 200_000
#: Deepest nesting of mappings and sequences.
MAX_DEPTH = 64


@functools.cache
def _yaml() -> Any:
    """PyYAML, imported when a document is first parsed (a run from a dict config never needs it)."""
    import yaml

    return yaml


def _loader() -> type[Any]:
    yaml = _yaml()
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml_text(path: str | os.PathLike[str], source: str) -> str:
    """The text of a config file, refusing files over :data:`MAX_YAML_BYTES` before reading them."""
    size = Path(path).stat().st_size
    if size > MAX_YAML_BYTES:
        raise ConfigError([f"file is {size:,} bytes; configs are limited to {MAX_YAML_BYTES:,}"], source)
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text (byte {exc.start})"], source) from None


def _measure(text: str, source: str) -> None:
    """Walk the parser events: refuse deep nesting and documents that expand past :data:`MAX_NODES`."""
    # One counter per open collection; an anchored collection's expanded size is kept for its aliases.
    yaml = _yaml()
    opening = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
    closing = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    stack: list[tuple[str | None, int]] = [(None, 0)]
    anchors: dict[str, int] = {}
    for event in yaml.parse(text, Loader=_loader()):
        if isinstance(event, opening):
            if len(stack) > MAX_DEPTH:
                raise ConfigError([f"nested more than {MAX_DEPTH} levels deep"], source)
            stack.append((event.anchor, 1))
            continue
        if isinstance(event, closing):
            anchor, size = stack.pop()
            if anchor is not None:
                anchors[anchor] = size
        elif isinstance(event, yaml.AliasEvent):
            size = anchors.get(event.anchor, 1)
        elif isinstance(event, yaml.ScalarEvent):
            size = 1
            if event.anchor is not None:
                anchors[event.anchor] = 1
        else:
            continue
        top_anchor, top_size = stack[-1]
        stack[-1] = (top_anchor, top_size + size)
        if stack[-1][1] > MAX_NODES or size > MAX_NODES:
            raise ConfigError(
                [f"expands to more than {MAX_NODES:,} values (aliases '*name' repeat their anchor)"], source
            )


def load_yaml(text: str, source: str) -> Any:
    """Parse a config document within the limits of this module.

    Parameters
    ----------
    text : str
        The YAML text.
    source : str
        Where it came from (file or preset name), for messages.

    Raises
    ------
    ConfigError
        Too large, too deep, too many values after alias expansion, or not valid YAML.
    """
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(
            [f"text is {len(text):,} characters; configs are limited to {MAX_YAML_BYTES:,}"], source
        )
    yaml = _yaml()
    try:
        _measure(text, source)
        return yaml.load(text, Loader=_loader())  # the safe loader, C or Python
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"invalid YAML{where}: {problem[:200]}"], source) from None
    except RecursionError:
        raise ConfigError([f"nested more than {MAX_DEPTH} levels deep"], source) from None
