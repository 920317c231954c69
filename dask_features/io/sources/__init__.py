"""Data sources: what a feature reads from an experiment file.

A :class:`Source` knows, for one experiment, how many steps it has, how many data points a step
holds (for chunk sizing), how to read a chunk of steps and how to describe itself; the planner, the
engine and the extractor registry ask it instead of switching on a source name. Adding a source is
one new module that subclasses :class:`Source` and registers an instance with :func:`register_source`
(the built-in ones are :mod:`~dask_features.io.sources.transfer` and
:mod:`~dask_features.io.sources.transient`).
"""

from __future__ import annotations

from dask_features.io.sources._base import (
    Source,
    get_source,
    register_source,
    source_names,
)

__all__ = ["Source", "get_source", "register_source", "source_names"]

# Importing the modules registers the built-in sources (in this order: the order of output columns).
from dask_features.io.sources import transfer, transient  # noqa: F401  isort: skip
