"""Reading the raw experiment files (oect-infra HDF5 layout) in chunks of steps."""

from dask_features.io.chunks import ChunkMeta, TransferChunk, TransientChunk
from dask_features.io.hdf5 import SUPPORTED_FORMATS, Experiment, StepBoundaryWarning, open_experiment
from dask_features.io.workflow import WorkflowError, WorkflowStep

__all__ = [
    "SUPPORTED_FORMATS",
    "ChunkMeta",
    "Experiment",
    "StepBoundaryWarning",
    "TransferChunk",
    "TransientChunk",
    "WorkflowError",
    "WorkflowStep",
    "open_experiment",
]
