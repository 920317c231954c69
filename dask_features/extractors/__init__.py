"""Feature extractors and their registry.

Importing this package registers the built-in extractors (``transfer.*``, ``transient.*``). Add a
feature with the :func:`register` decorator; see :mod:`dask_features.extractors.registry`.
"""

from dask_features.extractors.registry import (
    REGISTRY,
    ExtractorSpec,
    Output,
    Ragged,
    Registry,
    get_extractor,
    list_extractors,
    register,
)

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

# Importing the modules registers the built-in extractors.
from dask_features.extractors import tau, transfer, transfer_currents, transfer_robust, transient  # noqa: F401  isort: skip
