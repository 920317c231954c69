"""The extractor registry: one decorator, one catalogue.

An extractor is a plain function that receives a chunk of steps (:class:`~dask_features.io.chunks.
TransferChunk` or :class:`~dask_features.io.chunks.TransientChunk`) plus keyword parameters and
returns one result per step of the chunk. Register it under a dotted name::

    @register("transfer.gm_max", source="transfer")
    def gm_max(chunk, *, direction: Literal["forward", "reverse", "both"] = "forward"):
        ...  # -> ndarray of shape (chunk.n_steps,)

Parameters are the function's keyword-only arguments; their defaults are the defaults of the
config's ``params`` and ``Literal`` annotations are enforced when the config is validated, so a typo
is reported before any work starts. Users who only write single-step code pass ``per_step=True``
and get a loop over steps for free (see :func:`register`).

Results are one of the declared output kinds (:class:`Output`; see
:mod:`dask_features.extractors.outputs` for how each is stored): ``Output.scalar()``,
``Output.vector(width)`` and ``Output.ragged({field: dtype})``. The data source (``source=``) is a
registered :class:`~dask_features.io.sources.Source`.
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from dask_features.errors import (
    ExtractorSignatureError,
    InvalidParameterError,
    RegistrationError,
    UnknownExtractorError,
)
from dask_features.extractors.outputs import Output, Ragged
from dask_features.io.chunks import Chunk
from dask_features.io.sources import Source, get_source

if TYPE_CHECKING:
    from _collections_abc import dict_items, dict_keys, dict_values

__all__ = [
    "REGISTRY",
    "ExtractorSpec",
    "Output",
    "Ragged",
    "Registry",
    "get_extractor",
    "list_extractors",
    "register",
]

#: An extractor's output declaration, or a function of its resolved parameters giving one.
OutputSpec = Output | Callable[[Mapping[str, Any]], Output]


@dataclass(frozen=True)
class ExtractorSpec:
    """A registered extractor. Built by :func:`register`; not instantiated directly."""

    name: str
    source: str
    func: Callable[..., Any]
    output: OutputSpec
    defaults: Mapping[str, Any]
    annotations: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[Mapping[str, Any]], None] | None = None
    unit: str | None = None
    description: str = ""
    cost: float = 5.0

    def resolve_params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults merged with ``params``, validated.

        Raises
        ------
        InvalidParameterError
            (a ``ValueError``) Listing every unknown parameter and every value outside its
            ``Literal`` choices, and what the extractor's own ``check`` finds (run on the known
            parameters unless a ``Literal`` choice is wrong, which it might follow from); one line
            per problem in its ``problems``.
        """
        params = dict(params or {})
        problems = [
            f"unknown parameter {k!r} for extractor {self.name!r} (accepted: {', '.join(sorted(self.defaults)) or 'none'})"
            for k in params
            if k not in self.defaults
        ]
        merged = {**self.defaults, **{k: v for k, v in params.items() if k in self.defaults}}
        choices_ok = True
        for k, ann in self.annotations.items():
            choices = _literal_choices(ann)
            if choices is not None and k in params and merged[k] not in choices:
                problems.append(
                    f"parameter {k!r} of {self.name!r} must be one of {list(choices)}, got {merged[k]!r}"
                )
                choices_ok = False
        # Unknown parameters are left out of `merged`: the check of the others is independent of them.
        if choices_ok and self.check is not None:
            try:
                self.check(merged)
            except (ValueError, TypeError) as exc:
                found = getattr(exc, "problems", None)  # an InvalidParameterError: several at once
                problems.extend(f"{self.name}: {p}" for p in (found if found else [str(exc)]))
        if problems:
            raise InvalidParameterError(problems)
        return merged

    def output_for(self, params: Mapping[str, Any]) -> Output:
        """The output declaration for resolved ``params``."""
        return self.output(params) if callable(self.output) else self.output

    @property
    def data_source(self) -> Source:
        """The :class:`~dask_features.io.sources.Source` this extractor reads."""
        return get_source(self.source)

    def __call__(self, chunk: Chunk, **params: Any) -> Any:
        return self.func(chunk, **params)


