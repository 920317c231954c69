"""A ``LocalCluster`` set up for this workload."""

from __future__ import annotations

import copy
import os
from typing import Any

__all__ = ["CLUSTER_SETTINGS", "local_cluster"]

#: glibc malloc thresholds for the workers [B]. distributed's nanny sets MALLOC_TRIM_THRESHOLD_ to
#: 64 KiB to fight fragmentation; setting it also switches off glibc's dynamic mmap threshold, so
#: every array above 128 KiB becomes a fresh mmap (page faults on first touch, munmap on free).
#: The extractors allocate such temporaries for every chunk: measured 1.5-3x slower kernels in the
#: workers than in a plain process. Arrays up to this size are kept on the heap and reused instead;
#: freed memory above it still goes back to the OS, so worker memory stays bounded.
MALLOC_THRESHOLD = 64 * 2**20
_MALLOC_VARIABLES = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")

#: Dask settings of the cluster's processes (scheduler, nannies, workers). Their periodic chores
#: cost CPU all the time, idle or busy, and on a small machine every CPU-second outside the tasks
#: is taken from the workers. Measured on 2 cores, CPU time of each process of a 2-worker cluster,
#: idle and running the scaling runs of ``benchmarks/bench_engine.py``: the workers' statistical
#: profiler (a stack sample every 10 ms) costs each worker ~0.02 CPU-s/s idle and ~15 % more CPU
#: while computing; the event-loop health check every 20 ms and the system monitor every 0.5 s
#: cost the client process (scheduler and nannies) ~0.04 CPU-s/s. The memory monitors keep their
#: defaults: they enforce ``memory_limit`` (and at 200 ms instead of 100 ms saved nothing measurable).
#:
#: Workers never pause for memory: a worker over ``distributed.worker.memory.pause`` (80 % of its
#: limit) stops running tasks until spilling frees memory, but a task's memory here is its own
#: arrays, not data Dask could spill, so under a limit close to what the packages take a paused
#: worker waited forever and the run hung. Without the pause, a worker over the terminate fraction
#: (95 %) is restarted by its nanny, and the run reports the experiments it could not compute.
CLUSTER_SETTINGS = {
    "distributed.worker.profile.enabled": False,  # the dashboard's profile page stays empty
    "distributed.admin.tick.interval": "500ms",  # blocked-loop warnings still fire (limit 3 s)
    "distributed.admin.system-monitor.interval": "5s",  # dashboard host graphs: a point per 5 s
    "distributed.worker.memory.pause": False,
}


def local_cluster(n_workers: int | None = None, **kwargs: Any) -> Any:
    """Start a ``distributed.LocalCluster`` suited to feature extraction.

    One single-threaded worker process per core (HDF5 reads are serialised by a global lock in
    threads, and NumPy code here gains nothing from threads), a dashboard on a free port, glibc
    malloc thresholds of :data:`MALLOC_THRESHOLD` instead of distributed's 64 KiB trim threshold,
    fewer periodic chores and no pause for memory (:data:`CLUSTER_SETTINGS`, kept by the workers
    its nannies restart). A cluster started with ``distributed.LocalCluster`` itself works with
    :func:`~dask_features.extract` too.

    Parameters
    ----------
    n_workers : int, optional
        Worker processes (default: one per core).
    **kwargs
        Passed to ``LocalCluster``; they override the defaults above.

    Returns
    -------
    distributed.LocalCluster
    """
    import dask
    from distributed import LocalCluster

    malloc = {name: str(MALLOC_THRESHOLD) for name in _MALLOC_VARIABLES}
    pre_spawn = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **malloc}
    options: dict[str, Any] = {
        "n_workers": n_workers,
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": ":0",
    }
    options.update(kwargs)
    # glibc reads these only when a process starts, so they must reach the workers through the
    # nanny's pre-spawn environment; distributed lets a value already in os.environ (which it writes
    # there itself when it spawns workers) override that config, so clear it while starting.
    saved = {name: os.environ.pop(name) for name in _MALLOC_VARIABLES if name in os.environ}
    try:
        with dask.config.set({**CLUSTER_SETTINGS, "distributed.nanny.pre-spawn-environ": pre_spawn}):
            # A nanny hands each worker it starts, restarts included, a top-level merge of the
            # configuration as it was when the nanny was made: its sections are dask's own dicts,
            # which dask restores in place when this block ends, so a restarted worker got the
            # defaults again (profiler on, measured). A copy of the section set above keeps them
            # (only that one: others may hold objects, e.g. a client as ``scheduler``).
            config = {**dask.config.config, "distributed": copy.deepcopy(dask.config.get("distributed"))}
            options.setdefault("config", config)
            return LocalCluster(**options)
    finally:
        for name in _MALLOC_VARIABLES:
            os.environ.pop(name, None)
        os.environ.update(saved)
