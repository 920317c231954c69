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

Results are one of three declared kinds (:class:`Output`):

``scalar``
    ndarray of shape (n,) -> one Parquet column named after the feature.
``vector``
    ndarray of shape (n, width) -> columns ``{feature}_0 .. {feature}_{width-1}``. ``width=None``
    means the width is decided per experiment (e.g. the number of cycles).
``ragged``
    :class:`Ragged` -> rows of the long-form ``cycles`` table, columns ``{feature}_{field}``.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from dask_features.io.chunks import TransferChunk, TransientChunk

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

Source = Literal["transfer", "transient"]
Chunk = TransferChunk | TransientChunk


@dataclass(frozen=True)
class Output:
    """Declared shape and dtype of an extractor's result.

    Use the constructors :meth:`scalar`, :meth:`vector` and :meth:`ragged`.
    """

    kind: Literal["scalar", "vector", "ragged"]
    dtype: str = "float64"
    width: int | None = None
    fields: tuple[tuple[str, str], ...] = ()

    @classmethod
    def scalar(cls, dtype: str = "float64") -> Output:
        """One value per step."""
        return cls("scalar", np.dtype(dtype).name)

    @classmethod
    def vector(cls, width: int | None, dtype: str = "float64") -> Output:
        """A fixed-length vector per step; ``width=None`` = decided per experiment, NaN-padded."""
        return cls("vector", np.dtype(dtype).name, width=width)

    @classmethod
    def ragged(cls, fields: Mapping[str, str]) -> Output:
        """A variable number of rows per step (e.g. one per cycle), each with named fields."""
        return cls("ragged", "float64", fields=tuple((k, np.dtype(v).name) for k, v in fields.items()))


@dataclass(frozen=True)
class Ragged:
    """Ragged per-step results: ``counts[i]`` rows belong to step ``i``.

    Attributes
    ----------
    counts : ndarray of int64, shape (n,)
        Rows per step.
    fields : dict of str to ndarray, each of shape (counts.sum(),)
        Column values, steps in order, rows of one step contiguous.
    """

    counts: np.ndarray
    fields: dict[str, np.ndarray]

    @classmethod
    def concat(cls, parts: list[Ragged]) -> Ragged:
        """Concatenate ragged results of consecutive chunks."""
        if not parts:
            return cls(np.zeros(0, np.int64), {})
        names = list(parts[0].fields)
        return cls(
            np.concatenate([p.counts for p in parts]).astype(np.int64),
            {k: np.concatenate([p.fields[k] for p in parts]) for k in names},
        )

    @classmethod
    def empty(cls, n_steps: int, output: Output) -> Ragged:
        """No rows for ``n_steps`` steps (used for steps that failed)."""
        return cls(np.zeros(n_steps, np.int64), {k: np.zeros(0, dt) for k, dt in output.fields})


