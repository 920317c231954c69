"""Reading the raw experiment files (oect-infra HDF5 layout) in chunks of steps."""

from dask_features.io.chunks import Chunk, ChunkMeta, TransferChunk, TransientChunk
from dask_features.io.hdf5 import Experiment
from dask_features.io.opening import SUPPORTED_FORMATS, StepBoundaryWarning, open_experiment
from dask_features.io.sources import Source, get_source, register_source, source_names
from dask_features.io.workflow import WorkflowError, WorkflowStep

__all__ = [
    "SUPPORTED_FORMATS",
    "Chunk",
    "ChunkMeta",
    "Experiment",
    "Source",
    "StepBoundaryWarning",
    "TransferChunk",
    "TransientChunk",
    "WorkflowError",
    "WorkflowStep",
    "get_source",
    "open_experiment",
    "register_source",
    "source_names",
]
