"""Module-level lazy attributes (PEP 562) shared by the package ``__init__`` files."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(package: str, names: dict[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` importing ``names[attr]`` (a module path) on first access.

    Heavy dependencies (pandas, scipy, scikit-learn, numba) thus load on first use: a worker that only
    calls ``load`` starts in a fraction of the time. The value is cached in ``namespace``.
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