@dataclass(frozen=True)
class ExtractorSpec:
    """A registered extractor. Built by :func:`register`; not instantiated directly."""

    name: str
    source: Source
    func: Callable[..., Any]
    output: Output | Callable[[Mapping[str, Any]], Output]
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
        ValueError
            Listing every unknown parameter and every value outside its ``Literal`` choices, or the
            message of the extractor's own ``check``.
        """
        params = dict(params or {})
        problems = [
            f"unknown parameter {k!r} for extractor {self.name!r} (accepted: {', '.join(sorted(self.defaults)) or 'none'})"
            for k in params
            if k not in self.defaults
        ]
        merged = {**self.defaults, **{k: v for k, v in params.items() if k in self.defaults}}
        for k, ann in self.annotations.items():
            choices = _literal_choices(ann)
            if choices is not None and k in params and merged[k] not in choices:
                problems.append(
                    f"parameter {k!r} of {self.name!r} must be one of {list(choices)}, got {merged[k]!r}"
                )
        if not problems and self.check is not None:
            try:
                self.check(merged)
            except (ValueError, TypeError) as exc:
                problems.append(f"{self.name}: {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return merged

    def output_for(self, params: Mapping[str, Any]) -> Output:
        """The output declaration for resolved ``params``."""
        return self.output(params) if callable(self.output) else self.output

    def __call__(self, chunk: Chunk, **params: Any) -> Any:
        return self.func(chunk, **params)


class Registry(dict[str, ExtractorSpec]):
    """Name -> :class:`ExtractorSpec`. The package-wide instance is :data:`REGISTRY`."""

    def add(self, spec: ExtractorSpec, *, replace: bool = False) -> None:
        if spec.name in self and not replace and self[spec.name].func is not spec.func:
            raise ValueError(
                f"an extractor named {spec.name!r} is already registered "
                f"({self[spec.name].func.__module__}.{self[spec.name].func.__qualname__}); "
                "pass replace=True to override it"
            )
        self[spec.name] = spec

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(super().keys()))


REGISTRY = Registry()


def _literal_choices(annotation: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
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
            raise TypeError(f"extractor {func.__qualname__} must name its parameters (no *args/**kwargs)")
        if p.default is p.empty:
            raise TypeError(f"extractor parameter {name!r} of {func.__qualname__} needs a default")
        defaults[name] = p.default
        if name in hints:
            annotations[name] = hints[name]
    return defaults, annotations


def register(
    name: str,
    *,
    source: Source,
    output: Output | Callable[[Mapping[str, Any]], Output] | None = None,
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
    source : {"transfer", "transient"}
        Which data the extractor reads.
    output : Output or callable, optional
        Declared result kind (default ``Output.scalar()``); a callable receives the resolved params
        when the kind depends on them (e.g. ``direction="both"`` gives a 2-vector).
    per_step : bool, default False
        The decorated function handles **one** step: ``f(vg, id, **params)`` for transfer (NaN
        points removed) or ``f(time, current, **params)`` for transient. It returns a float
        (scalar), a 1-D array (vector) or a dict of 1-D arrays (ragged). The registry wraps it
        into a chunk extractor; a step that raises gets NaN and an error record.
    check : callable, optional
        ``check(params)`` raises ``ValueError`` for invalid parameter combinations.
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

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        defaults, annotations = _keyword_params(func, skip=2 if per_step else 1)
        chunk_func = _lift(func, source, out) if per_step else func
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
    """Look up a registered extractor; raises ``KeyError`` naming close matches."""
    reg = REGISTRY if registry is None else registry
    try:
        return reg[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(reg), n=3)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise KeyError(f"no extractor named {name!r}{hint}") from None


def list_extractors(registry: Registry | None = None) -> list[str]:
    """Sorted names of all registered extractors."""
    return list(REGISTRY if registry is None else registry)


def _lift(
    func: Callable[..., Any], source: Source, output: Output | Callable[..., Output]
) -> Callable[..., Any]:
    """Turn a single-step function into a chunk extractor (a plain loop; for user convenience)."""

    def chunk_extractor(chunk: Chunk, **params: Any) -> Any:
        out = output(params) if callable(output) else output
        n = chunk.n_steps
        values: list[Any] = []
        for i in range(n):
            x, y = chunk.step(i)
            if source == "transfer":
                keep = np.isfinite(x) & np.isfinite(y)
                x, y = x[keep], y[keep]
            try:
                values.append(func(x, y, **params))
            except Exception as exc:  # one bad step must not sink the chunk
                chunk.report(i, f"{type(exc).__name__}: {exc}")
                values.append(None)
        return _stack(values, out)

    chunk_extractor.__name__ = getattr(func, "__name__", "extractor")
    chunk_extractor.__qualname__ = getattr(func, "__qualname__", "extractor")
    chunk_extractor.__doc__ = func.__doc__
    chunk_extractor.__wrapped__ = func  # type: ignore[attr-defined]
    return chunk_extractor


def _stack(values: list[Any], out: Output) -> np.ndarray | Ragged:
    if out.kind == "scalar":
        return np.array([np.nan if v is None else float(v) for v in values], dtype=out.dtype)
    if out.kind == "vector":
        width = out.width or max((len(np.atleast_1d(v)) for v in values if v is not None), default=0)
        res = np.full((len(values), width), np.nan, dtype=out.dtype)
        for i, v in enumerate(values):
            if v is not None:
                v = np.atleast_1d(np.asarray(v, dtype=out.dtype))[:width]
                res[i, : len(v)] = v
        return res
    counts = np.zeros(len(values), np.int64)
    cols: dict[str, list[np.ndarray]] = {k: [] for k, _ in out.fields}
    for i, v in enumerate(values):
        if v is None:
            continue
        arrays = {k: np.atleast_1d(np.asarray(v[k], dtype=dt)) for k, dt in out.fields}
        counts[i] = len(next(iter(arrays.values()))) if arrays else 0
        for k in cols:
            cols[k].append(arrays[k])
    return Ragged(
        counts,
        {
            k: (np.concatenate(v) if v else np.zeros(0, dt))
            for (k, dt), v in zip(out.fields, cols.values(), strict=True)
        },
    )
