"""dask_features: chunked, streaming feature extraction for OECT experiments on Dask.

Read users' oect-infra HDF5 files, declare features in YAML (or a dict, or a shipped preset), and
extract them with one task per chunk of steps on any Dask scheduler, writing one Parquet file per
experiment the moment it is complete.

>>> import dask_features as df
>>> paths = df.synth.generate_dataset("demo-data", n_experiments=2, n_steps=20)   # doctest: +SKIP
>>> result = df.extract("demo-data", "v2_mixed", "features")                      # doctest: +SKIP
>>> table = df.read_features("features", "v2_mixed")                              # doctest: +SKIP

Public API
----------
open_experiment, Experiment
    Read the raw HDF5 layout (metadata handle, chunked reads).
load_config, FeatureConfig, list_presets
    Feature configurations.
register, Output, Ragged, list_extractors
    The extractor registry (add a feature with one decorated function).
extract, ExtractionResult, read_features
    Run a config over experiments; read the Parquet output back.
local_cluster
    A LocalCluster set up for this workload (one single-threaded process per core).
Catalog
    SQLite index of a data folder and of extractions done.
synth
    Realistic demo data in the same layout, with ground truth.
DaskFeaturesError and subclasses, DaskFeaturesWarning
    Every error raised on purpose (each also subclasses the matching built-in), every warning.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The three libraries every extraction needs load with the package, not inside the first call: a
# notebook's `import dask_features` pays for them once (they take ~0.3 s together on a 2-core
# machine), and the first `extract` then costs little more than the second. Nothing else heavy
# (Dask, distributed, pandas, SciPy, numba) loads before a call needs it.
import h5py  # noqa: F401
import numpy  # noqa: F401
import pyarrow.parquet  # noqa: F401

# The engine too (~60 ms on a 2-core machine): inside the first `extract` it would cost a third of
# extracting 3,200 sweeps. It loads none of the heavy libraries named above.
import dask_features.engine  # noqa: F401
from dask_features._version import __version__
from dask_features.errors import (
    ConfigError,
    DaskFeaturesError,
    DaskFeaturesWarning,
    ExperimentFormatError,
    ExperimentNotFoundError,
    ExtractorError,
    FormatVersionError,
    IncompleteOutputWarning,
    IndexTableError,
    InvalidArgumentError,
    InvalidParameterError,
    MissingGroupError,
    NotHDF5Error,
    OutputBusyError,
    OutputError,
    OutputNotFoundError,
    SourceChangedError,
    TruncatedFileError,
    UnknownExtractorError,
    UnsafeExpressionError,
)

if TYPE_CHECKING:
    from dask_features import synth
    from dask_features.catalog import Catalog
    from dask_features.config import FeatureConfig, list_presets, load_config
    from dask_features.engine import ExtractionResult, extract, local_cluster, read_features
    from dask_features.extractors import Output, Ragged, list_extractors, register
    from dask_features.io import Experiment, open_experiment

# The public names are bound on first access (PEP 562); the catalog and synth modules are only
# imported then, and no command line loads Dask, pandas or SciPy to print its version or help.
_LAZY = {
    "Catalog": "dask_features.catalog",
    "Experiment": "dask_features.io",
    "ExtractionResult": "dask_features.engine",
    "FeatureConfig": "dask_features.config",
    "Output": "dask_features.extractors",
    "Ragged": "dask_features.extractors",
    "extract": "dask_features.engine",
    "list_extractors": "dask_features.extractors",
    "list_presets": "dask_features.config",
    "load_config": "dask_features.config",
    "local_cluster": "dask_features.engine",
    "open_experiment": "dask_features.io",
    "read_features": "dask_features.engine",
    "register": "dask_features.extractors",
    "synth": None,  # a subpackage
}


def __getattr__(name: str) -> Any:
    try:
        home = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'dask_features' has no attribute {name!r}") from None
    value = (
        importlib.import_module(f"dask_features.{name}")
        if home is None
        else getattr(importlib.import_module(home), name)
    )
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Catalog",
    "ConfigError",
    "DaskFeaturesError",
    "DaskFeaturesWarning",
    "Experiment",
    "ExperimentFormatError",
    "ExperimentNotFoundError",
    "ExtractionResult",
    "ExtractorError",
    "FeatureConfig",
    "FormatVersionError",
    "IncompleteOutputWarning",
    "IndexTableError",
    "InvalidArgumentError",
    "InvalidParameterError",
    "MissingGroupError",
    "NotHDF5Error",
    "Output",
    "OutputBusyError",
    "OutputError",
    "OutputNotFoundError",
    "Ragged",
    "SourceChangedError",
    "TruncatedFileError",
    "UnknownExtractorError",
    "UnsafeExpressionError",
    "__version__",
    "extract",
    "list_extractors",
    "list_presets",
    "load_config",
    "local_cluster",
    "open_experiment",
    "read_features",
    "register",
    "synth",
]