class Registry(dict[str, ExtractorSpec]):
    """Name -> :class:`ExtractorSpec`. The package-wide instance is :data:`REGISTRY`.

    Names can be *deferred* (:meth:`defer`): known before the module that registers them is imported.
    Looking one up imports its module; listing the registry imports every deferred module. The
    built-in extractor families are deferred, so a config of transfer features never imports the
    transient ones (nor what their kernels need).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deferred: dict[str, str] = {}

    def defer(self, names: Iterable[str], module: str) -> None:
        """Make ``names`` known as registered by importing ``module`` (on first lookup of any of them)."""
        for name in names:
            if not dict.__contains__(self, name):
                self._deferred[name] = module

    def _load(self, module: str) -> None:
        importlib.import_module(module)
        # A copy: another thread's import may register (and pop) names meanwhile.
        for name, home in list(self._deferred.items()):
            if home == module:
                self._deferred.pop(name, None)  # a name the module did not register is simply unknown

    def _load_all(self) -> None:
        for module in sorted(set(self._deferred.values())):
            self._load(module)

    def add(self, spec: ExtractorSpec, *, replace: bool = False) -> None:
        """Add ``spec``; a different function under an existing name needs ``replace=True``."""
        module = self._deferred.pop(spec.name, None)
        own = getattr(spec.func, "__wrapped__", spec.func).__module__
        if module is not None and own != module and not own.startswith(f"{module}."):
            self._load(module)  # a deferred built-in registers first: overriding it needs replace=True
        if spec.name in self and not replace and self[spec.name].func is not spec.func:
            raise RegistrationError(
                f"an extractor named {spec.name!r} is already registered "
                f"({self[spec.name].func.__module__}.{self[spec.name].func.__qualname__}); "
                "pass replace=True to override it"
            )
        self[spec.name] = spec

    def __missing__(self, name: str) -> ExtractorSpec:
        module = self._deferred.get(name)
        if module is None:
            raise KeyError(name)
        self._load(module)
        return dict.__getitem__(self, name)

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or name in self._deferred

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def __iter__(self) -> Iterator[str]:
        self._load_all()
        return iter(sorted(super().keys()))

    def __len__(self) -> int:
        self._load_all()
        return super().__len__()

    def keys(self) -> dict_keys[str, ExtractorSpec]:
        self._load_all()
        return super().keys()

    def values(self) -> dict_values[str, ExtractorSpec]:
        self._load_all()
        return super().values()

    def items(self) -> dict_items[str, ExtractorSpec]:
        self._load_all()
        return super().items()


REGISTRY = Registry()


def _literal_choices(annotation: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        choices: list[Any] = []
        for arg in typing.get_args(annotation):
            sub = _literal_choices(arg)
            if sub is None:
                return None
            choices.extend(sub)
        return tuple(choices)
    return None


def _keyword_params(func: Callable[..., Any], skip: int) -> tuple[dict[str, Any], dict[str, Any]]:
    sig = inspect.signature(func)
    hints = typing.get_type_hints(func, include_extras=False)
    defaults: dict[str, Any] = {}
    annotations: dict[str, Any] = {}
    for i, (name, p) in enumerate(sig.parameters.items()):
        if i < skip and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            continue
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            raise ExtractorSignatureError(
                f"extractor {func.__qualname__} must name its parameters (no *args/**kwargs)"
            )
        if p.default is p.empty:
            raise ExtractorSignatureError(
                f"extractor parameter {name!r} of {func.__qualname__} needs a default"
            )
        defaults[name] = p.default
        if name in hints:
            annotations[name] = hints[name]
    return defaults, annotations


def register(
    name: str,
    *,
    source: str,
    output: OutputSpec | None = None,
    per_step: bool = False,
    check: Callable[[Mapping[str, Any]], None] | None = None,
    unit: str | None = None,
    cost: float | None = None,
    registry: Registry | None = None,
    replace: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an extractor under ``name``.

    Parameters
    ----------
    name : str
        Dotted name used in configs, e.g. ``"transfer.gm_max"``.
    source : str
        Which data the extractor reads: the name of a registered
        :class:`~dask_features.io.sources.Source` (``"transfer"``, ``"transient"``).
    output : Output or callable, optional
        Declared result kind (default ``Output.scalar()``); a callable receives the resolved params
        when the kind depends on them (e.g. ``direction="both"`` gives a 2-vector).
    per_step : bool, default False
        The decorated function handles **one** step: ``f(vg, id, **params)`` for transfer (NaN
        points removed) or ``f(time, current, **params)`` for transient. It returns a float
        (scalar), a 1-D array (vector) or a dict of 1-D arrays (ragged). The registry wraps it
        into a chunk extractor; a step that raises gets NaN and an error record.
    check : callable, optional
        ``check(params)`` raises ``ValueError`` for invalid parameter combinations; to report several
        problems at once it raises ``InvalidParameterError([problem, ...])``.
    unit : str, optional
        Physical unit of the result (documentation; copied to Parquet metadata).
    cost : float, optional
        Rough CPU cost in nanoseconds per data point of a step (sweep point or transient
        sample), used only to size chunks so each task carries enough work. Defaults to 5 (what
        the vectorised transfer extractors measure) and 300 for ``per_step`` ones (a Python loop).
    registry : Registry, optional
        Target registry (default: the package-wide :data:`REGISTRY`).
    replace : bool, default False
        Allow overriding an existing name.

    Returns
    -------
    callable
        The decorator; it returns the function unchanged so it stays directly callable.
    """
    target = REGISTRY if registry is None else registry
    out = Output.scalar() if output is None else output
    data_source = get_source(source)  # an unknown source fails here, at registration

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        defaults, annotations = _keyword_params(func, skip=2 if per_step else 1)
        chunk_func = _lift(func, data_source, out) if per_step else func
        doc = inspect.getdoc(func) or ""
        spec = ExtractorSpec(
            name=name,
            source=source,
            func=chunk_func,
            output=out,
            defaults=defaults,
            annotations=annotations,
            check=check,
            unit=unit,
            description=doc.split("\n\n", 1)[0],
            cost=float(cost if cost is not None else (300.0 if per_step else 5.0)),
        )
        target.add(spec, replace=replace)
        return func

    return decorator


