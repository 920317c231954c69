"""Run a benchmark under the glibc malloc settings of the workers ``dask_features.local_cluster`` starts.

glibc reads them only at process start, so the script re-executes itself with them. Without them,
freed temporaries above glibc's dynamic trim threshold go back to the OS and are page-faulted in
again on the next call: vectorised kernels (large temporaries) then swing between runs while a
per-item loop (small arrays) does not (measured 6-11x instead of 12-14x for the transfer kernels).
"""

from __future__ import annotations

import os
import sys

from dask_features.engine.cluster import _MALLOC_VARIABLES, MALLOC_THRESHOLD


def use_worker_malloc_settings() -> None:
    """Re-execute the running script with the workers' malloc settings (no-op once they are set)."""
    if all(name in os.environ for name in _MALLOC_VARIABLES):
        return
    env = {**os.environ, **{name: str(MALLOC_THRESHOLD) for name in _MALLOC_VARIABLES}}
    os.execve(sys.executable, [sys.executable, *sys.argv], env)
