"""Worker preload of the clusters :func:`~dask_features.engine.cluster.local_cluster` starts: workers
never pause for memory.

A worker over ``distributed.worker.memory.pause`` (80 % of its limit) stops running tasks until
spilling frees memory. A task's memory here is its own arrays, not data Dask could spill, so under
a limit close to what the packages take a paused worker waited forever and the run hung. Without the
pause, a worker over the terminate fraction (95 %) is restarted by its nanny, and the run reports the
experiments it could not compute (the command line says why).

The setting is made here, in every worker as it starts, because ``distributed`` does not hand the
cluster's configuration to a worker its nanny restarts (measured: a restarted worker paused at 80 %
again). Given to distributed as a *file* that imports nothing, so a worker stays small until its
first task.
"""

from __future__ import annotations

from typing import Any


def dask_setup(worker: Any) -> None:
    """Called by distributed when a worker starts (also after a restart)."""
    manager = getattr(worker, "memory_manager", None)
    if manager is not None:
        manager.memory_pause_fraction = False
