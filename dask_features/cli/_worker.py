"""Worker preload of the command line: Ctrl-C in the terminal is for the ``dask-features`` process.

Ctrl-C reaches every process of the terminal's process group, worker processes included. Each would
print its own ``KeyboardInterrupt`` traceback while the command line is already shutting the
cluster down in order; so the workers of clusters started by the command line ignore SIGINT
(``distributed.worker.preload``; SIGTERM and SIGKILL still end them).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any


def dask_setup(worker: Any) -> None:
    """Called by distributed when a worker starts."""
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signal.SIGINT, signal.SIG_IGN)