def get_extractor(name: str, registry: Registry | None = None) -> ExtractorSpec:
    """Look up a registered extractor.

    Raises
    ------
    UnknownExtractorError
        (a ``KeyError``) naming close matches.
    """
    reg = REGISTRY if registry is None else registry
    try:
        return reg[name]
    except KeyError:
        import difflib  # only an error message needs it

        close = difflib.get_close_matches(name, list(reg), n=3)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise UnknownExtractorError(f"no extractor named {name!r}{hint}") from None


def list_extractors(registry: Registry | None = None) -> list[str]:
    """Sorted names of all registered extractors."""
    return list(REGISTRY if registry is None else registry)


def _lift(func: Callable[..., Any], source: Source, output: OutputSpec) -> Callable[..., Any]:
    """Turn a single-step function into a chunk extractor (a plain loop; for user convenience)."""

    def chunk_extractor(chunk: Chunk, **params: Any) -> Any:
        out = output(params) if callable(output) else output
        values: list[Any] = []
        for i in range(chunk.n_steps):
            x, y = source.step_arrays(chunk, i)
            try:
                values.append(func(x, y, **params))
            except Exception as exc:  # one bad step must not sink the chunk
                chunk.report(i, f"{type(exc).__name__}: {exc}")
                values.append(None)
        return out.handler.stack(out, values)

    chunk_extractor.__name__ = getattr(func, "__name__", "extractor")
    chunk_extractor.__qualname__ = getattr(func, "__qualname__", "extractor")
    chunk_extractor.__doc__ = func.__doc__
    chunk_extractor.__wrapped__ = func  # type: ignore[attr-defined]
    return chunk_extractor
