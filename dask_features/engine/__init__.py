"""The extraction engine: chunk planning, Dask graphs, the streaming consumer and Parquet output."""

from dask_features.engine.cluster import local_cluster
from dask_features.engine.reading import read_features
from dask_features.engine.results import ExtractionResult
from dask_features.engine.run import extract

__all__ = ["ExtractionResult", "extract", "local_cluster", "read_features"]
