"""Checks made before any cluster starts, and the cluster (or scheduler choice) of one command.

A mistake in the inputs must cost seconds, not a cluster start: paths are checked for existence and
experiment files, an ``--address`` for a listening scheduler (a TCP connect with a short timeout).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dask_features.cli._runtime import positive_int, say, worker_log_level

__all__ = ["add_cluster_options", "check_address", "check_inputs", "scheduler_for"]

logger = logging.getLogger(__name__)

#: Seconds to wait for a scheduler's port before telling the user it is not there.
CONNECT_TIMEOUT = 3.0
#: Memory of a worker process once it has imported what a task needs (Python, distributed, NumPy,
#: h5py, pyarrow, this package) [B]: measured 62 MiB idle and 122 MiB after a first v2_transfer_basic
#: task on 8 x 400 steps (Linux, 2026-12).
IMPORT_BYTES = 128 * 2**20
#: Memory of a worker process before its first task (Python, distributed) [B]: measured 62 MiB
#: idle, with margin. Kept below :data:`IMPORT_BYTES`, so limits in between get the warning.
MIN_WORKER_BYTES = 96 * 2**20


class InputError(FileNotFoundError):
    """A path given on the command line names nothing to process."""


def add_cluster_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scheduling (default: chosen from the amount of work)")
    g.add_argument(
        "--scheduler",
        choices=("threads", "processes", "sync", "distributed"),
        default=None,
        help="a local scheduler, or 'distributed' (a LocalCluster with a dashboard)",
    )
    g.add_argument("--workers", "-w", type=positive_int, default=None, help="worker processes or threads")
    g.add_argument(
        "--memory-limit", default=None, help="per worker of a LocalCluster, e.g. 2GB (implies distributed)"
    )
    g.add_argument(
        "--address", default=None, help="connect to a running Dask scheduler, e.g. tcp://host:8786"
    )


def check_inputs(paths: Sequence[str]) -> list[Any]:
    """Every path exists and, together, they name at least one experiment file.

    Returns
    -------
    list
        The expanded files (absolute paths), in order.

    Raises
    ------
    InputError
        A path does not exist, or no path is given.
    ExperimentNotFoundError
        A folder holds no ``*.h5``/``*.hdf5`` file (from the engine's own listing).
    """
    from dask_features.engine.plan import expand_inputs

    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise InputError(f"no such file or folder: {', '.join(missing)}")
    items, _ = expand_inputs(list(paths))
    if not items:
        raise InputError(f"no experiment files (*.h5, *.hdf5) under {', '.join(paths)}")
    return items


def check_address(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Raise ``ConnectionError`` with the fix unless something listens at a ``tcp://``/``tls://`` address."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls"):
        return  # inproc://, ucx://...: let distributed handle them
    host, port = parts.hostname or "localhost", parts.port or 8786
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        reason = (
            f"no answer in {timeout:.0f} s" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        )
    raise ConnectionError(
        f"no Dask scheduler at {address} ({reason}). Start one with "
        f"`dask scheduler --port {port}` and workers with `dask worker {host}:{port}`, check the address, "
        "or drop --address to run locally"
    )


def check_memory_limit(text: str) -> int:
    """``--memory-limit`` in bytes; refused where a worker could never start, warned where no task fits.

    Below :data:`MIN_WORKER_BYTES` a worker exceeds its limit before its first task, and the nanny
    restarts it forever (the run would hang); below :data:`IMPORT_BYTES` every task is killed.
    """
    from dask.utils import parse_bytes

    try:
        limit = parse_bytes(text)
    except ValueError as exc:
        raise ValueError(f"--memory-limit {text!r}: {exc}; use e.g. 2GB") from None
    if limit < MIN_WORKER_BYTES:
        raise ValueError(
            f"--memory-limit {text} is below the {MIN_WORKER_BYTES / 2**20:.0f} MB a worker process needs to "
            f"start; give at least {IMPORT_BYTES / 2**20:.0f} MB plus the data of a task, e.g. 1GB"
        )
    if limit < IMPORT_BYTES:
        logger.warning(
            "--memory-limit %s is below the ~%d MB a worker needs to import the packages: tasks will be killed",
            text,
            IMPORT_BYTES // 2**20,
        )
    return limit


def scheduler_for(args: argparse.Namespace) -> dict[str, Any]:
    """``extract`` keywords for what the user asked; nothing asked: the engine decides."""
    kwargs: dict[str, Any] = {}
    if args.scheduler not in (None, "distributed"):
        kwargs["scheduler"] = args.scheduler
    if args.workers is not None:
        kwargs["workers"] = args.workers
    return kwargs


@contextlib.contextmanager
def cluster(args: argparse.Namespace) -> Iterator[Any]:
    """The client of this command: ``--address``, a LocalCluster if asked for, else None."""
    if args.address:
        from distributed import Client

        check_address(args.address)
        from dask_features.cli._plugins import IMPORTED_FILES

        with Client(args.address, timeout="10s") as client:
            say(f"connected to {args.address}; dashboard: {client.dashboard_link}")
            for path in IMPORTED_FILES:  # --import FILE: the remote scheduler and workers need it too
                client.upload_file(str(path), load=False)  # imported where a task needs it
            yield client
        return
    if args.scheduler != "distributed" and args.memory_limit is None:
        yield None
        return
    from distributed import Client

    from dask_features.engine.cluster import local_cluster

    options: dict[str, Any] = {"silence_logs": worker_log_level()}
    if args.memory_limit is not None:
        options["memory_limit"] = check_memory_limit(args.memory_limit)
    with local_cluster(args.workers, **options) as lc, Client(lc) as client:
        say(f"LocalCluster: {len(lc.workers)} workers; dashboard: {client.dashboard_link}")
        yield client


def memory_limits(client: Any) -> list[int]:
    """Each worker's memory limit [B] (0: none)."""
    if client is None:
        return []
    with contextlib.suppress(Exception):
        workers = client.scheduler_info().get("workers", {})
        return [int(w.get("memory_limit") or 0) for w in workers.values()]
    return []


def chunk_bytes(path: str, config: Any) -> int:
    """Bytes of measurement data in the largest task of one experiment (for the memory explanation)."""
    from dask_features.engine.plan import open_item, plan_chunks

    exp = open_item(path)
    per_step = {
        "transfer": 2 * 8 * max(exp.transfer_max_points, 1),
        "transient": 3 * 8 * exp.transient_total_points / max(exp.n_transient_steps, 1),
    }
    return int(max((b - a) * per_step[s] for s, a, b in plan_chunks(exp, config) or [("transfer", 0, 0)]))
