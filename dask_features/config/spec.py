"""One validated feature of a config (:class:`FeatureSpec`) and its canonical, hashable description."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from dask_features.config.expressions import SafeExpression
from dask_features.extractors import ExtractorSpec, Output

__all__ = ["FeatureSpec"]


@dataclass(frozen=True)
class FeatureSpec:
    """One validated feature of a config.

    Attributes
    ----------
    name : str
        Output name (column prefix).
    inputs : tuple of str
        Data source (extractor features) or upstream feature names (derived features).
    extractor : str or None
        Registered extractor name, for step-level features.
    func : SafeExpression, callable or None
        Derived-feature function; receives the inputs positionally and ``params`` by keyword.
    params : dict
        Parameters; for extractors, resolved with the extractor's defaults.
    unit, description : str or None
        Documentation, copied into the Parquet metadata.
    impl : ExtractorSpec or None
        The registered extractor (shipped to workers, so extractors registered in a notebook work).
    """

    name: str
    inputs: tuple[str, ...]
    extractor: str | None = None
    func: SafeExpression | Callable[..., Any] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    unit: str | None = None
    description: str | None = None
    impl: ExtractorSpec | None = field(default=None, repr=False, compare=False)

    @property
    def is_derived(self) -> bool:
        """True for ``func`` features, computed once per experiment after all steps are in."""
        return self.extractor is None

    @property
    def source(self) -> str | None:
        """The data source of an extractor feature."""
        return None if self.impl is None else self.impl.source

    @cached_property
    def output(self) -> Output | None:
        """Declared output of an extractor feature (None for derived features: decided by the data).

        Computed once: the engine asks for it per chunk and per step of its bookkeeping.
        """
        return None if self.impl is None else self.impl.output_for(self.params)

    def canonical(self) -> dict[str, Any]:
        """JSON-able description of everything that affects the computed values."""
        entry: dict[str, Any] = {
            "name": self.name,
            "inputs": list(self.inputs),
            "params": _jsonable(self.params),
        }
        if self.extractor is not None:
            entry["extractor"] = self.extractor
        elif isinstance(self.func, SafeExpression):
            entry["func"] = self.func.text.strip()
        else:
            entry["func"] = _callable_identity(self.func)
        return entry


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


def _callable_identity(func: Any) -> str:
    """Hashable identity of a Python callable: its source when available, else its bytecode."""
    name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"
    try:
        body = inspect.getsource(func)
    except (OSError, TypeError):
        code = getattr(func, "__code__", None)
        body = code.co_code.hex() if code is not None else repr(func)
    return name + ":" + hashlib.blake2b(body.encode(), digest_size=8).hexdigest()
