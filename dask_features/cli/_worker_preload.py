"""Worker preload of the command line: Ctrl-C in the terminal is for the ``dask-features`` process.

Ctrl-C reaches every process of the terminal's process group, worker processes included. Each would
print its own ``KeyboardInterrupt`` traceback while the command line is already shutting the
cluster down in order; so the workers of clusters started by the command line ignore SIGINT
(``distributed.worker.preload``; SIGTERM and SIGKILL still end them). Their own log output is
cut to the level the command line puts in :data:`LEVEL_ENV` (errors such as "failed to reach the
scheduler" are expected while a cluster is shut down early; ``-v`` shows them).

Given to distributed as a *file*, so a worker imports only this module, not the package: a worker
must stay small until it runs a task (a preload that imports ``dask_features`` at start-up pushed
workers with a small memory limit over it before any task, and the nanny restarted them forever).
This file therefore imports nothing from the package.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from typing import Any

#: Environment variable with the workers' log level (a number), set by the command line.
LEVEL_ENV = "DASK_FEATURES_WORKER_LOG_LEVEL"


def dask_setup(worker: Any) -> None:
    """Called by distributed when a worker starts."""
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    level = os.environ.get(LEVEL_ENV, "")
    if level.isdigit():
        logging.getLogger("distributed").setLevel(int(level))
