"""The feature catalogue: every registered extractor as a Markdown page (``dask-features extractors --markdown``).

The page is generated from the registry, so it lists exactly what a config can use: name, source,
unit, output kind, parameters with their defaults and allowed values, and the extractor's own
docstring (definition, units, what a NaN / error record means).
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

from dask_features.extractors.registry import REGISTRY, ExtractorSpec, Registry

__all__ = ["render_markdown"]

_INTRO = """\
# Feature catalogue

Every extractor a feature config can name (`extractor: <name>`), generated from the registry of this
installation. Parameters go under `params:`; a value outside the allowed choices is rejected when the
config is loaded. A step whose value cannot be trusted gets NaN and a record in the `errors` table
saying why.
"""


def _choices(annotation: Any) -> str:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return ", ".join(f"`{a!r}`" for a in args)
    literal = [_choices(a) for a in args if typing.get_origin(a) is typing.Literal]
    return ", ".join(literal)


def _type_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    if typing.get_origin(annotation) is typing.Literal:
        return "choice"
    text = getattr(annotation, "__name__", None) or str(annotation)
    return text.replace("typing.", "")


def _output(spec: ExtractorSpec) -> str:
    if callable(spec.output):
        return "scalar or vector (depends on the parameters)"
    out = spec.output
    if out.kind == "vector":
        return f"vector of {out.width if out.width else 'per-experiment'} columns (`name_0`, `name_1`, ...)"
    if out.kind == "ragged":
        return "rows of the `cycles` table, fields " + ", ".join(f"`{k}`" for k, _ in out.fields)
    return "scalar (one column)"


def _body(spec: ExtractorSpec) -> str:
    """The docstring without its ``chunk`` parameter entry (always the same)."""
    doc = inspect.getdoc(getattr(spec.func, "__wrapped__", spec.func)) or spec.description or ""
    lines = doc.splitlines()
    out: list[str] = []
    skip = False
    for line in lines:
        if line.startswith("chunk :"):
            skip = True
            continue
        if skip and line.startswith("    "):
            continue
        skip = False
        out.append(line)
    return "\n".join(out).strip()


def _section(spec: ExtractorSpec) -> str:
    parts = [f"## `{spec.name}`", ""]
    parts.append(f"- source: `{spec.source}`")
    parts.append(f"- unit: {spec.unit or 'n/a'}")
    parts.append(f"- output: {_output(spec)}")
    parts.append("")
    if spec.defaults:
        parts += ["| parameter | default | type / allowed values |", "|---|---|---|"]
        for name, default in spec.defaults.items():
            annotation = spec.annotations.get(name, inspect.Parameter.empty)
            allowed = _choices(annotation) or _type_name(annotation)
            parts.append(f"| `{name}` | `{default!r}` | {allowed.replace('|', chr(92) + '|')} |")
        parts.append("")
    body = _body(spec)
    if body:
        parts += [body, ""]
    return "\n".join(parts)


def render_markdown(registry: Registry | None = None) -> str:
    """The feature catalogue of ``registry`` (default: all registered extractors) as Markdown.

    Parameters
    ----------
    registry : Registry, optional
        Which registry to document; the package-wide one by default.

    Returns
    -------
    str
        One section per extractor, sorted by name, ending with a newline.
    """
    reg = REGISTRY if registry is None else registry
    index = ["## Contents", ""] + [f"- [`{name}`](#{name.replace('.', '').lower()})" for name in reg]
    sections = [_section(reg[name]) for name in reg]
    return "\n".join([_INTRO, *index, "", *sections]).rstrip() + "\n"
