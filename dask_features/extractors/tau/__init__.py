"""``transient.tau_on_off``: switching time constants of every half-cycle of every transient step.

Importing this package registers the extractor. The definition of tau and the status codes are in
:mod:`dask_features.extractors.tau.extractor`; edges and windows in :mod:`._edges`, the batched fit in
:mod:`._fit`, the compiled kernels in :mod:`._kernels` and the reason codes in :mod:`._status`.
"""

from dask_features.extractors.tau._status import TauStatus
from dask_features.extractors.tau.extractor import step_edges, tau_on_off

__all__ = ["TauStatus", "step_edges", "tau_on_off"]
