"""Feature configurations: loading (YAML file, dict or preset), validation, layering and hashing.

The schema is the one users already write for oect-infra (``features_v2``)::

    name: v2_transfer_basic
    features:
      - name: gm_max_forward
        extractor: transfer.gm_max
        input: transfer
        params: {direction: forward, device_type: N}
        unit: S
      - name: gm_max_forward_normalized
        func: "lambda gm: (gm - gm.mean()) / gm.std()"
        input: gm_max_forward

Other top-level keys (``version``, ``data_source``, ``postprocessing``, ``versioning``, ``advanced``
...) are accepted and ignored, so existing files load unchanged. Every problem is collected and
reported in one :class:`~dask_features.errors.ConfigError` before any work starts.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from dask_features._names import is_config_name, is_feature_name
from dask_features.config._presets import list_presets, parse, preset_data
from dask_features.config._yaml import read_yaml_text
from dask_features.config.columns import IDENTITY_COLUMNS, KEY_COLUMNS, READ_COLUMNS, ColumnPlan, plan_columns
from dask_features.config.expressions import compile_expression
from dask_features.config.graph import check_graph, topological_layers
from dask_features.config.spec import FeatureSpec
from dask_features.errors import ConfigError, UnknownFeatureError, UnsafeExpressionError
from dask_features.extractors import REGISTRY, Registry, get_extractor
from dask_features.io.sources import source_names

__all__ = ["SOURCES", "FeatureConfig", "FeatureSpec", "list_presets", "load_config"]

#: Data sources a feature can read (the registered :class:`~dask_features.io.sources.Source` names).
SOURCES = source_names()
#: Names the output tables use for bookkeeping; features may not take them.
RESERVED_NAMES = frozenset(
    {*SOURCES, *IDENTITY_COLUMNS, *READ_COLUMNS, *(c for cols in KEY_COLUMNS.values() for c in cols)}
)
#: Bumped when the meaning of a config changes in a way old outputs cannot reflect. 2: values and
#: flags of this version differ from 1's where 1 was wrong (tau of clipped half-cycles, derived
#: values that were ±inf, a zero off current), so outputs of 1 are moved aside and recomputed, never
#: mixed with these. 3: likewise (tau of a drifting baseline, a sub-sample decay_time, a gm peak
#: beyond the sweep end passed as inside it).
HASH_SCHEMA = 3
# Keys of a feature entry (oect-infra's FeatureSpec). Other keys are ignored as oect-infra ignores
# them, except one that is a near miss of these: a misspelled `params` would run the extractor with
# its defaults under the feature's name, a plausible wrong number.
FEATURE_KEYS = ("name", "extractor", "func", "input", "params", "output_shape", "description", "unit")


@dataclass(frozen=True)
class FeatureConfig:
    """A validated feature configuration. Build it with :func:`load_config`.

    Attributes
    ----------
    name : str
        Config name; used in output paths.
    features : tuple of FeatureSpec
        In config order (the column order of the output).
    origin : str
        File path, ``"preset:<name>"`` or ``"<dict>"``.
    description : str
        Free text from the config.
    """

    name: str
    features: tuple[FeatureSpec, ...]
    origin: str = "<dict>"
    description: str = ""
    _plan: ColumnPlan | None = field(default=None, repr=False, compare=False)

    @property
    def columns(self) -> ColumnPlan:
        """The output columns of every feature (planned and checked when the config was loaded)."""
        if self._plan is None:
            plan, problems = plan_columns(self.features)
            if problems:
                raise ConfigError(problems, source=self.origin)
            object.__setattr__(self, "_plan", plan)
        assert self._plan is not None
        return self._plan

    @cached_property
    def hash(self) -> str:
        """Stable content hash (16 hex digits) of everything that affects the values (computed once)."""
        canonical = {"schema": HASH_SCHEMA, "features": [f.canonical() for f in self.features]}
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    @cached_property
    def sources(self) -> tuple[str, ...]:
        """Data sources read by the step-level features, in registration order (computed once)."""
        used = {f.source for f in self.features if not f.is_derived}
        return tuple(s for s in source_names() if s in used)

    @property
    def evaluation_order(self) -> tuple[FeatureSpec, ...]:
        """Every feature after all of its inputs: step-level features, then derived ones by depth.

        Config order is only the column order: a derived feature may be listed before its inputs.
        """
        return self.step_features() + self.derived_features

    def step_features(self, source: str | None = None) -> tuple[FeatureSpec, ...]:
        """Extractor features (layer 1), optionally of one source, in config order."""
        return tuple(f for f in self.features if not f.is_derived and (source is None or f.source == source))

    @cached_property
    def derived_features(self) -> tuple[FeatureSpec, ...]:
        """Derived features in an order where every input comes first (sorted once: every
        experiment's assembly asks)."""
        return tuple(f for layer in self.layers[2:] for f in layer)

    @property
    def layers(self) -> list[list[FeatureSpec]]:
        """Topological layers: ``[sources, step-level features, derived depth 1, derived depth 2, ...]``.

        The sources layer holds no FeatureSpec and is empty; it is kept so indices match the DAG depth.
        """
        return topological_layers(self.features)

    def __getitem__(self, name: str) -> FeatureSpec:
        for f in self.features:
            if f.name == name:
                return f
        raise UnknownFeatureError(f"config {self.name!r} has no feature {name!r}")


def load_config(
    config: FeatureConfig | Mapping[str, Any] | str | os.PathLike[str],
    *,
    registry: Registry | None = None,
) -> FeatureConfig:
    """Load and validate a feature configuration.

    Parameters
    ----------
    config : FeatureConfig, dict, str or path-like
        A dict in the YAML schema (``func`` may be a Python callable there), a path to a YAML file,
        or the name of a shipped preset (see :func:`list_presets`). Preset names are resolved inside
        the installed package, never relative to the working directory.
    registry : Registry, optional
        Extractor registry (default: the package-wide one).

    Returns
    -------
    FeatureConfig

    Raises
    ------
    ConfigError
        With every problem found: unknown extractor or input, duplicate names, dependency cycles
        (named), bad params, unsafe expressions, malformed YAML.
    """
    if isinstance(config, FeatureConfig):
        return config
    if isinstance(config, Mapping):
        return _build(config, origin="<dict>", default_name=None, registry=registry)
    text = os.fspath(config)
    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError([f"config file {text!r} does not exist"], source=text)
        return _build(
            parse(read_yaml_text(path, text), text),
            origin=str(path.resolve()),
            default_name=path.stem,
            registry=registry,
        )
    if text in list_presets():
        return _build(
            preset_data(text),
            origin=f"preset:{text}",
            default_name=text,
            registry=registry,
        )
    raise ConfigError(
        [f"{text!r} is neither a YAML file nor a preset (presets: {', '.join(list_presets())})"], source=text
    )


def _build(
    data: Mapping[str, Any], *, origin: str, default_name: str | None, registry: Registry | None
) -> FeatureConfig:
    reg = REGISTRY if registry is None else registry
    problems: list[str] = []
    name = data.get("name", default_name or "custom")
    if not is_config_name(name):
        problems.append(
            f"config name {name!r} must be 1-128 characters of letters, digits, '.', '_' or '-' "
            "(it becomes a folder name)"
        )
        name = "invalid"
    raw = data.get("features")
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        problems.append("'features' must be a non-empty list")
        raw = []
    specs: list[FeatureSpec] = []
    for i, item in enumerate(raw):
        spec = _build_feature(i, item, reg, problems)
        if spec is not None:
            specs.append(spec)
    # Every entry's name counts, valid or not: a duplicate is a problem of its own.
    names: list[str] = [
        item["name"]
        for item in raw
        if isinstance(item, Mapping) and isinstance(item.get("name"), str) and is_feature_name(item["name"])
    ]
    problems.extend(
        f"duplicate feature name {dup!r}" for dup in sorted({n for n in names if names.count(n) > 1})
    )
    # An input naming an entry that is invalid follows from that entry's problem, reported above.
    problems.extend(check_graph(specs, source_names(), invalid=set(names) - {s.name for s in specs}))
    # Columns of the valid features: a clash among them is independent of the other problems.
    plan, clashes = plan_columns(specs)
    problems.extend(clashes)
    if problems:
        raise ConfigError(problems, source=origin)
    return FeatureConfig(
        name=name,
        features=tuple(specs),
        origin=origin,
        description=str(data.get("description") or ""),
        _plan=plan,
    )


def _build_feature(i: int, item: Any, reg: Registry, problems: list[str]) -> FeatureSpec | None:
    """The feature of entry ``i``, or None with its problems appended to ``problems``.

    Every problem of the entry that does not follow from another is reported: its name, its keys,
    ``extractor``/``func``, ``input`` and ``params`` are checked independently; what needs one of
    them (the extractor's parameters, the expression's unbound parameters) only when it is valid.
    """
    if not isinstance(item, Mapping):
        problems.append(f"features[{i}] must be a mapping, got {type(item).__name__}")
        return None
    name = item.get("name")
    label = f"feature {name!r}" if isinstance(name, str) else f"features[{i}]"
    ok = True
    if not is_feature_name(name):
        problems.append(f"{label}: name must be an identifier (letters, digits, '_'), got {name!r}")
        ok = False
    elif name in RESERVED_NAMES:
        problems.append(f"{label}: name {name!r} is reserved")
        ok = False
    for key in item:
        if isinstance(key, str) and key not in FEATURE_KEYS:
            near = difflib.get_close_matches(key, FEATURE_KEYS, n=1, cutoff=0.7)
            if near:
                problems.append(f"{label}: unknown key {key!r} (did you mean {near[0]!r}?)")
                ok = False
    has_ext, has_func = item.get("extractor") is not None, item.get("func") is not None
    kind_ok = has_ext != has_func
    if not kind_ok:
        problems.append(f"{label}: give exactly one of 'extractor' or 'func'")
    raw_input = item.get("input")
    inputs: tuple[str, ...] | None
    if raw_input is None:
        inputs = ()
    elif isinstance(raw_input, str):
        inputs = (raw_input,)
    elif isinstance(raw_input, Sequence) and all(isinstance(x, str) for x in raw_input):
        inputs = tuple(raw_input)
    else:
        problems.append(f"{label}: 'input' must be a name or a list of names, got {raw_input!r}")
        inputs = None
    params = item.get("params") or {}
    if not isinstance(params, Mapping):
        problems.append(f"{label}: 'params' must be a mapping, got {type(params).__name__}")
        params = None
    if not kind_ok:  # neither an extractor nor a func feature: nothing more can be checked
        return None
    unit = item.get("unit")
    description = item.get("description")
    if has_ext:
        ext_name = item["extractor"]
        try:
            impl = get_extractor(str(ext_name), reg)
        except KeyError as exc:
            problems.append(f"{label}: {exc.args[0]}")
            return None
        if inputs is not None and not inputs:
            inputs = (impl.source,)  # the source's name
        if inputs is not None and inputs != (impl.source,):
            problems.append(
                f"{label}: extractor {ext_name!r} reads {impl.source!r}, but input is {list(inputs)}"
            )
            ok = False
        if params is None:
            return None
        try:
            resolved = impl.resolve_params(params)
        except ValueError as exc:
            problems.extend(f"{label}: {p}" for p in getattr(exc, "problems", None) or [str(exc)])
            return None
        return (
            FeatureSpec(
                str(name),
                inputs,
                extractor=ext_name,
                params=resolved,
                unit=unit,
                description=description,
                impl=impl,
            )
            if ok and inputs is not None
            else None
        )
    func = item["func"]
    if inputs is not None and not inputs:
        problems.append(f"{label}: a 'func' feature needs an 'input' (the features it is computed from)")
        inputs = None
    if isinstance(func, str):
        try:
            func = compile_expression(
                func,
                feature=name if isinstance(name, str) else None,
                n_inputs=None if inputs is None else len(inputs),
            )
        except UnsafeExpressionError as exc:
            problems.extend(exc.problems)
            return None
        if inputs is None or params is None:
            return None
        unbound = [a for a in func.arg_names[len(inputs) :] if a not in func.defaults and a not in params]
        if unbound:
            problems.append(
                f"{label}: the lambda's parameter(s) {unbound} get no value: the feature has "
                f"{len(inputs)} input(s) {list(inputs)} (passed positionally) and no default or param for them"
            )
            return None
    elif not callable(func):
        problems.append(f"{label}: 'func' must be an expression string or (in a dict config) a callable")
        return None
    return (
        FeatureSpec(str(name), inputs, func=func, params=dict(params), unit=unit, description=description)
        if ok and inputs is not None and params is not None
        else None
    )
